"""Implied volatility surfaces of the synthetic market, from its vol state.

The market's vol state is x = ln v, the log of the instantaneous (physical)
variance of the market factor (see ``paths``). From it:

- **Market ATM term structure.** Risk-neutral variance starts at
  ``variance_premium × v`` (the variance risk premium) and mean-reverts to
  ``long_run_vol_q²`` at ``kappa_q``; the ATM total variance to T is its
  integral, θ(T) = θ∞ T + (v₀ − θ∞)(1 − e^{−κT})/κ. It is increasing in T
  (no calendar arbitrage), upward sloping in vol when v₀ < θ∞ and inverted
  when v₀ > θ∞ (stress).
- **Per underlying.** An ETF or stock has θ_i(T) = β² θ(T) + σ_ε² T (its
  systematic plus idiosyncratic variance). VIXY has its own vol-of-vol term
  structure (high and inverted), rising with the vol index.
- **Smile.** SSVI (Gatheral & Jacquier 2014) in log-forward-moneyness
  k = ln(K/F): w(k) = θ/2 · (1 + ρφk + √((φk + ρ)² + 1 − ρ²)) with the
  power-law φ(θ) = η / (θ^γ (1 + θ)^{1−γ}). With γ = 1/2 and η(1 + |ρ|) ≤ 2
  the surface is free of butterfly arbitrage, and with θ increasing in T free
  of calendar arbitrage, so option prices are monotone and convex in strike
  and increasing in expiry. ρ < 0 gives equity put skew; ρ > 0 the call skew
  of a volatility ETF.
- **Vol index.** What a 30-day VIX computed from the market surface shows:
  100 × √(fair variance-swap rate), the Cboe integral of out-of-the-money
  option prices over strikes, evaluated on the SSVI smile.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import scipy.special  # type: ignore[import-untyped, unused-ignore]  # stubs optional

from alchemiser.sim.universe import InstrumentKind

__all__ = [
    "VIX_DAYS",
    "SurfaceParams",
    "atm_total_variance",
    "implied_vol",
    "market_atm_variance",
    "smile_params",
    "ssvi_total_variance",
    "vol_futures_level",
    "vol_index_of_state",
    "vol_index_table",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]

# The standard normal CDF (a NumPy ufunc).
ndtr: Callable[[npt.ArrayLike], FloatArray] = scipy.special.ndtr

VIX_DAYS = 30.0
_DAYS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class SurfaceParams:
    """Risk-neutral surface parameters (annualised)."""

    variance_premium: float = 1.25  # implied / physical instantaneous variance
    kappa_q: float = 2.0  # risk-neutral mean reversion of variance, per year
    long_run_vol_q: float = 0.185  # risk-neutral long-run ATM vol
    ssvi_gamma: float = 0.5
    index_rho: float = -0.7  # ETFs: steep put skew
    index_eta: float = 1.1
    stock_rho: float = -0.45  # single stocks: milder skew
    stock_eta: float = 1.0
    vol_etf_rho: float = 0.5  # VIXY: call skew (it rallies when markets fall)
    vol_etf_eta: float = 1.0
    vol_etf_base_vol: float = 0.45  # VIXY short-dated ATM vol = base + per point × vol index
    vol_etf_vol_per_point: float = 0.012
    vol_etf_long_vol: float = 0.60
    vol_etf_kappa: float = 4.0

    def __post_init__(self) -> None:
        for rho, eta, what in (
            (self.index_rho, self.index_eta, "index"),
            (self.stock_rho, self.stock_eta, "stock"),
            (self.vol_etf_rho, self.vol_etf_eta, "vol_etf"),
        ):
            # Gatheral-Jacquier: with γ ≤ 1/2, η(1 + |ρ|) ≤ 2 rules out butterfly arbitrage.
            if not (-1.0 < rho < 1.0 and eta > 0 and eta * (1.0 + abs(rho)) <= 2.0):
                raise ValueError(f"{what} SSVI parameters admit arbitrage: ρ={rho}, η={eta}")
        if not 0.0 < self.ssvi_gamma <= 0.5:
            raise ValueError(f"ssvi_gamma must be in (0, 0.5], got {self.ssvi_gamma}")


def market_atm_variance(x: npt.ArrayLike, time: npt.ArrayLike, p: SurfaceParams) -> FloatArray:
    """ATM total implied variance of the market (β = 1) to ``time`` years, state x = ln v."""
    t = np.asarray(time, dtype=np.float64)
    v0 = p.variance_premium * np.exp(np.asarray(x, dtype=np.float64))
    theta = p.long_run_vol_q**2
    k = p.kappa_q
    return np.asarray(theta * t + (v0 - theta) * (-np.expm1(-k * t)) / k, dtype=np.float64)


def vol_index_of_state(x: npt.ArrayLike, p: SurfaceParams) -> FloatArray:
    """The 30-day variance-swap vol index (VIX-like, e.g. 18.5) for state(s) x."""
    t = VIX_DAYS / _DAYS_PER_YEAR
    return np.asarray(100.0 * np.sqrt(_var_swap_total(x, t, p) / t), dtype=np.float64)


def vol_futures_level(x: npt.ArrayLike, p: SurfaceParams) -> FloatArray:
    """The vol index expected in 30 days (the 30→60-day forward variance): a VIX future."""
    t1 = VIX_DAYS / _DAYS_PER_YEAR
    t2 = 2.0 * t1
    fwd = (_var_swap_total(x, t2, p) - _var_swap_total(x, t1, p)) / (t2 - t1)
    return np.asarray(100.0 * np.sqrt(np.maximum(fwd, 1e-8)), dtype=np.float64)


@lru_cache(maxsize=8)
def vol_index_table(p: SurfaceParams) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(x grid, vol index, 1-month vol future) on a fine grid, for fast interpolation."""
    xs = np.linspace(math.log(0.02**2), math.log(3.0**2), 500)
    return xs, vol_index_of_state(xs, p), vol_futures_level(xs, p)


