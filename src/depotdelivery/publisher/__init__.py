"""CI side: publish (orchestration; scan, inspect, write), the CVMFS transaction, channels,
co-signing, repository gc, progress. The node never imports this package."""
