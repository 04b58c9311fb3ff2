"""Instantaneous stress scenarios of ``RiskSettings.stress_scenarios`` on the book.

Per scenario, every underlying moves by ``index_move_pct`` × its effective beta
to SPY (simple return, spot floored at 1 % of today's), implied vols become
iv × (1 + vol_shift_pct/100) + vol_shift_points/100 (floored at 0), the rate
moves by ``rate_shift_points``, and the largest single-name underlying (by
absolute net delta dollars; index ETFs excluded) gaps by ``single_name_gap_pct``
on top. Every option is fully repriced (BSM, time unchanged); P&L is against
the model value at today's inputs, by strategy and in total.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np

from alchemiser.market.reference import ReferenceData
from alchemiser.risk.book import STRATEGIES, RiskPosition, book_arrays, revalue
from alchemiser.risk.greeks import betas_from_reference, greek_matrix, to_money
from alchemiser.settings.risk import StressScenario

__all__ = [
    "DEFAULT_INDEX_SYMBOLS",
    "HEDGE_PAYOFF_MOVE_PCT",
    "ScenarioResult",
    "StressReport",
    "stress_test",
]

DEFAULT_INDEX_SYMBOLS = frozenset({"SPY", "QQQ", "IWM", "DIA", "VOO", "IVV"})
HEDGE_PAYOFF_MOVE_PCT = Decimal(-20)
_MIN_SPOT_FRACTION = 0.01


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    name: str
    pnl: Decimal
    pnl_by_strategy: dict[str, Decimal]  # every strategy, zero if absent
    pnl_pct_nav: Decimal | None  # None without a NAV
    gapped_symbol: str | None  # the single name the gap hit, if any


@dataclass(frozen=True, slots=True)
class StressReport:
    scenarios: tuple[ScenarioResult, ...]
    # Hedge P&L in the first scenario with index_move_pct = -20, in % of NAV.
    hedge_payoff_pct_nav: Decimal | None


def _pct(x: float, nav: float | None) -> Decimal | None:
    if nav is None or nav <= 0:
        return None
    return Decimal(repr(100.0 * x / nav)).quantize(Decimal("0.0001"))


def stress_test(
    book: Sequence[RiskPosition],
    scenarios: Sequence[StressScenario],
    *,
    as_of: date,
    rate: float,
    betas: Mapping[str, float] | ReferenceData,
    nav: Decimal | float | None = None,
    index_symbols: Collection[str] | None = None,
    div_yield: float = 0.0,
) -> StressReport:
    """P&L of the book under each scenario (all scenarios repriced in one call).

    ``rate`` is continuous, 0.04 = 4 %. Index ETFs (never gapped): ``index_symbols``;
    by default those the reference data marks with ``tracks``, or
    ``DEFAULT_INDEX_SYMBOLS`` when betas are given as a mapping.
    """
    arrays = book_arrays(book, as_of)
    if isinstance(betas, Mapping):
        beta_map = dict(betas)
        indices = set(DEFAULT_INDEX_SYMBOLS if index_symbols is None else index_symbols)
    else:
        beta_map = betas_from_reference(betas, arrays.underlyings)
        indices = (
            {u for u in arrays.underlyings if betas.get(u).tracks is not None}
            if index_symbols is None
            else set(index_symbols)
        )
    nav_f = None if nav is None else float(nav)
    n, k = len(arrays), len(arrays.underlyings)
    # Largest single name: absolute net delta dollars per underlying.
    dd = greek_matrix(arrays, rate=rate, betas=beta_map, div_yield=div_yield).values[1]
    exposure = np.abs(np.bincount(arrays.und, dd, minlength=k)) if n else np.zeros(0)
    singles = [j for j, u in enumerate(arrays.underlyings) if u not in indices]
    largest = max(singles, key=lambda j: float(exposure[j])) if singles else None
    beta_u = np.array([beta_map[u] for u in arrays.underlyings], dtype=np.float64)

    m = len(scenarios)
    factor = np.ones((m, k))
    vol_mult = np.ones((m, 1))
    vol_add = np.zeros((m, 1))
    rates = np.full((m, 1), rate)
    gapped: list[str | None] = []
    for i, sc in enumerate(scenarios):
        factor[i] = 1.0 + beta_u * float(sc.index_move_pct) / 100.0
        name = None
        if sc.single_name_gap_pct and largest is not None:
            factor[i, largest] *= 1.0 + float(sc.single_name_gap_pct) / 100.0
            name = arrays.underlyings[largest]
        gapped.append(name)
        vol_mult[i] = 1.0 + float(sc.vol_shift_pct) / 100.0
        vol_add[i] = float(sc.vol_shift_points) / 100.0
        rates[i] = rate + float(sc.rate_shift_points) / 100.0
    factor = np.maximum(factor, _MIN_SPOT_FRACTION)
    spot = arrays.spot * factor[:, arrays.und]
    iv = np.maximum(arrays.iv * vol_mult + vol_add, 0.0)
    base = revalue(arrays, arrays.spot, rate=rate, div_yield=div_yield)
    pnl = revalue(arrays, spot, rate=rates, iv=iv, div_yield=div_yield) - base  # (m, n)

    results: list[ScenarioResult] = []
    hedge_payoff: Decimal | None = None
    for i, sc in enumerate(scenarios):
        by_strategy: dict[str, Decimal] = {}
        hedge_pnl = 0.0
        for s in STRATEGIES:
            mask = np.array([st == s for st in arrays.strategy], dtype=np.bool_)
            value = float(pnl[i, mask].sum()) if mask.any() else 0.0
            by_strategy[s] = to_money(value)
            if s == "hedge":
                hedge_pnl = value
        total = float(pnl[i].sum())
        results.append(
            ScenarioResult(
                name=sc.name,
                pnl=to_money(total),
                pnl_by_strategy=by_strategy,
                pnl_pct_nav=_pct(total, nav_f),
                gapped_symbol=gapped[i],
            )
        )
        if hedge_payoff is None and sc.index_move_pct == HEDGE_PAYOFF_MOVE_PCT:
            hedge_payoff = _pct(hedge_pnl, nav_f)
    return StressReport(scenarios=tuple(results), hedge_payoff_pct_nav=hedge_payoff)
