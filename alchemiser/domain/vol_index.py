"""A 30-day volatility index from any option chain, by the Cboe VIX method.

For each expiry the variance is the Cboe formula on out-of-the-money mid
quotes (Cboe VIX white paper):

    σ² = (2/T) Σ ΔK_i / K_i² · e^{RT} Q(K_i)  -  (1/T) (F/K0 - 1)²

- F, the forward, is K + e^{RT} (C - P) at the strike where the call and put
  mids differ least (both bids positive);
- K0 is the first listed strike at or below F;
- puts below K0 and calls above it are taken outwards from K0, skipping
  zero bids and stopping after two consecutive zero bids; at K0, Q is the
  average of the put and call mids;
- ΔK_i is half the distance between the neighbouring included strikes (the
  full distance to the single neighbour at either end).

The two expiries bracketing the target (30 days) are combined by linear
interpolation of total variance σ²T, and the index is 100 × the annualised
volatility. Times are wall-clock minutes (in the settlement time zone) over a
365-day year, as Cboe counts them.

Generalisations for chains that are not SPX (documented choices):

- expiries closer than ``min_days`` are ignored (noisy, event-driven);
- without an expiry on each side of the target, the two nearest usable
  expiries on one side extrapolate total variance linearly (Cboe's own rule
  before weekly options); with only one usable expiry its variance is used;
- an expiry whose quotes cannot give a forward or a strip is skipped and the
  next nearest one is used.

Settlement: each expiry is taken to settle at ``settlement`` (default 16:00)
in ``expiry_tz`` (default America/New_York), i.e. PM settlement as for SPY,
QQQ and IWM options and SPXW; pass 09:30 for AM-settled index options. The
valuation instant is the caller's: for end-of-day quotes, 16:00 New York
time on the quote date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

__all__ = [
    "NEW_YORK",
    "OptionChain",
    "TermVariance",
    "VolIndex",
    "VolIndexError",
    "term_variance",
    "vix_index",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
DateArray: TypeAlias = npt.NDArray[np.datetime64]

NEW_YORK = ZoneInfo("America/New_York")
MINUTES_PER_YEAR = 365.0 * 24.0 * 60.0


class VolIndexError(ValueError):
    """The chain cannot give a volatility index (no usable expiry)."""


@dataclass(frozen=True, slots=True, eq=False)
class OptionChain:
    """Quotes of one underlying's options as parallel arrays, one row per contract.

    ``expiry`` is datetime64[D]; prices are per share (float64: this is the
    vectorised edge, Decimal money lives in orders and positions).
    """

    expiry: DateArray
    strike: FloatArray
    is_call: BoolArray
    bid: FloatArray
    ask: FloatArray
    volume: FloatArray | None = None
    open_interest: FloatArray | None = None
    underlying: str | None = field(default=None)

    def __post_init__(self) -> None:
        n = len(self.strike)
        arrays = {
            "expiry": self.expiry,
            "is_call": self.is_call,
            "bid": self.bid,
            "ask": self.ask,
            "volume": self.volume,
            "open_interest": self.open_interest,
        }
        for name, arr in arrays.items():
            if arr is not None and (np.ndim(arr) != 1 or len(arr) != n):
                raise ValueError(f"chain column {name} has {len(arr)} rows, strike has {n}")
        if not np.issubdtype(np.asarray(self.expiry).dtype, np.datetime64):
            raise ValueError("chain expiry must be a datetime64[D] array")

    def __len__(self) -> int:
        return len(self.strike)

    def expiries(self) -> list[date]:
        """Distinct expiry dates, ascending."""
        return [d.astype(object) for d in np.unique(self.expiry.astype("datetime64[D]"))]


@dataclass(frozen=True, slots=True)
class TermVariance:
    """One expiry's contribution: the Cboe variance and what it was built from."""

    expiry: date
    years: float  # time to settlement T
    forward: float  # F from put-call parity
    k0: float  # first strike at or below F
    variance: float  # annualised σ² of this expiry
    strikes: int  # out-of-the-money strikes that entered the sum (K0 included)


