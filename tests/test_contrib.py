"""contrib/systemd: the user units a site installs for a periodic node-cache gc
(docs/site-admin.md, "Periodic gc with systemd").

``systemd-analyze --user verify`` checks them as a user manager would load them. It also checks
that ExecStart's executable exists, and the units name the site path
``/usr/local/bin/depotdelivery`` (the one the cron and epilog examples use), which this machine
need not have: the test substitutes this installation's console script for that one path, in
the ExecStart line only, and proves with the unsubstituted file that verify does look at it.
The command line itself runs, as the unit has it, with the real CLI against a temporary cache,
and docs/site-admin.md's install recipe runs as written with systemctl's --root pointed at a
scratch directory (the one change, checked).

Without systemd-analyze the verify tests skip, saying so, except under CI=true, where they fail:
CI installs systemd (scripts/system-deps.sh), so a missing one there is a broken setup, not a
machine that cannot check.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from node_fixtures import run_ro
from test_docs import recipe

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "contrib" / "systemd"
SERVICE = UNITS / "depotdelivery-gc.service"
TIMER = UNITS / "depotdelivery-gc.timer"
SITE_BINARY = "/usr/local/bin/depotdelivery"  # what a site edits (in a drop-in) if it installs elsewhere
BIN = Path(sys.executable).parent / "depotdelivery"  # the console script of this installation


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        why = "systemd-analyze is not installed (Debian systemd; `make system-deps` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}, and CI=true: CI must verify contrib/systemd")
        pytest.skip(why)
    return path


def _exec_start() -> list[str]:
    """The service's one ExecStart=, split into words as systemd splits it."""
    lines = [line for line in SERVICE.read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    command = lines[0].removeprefix("ExecStart=")
    # systemd's own syntax (specifiers %x, $VAR expansion, quoting, escapes, the @-:+! prefixes)
    # is kept out of the line, so shell word splitting is exactly systemd's here
    assert re.fullmatch(r"[\w/.= -]+", command) and not command.startswith(("@", "-", ":", "+", "!")), command
    return shlex.split(command)


def _verify(tmp_path: Path, *units: Path) -> subprocess.CompletedProcess[str]:
    # a user manager's runtime directory (the test has no session of its own)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run([_systemd_analyze(), "--user", "verify", *map(str, units)],
                          capture_output=True, text=True, env=env, timeout=60)


def _installed(tmp_path: Path) -> Path:
    """Both units in a directory of their own, ExecStart's site path replaced by this installation's
    console script (that one substitution, checked)."""
    here = tmp_path / "units"
    here.mkdir()
    text = SERVICE.read_text()
    assert text.count(SITE_BINARY) == len(re.findall(rf"^ExecStart={re.escape(SITE_BINARY)} ", text, re.MULTILINE)) == 1
    (here / SERVICE.name).write_text(text.replace(f"ExecStart={SITE_BINARY} ", f"ExecStart={BIN} "))
    shutil.copy(TIMER, here / TIMER.name)
    return here


def test_units_verify(tmp_path):
    here = _installed(tmp_path)
    done = _verify(tmp_path, here / TIMER.name, here / SERVICE.name)
    # verify exits 0 on unknown keys and sections (it only warns), so its output must be empty too
    warnings = done.stderr.strip().splitlines()
    version = int(re.match(r"systemd (\d+)", subprocess.run([_systemd_analyze(), "--version"], capture_output=True,
                                                            text=True).stdout).group(1))
    if version < 247:  # FixedRandomDelay= is newer; the unit says older systemd ignores it
        warnings = [w for w in warnings if "Unknown key 'FixedRandomDelay'" not in w]
    assert done.returncode == 0 and not warnings, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def test_verify_checks_the_executable(tmp_path):
    """What the substitution changes is looked at: the unit as shipped names the site path."""
    if Path(SITE_BINARY).exists():
        pytest.skip(f"{SITE_BINARY} exists here, so the unit as shipped verifies")
    here = tmp_path / "as-shipped"
    here.mkdir()
    shutil.copy(SERVICE, here / SERVICE.name)
    done = _verify(tmp_path, here / SERVICE.name)
    assert done.returncode != 0 and SITE_BINARY in done.stderr, done.stderr


