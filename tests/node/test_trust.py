"""Per-node trust state (node/trust.py): the trusted-keys fingerprint that keys the node's
records of verified bytes, remembered channels and pins, the highest seq accepted."""
from __future__ import annotations

import os

from trust_fixtures import write_threshold

from depotdelivery.node.trust import keys_fingerprint
from depotdelivery.store.keys import (
    THRESHOLD_FILE,
)


def test_node_fingerprint_changes_with_the_threshold_even_in_place(keys):
    """The node's "already verified these bytes" records are keyed by this fingerprint: a
    threshold rewritten in place with the same size, inode and mtime must still change it."""
    trust, _ = keys
    write_threshold(trust, 1)
    st0 = os.stat(trust / THRESHOLD_FILE)
    before = keys_fingerprint(str(trust))
    with open(trust / THRESHOLD_FILE, "r+") as f:
        f.write("2\n")
    os.utime(trust / THRESHOLD_FILE, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    assert os.stat(trust / THRESHOLD_FILE).st_ino == st0.st_ino
    assert keys_fingerprint(str(trust)) != before
