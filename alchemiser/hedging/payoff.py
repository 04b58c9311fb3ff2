"""Scenario repricing of hedges: what a put or a spread is worth after a shock.

The scenario is an instantaneous shock: the underlying moves to
spot x (1 + move_pct / 100) and every leg's implied volatility rises by
``vol_shift_points / 100``, with the time to expiry unchanged. Crashes that
matter for a tail hedge happen over days, not months, and valuing at today's
time keeps the figure independent of when the crash comes; for a hedge held
to within weeks of expiry it overstates the value a slow decline would give
(the roll rules keep hedges well away from expiry).

Payoff = shocked value - current value, both by the same model
(Black-Scholes-Merton over ``domain.pricing``), times contracts x 100. It is
not intrinsic value: an out-of-the-money put still gains from the shock, and
a put's remaining time value counts. Current value is the model value at the
leg's current IV, so a zero shock pays exactly zero.

Each leg's IV is its quoted implied volatility when the caller has one, else
implied from its mark (the service passes what the feed gave); a leg with
neither cannot be valued and is an error, never a guess. Money out is
Decimal dollars rounded to cents; NumPy floats inside.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from alchemiser.domain.implied_vol import implied_vol
from alchemiser.domain.options import OptionContract, OptionRight, parse_occ
from alchemiser.domain.pricing import FloatArray, bsm_price
from alchemiser.domain.vol_index import NEW_YORK
from alchemiser.settings.hedging import TemplateName

__all__ = [
    "CONTRACT_MULTIPLIER",
    "HedgeHolding",
    "HedgeLeg",
    "current_value",
    "hedge_book_payoff",
    "leg_ivs",
    "reprice",
    "scenario_moves",
    "scenario_payoff",
    "scenario_value",
    "to_money",
    "years_to_expiry",
]

# Shares per standard listed equity option contract.
CONTRACT_MULTIPLIER = 100
# Listed equity options (SPY, QQQ, IWM: PM-settled) stop trading at 16:00 New York time.
EXPIRY_CLOSE = time(16, 0)
_SECONDS_PER_YEAR = 365.0 * 86400.0
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class HedgeLeg:
    """One option leg of a hedge: + contracts long, - contracts short."""

    contract: OptionContract
    contracts: int
    iv: float | None = None  # current implied volatility (0.20 = 20 %)
    mark: Decimal | None = None  # current per-share mark, used for the IV when iv is None

    def __post_init__(self) -> None:
        if self.contracts == 0:
            raise ValueError(f"{self.symbol}: a leg needs a non-zero number of contracts")

    @classmethod
    def from_occ(
        cls, symbol: str, contracts: int, iv: float | None = None, mark: Decimal | None = None
    ) -> HedgeLeg:
        return cls(parse_occ(symbol), contracts, iv, mark)

    @property
    def symbol(self) -> str:
        return self.contract.occ_symbol

    @property
    def right(self) -> OptionRight:
        return self.contract.right

    @property
    def strike(self) -> Decimal:
        return self.contract.strike

    @property
    def expiry(self) -> date:
        return self.contract.expiry


@dataclass(frozen=True, slots=True)
class HedgeHolding:
    """An open hedge as the store knows it: a long put, or a put spread (long + short leg)."""

    hedge_id: str
    template: TemplateName
    underlying: str
    legs: tuple[HedgeLeg, ...]
    opened_at: datetime

    def __post_init__(self) -> None:
        longs = [leg for leg in self.legs if leg.contracts > 0]
        shorts = [leg for leg in self.legs if leg.contracts < 0]
        where = f"hedge {self.hedge_id}"
        if len(longs) != 1:
            raise ValueError(f"{where}: needs exactly one long leg, has {len(longs)}")
        if self.template == "tail_first" and shorts:
            raise ValueError(f"{where}: a tail_first hedge is one long put, it has a short leg")
        if self.template == "smoothing":
            if len(shorts) != 1:
                raise ValueError(f"{where}: a spread needs exactly one short leg")
            long, short = longs[0], shorts[0]
            if long.expiry != short.expiry or long.contract == short.contract:
                raise ValueError(f"{where}: spread legs must be distinct, with one expiry")
        for leg in self.legs:
            if leg.contract.root != self.underlying:
                raise ValueError(f"{where}: leg {leg.symbol} is not on {self.underlying}")

    @property
    def long_leg(self) -> HedgeLeg:
        return next(leg for leg in self.legs if leg.contracts > 0)

    @property
    def short_leg(self) -> HedgeLeg | None:
        return next((leg for leg in self.legs if leg.contracts < 0), None)

    @property
    def contracts(self) -> int:
        """Number of puts (or spreads) held."""
        return self.long_leg.contracts

    @property
    def expiry(self) -> date:
        return min(leg.expiry for leg in self.legs)

    @property
    def width(self) -> Decimal | None:
        """Strike difference of a spread (per share); None for an outright put."""
        short = self.short_leg
        return None if short is None else abs(self.long_leg.strike - short.strike)


def years_to_expiry(expiry: date, now: datetime) -> float:
    """Years (365 days) from ``now`` to the expiry's 16:00 New York close; 0 once past."""
    close = datetime.combine(expiry, EXPIRY_CLOSE, NEW_YORK)
    return max((close - now).total_seconds() / _SECONDS_PER_YEAR, 0.0)