def test_timer_triggers_the_service_hourly_spread_and_persistent():
    timer = TIMER.read_text()
    for setting in ("OnCalendar=hourly", "RandomizedDelaySec=1h", "Persistent=true", "WantedBy=timers.target"):
        assert re.search(rf"^{re.escape(setting)}$", timer, re.MULTILINE), setting
    # no Unit=: the timer starts the service of its own name
    assert not re.search(r"^Unit=", timer, re.MULTILINE)
    service = SERVICE.read_text()
    assert re.search(r"^Type=oneshot$", service, re.MULTILINE)
    # options that hide the real /var/tmp or the user's config, or that stop the setuid
    # fusermount3 gc unmounts overlays with (a mount namespace, or no new privileges)
    for hiding in ("PrivateTmp", "ProtectSystem", "ProtectHome", "NoNewPrivileges", "PrivateUsers", "PrivateMounts",
                   "SystemCallFilter", "ReadWritePaths", "PrivateDevices", "DynamicUser", "User"):
        assert not re.search(rf"^{hiding}=", service, re.MULTILINE), f"{hiding}= set (see the unit's comments)"
    settings = [line for line in service.splitlines() if line and not line.startswith("#")]
    assert not [line for line in settings if "%h" in line], "a path under the home directory"


def test_exec_start_runs_with_the_real_cli(node_repo, tmp_path):
    """The unit's gc, run as written (console script for the site path) on a cache with four
    unused depots: three a week old or more and one used an hour ago. --keep 3 keeps the three
    newest, so only the oldest (10 days) goes; --older-than 7d alone would take three."""
    argv = _exec_start()
    assert argv[0] == SITE_BINARY and argv[1] == "gc", argv
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPOTDELIVERY_")}
    env.update(DEPOTDELIVERY_REPO=str(node_repo.root), DEPOTDELIVERY_TRUSTED_KEYS=str(node_repo.trusted),
               DEPOTDELIVERY_CACHE=str(cache), HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    # an empty (here: missing) cache, as for every user with the timer enabled who never ran a job
    done = subprocess.run([str(BIN), *argv[1:]], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert not cache.exists(), "gc created a cache for a user who has none"

    res = run_ro(node_repo, """
        import json, os, subprocess, sys, time
        import depotdelivery
        from depotdelivery.node.cache import NodeCache
        cache = NodeCache(os.environ["DEPOTDELIVERY_CACHE"])
        ages = {"x86_64": 10, "haswell": 9, "skylake_avx512": 8, "zen4": 1 / 24}  # days unused
        keys = {}
        for microarch, days in ages.items():
            p = depotdelivery.prepare(mode="stack", microarch=microarch)
            p.lease.release()
            t = time.time() - days * 86400
            os.utime(os.path.join(cache.leases, p.key), (t, t))
            keys[microarch] = p.key
        done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
        print(json.dumps({"keys": keys, "code": done.returncode, "out": done.stdout, "err": done.stderr,
                          "left": sorted(cache.keys())}))
    """, str(BIN), *argv[1:], env=env)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["code"] == 0, out
    keys = out["keys"]
    assert len(set(keys.values())) == 4, keys
    assert out["left"] == sorted(keys[m] for m in ("haswell", "skylake_avx512", "zen4")), out


def test_install_recipe_enables_the_timer_for_every_user(tmp_path):
    """docs/site-admin.md's recipe as written, but into a scratch root instead of the machine's /etc."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemctl is not installed, and CI=true: CI installs systemd (scripts/system-deps.sh)")
        pytest.skip("systemctl is not installed (Debian systemd; `make system-deps` installs it)")
    root = tmp_path / "root"
    script = recipe("site-admin.md", "install-units")
    for site, here in ((" -t /etc/systemd/user ", f" -t {root}/etc/systemd/user "),
                       ("systemctl --global ", f"systemctl --root={root} --global ")):
        assert script.count(site) == 1, site
        script = script.replace(site, here)
    done = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    user = root / "etc" / "systemd" / "user"
    assert (user / SERVICE.name).read_bytes() == SERVICE.read_bytes()
    link = user / "timers.target.wants" / TIMER.name
    assert os.readlink(link) == f"/etc/systemd/user/{TIMER.name}"
    state = subprocess.run([systemctl, f"--root={root}", "--global", "is-enabled", TIMER.name],
                           capture_output=True, text=True)
    assert state.stdout.strip() == "enabled", state
