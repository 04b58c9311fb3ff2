"""Quote validation counts per reason; put-call ratios with their fallbacks; sector averages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from alchemiser.domain.options import OptionRight
from alchemiser.income.chain_quality import (
    DROP_REASONS,
    put_call_ratio,
    sector_average,
    validate_quotes,
)
from tests.income import NOW, snapshot

MAX_AGE = 60.0


def test_validate_quotes_counts_each_reason() -> None:
    good = snapshot(bid="1.00", ask="1.10")
    chain = [
        good,
        snapshot(bid="0", ask="1.10"),
        snapshot(bid="-0.05", ask="1.10"),
        snapshot(bid="NaN", ask="1.10"),
        snapshot(bid="1.00", ask="0"),
        snapshot(bid="1.20", ask="1.10"),
        snapshot(bid="1.00", ask="1.10", timestamp=NOW - timedelta(seconds=61)),
        snapshot(bid="1.00", ask="1.10", iv=None),
        snapshot(bid="1.00", ask="1.10", iv=float("nan")),
        snapshot(bid="1.00", ask="1.10", iv=0.0),
        snapshot(bid="1.00", ask="1.10", delta=None),
        snapshot(bid="1.00", ask="1.10", delta=float("nan")),
    ]
    kept, dropped = validate_quotes(chain, NOW, MAX_AGE)
    assert kept == [good]
    assert dropped == {
        "no_bid": 3,
        "no_ask": 1,
        "crossed": 1,
        "stale": 1,
        "no_iv": 3,
        "no_greeks": 2,
    }
    assert set(dropped) <= set(DROP_REASONS)


def test_validate_quotes_boundaries() -> None:
    at_age = snapshot(timestamp=NOW - timedelta(seconds=MAX_AGE))
    locked = snapshot(bid="1.00", ask="1.00")  # bid = ask is not crossed
    stale = snapshot(timestamp=NOW - timedelta(seconds=MAX_AGE, microseconds=1))
    kept, dropped = validate_quotes([at_age, locked, stale], NOW, MAX_AGE)
    assert kept == [at_age, locked]
    assert dropped == {"stale": 1}


def test_one_reason_per_quote_in_order() -> None:
    awful = snapshot(bid="0", ask="0", iv=None, delta=None, timestamp=NOW - timedelta(days=1))
    _, dropped = validate_quotes([awful], NOW, MAX_AGE)
    assert dropped == {"no_bid": 1}
    _, dropped = validate_quotes([snapshot(bid="2", ask="1", iv=None)], NOW, MAX_AGE)
    assert dropped == {"crossed": 1}


def test_validate_quotes_of_nothing() -> None:
    kept, dropped = validate_quotes([], NOW, MAX_AGE)
    assert kept == [] and not dropped


def test_put_call_ratio_from_volume() -> None:
    chain = [
        snapshot(OptionRight.PUT, volume=30, open_interest=1),
        snapshot(OptionRight.PUT, volume=None, open_interest=1),
        snapshot(OptionRight.CALL, volume=40, open_interest=1000),
        snapshot(OptionRight.CALL, volume=20, open_interest=1000),
    ]
    assert put_call_ratio(chain) == Decimal("0.5")


def test_put_call_ratio_falls_back_to_open_interest_without_volume() -> None:
    chain = [
        snapshot(OptionRight.PUT, volume=0, open_interest=300),
        snapshot(OptionRight.CALL, volume=None, open_interest=400),
    ]
    assert put_call_ratio(chain) == Decimal("0.75")


def test_put_call_ratio_unknown() -> None:
    assert put_call_ratio([]) is None
    nothing = [
        snapshot(OptionRight.PUT, volume=None, open_interest=None),
        snapshot(OptionRight.CALL, volume=0, open_interest=0),
    ]
    assert put_call_ratio(nothing) is None
    puts_only = [snapshot(OptionRight.PUT, volume=10, open_interest=10)]
    assert put_call_ratio(puts_only) is None
    calls_only = [snapshot(OptionRight.CALL, volume=10, open_interest=10)]
    assert put_call_ratio(calls_only) == 0


def test_put_call_ratio_rounds_to_four_places() -> None:
    chain = [
        snapshot(OptionRight.PUT, volume=1, open_interest=0),
        snapshot(OptionRight.CALL, volume=3, open_interest=0),
    ]
    assert put_call_ratio(chain) == Decimal("0.3333")


def test_sector_average() -> None:
    ratios = {
        "AAPL": Decimal("0.6"),
        "MSFT": Decimal("1.0"),
        "NVDA": None,
        "JPM": Decimal("1.2"),
        "ODD": Decimal("9"),
    }
    sectors = {
        "AAPL": "Technology",
        "MSFT": "Technology",
        "NVDA": "Technology",
        "JPM": "Financials",
    }
    assert sector_average(ratios, sectors) == {
        "Technology": Decimal("0.8"),
        "Financials": Decimal("1.2"),
    }
    assert sector_average({}, sectors) == {}
