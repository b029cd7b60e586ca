"""Hypothesis strategies for hostile repository bytes: JSON that parsers choke on, non-UTF-8,
traversing paths, listing line permutations."""
from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["bad_utf8", "hostile_json", "traversing_paths"]


def _giant_int() -> st.SearchStrategy[bytes]:
    # CPython refuses to convert integers of more than 4300 digits (sys.int_max_str_digits)
    return st.integers(4301, 40_000).map(lambda n: b'{"format":1,"seq":' + b"9" * n + b"}")


def _deep(open_: bytes, close: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(1_000, 60_000).map(lambda n: open_ * n + b"1" + close * n)


def _huge_string() -> st.SearchStrategy[bytes]:
    return st.integers(1 << 16, 1 << 20).map(lambda n: b'{"format":1,"name":"' + b"x" * n + b'"}')


bad_utf8 = st.builds(
    lambda head, junk, tail: head + junk + tail,
    st.sampled_from([b'{"format":1,"name":"', b'{"signatures":[{"keyid":"', b'{"path":"']),
    st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]),
    st.sampled_from([b'"}', b'"}]}', b""]))

hostile_json: st.SearchStrategy[bytes] = st.one_of(
    _giant_int(),
    _deep(b"[", b"]"),
    _deep(b'{"a":', b"}"),
    _huge_string(),
    bad_utf8,
    st.sampled_from([
        b'{"format":1,"seq":NaN}', b'{"format":1,"seq":1e999999}', b'{"format":1,"format":1}',
        b"", b"\x00" * 64, b"null", b"[]", b'"x"', b"{", b'{"format":1} ', b"\xef\xbb\xbf{}",
        b'{"format":1,"seq":-0}', b'{"format":1,"seq":1.0}', b'{"format":1,"x":"\\ud800"}',
    ]),
)

# Path components that must never let a listing entry leave its tree.
_escape = st.sampled_from(["..", "/", "/etc/passwd", "./..", "a/../..", "../../canary/keep.txt",
                           "a//b", ".", "a/./b", "\x00", "a\x00b", "~/x"])
traversing_paths = st.one_of(
    _escape,
    st.builds(lambda a, b: f"{a}/{b}", st.sampled_from(["packages", "a", "environments"]), _escape),
    st.builds(lambda k: "/".join([".."] * k + ["canary", "keep.txt"]), st.integers(1, 12)),
    st.builds(lambda p: "/" + p, st.sampled_from(["tmp/x", "canary", "etc/shadow"])),
)
