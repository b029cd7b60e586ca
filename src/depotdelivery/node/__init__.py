"""Job side: configuration, cache, locks and leases, trust, session, selection, hydration,
prepare() (``depotdelivery.node.prepare``), the Prepared environment, check.

No re-exports: ``depotdelivery.prepare`` is the public entry point, and a package attribute
named like one of its submodules (``prepare``, ``select``) would shadow it."""
