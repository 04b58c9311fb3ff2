"""Value at risk and expected shortfall of the whole book.

Historical simulation: each stored day's log-returns of the underlyings are
applied to today's spots and every option is fully repriced (BSM, implied
vols and rates held, optionally ``horizon_days`` of time decay); the P&L
distribution's loss quantile is the VaR, the mean loss beyond it the expected
shortfall. A parametric delta-gamma VaR (moments of the quadratic P&L over the
sample covariance, Cornish-Fisher corrected) and the delta-normal VaR are given
for comparison. Losses are reported as positive numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri  # type: ignore[import-untyped, unused-ignore]

from alchemiser.domain.pricing import DAYS_PER_YEAR, FloatArray, bsm_greeks
from alchemiser.risk.book import STRATEGIES, BookArrays, RiskPosition, book_arrays, revalue
from alchemiser.risk.greeks import to_money

__all__ = [
    "HistoricalVar",
    "ParametricVar",
    "delta_gamma_var",
    "historical_var",
    "log_returns",
    "scenario_pnl",
    "var_es",
]


@dataclass(frozen=True, slots=True)
class HistoricalVar:
    confidence: Decimal
    var: Decimal  # loss not exceeded with probability ``confidence``
    expected_shortfall: Decimal  # mean loss at or beyond the VaR
    scenarios: int  # days used
    # Contribution of each strategy to the expected shortfall (sums to it).
    es_by_strategy: dict[str, Decimal]


@dataclass(frozen=True, slots=True)
class ParametricVar:
    confidence: Decimal
    delta_normal_var: Decimal
    delta_gamma_var: Decimal  # Cornish-Fisher on the delta-gamma P&L moments
    pnl_mean: Decimal
    pnl_std: Decimal
    pnl_skew: float


def log_returns(closes: npt.ArrayLike) -> FloatArray:
    """Daily log-returns of aligned closes, shape (days, symbols) → (days - 1, symbols)."""
    c = np.asarray(closes, dtype=np.float64)
    out: FloatArray = np.diff(np.log(c), axis=0)
    return out


def var_es(pnl: npt.ArrayLike, confidence: float) -> tuple[float, float]:
    """VaR and expected shortfall (positive losses) of a P&L sample."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    losses = -np.asarray(pnl, dtype=np.float64).reshape(-1)
    if losses.size == 0:
        raise ValueError("no scenarios")
    var = float(np.quantile(losses, confidence))
    es = float(losses[losses >= var].mean())
    return var, es


def _columns(arrays: BookArrays, returns: FloatArray, symbols: Sequence[str]) -> FloatArray:
    """Returns of each position's underlying, shape (days, n); days with a NaN dropped."""
    where = {s: i for i, s in enumerate(symbols)}
    missing = [u for u in arrays.underlyings if u not in where]
    if missing:
        raise ValueError(f"no return history for {', '.join(missing)}")
    if returns.ndim != 2 or returns.shape[1] != len(symbols):
        raise ValueError(f"returns must be (days, {len(symbols)}), got {returns.shape}")
    cols = returns[:, [where[u] for u in arrays.underlyings]]
    cols = cols[np.isfinite(cols).all(axis=1)]
    out: FloatArray = cols
    return out


def scenario_pnl(
    book: Sequence[RiskPosition],
    returns: npt.ArrayLike,
    symbols: Sequence[str],
    *,
    as_of: date,
    rate: float,
    div_yield: float = 0.0,
    horizon_days: float = 0.0,
) -> FloatArray:
    """Full-revaluation P&L of each position under each historical day, shape (days, n).

    ``returns[d, j]`` is the log-return of ``symbols[j]`` on day d. The base is the
    model value at today's inputs, so the P&L is the pure effect of the move.
    """
    arrays = book_arrays(book, as_of)
    by_und = _columns(arrays, np.asarray(returns, dtype=np.float64), symbols)
    r = by_und[:, arrays.und]
    base = revalue(arrays, arrays.spot, rate=rate, div_yield=div_yield)
    time = np.maximum(arrays.time - horizon_days / DAYS_PER_YEAR, 0.0)
    shocked = revalue(arrays, arrays.spot * np.exp(r), rate=rate, time=time, div_yield=div_yield)
    out: FloatArray = shocked - base
    return out


