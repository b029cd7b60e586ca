"""Typed field access and names (store/fields.py)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depotdelivery.errors import UsageError
from depotdelivery.store.names import NAME_PATTERN


def test_usage_error_for_bad_names():
    from depotdelivery.store.fields import check_name
    with pytest.raises(UsageError):
        check_name("release name", "../etc")


# The value rules the parsers once wrote as regular expressions, now predicates (no `re` on a
# job's cold path): each agrees with its expression on arbitrary text and on matching text.
_RULES = {
    "hex": (r"[0-9a-f]{1,64}", "depotdelivery.store.fields:is_hex"),
    "uuid": (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "depotdelivery.store.release:is_uuid"),
    "julia version": (r"\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.+-]+)?", "depotdelivery.store.release:is_julia_version"),
    "release ref": (rf"{NAME_PATTERN}/{NAME_PATTERN}", "depotdelivery.store.channel:_is_release_ref"),
}


@pytest.mark.parametrize("rule", sorted(_RULES))
@settings(max_examples=300)
@given(data=st.data())
def test_value_rules_are_their_regular_expressions(rule, data):
    import importlib
    import re

    pattern, where = _RULES[rule]
    module, _, name = where.partition(":")
    predicate = getattr(importlib.import_module(module), name)
    text = data.draw(st.text(alphabet="0123456789abcdefxyzAF.+-/٣ \n", max_size=80)
                     | st.from_regex(pattern, fullmatch=True) | st.text(max_size=40))
    assert predicate(text) == bool(re.fullmatch(pattern, text)), text


@settings(max_examples=300)
@given(st.from_regex(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z", fullmatch=True)
       | st.text(alphabet="0123456789-:TZ٣", max_size=24))
def test_channel_times_have_the_shape_re_read(text):
    import calendar
    import re

    from depotdelivery.store.channel import parse_time

    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z", text)
    fields = None if m is None else [int(g) for g in m.groups()]
    if fields is None or not (1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 and fields[3] < 24
                              and fields[4] < 60 and fields[5] < 60):
        assert parse_time(text) is None
    elif fields[0] < 1:
        with pytest.raises(ValueError):
            parse_time(text)
    else:
        assert parse_time(text) == calendar.timegm((*fields, 0, 0, 0))
