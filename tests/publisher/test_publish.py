"""Publishing into a plain directory: content addressing, preservation, immutability, refusals, hard links, in-place."""
from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import stat
from pathlib import Path

import pytest
from repo_fixtures import (
    BASE_NS,
    build_depot,
    growing,
    tree_digest,
    unique_bytes,
    write,
)

from depotdelivery.errors import (
    ConflictError,
    InputError,
    PublishError,
    RepositoryUnavailableError,
    UsageError,
)
from depotdelivery.publisher.progress import ProgressLine
from depotdelivery.publisher.publish import (
    VariantInput,
    init_repository,
    publish,
)
from depotdelivery.store import hashing
from depotdelivery.store.keys import TrustStore, load_private_key
from depotdelivery.store.repo import Repository
from depotdelivery.store.verify import verify


def _stats(root: Path) -> dict[str, tuple[int, int, int]]:
    """Inode, ctime and mtime of everything: 'nothing rewritten' means none of these moved."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, n))
            out[os.path.join(dirpath, n)] = (st.st_ino, st.st_ctime_ns, st.st_mtime_ns)
    return out


def test_publish_preserves_everything_and_verifies(env):
    r = env.publish()
    assert r.created and r.files == 13 and r.path == env.repo / "releases" / "hep" / "1"
    repo = Repository.open(env.repo)
    rel = repo.read_release("hep", "1", TrustStore.from_dir(env.trust))
    assert rel.id == r.release_id and rel.julia_version == "1.11" and rel.project == "environments/hep"
    published = r.path / "depot"
    for dirpath, dirnames, filenames in os.walk(env.depot):
        for n in dirnames + filenames:
            src = Path(dirpath) / n
            dst = published / src.relative_to(env.depot)
            a, b = os.lstat(src), os.lstat(dst)
            assert (a.st_mode, a.st_mtime_ns, a.st_size) == (b.st_mode, b.st_mtime_ns, b.st_size), dst
            if stat.S_ISLNK(a.st_mode):
                assert os.readlink(dst) == os.readlink(src) == "libfoo.so"
            elif stat.S_ISREG(a.st_mode):
                assert dst.read_bytes() == src.read_bytes()
    tool = published / "artifacts" / "0123456789abcdef0123456789abcdef01234567" / "bin" / "tool"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755 and tool.stat().st_mtime_ns == BASE_NS + 32
    entries = {e.path: e for e in repo.read_listing(rel, rel.shared.tree)}
    link = entries["artifacts/0123456789abcdef0123456789abcdef01234567/lib/libfoo.so.1"]
    assert (link.type, link.target, link.mtime_ns) == ("symlink", "libfoo.so", BASE_NS + 31)
    v = rel.variant("haswell")
    assert v.clones_source == "image" and v.arch == "x86_64" and v.sysimage is not None
    assert v.clones[0].name == "haswell" and {"avx2", "bmi2", "fma", "avx"} <= set(v.clones[0].features)
    assert v.sysimage.path == "variants/haswell/sys.so"
    assert [x.subject for x in verify(env.repo, trust=TrustStore.from_dir(env.trust))] == ["release hep/1"]
    assert not list(env.repo.glob("releases/hep/.*")), "no temporary left behind"


def test_identical_republish_same_id_nothing_rewritten_and_cached(env, monkeypatch):
    monkeypatch.setattr(hashing, "_RACY_NS", 0)  # our fixture files were written a moment ago
    first = env.publish()
    before, stats = tree_digest(env.repo), _stats(env.repo)
    again = env.publish()
    assert (again.release_id, again.created) == (first.release_id, False)
    assert again.hashed_bytes == 0, "unchanged files come from the stat cache"
    assert tree_digest(env.repo) == before and _stats(env.repo) == stats
    # without the cache the answer is the same: the id is a function of the content
    assert env.publish(use_hash_cache=False).release_id == first.release_id


def test_different_content_under_existing_version_is_refused(env):
    env.publish()
    before = tree_digest(env.repo)
    write(env.depot / "packages" / "Foo" / "Ab0cD" / "src" / "Foo.jl", "module Foo\n# changed\nend\n")
    with pytest.raises(ConflictError, match=r"hep/1 already exists .*depot: 1 paths differ \(packages/Foo/Ab0cD/src/Foo.jl\)"):
        env.publish()
    os.utime(env.depot / "registries" / "General.toml", ns=(1, 1))  # an mtime is content too
    with pytest.raises(ConflictError, match="registries/General.toml"):
        env.publish()
    assert tree_digest(env.repo) == before


def test_cpu_target_change_is_a_conflict(env):
    env.publish()
    with pytest.raises(ConflictError, match="variant haswell cpu_target 'haswell' -> 'haswell,-rdrnd'"):
        env.publish(variants={"haswell": VariantInput(dir=env.variant, cpu_target="haswell,-rdrnd")})


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _socket(p: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()


def _device(p: Path) -> None:
    try:
        os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")


@pytest.mark.parametrize("make, message", [
    (_fifo, "is a FIFO"),
    (_socket, "is a socket"),
    (_device, "is a character device"),
    (lambda p: os.symlink("../../../outside", p), "points outside"),
    (lambda p: os.symlink("/etc/passwd", p), "points outside"),
    # lexically inside (normpath gives '.'), really the depot's parent: 'dot' is the root itself
    (lambda p: (os.symlink(".", p.parents[2] / "dot"), os.symlink("../../dot/..", p)), "points outside"),
])
def test_refuses_what_a_release_cannot_hold(env, make, message):
    target = env.depot / "packages" / "Foo" / "bad"
    make(target)
    with pytest.raises(InputError, match=message) as exc:
        env.publish()
    assert "packages/Foo" in str(exc.value)
    assert os.listdir(env.repo) == [], "an empty root stays empty (not even initialised)"


def test_refuses_non_utf8_names(env):
    with open(os.fsencode(env.depot / "packages") + b"/caf\xe9.jl", "wb") as fh:
        fh.write(b"x")
    with pytest.raises(InputError, match=r"caf\\xe9.jl.*not UTF-8"):
        env.publish()
    assert os.listdir(env.repo) == []


def test_file_changing_during_publish_is_detected(env):
    big = env.depot / "artifacts" / "growing.bin"
    big.write_bytes(os.urandom(16 << 20))
    with growing(big, b"y" * 65536), \
            pytest.raises(PublishError, match="growing.bin changed while it was being (hashed|published)"):
        env.publish(use_hash_cache=False)
    assert os.listdir(env.repo) == []


def test_hard_links_make_a_one_package_change_cost_that_package(env, tmp_path):
    depot1 = build_depot(tmp_path / "d1", big=1 << 20)
    depot2 = build_depot(tmp_path / "d2", big=0, salt="new")
    big = Path("artifacts/0123456789abcdef0123456789abcdef01234567/share/big.bin")
    (depot2 / big).parent.mkdir()
    shutil.copy2(depot1 / big, depot2 / big)
    os.utime((depot2 / big).parent, ns=(BASE_NS + 60, BASE_NS + 60))
    env.publish("1", depot=depot1)
    size1 = unique_bytes(env.repo)
    r2 = env.publish("2", depot=depot2)
    growth = unique_bytes(env.repo) - size1
    changed = (depot2 / "packages" / "Foo" / "Ab0cD" / "src" / "Foo.jl").stat().st_size
    assert r2.linked_files == r2.files - 1 and r2.copied_bytes == changed
    assert growth < 16 * 1024, f"one small source file changed but the repository grew by {growth} bytes"
    a = env.repo / "releases/hep/1/depot/artifacts/0123456789abcdef0123456789abcdef01234567/share/big.bin"
    b = env.repo / "releases/hep/2/depot/artifacts/0123456789abcdef0123456789abcdef01234567/share/big.bin"
    assert os.stat(a).st_ino == os.stat(b).st_ino
    variant_tree = Repository.open(env.repo).read_release("hep", "2").variant("haswell").tree
    l1, l2 = (env.repo / "releases" / "hep" / v / "listings" / f"{variant_tree}.jsonl" for v in ("1", "2"))
    assert os.stat(l1).st_ino == os.stat(l2).st_ino, "an unchanged tree's listing is shared too"
    verify(env.repo, trust=TrustStore.from_dir(env.trust))


def test_in_place_publishes_content_already_at_its_final_path(env):
    final = env.repo / "releases" / "hep" / "1"
    shutil.copytree(env.depot, final / "depot", symlinks=True)
    shutil.copytree(env.variant, final / "variants" / "haswell", symlinks=True)
    for src, dst in ((env.depot, final / "depot"), (env.variant, final / "variants" / "haswell")):
        for dirpath, dirnames, _ in os.walk(src):
            for n in dirnames:
                s = Path(dirpath) / n
                os.utime(dst / s.relative_to(src), ns=(os.stat(s).st_mtime_ns,) * 2)
    content_before = tree_digest(final / "depot")
    r = publish(env.repo, "hep", "1", None, {}, env.key, in_place=True)  # variants found in place
    assert r.created and tree_digest(final / "depot") == content_before, "the content is hashed, never touched"
    assert r.release_id == env.publish("1").release_id, "same content, same id as a normal publish"
    verify(env.repo, trust=TrustStore.from_dir(env.trust))
    with pytest.raises(UsageError, match="--in-place publishes the content already at"):
        publish(env.repo, "hep", "1", env.depot, {}, env.key, in_place=True)
    with pytest.raises(UsageError, match="variant haswell must be at"):
        publish(env.repo, "hep", "1", None, {"haswell": VariantInput(dir=env.variant)}, env.key, in_place=True)


def test_leftover_directory_without_release_is_not_overwritten(env):
    (env.repo / "releases" / "hep" / "1").mkdir(parents=True)
    init_repository(env.repo)
    with pytest.raises(ConflictError, match="holds no committed release"):
        env.publish()


def test_missing_and_foreign_roots(env, tmp_path):
    with pytest.raises(RepositoryUnavailableError, match="does not exist"):
        publish(tmp_path / "nope", "hep", "1", env.depot, {}, env.key)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "data").write_text("x")
    with pytest.raises(RepositoryUnavailableError, match="not empty and not a depotdelivery repository"):
        publish(tmp_path / "foreign", "hep", "1", env.depot, {}, env.key)
    with pytest.raises(RepositoryUnavailableError, match=r"cvmfs_config probe sft.example.org"):
        Repository.open("/cvmfs/sft.example.org/depots")


def test_progress_line_only_on_a_terminal(env):
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as tty:
        line = ProgressLine(tty, hz=1e9)
        assert line.enabled
        env.publish(progress=line, use_hash_cache=False)
    out = os.read(master, 65536).decode()
    os.close(master)
    assert "hashing: 13/13 files" in out and "ETA" in out and "/s" in out
    assert "writing: " in out
    import io
    quiet = io.StringIO()
    env.publish("2", progress=ProgressLine(quiet))
    assert quiet.getvalue() == ""


def test_cli_publish_json_and_exit_codes(env, cli):
    args = ["publish", "--repo", str(env.repo), "--name", "hep", "--version", "1", "--depot", str(env.depot),
            "--variant", f"haswell={env.variant},sysimage=sys.so", "--cpu-target", "haswell=haswell,-rdrnd",
            "--key", str(env.key_path), "--channel", "stable", "--json"]
    assert cli(*args).code == 0
    out = json.loads(cli.last.out)
    assert out["created"] and out["channel_seq"] == 1 and out["release"] == "hep/1"
    assert cli(*args).code == 0
    again = json.loads(cli.last.out)
    assert again["release_id"] == out["release_id"] and not again["created"] and again["channel_seq"] == 1
    write(env.depot / "registries" / "General.toml", "[Changed]\n")
    assert cli(*args).code == 9
    assert "already exists" in cli.last.err
    assert cli(*args[:-1], "--variant", "x=/nonexistent").code == 2
    assert cli("publish", "--repo", str(env.base / "missing"), "--name", "a", "--version", "1", "--depot", str(env.depot), "--key", str(env.key_path)).code == 3
    assert cli("publish", "--repo", str(env.repo), "--name", "../a", "--version", "1", "--depot", str(env.depot), "--key", str(env.key_path)).code == 2


def _publish_in_child(args: tuple) -> tuple[str, bool]:
    repo, version, depot, variant, key_path = args
    r = publish(repo, "hep", version, depot, {"haswell": VariantInput(dir=variant)}, load_private_key(key_path),
                use_hash_cache=False)
    return r.release_id, r.created


def test_concurrent_publishers(env):
    """Real processes racing: the same release twice (one creates, one finds it identical)
    and two versions at once (both land); the result verifies and no temporary is left."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    jobs = [(env.repo, v, env.depot, env.variant, env.key_path) for v in ("1", "1", "2", "2", "3")]
    with ctx.Pool(len(jobs)) as pool:
        results = pool.map(_publish_in_child, jobs)
    ids: dict[str, set[str]] = {}
    for (rid, _), job in zip(results, jobs):
        ids.setdefault(job[1], set()).add(rid)
    assert all(len(x) == 1 for x in ids.values()), "one id per version, whoever wrote it"
    assert sum(created for _, created in results) == 3, "exactly one creator per version"
    assert Repository.open(env.repo).releases() == [("hep", "1"), ("hep", "2"), ("hep", "3")]
    verify(env.repo, trust=TrustStore.from_dir(env.trust))
    assert not [p for p in (env.repo / "releases" / "hep").iterdir() if p.name.startswith(".")]


