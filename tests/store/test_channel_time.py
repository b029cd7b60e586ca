"""Channel times are parsed without calendar/datetime: the same seconds as calendar.timegm."""
from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.store.channel import format_time, parse_time


@given(st.integers(1, 9999), st.integers(1, 12), st.integers(1, 31), st.integers(0, 23), st.integers(0, 59),
       st.integers(0, 59))
def test_parse_time_is_timegm(y, mo, d, h, mi, s):
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z"
    assert parse_time(text) == calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


@given(st.integers(0, 253402300799))
def test_format_then_parse_round_trips(epoch):
    assert parse_time(format_time(epoch)) == epoch


def test_year_zero_is_refused_like_timegm():
    with pytest.raises(ValueError):
        calendar.timegm((0, 1, 1, 0, 0, 0, 0, 0, 0))
    with pytest.raises(ValueError):
        parse_time("0000-01-01T00:00:00Z")