def _var_swap_total(x: npt.ArrayLike, t: float, p: SurfaceParams) -> FloatArray:
    """Fair variance-swap total variance σ²T of the market surface at maturity t.

    σ²T = 2 ∫ b(k) e^{−k} dk over k = ln(K/F), b the undiscounted OTM price / F:
    the continuous form of the Cboe sum Σ ΔK/K² e^{RT} Q(K).
    """
    xa = np.atleast_1d(np.asarray(x, dtype=np.float64))
    theta = market_atm_variance(xa, t, p)[:, None]
    s = np.sqrt(theta)
    u = np.linspace(-14.0, 8.0, 661)[None, :]
    k = u * s
    w = ssvi_total_variance(k, theta, p.index_rho, p.index_eta, p.ssvi_gamma)
    sw = np.sqrt(w)
    d1 = -k / sw + 0.5 * sw
    d2 = d1 - sw
    ek = np.exp(k)
    otm = np.where(k < 0, ek * ndtr(-d2) - ndtr(-d1), ndtr(d1) - ek * ndtr(d2))
    integrand = otm / ek
    total = 2.0 * np.trapezoid(integrand, k, axis=1)
    return np.asarray(total, dtype=np.float64).reshape(np.shape(x))


def ssvi_total_variance(
    k: npt.ArrayLike, theta: npt.ArrayLike, rho: float, eta: float, gamma: float
) -> FloatArray:
    """SSVI total implied variance w(k, θ) with the power-law φ."""
    ka = np.asarray(k, dtype=np.float64)
    th = np.asarray(theta, dtype=np.float64)
    phi = eta / (th**gamma * (1.0 + th) ** (1.0 - gamma))
    pk = phi * ka
    return np.asarray(
        0.5 * th * (1.0 + rho * pk + np.sqrt((pk + rho) ** 2 + (1.0 - rho * rho))),
        dtype=np.float64,
    )


def smile_params(kind: InstrumentKind, p: SurfaceParams) -> tuple[float, float]:
    """(ρ, η) of the SSVI smile for an instrument kind."""
    if kind is InstrumentKind.ETF:
        return p.index_rho, p.index_eta
    if kind is InstrumentKind.STOCK:
        return p.stock_rho, p.stock_eta
    return p.vol_etf_rho, p.vol_etf_eta


def atm_total_variance(
    kind: InstrumentKind,
    beta: float,
    idio_vol: float,
    x: float,
    time: npt.ArrayLike,
    p: SurfaceParams,
) -> FloatArray:
    """ATM total implied variance of one underlying to ``time`` years.

    ``idio_vol`` is the instrument's idiosyncratic vol already scaled to the
    current regime. Increasing in time for every state (no calendar arbitrage).
    """
    t = np.asarray(time, dtype=np.float64)
    if kind is InstrumentKind.VOL_ETF:
        vix = float(vol_index_of_state(x, p))
        v0 = (p.vol_etf_base_vol + p.vol_etf_vol_per_point * vix) ** 2
        vl = p.vol_etf_long_vol**2
        k = p.vol_etf_kappa
        return np.asarray(vl * t + (v0 - vl) * (-np.expm1(-k * t)) / k, dtype=np.float64)
    return np.asarray(beta * beta * market_atm_variance(x, t, p) + idio_vol**2 * t)


def implied_vol(
    kind: InstrumentKind,
    theta: npt.ArrayLike,
    k: npt.ArrayLike,
    time: npt.ArrayLike,
    p: SurfaceParams,
) -> FloatArray:
    """Implied vol at log-forward-moneyness k for ATM total variance θ and maturity ``time``."""
    rho, eta = smile_params(kind, p)
    w = ssvi_total_variance(k, theta, rho, eta, p.ssvi_gamma)
    return np.asarray(np.sqrt(w / np.asarray(time, dtype=np.float64)), dtype=np.float64)
