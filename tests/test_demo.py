"""The demo end to end: run as a user runs it (`depotdelivery demo --dir D --json` in a fresh
process with HOME, XDG and TMPDIR redirected), then again in-process on the same directory;
check its outcomes against the repository it built and that it wrote nothing outside D."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from node.test_select import expected_choice

from depotdelivery.demo import CHANNEL, MODES, run_demo


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime (what "changed" means here)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def _outside_state(home: Path, tmp: Path) -> dict[str, object]:
    uid = os.getuid()
    default_cache = Path(f"/var/tmp/depotdelivery-{uid}")
    return {
        "home": _tree(home), "tmp": _tree(tmp),
        "default node cache": _tree(default_cache) if default_cache.exists() else None,
        "/etc/depotdelivery": _tree(Path("/etc/depotdelivery")) if Path("/etc/depotdelivery").exists() else None,
    }


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(path))]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo run once in a fresh process, as `make demo` runs it."""
    base = tmp_path_factory.mktemp("demo")
    home, tmp, work = base / "home", base / "tmp", base / "work"
    for d in (home, tmp, work):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPOTDELIVERY_")}
    env.update(HOME=str(home), TMPDIR=str(tmp), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_CONFIG_HOME=str(home / ".config"))
    before = _outside_state(home, tmp)
    work_before = _tree(work)
    done = subprocess.run([sys.executable, "-m", "depotdelivery", "demo", "--dir", "out", "--json"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    yield {"result": result, "before": before, "after": _outside_state(home, tmp), "work_before": work_before,
           "work": work, "home": home, "tmp": tmp, "env": env}
    assert not _mounts_under(base), "the demo left a mount behind"


def test_writes_nothing_outside_its_directory(demo_run):
    assert demo_run["after"] == demo_run["before"]
    out = demo_run["work"] / "out"
    changed = {p for p in _tree(demo_run["work"]) if not p.startswith(str(out))}
    assert changed == set(demo_run["work_before"])
    r = demo_run["result"]
    for name in ("repo", "trusted_keys", "cache", "key", "env_file"):
        assert Path(r[name]).is_relative_to(out.absolute()), name
    for value in r["env"]["JULIA_DEPOT_PATH"].split(":")[:-1] + [r["env"]["JULIA_PROJECT"], *r["julia_args"][1:]]:
        assert Path(value).is_relative_to(out.absolute()), value


def test_selects_what_julia_would_accept_here(demo_run):
    from depotdelivery.cpu import detect
    from depotdelivery.store.repo import Repository

    r = demo_run["result"]
    name, version = r["releases"][0].split("/")
    release = Repository.open(r["repo"]).read_release(name, version)
    host = detect()
    assert r["host"]["arch"] == host.arch
    assert r["selected"] == expected_choice(release, host.julia_features(release.julia_version),
                                            host.julia_cpu(release.julia_version), host.arch)
    verdicts = {v["target"]: v for v in r["verdicts"]}
    assert set(verdicts) == {"generic", "haswell", "skylake-avx512", "znver4", "neoverse-v1", "a64fx"}
    assert verdicts[r["selected"]]["accepted"] and r["verdicts"][0]["target"] == r["selected"]
    for v in verdicts.values():
        assert v["reason"], v  # every variant says why it was chosen or not
    assert r["selected"] in r["why"]


# The issue-17 machine as captured: an Intel VM, family 6 model 0xA7, AVX-512 (FP16, BF16) and
# AMX but no pku. Julia's table does not list 0xA7, so Julia names it with LLVM: rocketlake.
A7_CPUINFO = Path(__file__).resolve().parent / "data" / "cpu" / "sites" / "intel-6-a7-vm.cpuinfo"


def test_demo_on_the_captured_rocketlake_vm_selects_haswell_and_says_why_generic_lost(tmp_path):
    text = io.StringIO()
    r = run_demo(tmp_path / "out", out=text, cpuinfo=A7_CPUINFO).to_dict()
    assert (r["host"]["julia_cpu"], r["host"]["julia_cpu_source"]) == ("rocketlake", "llvm-16")
    # no clone is named rocketlake, so Julia takes the widest clone the VM can run: haswell's
    # AVX2 (skylake-avx512 needs pku, which this VM lacks); a name match would have made it generic
    assert r["selected"] == "haswell"
    verdicts = {v["target"]: v for v in r["verdicts"]}
    assert verdicts["generic"]["accepted"]
    assert "lost to haswell: no clone is named rocketlake" in verdicts["generic"]["reason"]
    assert "16 < 32 bytes" in verdicts["generic"]["reason"]
    assert "needs pku" in verdicts["skylake-avx512"]["reason"] and not verdicts["skylake-avx512"]["accepted"]
    narrative = text.getvalue()
    assert "calls it rocketlake (not in Julia's CPU table: the name is LLVM 16's getHostCPUName)" in narrative
    assert "Julia would refuse it" in narrative and "lost to haswell" in narrative


def test_every_mode_prepared_or_skipped_with_a_reason(demo_run):
    from depotdelivery.errors import UnsupportedError
    from depotdelivery.node.hydrate import overlay_support

    modes = {m["mode"]: m for m in demo_run["result"]["modes"]}
    assert tuple(modes) == MODES
    for mode in ("stack", "symlink", "copy"):
        assert modes[mode]["prepared"], modes[mode]
    try:
        overlay_support()
    except UnsupportedError as exc:
        assert not modes["overlay"]["prepared"] and modes["overlay"]["reason"] == str(exc)
    else:
        # fuse-overlayfs and /dev/fuse exist: the mount itself may still be refused (a reason)
        assert modes["overlay"]["prepared"] or "fuse-overlayfs" in modes["overlay"]["reason"]
    for m in modes.values():
        if m["prepared"]:
            assert m["hydrated"] and m["key"].endswith(f"-{m['mode']}")
            assert m["check"].startswith("8 of 8 packages will load"), m
        else:
            assert m["reason"]


def test_job_environment_and_check(demo_run):
    r = demo_run["result"]
    env = r["env"]
    assert env["JULIA_PKG_OFFLINE"] == "true" and env["JULIA_DEPOT_PATH"].endswith(":")
    assert env["DEPOTDELIVERY_PREPARED_VARIANT"] == r["selected"] and env["DEPOTDELIVERY_PREPARED_RELEASE"] == r["releases"][0]
    assert r["julia_args"][0] == "--sysimage" and Path(r["julia_args"][1]).is_file()
    assert r["check"]["packages"] and all(p["verdict"] == "load" for p in r["check"]["packages"])


def test_rollback_moved_the_channel_and_a_replay_is_refused(demo_run):
    r = demo_run["result"]
    first, second = r["releases"]
    assert r["channel_before"]["release"] == second
    assert r["channel_after"]["release"] == first and r["channel_after"]["seq"] > r["channel_before"]["seq"]
    assert r["prepared_after_rollback"] == first
    assert "downgrade" in r["replay_refused"]
    channel = json.loads((Path(r["repo"]) / "channels" / f"{CHANNEL}.json").read_bytes())
    assert channel["seq"] == r["channel_after"]["seq"]  # the replayed document was put back


def test_gc_kept_only_the_leased_depot(demo_run):
    r = demo_run["result"]
    stack_key = next(m["key"] for m in r["modes"] if m["mode"] == "stack")
    assert r["gc"]["kept_leased"] == [stack_key]
    prepared = {m["key"] for m in r["modes"] if m["prepared"]}
    assert prepared - {stack_key} <= set(r["gc"]["removed"])
    assert sorted(os.listdir(Path(r["cache"]) / "depots")) == [stack_key]


def test_rerun_on_the_same_directory(demo_run, monkeypatch):
    first = demo_run["result"]
    for k, v in demo_run["env"].items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(demo_run["work"])
    text = io.StringIO()
    again = run_demo("out", out=text).to_dict()
    assert again["release_ids"] == first["release_ids"]  # identical inputs, identical releases
    assert again["channel_after"]["seq"] > first["channel_after"]["seq"]
    assert again["selected"] == first["selected"]
    narrative = text.getvalue()
    assert "was already published with identical content" in narrative
    assert f"selected {first['selected']}" in narrative and "== timings ==" in narrative
    assert "$ depotdelivery check" in narrative


def test_julia_1_10_depot_shows_what_relocation_breaks(tmp_path, monkeypatch):
    """Julia 1.10 caches record absolute source paths: the modes that keep the published paths
    load every cache, copy (and overlay, at a node-local mount point) would recompile them."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for k in [k for k in os.environ if k.startswith("DEPOTDELIVERY_")]:
        monkeypatch.delenv(k)
    r = run_demo(tmp_path / "out", out=None, julia_version="1.10.5").to_dict()
    modes = {m["mode"]: m for m in r["modes"]}
    for mode in ("stack", "symlink"):
        assert modes[mode]["check"].startswith("8 of 8 packages will load"), modes[mode]
    assert modes["copy"]["check"].startswith("0 of 8 packages will load")
    assert any("Julia 1.10.5" in w for w in modes["copy"]["warnings"])
    if modes["overlay"]["prepared"]:
        assert modes["overlay"]["check"].startswith("0 of 8 packages will load")
        assert any("overlay mode with Julia 1.10.5" in w for w in modes["overlay"]["warnings"])
    for mode in ("stack", "symlink"):  # the relocation warning names only the modes that break caches
        assert not any("absolute paths" in w for w in modes[mode]["warnings"]), modes[mode]
        # every 1.10 mode warns that the trailing ':' brings in ~/.julia
        assert [w for w in modes[mode]["warnings"] if "~/.julia" in w], modes[mode]
    assert not (tmp_path / "home").exists()
