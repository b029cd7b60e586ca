"""build's small parsers and rules: --variant arguments, the probe's TOML, the refusals, the
manifest rewrite for developed packages (every other byte unchanged)."""
from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import InputError, UsageError
from depotdelivery.publisher.build.plan import (
    Probe,
    parse_variant_args,
    plan_variants,
    read_probe,
)
from depotdelivery.publisher.build.shared import _rewrite_paths

NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,15}", fullmatch=True)
TARGETS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-+,;()_", min_size=1, max_size=40)


@given(st.dictionaries(NAMES, TARGETS, min_size=1, max_size=5))
def test_variant_arguments_round_trip(variants):
    assert parse_variant_args([f"{n}={t}" for n, t in variants.items()]) == variants


@pytest.mark.parametrize("bad", ["haswell", "=haswell", "haswell=", ""])
def test_malformed_variant_arguments(bad):
    with pytest.raises(UsageError, match="expected NAME=CPU_TARGET"):
        parse_variant_args([bad])


def test_a_variant_given_twice():
    with pytest.raises(UsageError, match="given twice"):
        parse_variant_args(["a=generic", "a=haswell"])


PROBE = Probe(version="1.11.1", commit="", arch="x86_64", cpu_name="", julia="", bundled_depots=(), versioninfo="")


@pytest.mark.parametrize("target, message", [
    ("native", "target 0 is 'native'"), ("generic;native", "target 1 is 'native'"), ("help", "'help'"),
    ("generic;sysimage", "'sysimage'"), ("haswell,base(1)", "invalid CPU target"),
])
def test_refused_targets(target, message):
    with pytest.raises(UsageError, match=message):
        plan_variants({"v": target}, PROBE)


def test_lint_is_kept_and_names_normalised():
    (p,) = plan_variants({"skx": "skx,-rdrnd"}, PROBE)
    assert p.clone_names == ("skylake-avx512",) and any("fallback clone" in w for w in p.lint)
    with pytest.raises(UsageError, match="variant name"):
        plan_variants({"../x": "generic"}, PROBE)


def test_probe_file_errors(tmp_path):
    with pytest.raises(InputError, match="wrote no"):
        read_probe(tmp_path / "none.toml")
    (tmp_path / "p.toml").write_text('version = "1.11.1"\n')
    with pytest.raises(InputError, match="lacks 'arch'"):
        read_probe(tmp_path / "p.toml")
    (tmp_path / "p.toml").write_text('version = "1.11.1"\narch = "powerpc64le"\njulia = "j"\nbundled_depots = []\n')
    with pytest.raises(UsageError, match="powerpc64le"):
        read_probe(tmp_path / "p.toml")


_ENTRY = st.fixed_dictionaries({"uuid": st.uuids().map(str), "version": st.from_regex(r"[0-9]\.[0-9]", fullmatch=True)})


@given(st.dictionaries(st.from_regex(r"[A-Z][A-Za-z]{0,8}", fullmatch=True), _ENTRY, min_size=1, max_size=6),
       st.data())
def test_manifest_rewrite_changes_only_the_moved_paths(deps, data):
    moved = data.draw(st.sets(st.sampled_from(sorted(deps))))
    lines = ['julia_version = "1.11.1"', 'manifest_format = "2.0"', ""]
    for name, e in sorted(deps.items()):
        lines += [f"[[deps.{name}]]", f'uuid = "{e["uuid"]}"']
        lines += [f'path = "../../somewhere/{name}"'] if name in moved else [f'git-tree-sha1 = "{"0" * 40}"']
        lines += [f'version = "{e["version"]}"', ""]
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "Manifest.toml"
        f.write_text("\n".join(lines))
        _rewrite_paths(f, {n: f"../../dev/{n}" for n in moved})
        text = f.read_text()
    after = tomllib.loads(text)["deps"]
    for name, e in deps.items():
        entry = after[name][0]
        assert entry["uuid"] == e["uuid"] and entry["version"] == e["version"]
        assert entry.get("path") == (f"../../dev/{name}" if name in moved else None)
    changed = [a for a, b in zip(lines, text.split("\n"), strict=True) if a != b]
    assert len(changed) == len(moved)
