"""The JULIA_DEBUG=loading reader: real log excerpts from public issues (tests/data/julia-loading,
cited in its README), every loader message of each supported version as Julia formats it, and
hypothesis for the framing and the templates."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import JuliaOutputError
from depotdelivery.julia.loadinglog import (
    LoadingLogError,
    parse_flags,
    parse_loading_log,
    parse_pkgid,
    read_records,
)
from depotdelivery.julia.stale import REASONS

DATA = Path(__file__).parent.parent / "data" / "julia-loading"


def _log(name: str) -> str:
    return (DATA / name).read_text()


def test_julia_1_12_rc1_flags_rejections_from_issue_59365():
    log = parse_loading_log(_log("julia-1.12.0-rc1-issue-59365.log"), "1.12.0-rc1")
    assert [(r.reason, r.cache.rsplit("\\", 2)[-2]) for r in log.rejections] == [
        ("mismatched flags", "Pkg"), ("mismatched flags", "Markdown")]
    first = log.rejections[0]
    assert first.cache.endswith(r"compiled\v1.12\Pkg\tUTdb_T3QLl.ji")
    assert parse_pkgid(first.pkg) == ("Pkg", "44cfe95a-1eb2-52ea-b672-e2afdf69b78f")
    assert parse_flags(first.values["session"]) == {"use_pkgimages": 1, "debug_level": 1, "check_bounds": 0, "inline": 1, "opt_level": 2}
    assert parse_flags(first.values["actual"])["opt_level"] == 3 and first.values["actual"].endswith("[237]")


def test_julia_1_12_prints_an_empty_pkgid_from_isprecompiled():
    log = parse_loading_log(_log("julia-1.12-oceananigans-5559.log"), "1.12.1")
    assert [parse_pkgid(r.pkg) for r in log.rejections] == [None, ("StyledStrings", "f489334b-da3d-4c2e-b8f0-e476e12c162b")]


def test_julia_1_11_dev_loads_and_uuid_mapping_from_pkg_3788():
    log = parse_loading_log(_log("julia-1.11-dev-pkg-3788.log"), "1.11.0-DEV")
    assert [(x.native, x.cache.rsplit("/", 1)[1], parse_pkgid(x.pkg)[0]) for x in log.loads] == [
        (True, "zGad9_z9MXU.ji", "Serialization"), (True, "tUTdb_z9MXU.ji", "Pkg")]
    (r,) = log.rejections
    assert r.reason == "dep uuid changed" and r.values["expected"].endswith("=> nothing")


def test_julia_1_11_dev_old_flags_form_and_a_precompiling_record_from_issue_51532():
    log = parse_loading_log(_log("julia-1.11-dev-issue-51532.log"), "1.11.0-DEV")
    assert [r.reason for r in log.rejections] == ["mismatched flags"]
    assert parse_flags(log.rejections[0].values["session"])["opt_level"] == 3
    assert len(log.loads) == 2 and [o.lines[0] for o in log.others] == ["Precompiling Base64 [2a0f44e3-6c83-55bd-87e4-b1978d98bd5f]"]


def test_the_1_10_wording_from_issue_50918():
    log = parse_loading_log(_log("julia-1.10-wording-issue-50918.log"), "1.10.5")
    assert [r.reason for r in log.rejections] == ["include_dependency mtime change", "for different buildid"]
    assert log.rejections[0].values == {"recorded": "1.692074982973298e9",
                                        "file": "/Users/dilum/Downloads/julia/usr/share/julia/stdlib/v1.11/MbedTLS_jll/src/MbedTLS_jll.jl",
                                        "actual": "1.69207499602758e9"}
    # 1.11 and 1.12 say "since it does not provide": the 1.10 wording is not theirs
    with pytest.raises(LoadingLogError, match="does not know for Julia 1.11"):
        parse_loading_log(_log("julia-1.10-wording-issue-50918.log"), "1.11.1")


def test_an_unknown_loader_message_is_an_error_naming_the_line():
    text = "some package output\n┌ Debug: Rejecting cache file /d/x.ji because the moon is full\n└ @ Base loading.jl:1\n"
    with pytest.raises(LoadingLogError, match=r"stderr line 2: .*the moon is full.*base/loading.jl:1"):
        parse_loading_log(text, "1.11.1")
    assert issubclass(LoadingLogError, JuliaOutputError) and LoadingLogError("x").exit_code == 13


@pytest.mark.parametrize("text, match", [
    ("┌ Debug: Loading cache file /d/x.ji for X\n", "never ends"),
    ("│ stray continuation\n", "never began"),
    ("┌ Debug: Loading cache file /d/x.ji for X\nnot a box line\n", "inside the log record"),
])
def test_broken_framing_is_an_error(text, match):
    with pytest.raises(LoadingLogError, match=match):
        parse_loading_log(text, "1.12.0")


def test_versions_without_known_messages_are_refused():
    with pytest.raises(LoadingLogError, match="1.10, 1.11, 1.12 only, not 1.13"):
        parse_loading_log("", "1.13.0")
    with pytest.raises(LoadingLogError, match="not 1.9"):
        parse_loading_log("", "1.9.4")


def test_records_of_other_modules_and_warnings_are_kept_not_judged():
    text = ("┌ Debug: whatever a package logs\n└ @ MyPkg /home/u/MyPkg/src/loading.jl:3\n"
            "[ Info: Precompiling Foo [00000000-0000-0000-0000-000000000001]\n"
            "┌ Warning: Replacing module `Foo`\n└ @ Base loading.jl:2000\n")
    log = parse_loading_log(text, "1.11.2")
    assert not log.rejections and not log.loads and len(log.others) == 3
    assert log.warnings == ("Warning: Replacing module `Foo`",)


# -- every message of each version, formatted as Julia formats it -----------------------------------

def _pkg(layout: str, name: str, uuid: str) -> str:
    return f"{name} [{uuid}]" if layout == "1.10" else f'Base.PkgId(Base.UUID("{uuid}"), "{name}")'


U = "12345678-9abc-4def-8123-456789abcdef"
B1, B2 = "fafbfcfd-0000-0000-0000-000000000001", "fafbfcfd-0000-0000-0000-000000000002"


def _messages(layout: str, c: str, pkg: str) -> dict[str, list[str]]:
    """reason -> the record's lines, transcribed from base/loading.jl of that version."""
    kv = "use_pkgimages = true, debug_level = 1, check_bounds = 0, inline = true, opt_level = 2"
    cf = "CacheFlags(; use_pkgimages=true, debug_level=1, check_bounds=0, inline=true, opt_level=2) [163]"
    flags = kv if layout == "1.10" else cf
    out = {
        "incompatible header": [(f"Rejecting cache file {c} due to it containing an "
                                f"{'incompatible' if layout == '1.12' else 'invalid'} cache header")],
        "mismatched flags": [f"Rejecting cache file {c} for {pkg} since the flags are mismatched",
                             f"  {'current session:' if layout == '1.10' else 'requested flags:'} {flags}",
                             f"  cache file:      {flags}"],
        "requires pkgimages": [f"Rejecting cache file {c} for {pkg} since it would require usage of pkgimage"],
        "target mismatch": [f"Rejecting cache file {c} for {pkg}:", '  Reasons = "no"', "  Image Targets =",
                            "   1-element Vector{Base.ImageTarget}:", "    generic; flags=0; features_en=()",
                            "  Current Targets =", "   generic; flags=0; features_en=()"],
        "missing ocachefile": [f"Rejecting cache file {c} for {pkg} since pkgimage {c[:-3]}.so was not found"],
        "for different pkgid": [f"Rejecting cache file {c} for {pkg} since it is for {pkg} instead"],
        "for different buildid": [(f"Ignoring cache file {c} for {pkg} ({B1}) since it {'is ' if layout == '1.10' else ''}"
                                  f"does not provide desired build_id ({B2})")],
        "wrong dep version loaded": [f"Rejecting cache file {c} because module {pkg} is already loaded and incompatible."],
        "dep missing source": [f"Rejecting cache file {c} because dependency {pkg} not found."],
        "wrong dep buildid": [f"Rejecting cache file {c} because it provides the wrong build_id (got {B1}) for {pkg} (want {B2})"],
        "wrong source": [f"Rejecting cache file {c} because it is for file /a/src/X.jl not file /b/src/X.jl"],
        "dep uuid changed": [f"Rejecting cache file {c} because uuid mapping for {pkg} => {pkg} has changed"
                             + ("" if layout == "1.10" else f", expected {pkg} => nothing")],
        "missing sourcefile": [f"Rejecting stale cache file {c} because file /a/src/X.jl does not exist"],
        "invalid checksum": [f"Rejecting cache file {c} because it has an invalid checksum"],
        "ocachefile invalid checksum": [f"Rejecting cache file {c} because {c[:-3]}.so has an invalid checksum"],
        "preferences hash mismatch": [f"Rejecting cache file {c} because preferences hash does not match 0x1f != 0x0"],
        "dependency not loadable": [(f"Rejecting cache file {c} because required dependency {pkg} with build ID {B1} "
                                    f"is missing from the cache.")],
    }
    if layout == "1.10":
        out["include_dependency mtime change"] = [(f"Rejecting stale cache file {c} (mtime 1.7e9) because file "
                                                  f"/a/src/X.jl (mtime 1.70000001e9) has changed")]
    else:
        out["include_dependency mtime change"] = [(f"Rejecting stale cache file {c} because mtime of include_dependency "
                                                  f"/a/deps/build.log has changed (mtime 1.70000001e9, before 1.7e9)")]
        out["include_dependency fsize change"] = [(f"Rejecting stale cache file {c} because file size of /a/src/X.jl "
                                                  f"has changed (file size 12, before 11)")]
        out["include_dependency fhash change"] = [(f"Rejecting stale cache file {c} because hash of /a/src/X.jl has "
                                                  f"changed (hash 3735928559, before 12345)")]
        out["nonresolveable depot"] = [f"Rejecting stale cache file {c} because its depot could not be resolved"]
    if layout == "1.12":
        out["wrong julia version"] = [f"Rejecting cache file {c} because it was made with a different julia version"]
        out["could not be opened"] = [f"Rejecting cache file {c} for {pkg} because it could not be opened",
                                      "  isfile(cachefile) = true"]
    return out


