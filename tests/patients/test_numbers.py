"""The one number parser (CLINICAL.md section 2): "0,9" is 0.9, anything ambiguous is refused
with a message that says how to write it."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patients.numbers import NumberFormatError, parse_decimal


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("0,9", "0.9"),
        ("0.9", "0.9"),
        (" 0,9 ", "0.9"),
        ("0,012", "0.012"),
        (",5", "0.5"),
        ("1234", "1234"),
        ("12,5", "12.5"),
        ("1,2345", "1.2345"),
        ("0.000", "0"),
        ("1.0000000", "1"),
    ],
)
def test_a_decimal_point_or_comma_gives_the_same_value(typed, meant):
    assert parse_decimal(typed) == Decimal(meant)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("1,234", "ambiguous: it can mean 1234"),
        ("1.234", "ambiguous: it can mean 1234"),
        ("1.234,5", "more than one separator"),
        ("99,999,999,999,999", "more than one separator"),
        ("1,2,3", "more than one separator"),
        ("1 234", "not a plain number"),
        ("12a", "not a plain number"),
        ("1E+999999", "not a plain number"),
        ("1e5", "not a plain number"),
        ("inf", "not a plain number"),
        ("NaN", "not a plain number"),
        ("+1", "not a plain number"),
        ("0x10", "not a plain number"),
        ("１２", "not a plain number"),
        ("", "Enter a number"),
        ("1" * 15, "too large"),
        ("0.0000001", "Too many decimals"),
        ("9" * 41, "too long"),
    ],
)
def test_ambiguous_or_malformed_text_is_refused_with_how_to_write_it(typed, says):
    with pytest.raises(NumberFormatError) as refused:
        parse_decimal(typed)
    assert says in str(refused.value)


def test_numbers_from_json_are_checked_for_size_and_finiteness():
    assert parse_decimal(Decimal("0.9")) == Decimal("0.9")
    assert parse_decimal(12) == 12
    for bad in (Decimal("1E+999999"), Decimal("NaN"), Decimal("Infinity"), True):
        with pytest.raises(NumberFormatError):
            parse_decimal(bad)


@given(st.text(max_size=50))
def test_any_text_is_a_number_or_a_message_never_a_crash(text):
    try:
        value = parse_decimal(text)
    except NumberFormatError as refused:
        assert str(refused)
    else:
        assert value.is_finite()
        assert value.as_tuple().exponent >= -6
        assert abs(value) < Decimal(10) ** 14


@given(st.decimals(min_value=0, max_value=Decimal("99999999999999"), places=6))
def test_a_value_written_with_point_or_comma_reads_back_the_same(value):
    text = f"{value.normalize():f}"
    for typed in (text, text.replace(".", ",")):
        try:
            assert parse_decimal(typed) == value
        except NumberFormatError as refused:
            # Only the thousands-grouping shape is refused, and it says so.
            assert "ambiguous" in str(refused)
            whole, _, decimals = text.partition(".")
            assert len(decimals) == 3 and 1 <= len(whole) <= 3 and whole[0] != "0"