@dataclass(frozen=True, slots=True)
class VolIndex:
    """The index (in volatility points) and the expiries behind it."""

    value: float
    near: TermVariance
    far: TermVariance | None
    method: Literal["interpolated", "extrapolated", "single_expiry"]
    target_days: float


def _strip(
    strikes: FloatArray, bids: FloatArray, mids: FloatArray, descending: bool
) -> tuple[FloatArray, FloatArray]:
    """Walk away from K0: skip zero bids, stop after two zero bids in a row."""
    order = np.argsort(strikes)
    if descending:
        order = order[::-1]
    keep_k: list[float] = []
    keep_q: list[float] = []
    zeros = 0
    for i in order:
        if bids[i] > 0:
            zeros = 0
            keep_k.append(float(strikes[i]))
            keep_q.append(float(mids[i]))
        else:
            zeros += 1
            if zeros >= 2:
                break
    return np.asarray(keep_k, dtype=np.float64), np.asarray(keep_q, dtype=np.float64)


def term_variance(
    strike: npt.ArrayLike,
    is_call: npt.ArrayLike,
    bid: npt.ArrayLike,
    ask: npt.ArrayLike,
    years: float,
    rate: float,
) -> tuple[float, float, float, int] | None:
    """(σ², F, K0, strikes used) of one expiry by the Cboe method, or None if unusable.

    Quotes with a missing or crossed bid/ask are ignored; zero bids count for
    the two-zero-bids stopping rule.
    """
    k = np.asarray(strike, dtype=np.float64)
    c = np.asarray(is_call, dtype=np.bool_)
    b = np.asarray(bid, dtype=np.float64)
    a = np.asarray(ask, dtype=np.float64)
    if not years > 0:
        return None
    usable = np.isfinite(k) & (k > 0) & np.isfinite(b) & np.isfinite(a) & (b >= 0) & (a >= b)
    k, c, b, a = k[usable], c[usable], b[usable], a[usable]
    mid = 0.5 * (b + a)
    growth = float(np.exp(rate * years))
    calls, puts = c, ~c
    ck, cb, cm = k[calls], b[calls], mid[calls]
    pk, pb, pm = k[puts], b[puts], mid[puts]
    if len(np.unique(ck)) != len(ck) or len(np.unique(pk)) != len(pk):
        raise VolIndexError("the chain has two quotes for the same expiry, strike and right")
    # Forward from the strike where call and put mids are closest (both bid).
    both, ci, pi = np.intersect1d(ck[cb > 0], pk[pb > 0], return_indices=True)
    if both.size == 0:
        return None
    c_mid = cm[cb > 0][ci]
    p_mid = pm[pb > 0][pi]
    j = int(np.argmin(np.abs(c_mid - p_mid)))
    forward = float(both[j] + growth * (c_mid[j] - p_mid[j]))
    listed = np.union1d(ck, pk)
    at_or_below = listed[listed <= forward]
    if at_or_below.size == 0:
        return None
    k0 = float(at_or_below[-1])
    put_k, put_q = _strip(pk[pk < k0], pb[pk < k0], pm[pk < k0], descending=True)
    call_k, call_q = _strip(ck[ck > k0], cb[ck > k0], cm[ck > k0], descending=False)
    # At K0 both options are (close to) at the money: average their mids.
    at_k0: list[float] = []
    for ks, bs, ms in ((ck, cb, cm), (pk, pb, pm)):
        hit = np.flatnonzero(ks == k0)
        if hit.size and bs[hit[0]] > 0:
            at_k0.append(float(ms[hit[0]]))
    strikes = np.concatenate([put_k[::-1], [k0], call_k])
    quotes = np.concatenate([put_q[::-1], [np.mean(at_k0) if at_k0 else 0.0], call_q])
    if strikes.size < 3:
        return None
    dk = np.empty_like(strikes)
    dk[1:-1] = 0.5 * (strikes[2:] - strikes[:-2])
    dk[0] = strikes[1] - strikes[0]
    dk[-1] = strikes[-1] - strikes[-2]
    total = float(np.sum(dk / (strikes * strikes) * quotes))
    variance = (2.0 / years) * growth * total - (forward / k0 - 1.0) ** 2 / years
    used = int(np.count_nonzero(quotes > 0))
    return variance, forward, k0, used


