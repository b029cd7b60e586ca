#!/bin/sh
# Install the Debian tools the test suite and benchmarks can use, when we are root on a
# Debian-like system and they are missing. Never fails: each test checks for its tool and
# reports clearly when it is absent.
want=""
command -v fuse-overlayfs >/dev/null 2>&1 || want="$want fuse-overlayfs"
command -v b3sum >/dev/null 2>&1 || want="$want b3sum"
command -v hyperfine >/dev/null 2>&1 || want="$want hyperfine"
command -v ld.lld >/dev/null 2>&1 || want="$want lld"
command -v mksquashfs >/dev/null 2>&1 || want="$want squashfs-tools"
# a real single-node Slurm for tests/launchers/test_slurm.py, systemd-analyze for tests/test_contrib.py
[ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/slurmctld ] && command -v sbatch >/dev/null 2>&1 || want="$want slurm-wlm"
[ -x /usr/sbin/munged ] || want="$want munge"
command -v systemd-analyze >/dev/null 2>&1 || want="$want systemd"
[ -z "$want" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: installing$want" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $want) >/dev/null 2>&1 \
        || echo "system-deps: could not install$want; the tests that need them will say so" >&2
else
    echo "system-deps: missing$want (not root or no apt-get); the tests that need them will say so" >&2
fi
exit 0
