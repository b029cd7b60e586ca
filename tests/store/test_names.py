"""store.names is the name rule without re, the same rule as its regular expression
NAME_PATTERN (hypothesis)."""
from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import UsageError
from depotdelivery.store.names import NAME_PATTERN, check_name, is_name

NAME_RE = re.compile(NAME_PATTERN)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=140) | st.from_regex(NAME_RE, fullmatch=True))
def test_is_name_is_name_re(text):
    assert is_name(text) == bool(NAME_RE.fullmatch(text))


def test_check_name_says_what_is_wrong():
    assert check_name("channel", "stable") == "stable"
    with pytest.raises(UsageError, match=r"invalid channel '\.x'"):
        check_name("channel", ".x")
