"""Generators for tests, the demo and benchmarks: Julia-faithful depots (:mod:`~depotdelivery.synth.depot`).
The library's readers (``depotdelivery.julia``) never import this package, nor does the node."""
