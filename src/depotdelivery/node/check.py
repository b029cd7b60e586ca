"""What Julia will do with a prepared depot: which caches load, which recompile and why."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from depotdelivery.cpu import HostCPU
    from depotdelivery.julia.stale import StalenessReport
    from depotdelivery.node.env import Prepared
    from depotdelivery.store.release import Release

__all__ = ["check", "release_and_host"]


def release_and_host(prepared: Prepared, release: Release | None, host: HostCPU | None) -> tuple[Release, HostCPU]:
    """``release`` and ``host``, each defaulting to that of ``prepared``'s session (loaded and
    detected once per session)."""
    if release is None or host is None:
        if prepared.session is None:
            raise ValueError("needs the release and host, or a Prepared from prepare()")
        release = prepared.session.release() if release is None else release
        host = prepared.session.host() if host is None else host
    return release, host


def check(prepared: Prepared, release: Release | None = None, host: HostCPU | None = None) -> StalenessReport:
    """Julia's staleness verdict for every package of ``prepared``'s environment, on its depot
    stack, with the variant's sysimage (its modules' build ids and clone targets) and Julia's
    default JIT target (``native``) (``depotdelivery check``). ``release`` is the verified
    release ``prepared`` came from, ``host`` the CPU it was selected for; by default both come
    from ``prepared.session`` (loaded and detected once per session)."""
    from depotdelivery.julia.stale import predict
    from depotdelivery.node.select import image_targets

    release, host = release_and_host(prepared, release, host)
    variant = release.variant(prepared.variant)
    # the JULIA_DEPOT_PATH text, trailing ':' included: on Julia <= 1.10 it also brings in ~/.julia
    depot_path = prepared.env.get("JULIA_DEPOT_PATH") or prepared.depot_path
    return predict(depot_path, julia_version=release.julia_version,
                   sysimage_modules=[m.to_dict() for m in variant.sysimage_modules], host=host,
                   # the session's JIT target is ``-C`` (default ``native``), never JULIA_CPU_TARGET:
                   # that variable only sets the targets of caches Julia writes (Julia's manual,
                   # "Environment Variables"); the prepared julia_args pass no -C
                   jit_target=None,
                   project=prepared.env.get("JULIA_PROJECT"),
                   sysimage_targets=image_targets(variant) or None)
