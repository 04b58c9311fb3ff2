"""Which option expiries and strikes the synthetic exchange lists, day by day.

Expiries (all PM-settled at the session close):

- **Monthlies**: the third Friday of every month, listed ``monthly_days``
  (a year) ahead; those of March, June, September and December are
  *quarterlies*, listed ``quarterly_days`` (about 18 months) ahead, so a chain
  reaches about a year and a half out.
- **Weeklies** (SPY, QQQ, IWM and the big stocks): every other Friday,
  listed ``weekly_days`` (8 weeks) ahead.
- An expiry whose Friday is an exchange holiday moves to the previous
  session (Good Friday → Thursday). An expiry is listed from the first
  session on or after (Friday − horizon) through its expiry day.

Strikes of one expiry are a union of two grids: a fine step near the money
and a coarse step (5× for index ETFs, 2× for stocks) across the whole range.
Steps come from the price when the expiry was listed (its *reference*):
index ETFs $1 (more for very high prices), stocks 0.5/1/2.5/5/10/25 by price
level. The range runs from 60 % to 130 % of the price for short-dated expiries
(to about 38 %-160 % for 18-month ones) and the fine band is ±8 % for
short-dated expiries, narrower for long ones. Both are taken around the lowest and highest closes
since listing, so strikes are only ever added — never removed — as the
price wanders or the expiry draws near, and every strike set is a pure
function of the path up to the previous close.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from alchemiser.sim.universe import StrikeGridStyle
from alchemiser.trading_calendar import TradingCalendar

__all__ = [
    "Expiry",
    "ExpiryType",
    "ListingParams",
    "listed_expiries",
    "strike_grid",
    "strike_steps",
    "third_friday",
]

IntArray: TypeAlias = npt.NDArray[np.int64]

_FRIDAY = 4
# Nice strike increments, in dollars.
_NICE_STEPS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0)
# Stock fine steps by price level: (price below, step).
_STOCK_STEPS = ((25.0, 0.5), (50.0, 1.0), (200.0, 2.5), (500.0, 5.0), (1000.0, 10.0))


class ExpiryType(IntEnum):
    WEEKLY = 0
    MONTHLY = 1
    QUARTERLY = 2  # a March/June/September/December monthly

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class ListingParams:
    """How far ahead expiries are listed and how wide strike ranges are."""

    weekly_days: int = 56
    monthly_days: int = 365
    quarterly_days: int = 550
    range_low: float = 0.60  # lowest strike / price for a short-dated expiry
    range_low_per_year: float = 0.15  # ... lowered per year of tenor at listing
    range_low_min: float = 0.30
    range_high: float = 1.30
    range_high_per_year: float = 0.20
    near_band_short: float = 0.08  # fine-step band (fraction of price), T <= 0.25 y
    near_band_medium: float = 0.05  # T <= 0.75 y
    near_band_long: float = 0.03


@dataclass(frozen=True, slots=True)
class Expiry:
    """One listed expiry."""

    date: _dt.date  # the expiry session (a holiday Friday moves to the previous session)
    friday: _dt.date  # the nominal Friday
    type: ExpiryType
    listed_from: _dt.date  # calendar date from which it is listed (Friday − horizon)

    @property
    def tenor_at_listing(self) -> float:
        """Years from listing to expiry."""
        return (self.date - self.listed_from).days / 365.0


def third_friday(year: int, month: int) -> date:
    """The third Friday of a month."""
    first = date(year, month, 1)
    return first + timedelta(days=(_FRIDAY - first.weekday()) % 7 + 14)


def _session_on_or_before(calendar: TradingCalendar, d: date) -> date:
    if not calendar.covers(d):
        return d  # beyond the calendar: assume the Friday trades
    return calendar.previous_session(d, inclusive=True)


def listed_expiries(
    calendar: TradingCalendar, on: date, weeklies: bool, params: ListingParams
) -> list[Expiry]:
    """Expiries listed on date ``on`` with expiry on or after it, soonest first."""
    out: list[Expiry] = []
    horizon_end = on + timedelta(days=params.quarterly_days + 7)
    monthly_fridays: set[date] = set()
    y, m = on.year, on.month
    while True:
        friday = third_friday(y, m)
        if friday > horizon_end:
            break
        monthly_fridays.add(friday)
        quarterly = m % 3 == 0
        horizon = params.quarterly_days if quarterly else params.monthly_days
        listed_from = friday - timedelta(days=horizon)
        expiry = _session_on_or_before(calendar, friday)
        if listed_from <= on <= expiry:
            kind = ExpiryType.QUARTERLY if quarterly else ExpiryType.MONTHLY
            out.append(Expiry(expiry, friday, kind, listed_from))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    if weeklies:
        friday = on + timedelta(days=(_FRIDAY - on.weekday()) % 7)
        while friday <= on + timedelta(days=params.weekly_days):
            if friday not in monthly_fridays:
                listed_from = friday - timedelta(days=params.weekly_days)
                expiry = _session_on_or_before(calendar, friday)
                if listed_from <= on <= expiry:
                    out.append(Expiry(expiry, friday, ExpiryType.WEEKLY, listed_from))
            friday += timedelta(days=7)
    out.sort(key=lambda e: e.date)
    return out


def strike_steps(style: StrikeGridStyle, reference: float) -> tuple[float, float]:
    """(fine, coarse) strike increments for a reference price."""
    if style is StrikeGridStyle.INDEX:
        fine = next((s for s in _NICE_STEPS if s >= reference / 1000.0), _NICE_STEPS[-1])
        fine = max(fine, 1.0)
        return fine, 5.0 * fine
    fine = next((step for below, step in _STOCK_STEPS if reference < below), 25.0)
    return fine, 2.0 * fine


def _multiples(step_milli: int, lo: float, hi: float) -> IntArray:
    first = max(1, math.ceil(lo * 1000.0 / step_milli - 1e-9))
    last = math.floor(hi * 1000.0 / step_milli + 1e-9)
    if last < first:
        return np.empty(0, dtype=np.int64)
    return np.arange(first, last + 1, dtype=np.int64) * step_milli


def strike_grid(
    style: StrikeGridStyle,
    reference: float,
    low_close: float,
    high_close: float,
    tenor_at_listing: float,
    years_left: float,
    params: ListingParams,
) -> IntArray:
    """Listed strikes (× 1000, ascending) of one expiry on one session.

    ``low_close``/``high_close`` are the extreme closes from the reference
    (the close before listing) to the previous session; ``years_left`` is the
    time from this session to expiry.
    """
    fine, coarse = strike_steps(style, reference)
    tenor = min(max(tenor_at_listing, 0.0), 1.5)
    low = max(params.range_low_min, params.range_low - params.range_low_per_year * tenor)
    high = params.range_high + params.range_high_per_year * tenor
    if years_left <= 0.25:
        band = params.near_band_short
    elif years_left <= 0.75:
        band = params.near_band_medium
    else:
        band = params.near_band_long
    lo, hi = low * low_close, high * high_close
    coarse_k = _multiples(round(coarse * 1000), lo, hi)
    near_lo = max(lo, (1.0 - band) * low_close)
    near_hi = min(hi, (1.0 + band) * high_close)
    fine_k = _multiples(round(fine * 1000), near_lo, near_hi)
    return np.union1d(coarse_k, fine_k)