def historical_var(
    book: Sequence[RiskPosition],
    returns: npt.ArrayLike,
    symbols: Sequence[str],
    *,
    as_of: date,
    rate: float,
    confidence: float | Decimal = 0.95,
    div_yield: float = 0.0,
    horizon_days: float = 0.0,
) -> HistoricalVar:
    """Historical-simulation VaR and ES of the book over the given days (use the last
    ``RiskSettings.history_sessions`` of them)."""
    conf = float(confidence)
    pnl = scenario_pnl(
        book,
        returns,
        symbols,
        as_of=as_of,
        rate=rate,
        div_yield=div_yield,
        horizon_days=horizon_days,
    )
    total = pnl.sum(axis=1)
    var, es = var_es(total, conf)
    tail = -total >= var
    by_strategy: dict[str, Decimal] = {}
    for s in STRATEGIES:
        mask = np.array([p.strategy == s for p in book], dtype=np.bool_)
        by_strategy[s] = to_money(
            float(-pnl[tail][:, mask].sum(axis=1).mean()) if mask.any() else 0.0
        )
    return HistoricalVar(
        confidence=Decimal(str(confidence)),
        var=to_money(var),
        expected_shortfall=to_money(es),
        scenarios=int(total.size),
        es_by_strategy=by_strategy,
    )


def delta_gamma_var(
    book: Sequence[RiskPosition],
    returns: npt.ArrayLike,
    symbols: Sequence[str],
    *,
    as_of: date,
    rate: float,
    confidence: float | Decimal = 0.95,
    div_yield: float = 0.0,
) -> ParametricVar:
    """Parametric VaR from per-underlying dollar delta and gamma and the sample covariance.

    P&L ≈ Δᵀr + ½ rᵀΓr with Δ_u = Σ delta·units·S, Γ_u = Σ gamma·units·S² (diagonal).
    """
    conf = float(confidence)
    arrays = book_arrays(book, as_of)
    r = _columns(arrays, np.asarray(returns, dtype=np.float64), symbols)
    if r.shape[0] < 2:
        raise ValueError("need at least two days of returns")
    k = len(arrays.underlyings)
    delta = np.ones(len(arrays))
    gamma = np.zeros(len(arrays))
    opt = arrays.is_option
    if opt.any():
        g = bsm_greeks(
            arrays.spot[opt],
            arrays.strike[opt],
            arrays.time[opt],
            rate,
            div_yield,
            arrays.iv[opt],
            arrays.is_call[opt],
        )
        delta[opt], gamma[opt] = g.delta, g.gamma
    d_u = np.bincount(arrays.und, delta * arrays.units * arrays.spot, minlength=k)
    g_u = np.bincount(arrays.und, gamma * arrays.units * arrays.spot**2, minlength=k)
    cov = np.atleast_2d(np.cov(r, rowvar=False))
    gs = g_u[:, None] * cov  # ΓΣ
    mean = 0.5 * float(np.trace(gs))
    variance = float(d_u @ cov @ d_u) + 0.5 * float(np.trace(gs @ gs))
    third = 3.0 * float(d_u @ cov @ gs @ d_u) + float(np.trace(gs @ gs @ gs))
    std = float(np.sqrt(max(variance, 0.0)))
    skew = third / std**3 if std > 0 else 0.0
    z = float(ndtri(1.0 - conf))  # e.g. -1.645
    z_cf = z + (z * z - 1.0) * skew / 6.0
    dn_std = float(np.sqrt(max(float(d_u @ cov @ d_u), 0.0)))
    return ParametricVar(
        confidence=Decimal(str(confidence)),
        delta_normal_var=to_money(-z * dn_std),
        delta_gamma_var=to_money(-(mean + z_cf * std)),
        pnl_mean=to_money(mean),
        pnl_std=to_money(std),
        pnl_skew=skew,
    )