def _record(lines: list[str], line: int = 2345) -> str:
    return "\n".join([f"┌ Debug: {lines[0]}", *(f"│ {x}" for x in lines[1:]), f"└ @ Base loading.jl:{line}"]) + "\n"


@pytest.mark.parametrize("layout", ["1.10", "1.11", "1.12"])
def test_every_rejection_message_of_each_version_maps_to_its_reason(layout):
    cache = "/node/depot dir/compiled/v1.11/X/abcde_fghij.ji"
    messages = _messages(layout, cache, _pkg(layout, "X", U))
    log = parse_loading_log("".join(_record(m) for m in messages.values()), f"{layout}.3")
    assert [r.reason for r in log.rejections] == list(messages)
    assert {r.cache for r in log.rejections} == {cache}
    # stale.py's reasons are Julia's; an unopenable file and a conflict with the concrete
    # dependencies of a running precompilation (_concrete_dependencies) are not predicted
    assert set(messages) - {"could not be opened", "wrong dep buildid"} <= set(REASONS)


def test_core_already_loaded_is_the_wrong_julia_version_before_1_12():
    text = _record(["Rejecting cache file /d/X.ji because module Core is already loaded and incompatible."])
    assert parse_loading_log(text, "1.10.5").rejections[0].reason == "wrong julia version"


