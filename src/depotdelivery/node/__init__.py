"""Node runtime: configuration, cache, locks and leases, hydration, prepare()."""
