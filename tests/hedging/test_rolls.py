"""Roll rules at their boundaries, and expiry."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from alchemiser.domain.options import OptionContract, OptionRight
from alchemiser.domain.trading import OptionSnapshot
from alchemiser.hedging.payoff import HedgeHolding, HedgeLeg
from alchemiser.hedging.rolls import ROLL_REASONS, check_roll, days_held, is_expired, roll_reason
from tests.hedging.helpers import NOW, TODAY, put, settings

D = Decimal
S = settings()


def tail(dte: int, opened: datetime = NOW) -> HedgeHolding:
    contract = OptionContract("QQQ", TODAY + timedelta(days=dte), OptionRight.PUT, D(450))
    return HedgeHolding("t", "tail_first", "QQQ", (HedgeLeg(contract, 2),), opened)


@pytest.mark.parametrize(
    ("dte", "reason"),
    [
        (90, None),
        (45, None),
        (44, "dte_threshold"),
        (14, "dte_threshold"),
        (13, "critical_dte"),
        (0, "critical_dte"),
    ],
)
def test_outright_put_rolls_below_45_and_is_critical_below_14(dte: int, reason: str | None) -> None:
    assert roll_reason(tail(dte), NOW, {}, S) == reason


def test_dte_thresholds_read_their_settings() -> None:
    custom = settings(templates={"tail_first": {"roll_below_dte": 30, "critical_dte": 7}})
    assert roll_reason(tail(44), NOW, {}, custom) is None
    assert roll_reason(tail(29), NOW, {}, custom) == "dte_threshold"
    assert roll_reason(tail(6), NOW, {}, custom) == "critical_dte"


def test_days_are_counted_on_the_new_york_calendar() -> None:
    # 23:30 New York is already the next day in UTC: still the same New York day.
    late = NOW.replace(hour=23, minute=30)
    assert roll_reason(tail(45), late.astimezone(UTC), {}, S) is None


def quote(
    strike: str,
    dte: int,
    *,
    delta: float | None = None,
    bid: str | None = None,
    ask: str | None = None,
) -> OptionSnapshot:
    snap = put(strike, dte, vol=0.25, bid=bid, ask=ask)
    if delta is not None:
        assert snap.greeks is not None
        snap = dataclasses.replace(snap, greeks=dataclasses.replace(snap.greeks, delta=delta))
    return snap


def spread_holding(opened: datetime = NOW, dte: int = 60) -> HedgeHolding:
    expiry = TODAY + timedelta(days=dte)
    long = HedgeLeg(OptionContract("QQQ", expiry, OptionRight.PUT, D(480)), 3)
    short = HedgeLeg(OptionContract("QQQ", expiry, OptionRight.PUT, D(440)), -3)
    return HedgeHolding("s", "smoothing", "QQQ", (long, short), opened)


def spread_quotes(
    long_delta: float = -0.30,
    short_delta: float = -0.10,
    long_mid: str = "20.00",
    short_mid: str = "5.00",
) -> dict[str, OptionSnapshot]:
    quotes = {}
    for strike, delta, mid in (("480", long_delta, long_mid), ("440", short_delta, short_mid)):
        m = D(mid)
        snap = quote(strike, 60, delta=delta, bid=str(m - D("0.05")), ask=str(m + D("0.05")))
        quotes[snap.symbol] = snap
    return quotes


def test_a_fresh_spread_holds() -> None:
    check = check_roll(spread_holding(), NOW, spread_quotes(), S)
    assert check.reasons == () and check.missing == () and check.reason is None
    assert (check.dte, check.days_held) == (60, 0)


@pytest.mark.parametrize(
    ("quotes", "reason"),
    [
        # Width 40: 30 % is 12.00. Exactly 12 holds, 11.99 rolls.
        ({"long_mid": "17.00", "short_mid": "5.00"}, None),
        ({"long_mid": "16.99", "short_mid": "5.00"}, "spread_value"),
        ({"long_delta": -0.50}, None),
        ({"long_delta": -0.5001}, "long_delta"),
        ({"short_delta": -0.20}, None),
        ({"short_delta": -0.2001}, "short_delta"),
    ],
)
def test_spread_market_rules_at_their_boundaries(
    quotes: dict[str, object], reason: str | None
) -> None:
    assert roll_reason(spread_holding(), NOW, spread_quotes(**quotes), S) == reason  # type: ignore[arg-type]


@pytest.mark.parametrize(("held", "reason"), [(20, None), (21, "cadence"), (30, "cadence")])
def test_spread_cadence_is_21_days_held(held: int, reason: str | None) -> None:
    holding = spread_holding(opened=NOW - timedelta(days=held))
    assert days_held(holding, NOW) == held
    assert roll_reason(holding, NOW, spread_quotes(), S) == reason


def test_all_reasons_are_listed_in_a_stable_order() -> None:
    holding = spread_holding(opened=NOW - timedelta(days=25))
    quotes = spread_quotes(long_delta=-0.7, short_delta=-0.4, long_mid="10", short_mid="5")
    check = check_roll(holding, NOW, quotes, S)
    assert check.reasons == ("spread_value", "long_delta", "short_delta", "cadence")
    assert check.reason == "spread_value"
    assert set(check.reasons) <= set(ROLL_REASONS)


def test_missing_quotes_skip_those_checks_and_say_so() -> None:
    holding = spread_holding(opened=NOW - timedelta(days=21))
    check = check_roll(holding, NOW, {}, S)
    assert check.reasons == ("cadence",)
    long, short = holding.long_leg.symbol, holding.short_leg.symbol  # type: ignore[union-attr]
    assert check.missing == (f"quote {long}", f"quote {short}", f"greeks {long}", f"greeks {short}")
    quotes = spread_quotes()
    quotes[short] = dataclasses.replace(quotes[short], greeks=None, bid=D("6"), ask=D("5"))
    partial = check_roll(spread_holding(), NOW, quotes, S)
    assert partial.reasons == () and partial.missing == (f"quote {short}", f"greeks {short}")


def test_spread_rules_read_their_settings() -> None:
    custom = settings(
        templates={"smoothing": {"roll_every_days_held": 10, "roll_value_below_pct_of_width": "50"}}
    )
    holding = spread_holding(opened=NOW - timedelta(days=10))
    check = check_roll(holding, NOW, spread_quotes(long_mid="24.00", short_mid="5.00"), custom)
    assert check.reasons == ("spread_value", "cadence")  # 19 < 20 = 50 % of 40


def test_expired_from_the_expiry_close() -> None:
    holding = tail(0)
    assert not is_expired(holding, NOW)  # 15:30 on the expiry day: still trading
    assert is_expired(holding, NOW.replace(hour=16, minute=0))
    assert is_expired(tail(-1), NOW)
    assert not is_expired(tail(1), NOW.replace(hour=23))
