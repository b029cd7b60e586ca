"""``depotdelivery build``: Julia projects -> a release tree with one sysimage and cache set per
CPU target, built with the site's Julia and PackageCompiler, optionally published.

Modules: ``plan`` (probe, variants, lint, refusals), ``scripts`` (the generated Julia),
``steps`` (one Julia process per step), ``record`` (resume records), ``checks`` (what each
step must have written), ``shared`` (the shared depot), ``variant`` (one variant),
``release`` (the order, the CVMFS transaction, publishing)."""
from __future__ import annotations

from depotdelivery.publisher.build.plan import (
    VARIANT_SETS,
    default_variants,
    parse_variant_args,
)
from depotdelivery.publisher.build.release import BuildResult, build_release
from depotdelivery.publisher.build.variant import VariantOutcome

__all__ = ["VARIANT_SETS", "BuildResult", "VariantOutcome", "build_release", "default_variants", "parse_variant_args"]