def vix_index(
    chain: OptionChain,
    valuation: datetime,
    rate: float,
    *,
    target_days: float = 30.0,
    min_days: float = 7.0,
    settlement: time = time(16, 0),
    expiry_tz: tzinfo = NEW_YORK,
) -> VolIndex:
    """The Cboe-method volatility index of ``chain`` at ``valuation`` (aware datetime).

    ``rate`` is the continuously compounded risk-free rate (0.04 = 4 %).
    Raises VolIndexError when no expiry gives a usable variance.
    """
    if valuation.tzinfo is None or valuation.utcoffset() is None:
        raise ValueError("valuation must be a timezone-aware datetime")
    if not target_days > 0:
        raise ValueError("target_days must be positive")
    expiry_days = chain.expiry.astype("datetime64[D]")
    # Wall-clock minutes in the settlement zone, as Cboe counts them (a daylight
    # saving change does not shorten a day); the valuation may come in any zone.
    local = valuation.astimezone(expiry_tz).replace(tzinfo=None)
    candidates: list[tuple[float, date]] = []
    for day in np.unique(expiry_days):
        expiry: date = day.astype(object)
        minutes = (datetime.combine(expiry, settlement) - local) / timedelta(minutes=1)
        years = minutes / MINUTES_PER_YEAR
        if minutes >= min_days * 24 * 60:
            candidates.append((years, expiry))
    target = target_days / 365.0

    cache: dict[date, TermVariance | None] = {}

    def term(years: float, expiry: date) -> TermVariance | None:
        if expiry not in cache:
            rows = expiry_days == np.datetime64(expiry, "D")
            result = term_variance(
                chain.strike[rows],
                chain.is_call[rows],
                chain.bid[rows],
                chain.ask[rows],
                years,
                rate,
            )
            cache[expiry] = (
                None
                if result is None
                else TermVariance(expiry, years, result[1], result[2], result[0], result[3])
            )
        return cache[expiry]

    def first_usable(ordered: list[tuple[float, date]], count: int) -> list[TermVariance]:
        found: list[TermVariance] = []
        for years, expiry in ordered:
            tv = term(years, expiry)
            if tv is not None:
                found.append(tv)
                if len(found) == count:
                    break
        return found

    below = sorted((c for c in candidates if c[0] <= target), reverse=True)
    above = sorted(c for c in candidates if c[0] > target)
    near = first_usable(below, 1)
    far = first_usable(above, 1)
    if near and far:
        t1, t2 = near[0], far[0]
        method: Literal["interpolated", "extrapolated", "single_expiry"] = "interpolated"
    else:
        side = first_usable(below if near else above, 2)
        if not side:
            raise VolIndexError(
                f"no expiry at least {min_days:g} days out has usable quotes "
                "(a forward from call/put mids and a strip of out-of-the-money bids)"
            )
        if len(side) == 1:
            only = side[0]
            value = 100.0 * float(np.sqrt(max(only.variance, 0.0)))
            return VolIndex(value, only, None, "single_expiry", float(target_days))
        t1, t2 = sorted(side, key=lambda tv: tv.years)
        method = "extrapolated"
    w1 = (t2.years - target) / (t2.years - t1.years)
    total = w1 * t1.years * t1.variance + (1.0 - w1) * t2.years * t2.variance
    value = 100.0 * float(np.sqrt(max(total / target, 0.0)))
    return VolIndex(value, t1, t2, method, float(target_days))