def test_cli_in_place_discovers_variants(env, cli):
    final = env.repo / "releases" / "hep" / "7"
    shutil.copytree(env.depot, final / "depot", symlinks=True)
    shutil.copytree(env.variant, final / "variants" / "haswell", symlinks=True)
    assert cli("publish", "--in-place", "--repo", str(env.repo), "--name", "hep", "--version", "7", "--key", str(env.key_path), "--cpu-target", "haswell=haswell,-rdrnd", "--json").code == 0
    assert json.loads(cli.last.out)["created"]
    v = Repository.open(env.repo).read_release("hep", "7").variant("haswell")
    assert (v.cpu_target, v.clones_source) == ("haswell,-rdrnd", "image")


def test_hard_links_across_release_names(env):
    env.publish("1")
    other = publish(env.repo, "hep-gpu", "1", env.depot, {}, env.key, project="environments/hep")
    assert other.linked_files == other.files and other.copied_bytes == 0
    verify(env.repo, trust=TrustStore.from_dir(env.trust))


def test_a_sparse_source_stays_sparse_in_the_repository(env):
    """A 256 MiB file that is one hole around two 4 KiB blocks (what a build's preallocated or
    truncated outputs look like) takes about 8 KiB in the repository too, as ``cp
    --sparse=auto`` would leave it, and its bytes (the zeros included) are the ones listed."""
    big = env.depot / "artifacts" / "sparse.bin"
    with open(big, "wb") as fh:
        fh.write(b"head" * 1024)
        fh.seek(128 << 20)
        fh.write(b"mid!" * 1024)
        fh.truncate(256 << 20)
    if os.stat(big).st_blocks * 512 > 1 << 20:
        pytest.skip(f"the file system of {big} does not keep holes")
    env.publish()
    published = next(env.repo.glob("releases/hep/1/**/artifacts/sparse.bin"))
    assert os.stat(published).st_size == 256 << 20
    assert os.stat(published).st_blocks * 512 <= 1 << 20
    assert hashing.hash_file(published) == hashing.hash_file(big)
    assert [r.problems for r in verify(env.repo, trust=TrustStore.from_dir(env.trust))] == [[]]


def test_a_source_replaced_by_a_fifo_after_the_scan_is_refused_not_waited_on(env, monkeypatch):
    """Between scan and copy a build replaces a file by a FIFO: the publish stops with "changed
    while it was being published" at once (no reader blocks for a writer that never comes),
    and nothing is left in the repository."""
    from depotdelivery.publisher import write as write_mod

    victim = next(env.depot.rglob("*.jl"))
    real = write_mod._copy_file

    def swapped(src: str, dst: str, it: object) -> None:
        if src == str(victim):
            victim.unlink()
            os.mkfifo(victim)
        real(src, dst, it)

    monkeypatch.setattr(write_mod, "_copy_file", swapped)
    with pytest.raises(PublishError, match="changed while it was being published"):
        env.publish()
    assert not (env.repo / "releases" / "hep" / "1").exists()
