"""depotdelivery: precompiled Julia depots and system images from read-only storage to cluster nodes.

The public API. Everything is imported lazily (PEP 562 ``__getattr__``) so that
``import depotdelivery`` stays cheap on the node's hot path: ``cryptography``, ``archspec``
and the publisher are only imported when something that needs them is called.
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
    "select": "depotdelivery.select",
    "Selection": "depotdelivery.select",
    "prepare": "depotdelivery.node",
    "Prepared": "depotdelivery.node",
    "publish": "depotdelivery.publish",
    "keygen": "depotdelivery.store.keys",
    "verify": "depotdelivery.store.verify",
}

__all__ = [
    "CacheError",
    "ConflictError",
    "DepotDeliveryError",
    "FormatError",
    "InputError",
    "IntegrityError",
    "LockTimeoutError",
    "NoCompatibleVariantError",
    "NotFoundError",
    "PublishError",
    "RepositoryUnavailableError",
    "TrustError",
    "UnsupportedError",
    "UsageError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'depotdelivery' has no attribute {name!r}")
    # __import__ + sys.modules, not importlib.import_module: importing importlib costs about
    # 0.4 ms, a third of a first detect() (benchmarks/bench_detect.py)
    __import__(module)
    value = getattr(sys.modules[module], name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
