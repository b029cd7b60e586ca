"""depotdelivery: precompiled Julia depots and system images from read-only storage to cluster nodes.

The public API. Everything is imported lazily (PEP 562 ``__getattr__``) so that
``import depotdelivery`` stays cheap on the node's hot path: ``cryptography``, ``archspec``
and the publisher are only imported when something that needs them is called.

The modules a job imports (``cpu``'s detection, ``node``'s prepare path, ``store.canonical`` /
``store.fields``) do not import ``typing`` either: with its dependencies (re, enum, functools,
collections) it costs more than a first ``detect()`` or a whole warm ``prepare()``
(benchmarks/bench_detect.py, bench_prepare.py). They spell ``TYPE_CHECKING = False`` (type
checkers read a module-level name of that spelling as ``typing.TYPE_CHECKING``) and keep
annotation-only names under ``if TYPE_CHECKING:``; annotations are postponed strings
(``from __future__ import annotations``). tests/node/test_prepare.py checks the hot path's imports.
"""
from __future__ import annotations

import sys

from depotdelivery.errors import (
    CacheError,
    ConflictError,
    DepotDeliveryError,
    FormatError,
    InputError,
    IntegrityError,
    LockTimeoutError,
    NoCompatibleVariantError,
    NotFoundError,
    PublishError,
    RepositoryUnavailableError,
    TrustError,
    UnsupportedError,
    UsageError,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "detect": "depotdelivery.cpu",
    "HostCPU": "depotdelivery.cpu",
    "select": "depotdelivery.node.select",
    "Selection": "depotdelivery.node.select",
    "prepare": "depotdelivery.node.prepare",
    "Prepared": "depotdelivery.node.env",
    "publish": "depotdelivery.publisher.publish",
    "VariantInput": "depotdelivery.publisher.publish",
    "PublishResult": "depotdelivery.publisher.publish",
    "build_release": "depotdelivery.publisher.build",
    "keygen": "depotdelivery.store.keys",
    "verify": "depotdelivery.store.verify",
    # module:function where the public name is not the function's own
    "fingerprint": "depotdelivery.node.fingerprint:take_fingerprint",
    "Fingerprint": "depotdelivery.store.fingerprint",
}

__all__ = [
    "CacheError",
    "ConflictError",
    "DepotDeliveryError",
    "Fingerprint",
    "FormatError",
    "HostCPU",
    "InputError",
    "IntegrityError",
    "LockTimeoutError",
    "NoCompatibleVariantError",
    "NotFoundError",
    "Prepared",
    "PublishError",
    "PublishResult",
    "RepositoryUnavailableError",
    "Selection",
    "TrustError",
    "UnsupportedError",
    "UsageError",
    "VariantInput",
    "__version__",
    "detect",
    "fingerprint",
    "keygen",
    "prepare",
    "publish",
    "select",
    "verify",
]


def __getattr__(name: str) -> object:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'depotdelivery' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    # __import__ + sys.modules, not importlib.import_module: importing importlib costs a good
    # part of a first detect() (benchmarks/bench_detect.py)
    __import__(module)
    value = getattr(sys.modules[module], attr or name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
