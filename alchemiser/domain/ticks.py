"""Minimum price increments of listed equity options: one rule for quotes and orders.

The Penny Interval Program (formerly the Penny Pilot, Cboe Rule 5.4): SPY, QQQ
and IWM quote in $0.01 at every price; other penny classes in $0.01 below $3
and $0.05 at or above; all other classes in $0.05 below $3 and $0.10 at or above.
"""

from __future__ import annotations

from decimal import Decimal

INDEX_PENNY_ALL = frozenset({"SPY", "QQQ", "IWM"})
PENNY_BREAK = Decimal(3)
PENNY_BREAK_CENTS = 300


def tick_schedule_cents(underlying: str, *, penny_pilot: bool) -> tuple[int, int]:
    """(tick below $3, tick at or above $3) in cents for options on ``underlying``."""
    if underlying.upper() in INDEX_PENNY_ALL:
        return 1, 1
    if penny_pilot:
        return 1, 5
    return 5, 10


def option_tick(underlying: str, price: Decimal, *, penny_pilot: bool) -> Decimal:
    """The minimum increment of a single-leg option order or quote at ``price``."""
    below, above = tick_schedule_cents(underlying, penny_pilot=penny_pilot)
    return Decimal(below if price < PENNY_BREAK else above).scaleb(-2)
