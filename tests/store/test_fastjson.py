"""store.fastjson is json's parser and encoder without importing json (checked against json
with hypothesis)."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depotdelivery.store import fastjson

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_DOCS = st.recursive(_SCALARS, lambda c: st.lists(c, max_size=4) | st.tuples(c, c)
                     | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=16)


@settings(max_examples=300)
@given(_DOCS, st.sampled_from([None, 0, 2, 4]))
def test_dumps_is_json_dumps_sorted(doc, indent):
    assert fastjson.dumps(doc, indent=indent) == json.dumps(doc, sort_keys=True, indent=indent)


@settings(max_examples=300)
@given(_DOCS, st.sampled_from(["", " ", "\n\t", "\r\n"]))
def test_loads_is_json_loads(doc, space):
    text = space + json.dumps(doc, indent=2 if space else None) + space
    # NaN != NaN: compare what the two parses serialise to
    assert json.dumps(fastjson.loads(text)) == json.dumps(json.loads(text))
    assert json.dumps(fastjson.loads(text.encode())) == json.dumps(json.loads(text.encode()))


def test_dumps_hands_what_it_does_not_encode_to_json():
    assert fastjson.dumps({1: "a", 2.5: None}) == json.dumps({1: "a", 2.5: None}, sort_keys=True)
    with pytest.raises(TypeError):
        fastjson.dumps({"x": object()})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        fastjson.dumps(loop)


@pytest.mark.parametrize("bad", ["", " ", "{", "[1,]", "1 2", "\ufeff{}", b"\xff{}", "nul", '{"a":1}x', "[" * 100000])
def test_loads_errors_are_jsons(bad):
    with pytest.raises(Exception) as expected:
        json.loads(bad)
    with pytest.raises(type(expected.value)) as got:
        fastjson.loads(bad)
    assert str(got.value) == str(expected.value)


@settings(max_examples=300)
@given(_DOCS)
def test_canonical_is_json_dumps_canonical(doc):
    def canonical_json(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    try:
        expected = canonical_json(doc)
    except (ValueError, UnicodeEncodeError) as exc:  # NaN / Infinity; a lone surrogate
        with pytest.raises(type(exc), match=re.escape(str(exc))):
            fastjson.canonical(doc)
        return
    assert fastjson.canonical(doc) == expected
