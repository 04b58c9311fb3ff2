"""Helpers of the synthetic-market tests."""

from __future__ import annotations

from datetime import date, datetime, time

from alchemiser.clock import NEW_YORK

SEED = 20240611
START = date(2020, 1, 2)


def ny(d: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An aware New York wall time on ``d``."""
    return datetime.combine(d, time(hour, minute, second), NEW_YORK)


def option_tick(price: float, penny: bool) -> float:
    """The quoting tick of an option at ``price``."""
    return 0.01 if penny or price < 3.0 else 0.05
