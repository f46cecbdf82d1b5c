"""Hypothesis strategies for what a user or a client might type: plausible, borderline and
hostile text mixed, so that fuzzing reaches the clinical checks and not only the parsers."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from patients import units

NASTY = [
    "",
    " ",
    "\x00",
    "0",
    "-1",
    "0,9",
    "0.9",
    "1,234",
    "1.234,5",
    "1E+999999",
    "NaN",
    "inf",
    "9" * 30,
    "0.0000001",
    "2025-03-15",
    "2025-02-30",
    "0001-01-01",
    "9999-12-31",
    "08:30",
    "25:61",
    "A/1",
    "new",
    "DEMO\n002",
    "=HYPERLINK(1)",
    "<script>",
    "%00",
    "😀",
]

# Text a browser can send (no lone surrogates: they cannot be encoded in a request at all).
plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
typed_text = st.one_of(st.sampled_from(NASTY), plain_text, st.decimals(allow_nan=True).map(str))
numbers_as_typed = st.one_of(
    st.sampled_from(["0", "0,9", "0.012", "15", "150", "2500", "60000", "1,234", "-3", "abc"]),
    st.decimals(min_value=0, max_value=10**7, places=3).map(str),
    st.decimals(min_value=0, max_value=10**7, places=3).map(lambda d: str(d).replace(".", ",")),
    typed_text,
)
analytes = st.sampled_from(list(units.ANALYTES))
unit_codes = st.sampled_from(list(units.UNIT_LABELS) + ["", "cells/µL", "x"])
qualifiers = st.sampled_from(["", "", "", units.UNDETECTABLE, units.BELOW_LOD, "x"])
dates = st.one_of(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 1, 1)).map(str),
    st.sampled_from(NASTY),
)