def to_money(value: float) -> Decimal:
    """A float dollar amount as Decimal cents; a non-finite value is an error (never a price)."""
    if not math.isfinite(value):
        raise ValueError(f"cannot value: the model gave {value}")
    return Decimal(repr(float(value))).quantize(_CENT)


def reprice(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    years: npt.ArrayLike,
    rate: float,
    div_yield: npt.ArrayLike,
    iv: npt.ArrayLike,
    is_call: npt.ArrayLike,
    move_pct: float,
    vol_shift_points: float,
) -> tuple[FloatArray, FloatArray]:
    """Per-share (current, shocked) model values, vectorised over options."""
    spot_a = np.asarray(spot, dtype=np.float64)
    vol = np.asarray(iv, dtype=np.float64)
    current = bsm_price(spot_a, strike, years, rate, div_yield, vol, is_call)
    shocked_spot = spot_a * (1.0 + move_pct / 100.0)
    shocked_vol = np.maximum(vol + vol_shift_points / 100.0, 0.0)
    shocked = bsm_price(shocked_spot, strike, years, rate, div_yield, shocked_vol, is_call)
    return current, shocked


def leg_ivs(
    legs: Sequence[HedgeLeg], spot: Decimal, now: datetime, rate: float, div_yield: float = 0.0
) -> FloatArray:
    """Each leg's IV: its own, else implied from its mark; ValueError when neither is usable."""
    out = np.empty(len(legs))
    for n, leg in enumerate(legs):
        if leg.iv is not None and math.isfinite(leg.iv) and leg.iv > 0:
            out[n] = leg.iv
            continue
        if leg.mark is None or not leg.mark.is_finite():
            raise ValueError(f"{leg.symbol}: no implied volatility and no mark to imply it from")
        solved = implied_vol(
            float(leg.mark),
            float(spot),
            float(leg.strike),
            years_to_expiry(leg.expiry, now),
            rate,
            div_yield,
            leg.right.is_call,
        )
        vol = float(solved.vol)
        if not (math.isfinite(vol) and vol > 0):
            raise ValueError(
                f"{leg.symbol}: mark {leg.mark} gives no implied volatility (outside model bounds)"
            )
        out[n] = vol
    return out


