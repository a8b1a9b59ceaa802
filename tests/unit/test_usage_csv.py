"""CSV export cells: names that a spreadsheet would run as formulas are written as text."""

from __future__ import annotations

import pytest

from parley.api.admin_usage import _cell, _iso


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("gpt-4o", "gpt-4o"),
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        (None, ""),
    ],
)
def test_a_formula_is_never_a_formula_in_the_export(name: str | None, written: str) -> None:
    assert _cell(name) == written


def test_time_buckets_are_iso_utc() -> None:
    assert _iso(1_764_547_200_000) == "2025-12-01T00:00:00Z"
