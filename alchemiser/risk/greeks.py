"""Dollar greeks per position and aggregated by underlying, by strategy and for the book.

All option greeks come from one vectorised ``bsm_greeks`` call. Units (money in
the account currency, Decimal at the API edge, rounded to cents):

- ``delta_dollars``: delta × units × spot (an equity has delta 1);
- ``beta_delta_dollars``: delta dollars × effective beta to SPY
  (beta × leverage, as the reference data defines exposure);
- ``gamma_dollars``: change of delta dollars for a 1 % move of the underlying,
  gamma × units × spot² × 0.01;
- ``theta``: P&L of one calendar day; ``vega``: of +1 vol point;
  ``rho``: of +1 rate point (1 %).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np

from alchemiser.domain.pricing import FloatArray, bsm_greeks
from alchemiser.market.reference import ReferenceData
from alchemiser.risk.book import STRATEGIES, BookArrays, RiskPosition, book_arrays

__all__ = [
    "BookGreeks",
    "GreekMatrix",
    "GreekTotals",
    "PositionGreeks",
    "betas_from_reference",
    "book_greeks",
    "greek_matrix",
    "to_money",
]

_CENT = Decimal("0.01")
_FIELDS = (
    "market_value",
    "delta_dollars",
    "beta_delta_dollars",
    "gamma_dollars",
    "theta",
    "vega",
    "rho",
)


def to_money(x: float) -> Decimal:
    """A float amount as Decimal rounded to cents (NaN stays NaN)."""
    if not np.isfinite(x):
        return Decimal("NaN")
    return Decimal(repr(float(x))).quantize(_CENT)


def betas_from_reference(
    reference: ReferenceData, symbols: Iterable[str], *, default: float = 1.0
) -> dict[str, float]:
    """Effective beta to SPY (beta × leverage) of each symbol; unknown beta → ``default``."""
    out: dict[str, float] = {}
    for sym in symbols:
        info = reference.get(sym)
        beta = float(info.beta) if info.beta is not None else default
        out[sym] = beta * float(info.leverage)
    return out


@dataclass(frozen=True, slots=True)
class GreekTotals:
    market_value: Decimal  # model value (equities at spot, options at BSM)
    delta_dollars: Decimal
    beta_delta_dollars: Decimal
    gamma_dollars: Decimal
    theta: Decimal
    vega: Decimal
    rho: Decimal


@dataclass(frozen=True, slots=True)
class PositionGreeks:
    symbol: str
    underlying: str
    strategy: str
    totals: GreekTotals
    early_exercise: bool  # European figures are a lower bound (deep ITM)


@dataclass(frozen=True, slots=True)
class BookGreeks:
    positions: tuple[PositionGreeks, ...]
    by_underlying: dict[str, GreekTotals]
    by_strategy: dict[str, GreekTotals]  # every strategy present, zeros if empty
    total: GreekTotals


@dataclass(frozen=True, slots=True)
class GreekMatrix:
    """Float dollar greeks, one row per field of ``_FIELDS``, one column per position."""

    values: FloatArray  # shape (7, n)
    early_exercise: np.ndarray[tuple[int], np.dtype[np.bool_]]


def greek_matrix(
    arrays: BookArrays, *, rate: float, betas: Mapping[str, float], div_yield: float = 0.0
) -> GreekMatrix:
    """Dollar greeks of every position as floats (the vectorised core)."""
    n = len(arrays)
    units, spot = arrays.units, arrays.spot
    price = spot.copy()
    delta = np.ones(n)
    gamma = np.zeros(n)
    theta = np.zeros(n)
    vega = np.zeros(n)
    rho = np.zeros(n)
    early = np.zeros(n, dtype=np.bool_)
    opt = arrays.is_option
    if opt.any():
        g = bsm_greeks(
            spot[opt],
            arrays.strike[opt],
            arrays.time[opt],
            rate,
            div_yield,
            arrays.iv[opt],
            arrays.is_call[opt],
        )
        price[opt], delta[opt], gamma[opt] = g.price, g.delta, g.gamma
        theta[opt], vega[opt], rho[opt] = g.theta, g.vega, g.rho
        early[opt] = g.early_exercise
    missing = sorted({u for u in arrays.underlyings if u not in betas})
    if missing:
        raise ValueError(f"no beta for {', '.join(missing)}")
    beta_u = np.array([betas[u] for u in arrays.underlyings], dtype=np.float64)
    beta = beta_u[arrays.und] if n else np.zeros(0)
    delta_dollars = delta * units * spot
    values = np.vstack(
        [
            price * units,
            delta_dollars,
            delta_dollars * beta,
            gamma * units * spot * spot * 0.01,
            theta * units,
            vega * units,
            rho * units,
        ]
    )
    return GreekMatrix(values=values, early_exercise=early)


def _totals(column: FloatArray) -> GreekTotals:
    return GreekTotals(*(to_money(float(v)) for v in column))


def _grouped(values: FloatArray, groups: Sequence[str]) -> dict[str, FloatArray]:
    keys = sorted(set(groups))
    where = {k: i for i, k in enumerate(keys)}
    idx = np.array([where[g] for g in groups], dtype=np.intp)
    sums = np.zeros((values.shape[0], len(keys)))
    np.add.at(sums.T, idx, values.T)
    return {k: sums[:, i] for i, k in enumerate(keys)}


def book_greeks(
    book: Sequence[RiskPosition],
    *,
    as_of: date,
    rate: float,
    betas: Mapping[str, float] | ReferenceData,
    div_yield: float = 0.0,
) -> BookGreeks:
    """Dollar greeks of the book; ``rate`` is continuous, 0.04 = 4 % (settings give percent).

    ``betas`` maps each underlying to its effective beta to SPY, or is the
    ``ReferenceData`` to read them from (unknown beta → 1.0).
    """
    arrays = book_arrays(book, as_of)
    if not isinstance(betas, Mapping):
        betas = betas_from_reference(betas, arrays.underlyings)
    m = greek_matrix(arrays, rate=rate, betas=betas, div_yield=div_yield)
    positions = tuple(
        PositionGreeks(
            symbol=p.symbol,
            underlying=p.underlying,
            strategy=p.strategy,
            totals=_totals(m.values[:, i]),
            early_exercise=bool(m.early_exercise[i]),
        )
        for i, p in enumerate(book)
    )
    by_und = {k: _totals(v) for k, v in _grouped(m.values, [p.underlying for p in book]).items()}
    by_strat_f = _grouped(m.values, [p.strategy for p in book])
    zero = np.zeros(len(_FIELDS))
    by_strategy: dict[str, GreekTotals] = {s: _totals(by_strat_f.get(s, zero)) for s in STRATEGIES}
    return BookGreeks(
        positions=positions,
        by_underlying=by_und,
        by_strategy=by_strategy,
        total=_totals(m.values.sum(axis=1)),
    )