def _values(
    legs: Sequence[HedgeLeg],
    spot: Decimal,
    now: datetime,
    rate: float,
    move_pct: Decimal,
    vol_shift_points: Decimal,
    div_yield: float,
) -> tuple[float, float]:
    """Dollar value of the legs now and at the shock (signed by contracts, x 100)."""
    if not legs:
        return 0.0, 0.0
    if not (spot.is_finite() and spot > 0):
        raise ValueError(f"spot must be a positive number, got {spot}")
    current, shocked = reprice(
        float(spot),
        [float(leg.strike) for leg in legs],
        [years_to_expiry(leg.expiry, now) for leg in legs],
        rate,
        div_yield,
        leg_ivs(legs, spot, now, rate, div_yield),
        [leg.right.is_call for leg in legs],
        float(move_pct),
        float(vol_shift_points),
    )
    weights = np.array([leg.contracts * CONTRACT_MULTIPLIER for leg in legs], dtype=np.float64)
    return float(weights @ current), float(weights @ shocked)


def scenario_value(
    legs: Sequence[HedgeLeg],
    spot: Decimal,
    now: datetime,
    rate: float,
    move_pct: Decimal,
    vol_shift_points: Decimal,
    *,
    div_yield: float = 0.0,
) -> Decimal:
    """Dollar value of ``legs`` at spot x (1 + move_pct/100) and IV + points/100, time unchanged."""
    return to_money(_values(legs, spot, now, rate, move_pct, vol_shift_points, div_yield)[1])


def current_value(
    legs: Sequence[HedgeLeg], spot: Decimal, now: datetime, rate: float, *, div_yield: float = 0.0
) -> Decimal:
    """Dollar model value of ``legs`` now (at their current IVs)."""
    zero = Decimal(0)
    return to_money(_values(legs, spot, now, rate, zero, zero, div_yield)[0])


def scenario_payoff(
    legs: Sequence[HedgeLeg],
    spot: Decimal,
    now: datetime,
    rate: float,
    move_pct: Decimal,
    vol_shift_points: Decimal,
    *,
    div_yield: float = 0.0,
) -> Decimal:
    """Shocked value - current value of ``legs``, in dollars (the hedge's gain in the scenario)."""
    now_value, shocked = _values(legs, spot, now, rate, move_pct, vol_shift_points, div_yield)
    return to_money(shocked - now_value)


def scenario_moves(
    reference: str,
    move_pct: Decimal,
    betas: Mapping[str, Decimal],
    underlyings: Sequence[str],
) -> dict[str, Decimal]:
    """The move of each underlying when ``reference`` moves ``move_pct`` (betas to SPY).

    One-factor model: underlying u moves move_pct x beta_u / beta_reference.
    """
    missing = sorted({reference, *underlyings} - betas.keys())
    if missing:
        raise ValueError(f"no beta for {', '.join(missing)}: cannot scale the scenario move")
    return {u: move_pct * betas[u] / betas[reference] for u in underlyings}


def hedge_book_payoff(
    holdings: Sequence[HedgeHolding],
    spots: Mapping[str, Decimal],
    now: datetime,
    rate: float,
    move_pct: Decimal | Mapping[str, Decimal],
    vol_shift_points: Decimal,
    *,
    div_yields: Mapping[str, float] | None = None,
) -> Decimal:
    """Σ over holdings of (shocked value - current value) x contracts x 100, in dollars.

    ``move_pct`` is one move for every underlying, or a move per underlying
    (``scenario_moves`` when hedges sit on more than one ETF). A holding whose
    underlying has no spot (or no move) is an error: the book is not valued
    with a hole in it.
    """
    total = 0.0
    by_underlying: dict[str, list[HedgeLeg]] = {}
    for holding in holdings:
        by_underlying.setdefault(holding.underlying, []).extend(holding.legs)
    for underlying, legs in sorted(by_underlying.items()):
        if underlying not in spots:
            raise ValueError(f"no spot for {underlying}: cannot value its hedges")
        if isinstance(move_pct, Mapping):
            if underlying not in move_pct:
                raise ValueError(f"no scenario move for {underlying}")
            move = move_pct[underlying]
        else:
            move = move_pct
        q = (div_yields or {}).get(underlying, 0.0)
        now_value, shocked = _values(legs, spots[underlying], now, rate, move, vol_shift_points, q)
        total += shocked - now_value
    return to_money(total)
