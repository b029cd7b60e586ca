"""Node runtime: configuration, cache, locks and leases, hydration, prepare()."""
from __future__ import annotations

from depotdelivery.node.prepare import Prepared, prepare

__all__ = ["Prepared", "prepare"]
