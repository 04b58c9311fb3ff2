"""Helpers of the synthetic-market tests."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

from alchemiser.clock import NEW_YORK
from alchemiser.domain import ticks

SEED = 20240611
START = date(2020, 1, 2)


def ny(d: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An aware New York wall time on ``d``."""
    return datetime.combine(d, time(hour, minute, second), NEW_YORK)


def option_tick(underlying: str, price: float, penny: bool) -> float:
    """The quoting tick of an option at ``price`` (the project's one rule, as a float)."""
    return float(ticks.option_tick(underlying, Decimal(str(price)), penny_pilot=penny))
