"""OCC option symbols: parse, format, round trip, and clear errors for malformed ones."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alchemiser.domain.options import (
    OccSymbolError,
    OptionContract,
    OptionRight,
    format_occ,
    parse_occ,
)


def test_parses_the_issue_example() -> None:
    c = parse_occ("QQQ260417P00450000")
    assert c.root == "QQQ"
    assert c.expiry == date(2026, 4, 17)
    assert c.right is OptionRight.PUT
    assert c.strike == Decimal("450")
    assert isinstance(c.strike, Decimal)


def test_parses_fractional_strike_and_call() -> None:
    c = parse_occ("SPY200731C00326500")
    assert (c.root, c.expiry, c.right, c.strike) == (
        "SPY",
        date(2020, 7, 31),
        OptionRight.CALL,
        Decimal("326.5"),
    )
    assert parse_occ("F260116C00000500").strike == Decimal("0.5")


def test_padded_osi_form_and_lower_case_parse_the_same() -> None:
    compact = parse_occ("QQQ260417P00450000")
    assert parse_occ("QQQ   260417P00450000") == compact
    assert parse_occ(" qqq260417p00450000 ") == compact


def test_formats_compact_symbol() -> None:
    contract = OptionContract("QQQ", date(2026, 4, 17), OptionRight.PUT, Decimal("450"))
    assert format_occ(contract) == "QQQ260417P00450000"
    assert contract.occ_symbol == "QQQ260417P00450000"
    assert str(contract) == "QQQ260417P00450000"
    assert OptionContract.from_occ("QQQ260417P00450000") == contract
    # An adjusted root carries a digit; the strike keeps its three decimals.
    adjusted = OptionContract("SPY1", date(2021, 1, 15), OptionRight.CALL, Decimal("99999.999"))
    assert adjusted.occ_symbol == "SPY1210115C99999999"


@pytest.mark.parametrize(
    "symbol",
    [
        "",
        "QQQ",
        "QQQ260417P0045000",  # 7 strike digits
        "QQQ260417P004500000",  # 9 strike digits
        "QQQ260417X00450000",  # right not C/P
        "QQQ2604171P00450000",  # 7 date digits
        "TOOLONG260417P00450000",  # root of 7
        "QQ-Q260417P00450000",  # bad root character
        "260417P00450000",  # no root
        "QQQ 260417 P00450000",  # space inside the body
    ],
)
def test_rejects_malformed_symbols_with_the_symbol_in_the_message(symbol: str) -> None:
    with pytest.raises(OccSymbolError, match="malformed OCC symbol") as info:
        parse_occ(symbol)
    assert repr(symbol) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("symbol", "reason"),
    [
        ("QQQ261317P00450000", "bad expiry 261317"),  # month 13
        ("QQQ260230P00450000", "bad expiry 260230"),  # 30 February
        ("QQQ260417P00000000", "strike is zero"),
    ],
)
def test_rejects_impossible_dates_and_zero_strike(symbol: str, reason: str) -> None:
    with pytest.raises(OccSymbolError, match=reason):
        parse_occ(symbol)


def test_rejects_non_string() -> None:
    with pytest.raises(OccSymbolError, match="must be a string"):
        parse_occ(12345)  # type: ignore[arg-type]


def test_format_rejects_strikes_it_cannot_encode() -> None:
    too_fine = OptionContract("SPY", date(2026, 1, 16), OptionRight.CALL, Decimal("100.0005"))
    with pytest.raises(OccSymbolError, match="more than 3 decimals"):
        format_occ(too_fine)
    too_big = OptionContract("SPY", date(2026, 1, 16), OptionRight.CALL, Decimal("100000"))
    with pytest.raises(OccSymbolError, match="exceeds the OCC maximum"):
        format_occ(too_big)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strike": Decimal("-1")},
        {"strike": Decimal("0")},
        {"strike": Decimal("NaN")},
        {"strike": 450.0},
        {"root": "qqq"},
        {"root": ""},
        {"right": "P"},
        {"expiry": date(1999, 12, 31)},
    ],
)
def test_contract_validates_its_fields(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "root": "QQQ",
        "expiry": date(2026, 4, 17),
        "right": OptionRight.PUT,
        "strike": Decimal("450"),
    }
    fields.update(kwargs)
    with pytest.raises(OccSymbolError):
        OptionContract(**fields)  # type: ignore[arg-type]


def test_right_parse() -> None:
    assert OptionRight.parse("c") is OptionRight.CALL
    assert OptionRight.parse(" PUT ") is OptionRight.PUT
    assert OptionRight.CALL.is_call and not OptionRight.PUT.is_call
    with pytest.raises(ValueError, match="C or P"):
        OptionRight.parse("X")


roots = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=6)
expiries = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
strikes = st.integers(min_value=1, max_value=99_999_999).map(lambda m: Decimal(m) / 1000)


@given(roots, expiries, st.sampled_from(list(OptionRight)), strikes)
def test_format_then_parse_round_trips(
    root: str, expiry: date, right: OptionRight, strike: Decimal
) -> None:
    contract = OptionContract(root, expiry, right, strike)
    symbol = format_occ(contract)
    assert len(symbol) == len(root) + 15
    assert symbol[-8:].isdigit() and int(symbol[-8:]) == int(strike * 1000)
    assert parse_occ(symbol) == contract
    padded = f"{root:<6}{symbol[len(root) :]}"
    assert parse_occ(padded) == contract
