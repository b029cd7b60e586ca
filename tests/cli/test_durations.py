"""The one duration grammar of the command line: channel expiry (``--expires``) and gc ages
(``--older-than``)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.cli.durations import parse_age, parse_expiry
from depotdelivery.errors import UsageError


@pytest.mark.parametrize("text, seconds", [("30d", 30 * 86400), ("12h", 43200), ("2w", 14 * 86400),
                                           ("1d12h", 129600), ("90s", 90), ("never", None)])
def test_parse_expiry(text, seconds):
    assert parse_expiry(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "30", "d30", "1y", "30d garbage", "-1d"])
def test_parse_expiry_rejects(text):
    with pytest.raises(UsageError):
        parse_expiry(text)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.sampled_from(["", "s", "m", "h", "d", "w"]))
def test_parse_age_units(value, unit):
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_age(f"{value!r}{unit}") == pytest.approx(value * factor)


@given(st.text(alphabet="abcxyz-!, ", min_size=1, max_size=6))
def test_parse_age_rejects_garbage(text):
    with pytest.raises(ValueError, match="bad age"):
        parse_age(text)


@pytest.mark.parametrize("text, seconds", [("1.5h", 5400.0), ("1d12h", 129600.0), ("0", 0.0), ("2w", 14 * 86400.0)])
def test_one_grammar_for_both(text, seconds):
    assert parse_age(text) == seconds
    if seconds:
        assert parse_expiry(text) == seconds
