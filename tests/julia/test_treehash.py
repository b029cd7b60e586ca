"""Git tree hashes of directories compared with git itself on real repositories."""
import hashlib
import os
import shutil
import stat
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depotdelivery.errors import InputError
from depotdelivery.julia.treehash import blob_hash, git_tree_hash

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

_GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git_tree(root):
    """What git computes for the directory: commit everything, return HEAD^{tree}."""
    def git(*args):
        return subprocess.run(["git", "-c", "core.fileMode=true", "-c", "core.symlinks=true", *args],
                              cwd=root, env=_GIT_ENV, capture_output=True, text=True, check=True).stdout
    git("init", "-q", ".")
    git("add", "-A", ".")
    git("commit", "-q", "--allow-empty", "-m", "t")
    return git("rev-parse", "HEAD^{tree}").strip()


def test_files_executables_symlinks_nested_and_empty_dirs(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "deep.jl").write_text("x = 1\n")
    (tmp_path / "src" / "Pkg.jl").write_text("module Pkg end\n")
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (tmp_path / "group-exec").write_text("g")
    (tmp_path / "group-exec").chmod(0o654)  # only the owner bit makes git record 100755
    (tmp_path / "lib.so").symlink_to("bin/tool")
    (tmp_path / "srclink").symlink_to("src")  # a symlink to a directory is a link, never followed
    (tmp_path / "dangling").symlink_to("does/not/exist")
    (tmp_path / "empty" / "nested-empty").mkdir(parents=True)  # skipped by Pkg, unstorable in git
    (tmp_path / "a-b").write_text("sorts before 'a/'")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("f")
    (tmp_path / "a0").write_text("sorts after 'a/'")
    ours = git_tree_hash(tmp_path)
    assert ours == git_tree(tmp_path)
    # the repository's own .git directory is skipped: same hash after `git init`
    assert (tmp_path / ".git").is_dir()
    assert git_tree_hash(tmp_path) == ours


def test_empty_tree_is_gits_empty_tree(tmp_path):
    (tmp_path / "only-empty-dirs" / "x").mkdir(parents=True)
    assert git_tree_hash(tmp_path) == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def test_blob_hash_matches_git_hash_object(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"hello\n")
    out = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True)
    assert blob_hash(f).hex() == out.stdout.strip() == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_special_files_are_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError, match="fifo"):
        git_tree_hash(tmp_path)


_names = st.text(alphabet="ab-._0Z", min_size=1, max_size=4).filter(lambda n: n not in (".", "..", ".git"))
_trees = st.recursive(
    st.one_of(st.tuples(st.just("file"), st.binary(max_size=64), st.booleans()),
              st.tuples(st.just("link"), _names)),
    lambda children: st.dictionaries(_names, children, max_size=4),
    max_leaves=12,
)


def _materialise(path, node):
    if isinstance(node, dict):
        path.mkdir()
        for name, child in node.items():
            _materialise(path / name, child)
    elif node[0] == "file":
        path.write_bytes(node[1])
        path.chmod(0o755 if node[2] else 0o644)
    else:
        path.symlink_to(node[1])


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.dictionaries(_names, _trees, max_size=5))
def test_random_trees_match_git(tmp_path_factory, tree):
    root = tmp_path_factory.mktemp("tree")
    for name, child in tree.items():
        _materialise(root / name, child)
    ours = git_tree_hash(root)
    assert ours == git_tree(root)


def test_mode_bits_other_than_owner_exec_do_not_matter(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o600)
    a = git_tree_hash(tmp_path)
    f.chmod(0o677)
    assert git_tree_hash(tmp_path) == a
    f.chmod(stat.S_IRWXU)
    assert git_tree_hash(tmp_path) != a


def test_non_ascii_symlink_target_counts_characters_as_pkg_does(tmp_path):
    """Pkg src/GitTools.jl blob_hash: the header is "blob $(length(readlink(path)))\\0", Julia's
    character count, followed by the target's UTF-8 bytes; git counts bytes. Artifact names
    are Pkg's, so a non-ASCII target follows Pkg and differs from git."""
    target = "bücher/λ.so"  # 11 characters, 13 UTF-8 bytes
    link = tmp_path / "l"
    link.symlink_to(target)
    data = target.encode()
    pkg = hashlib.sha1(b"blob 11\0" + data).digest()
    git = hashlib.sha1(b"blob 13\0" + data).digest()
    assert blob_hash(link) == pkg != git
    assert git_tree_hash(tmp_path) != git_tree(tmp_path)  # git itself hashes the bytes
    ascii_dir = tmp_path / "ascii"
    ascii_dir.mkdir()
    (ascii_dir / "l").symlink_to("b/a.so")
    assert git_tree_hash(ascii_dir) == git_tree(ascii_dir)


def test_non_utf8_symlink_target_is_refused(tmp_path):
    link = tmp_path / "l"
    os.symlink(b"\xff\xfe", os.fsencode(link))
    with pytest.raises(InputError, match=r"l: symlink target is not UTF-8"):
        git_tree_hash(tmp_path)
