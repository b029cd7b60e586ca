"""Typed field access and names (store/fields.py)."""
from __future__ import annotations

import pytest

from depotdelivery.errors import UsageError


def test_usage_error_for_bad_names():
    from depotdelivery.store.fields import check_name
    with pytest.raises(UsageError):
        check_name("release name", "../etc")
