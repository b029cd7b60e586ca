"""Variant selection on archspec's captured CPUs against a published release with every synth
target; the expected choice is Julia's rule implemented again here, from julia-formats.md."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from captured_cpus import SUPPORTED, detect_captured
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import NoCompatibleVariantError
from depotdelivery.node.select import select

JULIA = "1.11.1"


# ---- Julia's rule, again (julia-formats.md "Which clone Julia picks") --------------------------

def _vector_bytes(features: frozenset[str], arch: str) -> int:
    # x86: avx512f 64, avx 32, else 16; aarch64: sve2 256, sve 128, else 16
    if arch == "x86_64":
        return 64 if "avx512f" in features else 32 if "avx" in features else 16
    return 256 if "sve2" in features else 128 if "sve" in features else 16


def _name(name: str) -> str:
    return {"x86-64": "generic"}.get(name, name)  # Julia stores generic under LLVM's name


def julia_pick(clones, host_features: frozenset[str], host_cpu: str, arch: str):
    """Index of the clone Julia picks, or None: reject enabled-but-missing features; the first
    name match resets the best; then larger vectors, then at least as many features."""
    best, best_vec, best_n, name_matched = None, 0, 0, False
    for i, c in enumerate(clones):
        feats = frozenset(c.features)
        if feats - host_features:
            continue
        if _name(c.name) == host_cpu:
            if not name_matched:
                name_matched, best_vec, best_n = True, 0, 0
        elif name_matched:
            continue
        vec = _vector_bytes(feats, arch)
        if vec < best_vec:
            continue
        if vec > best_vec or len(feats) >= best_n:
            best, best_vec, best_n = i, vec, len(feats)
    return best


def expected_choice(release, host_features: frozenset[str], host_cpu: str, arch: str) -> str | None:
    """Across variants: the best picked clone by (name match, vector bytes, feature count)."""
    ranked = []
    for v in release.variants:
        if v.arch != arch:
            continue
        i = julia_pick(v.clones, host_features, host_cpu, arch)
        if i is None:
            continue
        feats = frozenset(v.clones[i].features)
        ranked.append(((_name(v.clones[i].name) == host_cpu, _vector_bytes(feats, arch), len(feats)), v.target))
    return max(ranked)[1] if ranked else None


# ---- the published release and the captured machines -------------------------------------------

@pytest.fixture(scope="module")
def release(node_repo):
    from depotdelivery.store.repo import Repository

    rel = Repository.open(node_repo.root).read_release("hep", "2026.11")
    assert {v.target for v in rel.variants} == {"generic", "haswell", "skylake-avx512", "znver4", "neoverse-v1", "a64fx"}
    return rel


@pytest.mark.parametrize("machine", SUPPORTED)  # the others: test_cpu_targets.py asserts the refusal
def test_choice_on_captured_cpu_equals_julias_rule(release, machine):
    host = detect_captured(machine)
    features, cpu = host.julia_features(JULIA), host.julia_cpu(JULIA)
    expected = expected_choice(release, features, cpu, host.arch)
    if expected is None:
        with pytest.raises(NoCompatibleVariantError) as err:
            select(release, host)
        assert err.value.exit_code == 6
        for v in release.variants:  # every variant is listed with what it lacks
            assert f"{v.target}: " in str(err.value)
        return
    sel = select(release, host)
    assert sel.target == expected
    assert sel.verdicts[0].target == expected and sel.verdicts[0].accepted
    for verdict in sel.verdicts:
        variant = release.variant(verdict.target)
        needed = frozenset(variant.clones[0].features)
        if variant.arch != host.arch:
            assert not verdict.accepted and "built for" in verdict.reason
        elif needed <= features:
            assert verdict.accepted
        else:  # rejected, with exactly the missing features named
            assert not verdict.accepted
            assert dict(verdict.missing)[variant.clones[0].name] == tuple(sorted(needed - features))
            for feature in needed - features:
                assert feature in verdict.reason
    assert expected in sel.why


def test_known_machines_get_the_expected_variant(release):
    # a few anchors a reader can check by hand against the CPU tables
    assert select(release, detect_captured("linux-rhel7-haswell")).target == "haswell"
    assert select(release, detect_captured("linux-rocky8-a64fx")).target == "a64fx"
    assert select(release, detect_captured("linux-rhel8-neoverse_v1")).target == "neoverse-v1"
    assert select(release, detect_captured("linux-rhel7-ivybridge")).target == "generic"  # no avx2


def test_no_variant_message_lists_each_variant_and_what_it_lacks(release):
    with pytest.raises(NoCompatibleVariantError) as err:
        select(release, detect_captured("linux-amazon-cortex_a72"))
    msg = str(err.value)
    assert "a64fx: Julia would refuse it" in msg and "sve" in msg
    assert "haswell: built for x86_64, host is aarch64" in msg
    assert "DEPOTDELIVERY_MICROARCH" in msg


# ---- a property over arbitrary hosts --------------------------------------------------------------

@dataclass(frozen=True)
class FixedHost:
    """Stand-in for HostCPU with given Julia-named facts (select takes host facts as parameters)."""

    arch: str
    cpu: str
    features: frozenset[str]

    def julia_features(self, julia_version: str = JULIA) -> frozenset[str]:
        return self.features

    def julia_cpu(self, julia_version: str = JULIA) -> str:
        return self.cpu

    def julia_cpu_source(self, julia_version: str = JULIA) -> str:
        return "julia"


@given(data=st.data())
def test_never_selects_a_variant_julia_rejects(release, data):
    pool = sorted({f for v in release.variants if v.arch == "x86_64" for c in v.clones for f in c.features})
    features = frozenset(data.draw(st.sets(st.sampled_from(pool))))
    cpu = data.draw(st.sampled_from(["generic", "haswell", "skylake-avx512", "znver4", "znver3", "icelake-server"]))
    host = FixedHost(arch="x86_64", cpu=cpu, features=features)
    expected = expected_choice(release, features, cpu, "x86_64")
    if expected is None:
        with pytest.raises(NoCompatibleVariantError):
            select(release, host)
        return
    sel = select(release, host)
    assert frozenset(sel.variant.clones[0].features) <= features
    assert sel.target == expected