_path_chars = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\n\r")


@given(st.lists(st.text(_path_chars, min_size=1, max_size=20), min_size=1, max_size=4),
       st.sampled_from(["1.10", "1.11", "1.12"]), st.data())
def test_any_depot_path_round_trips_through_any_message(parts, layout, data):
    cache = "/" + "/".join(parts) + "/compiled/v1.11/X/abcde_fghij.ji"
    messages = _messages(layout, cache, _pkg(layout, "X", U))
    reason = data.draw(st.sampled_from(sorted(messages)))
    noise = data.draw(st.lists(st.text(_path_chars, max_size=30).filter(lambda s: not s.startswith(("│", "└", "┌", "["))),
                               max_size=3))
    text = "\n".join(noise) + ("\n" if noise else "") + _record(messages[reason])
    log = parse_loading_log(text, layout)
    assert [(r.reason, r.cache) for r in log.rejections] == [(reason, cache)]
    assert [s for _, s in log.stray] == noise


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_arbitrary_stderr_is_read_or_refused_never_crashes(text):
    try:
        read_records(text)
        parse_loading_log(text, "1.11.1")
    except LoadingLogError:
        pass


@pytest.mark.parametrize("text, expected", [
    ("Foo [12345678-9abc-4def-8123-456789abcdef]", ("Foo", U)),
    ('Base.PkgId(Base.UUID("12345678-9abc-4def-8123-456789abcdef"), "Foo")', ("Foo", U)),
    ('Base.PkgId(nothing, "Main")', ("Main", None)),
    ('Base.PkgId(nothing, "")', None), ("", None),
])
def test_pkgid_forms(text, expected):
    assert parse_pkgid(text) == expected
