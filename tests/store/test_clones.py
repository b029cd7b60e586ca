"""Clone <-> Julia's clone targets (store/clones.py): what the publisher records from an image is
what the node hands back to Julia's matching rules, bit for bit."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.julia.cputarget import parse_cpu_target, to_image_target
from depotdelivery.julia.features import feature_table
from depotdelivery.julia.targetdata import ImageTarget, TargetData, parse_target_data
from depotdelivery.store.clones import (
    clones_from_image,
    clones_from_specs,
    image_targets,
)
from depotdelivery.store.release import Clone
from depotdelivery.synth.targetdata import target_data_bytes

OFFICIAL_X86 = "generic;sandybridge,-xsaveopt,clone_all;haswell,-rdrnd,base(1);x86-64-v4,-rdrnd,base(1)"


def _image(text: str, arch: str = "x86_64", version: str = "1.11") -> list[ImageTarget]:
    specs = parse_cpu_target(text, arch, version)
    blob = target_data_bytes(TargetData(tuple(to_image_target(s, arch, version) for s in specs)))
    return list(parse_target_data(blob).targets)


def test_image_targets_round_trip_through_release_clones():
    table = feature_table("x86_64", "1.11")
    targets = _image(OFFICIAL_X86)
    clones = clones_from_image(targets, table)
    assert image_targets(clones) == targets
    assert clones[2].name == "haswell" and "avx2" in clones[2].features
    assert all(c.features == tuple(sorted(table.names(c.en))) for c in clones)


@pytest.mark.parametrize("arch, text", [("aarch64", "generic;neoverse-v1,clone_all"),
                                         ("x86_64", "generic;sandybridge,-xsaveopt,clone_all;haswell,-rdrnd,base(1)")])
def test_specs_and_images_agree_on_names_and_features(arch, text):
    """An "approximate" clone (from JULIA_CPU_TARGET) has the features of the image Julia would
    build from the same string; only the flags differ (the image's are what codegen stored)."""
    table = feature_table(arch, "1.11")
    from_specs = clones_from_specs(parse_cpu_target(text, arch, "1.11"), table)
    from_image = clones_from_image(_image(text, arch), table)
    assert [(c.name, c.en, c.dis, c.features) for c in from_specs] == \
        [(c.name, c.en, c.dis, c.features) for c in from_image]


_words = st.lists(st.integers(0, 2**32 - 1), min_size=11, max_size=11).map(tuple)


@given(st.lists(st.builds(Clone, name=st.sampled_from(["generic", "haswell", "znver4"]), flags=st.integers(0, 511),
                          en=_words, dis=_words, features=st.just(()), ext=st.sampled_from(["", "+avx"])),
                max_size=4))
def test_image_targets_keep_every_stored_field(clones):
    for clone, target in zip(clones, image_targets(clones), strict=True):
        assert (target.name, target.flags, target.en_words, target.dis_words, target.ext) == \
            (clone.name, clone.flags, clone.en, clone.dis, clone.ext)
