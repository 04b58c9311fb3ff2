"""Vectorised Black-Scholes-Merton prices and greeks over NumPy arrays.

Inputs broadcast against each other: spot S, strike K, time to expiry T in
years, continuously compounded rate r and dividend yield q, volatility σ
(annual, 0.20 = 20 %) and ``is_call`` (bool). Outputs are float64 arrays of
the broadcast shape.

Conventions (per option, not per contract of 100):

- theta is per calendar day (the year derivative divided by 365);
- vega is per volatility point (a 0.01 change in σ);
- rho is per rate point (a 0.01 change in r);
- delta and gamma are per unit of spot.

American exercise: listed equity options are American, these formulas are
European. For an out-of-the-money or near-the-money option the early-exercise
premium is negligible, which is where hedging and income trade. Deep
in-the-money puts (and calls on dividend payers) can be worth their
immediate-exercise value, more than the European value; ``early_exercise``
flags every option whose European value is below that exercise value
(K - S for a put, S - K for a call), so callers know those figures are a
lower bound and European greeks.

Degenerate but valid inputs (σ = 0 or T = 0) give the deterministic limit:
discounted forward intrinsic value, a step delta, zero gamma and vega.
Invalid inputs (non-positive spot or strike, negative time or volatility,
non-finite values) give NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import scipy.special  # type: ignore[import-untyped, unused-ignore]  # stubs optional

__all__ = [
    "DAYS_PER_YEAR",
    "BoolArray",
    "BsmGreeks",
    "FloatArray",
    "bsm_greeks",
    "bsm_price",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

# The standard normal CDF (a NumPy ufunc; scipy.stats.norm is far slower).
ndtr: Callable[[npt.ArrayLike], FloatArray] = scipy.special.ndtr

DAYS_PER_YEAR = 365.0
_INV_SQRT_2PI = 0.3989422804014327

# Work in blocks of 96 KiB per array: temporaries stay near the cache and below
# the allocator's mmap threshold (a large temporary costs page faults on every
# call, more than the arithmetic on it).
_BLOCK = 12288
# Relative (to strike) gap below which European value and exercise value are "equal".
_EXERCISE_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class BsmGreeks:
    """Price and greeks of a batch of options (arrays of one shape)."""

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    theta: FloatArray  # per calendar day
    vega: FloatArray  # per volatility point
    rho: FloatArray  # per rate point
    early_exercise: BoolArray  # European value below the immediate-exercise value


Operand: TypeAlias = FloatArray | float


def _inputs(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time: npt.ArrayLike,
    rate: npt.ArrayLike,
    div_yield: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> tuple[tuple[int, ...], list[Operand], FloatArray]:
    """Flatten the inputs to one length; scalars stay scalars (no broadcast copies).

    Returns the broadcast shape, the six float operands and w = +1 (call) / -1 (put).
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (spot, strike, time, rate, div_yield, vol)]
    calls = np.asarray(is_call, dtype=np.bool_)
    shape = np.broadcast_shapes(*(a.shape for a in arrays), calls.shape)
    operands: list[Operand] = []
    for a in arrays:
        if a.ndim == 0:
            operands.append(float(a))
        else:
            operands.append(np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1))
    w = np.ascontiguousarray(np.broadcast_to(calls, shape)).reshape(-1).astype(np.float64)
    if all(isinstance(a, float) for a in operands):
        # At least one array operand, so every intermediate is an array.
        operands[0] = np.full(w.size, operands[0])
    w *= 2.0
    w -= 1.0
    return shape, operands, w


def _part(a: Operand, lo: int, hi: int) -> Operand:
    return a if isinstance(a, float) else a[lo:hi]


def _at(a: Operand, idx: npt.NDArray[np.intp]) -> FloatArray:
    return np.full(idx.size, a) if isinstance(a, float) else a[idx]


def _invalid(
    s: Operand, k: Operand, t: Operand, r: Operand, q: Operand, v: Operand, n: int
) -> BoolArray:
    """Inputs with no meaningful price: these elements come out NaN."""
    ok = np.ones(n, dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        for a, positive in ((s, True), (k, True), (t, False), (v, False)):
            ok &= (np.greater(a, 0) if positive else np.greater_equal(a, 0)) & np.isfinite(a)
        ok &= np.isfinite(r) & np.isfinite(q)
    return ~ok


def _block(
    s: Operand,
    k: Operand,
    t: Operand,
    r: Operand,
    q: Operand,
    v: Operand,
    w: FloatArray,
    out: FloatArray,
    greeks: bool,
) -> None:
    """Price (and greeks) of one block into the rows of ``out``; w is +1 call, -1 put."""
    sqrt_t = np.sqrt(t)
    st = v * sqrt_t  # total standard deviation σ√T
    dq = np.exp(-q * t)
    dr = np.exp(-r * t)
    d1 = np.log(s / k)
    d1 += (r - q) * t
    d1 /= st
    d1 += 0.5 * st
    d2 = d1 - st
    nd1 = ndtr(w * d1)  # N(w d1): the put formulas are the call ones with w = -1
    nd2 = ndtr(w * d2)
    a = s * dq  # spot leg, S e^{-qT}
    a *= w
    a *= nd1  # w S e^{-qT} N(w d1) = S × delta
    c = k * dr
    c *= w
    c *= nd2  # w K e^{-rT} N(w d2)
    price = out[0]
    np.subtract(a, c, out=price)
    if not greeks:
        return
    np.multiply(dq, w, out=out[1])
    out[1] *= nd1  # delta
    sdp = d1 * d1
    sdp *= -0.5
    np.exp(sdp, out=sdp)
    sdp *= _INV_SQRT_2PI
    sdp *= s
    sdp *= dq  # S e^{-qT} φ(d1)
    np.divide(sdp, s * s * st, out=out[2])  # gamma = e^{-qT} φ(d1) / (S σ√T)
    np.multiply(sdp, sqrt_t, out=out[4])
    out[4] *= 0.01  # vega per vol point
    theta = out[3]
    np.multiply(sdp, v, out=theta)
    theta /= sqrt_t
    theta *= -0.5
    theta -= r * c
    theta += q * a
    theta *= 1.0 / DAYS_PER_YEAR  # per calendar day
    np.multiply(c, t, out=out[5])
    out[5] *= 0.01  # rho per rate point


def _limit(
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    w: FloatArray,
) -> list[FloatArray]:
    """σ√T = 0: the option is worth its discounted forward intrinsic value."""
    dq = np.exp(-q * t)
    dr = np.exp(-r * t)
    a = s * dq
    c = k * dr
    itm = (w * (a - c)) > 0
    a_leg = np.where(itm, w * a, 0.0)
    c_leg = np.where(itm, w * c, 0.0)
    zero = np.zeros_like(s)
    return [
        a_leg - c_leg,
        np.where(itm, w * dq, 0.0),
        zero,
        (q * a_leg - r * c_leg) / DAYS_PER_YEAR,
        zero,
        c_leg * t * 0.01,
    ]


def _compute(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time: npt.ArrayLike,
    rate: npt.ArrayLike,
    div_yield: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
    greeks: bool,
) -> tuple[tuple[int, ...], FloatArray, list[Operand], FloatArray, BoolArray]:
    shape, ops, w = _inputs(spot, strike, time, rate, div_yield, vol, is_call)
    s, k, t, r, q, v = ops
    n = w.size
    # One buffer for all outputs: a single allocation is far cheaper than six
    # (fresh pages for each large array cost more than the arithmetic).
    out = np.empty((6 if greeks else 1, n))
    with np.errstate(all="ignore"):
        for lo in range(0, n, _BLOCK):
            hi = min(lo + _BLOCK, n)
            _block(
                _part(s, lo, hi),
                _part(k, lo, hi),
                _part(t, lo, hi),
                _part(r, lo, hi),
                _part(q, lo, hi),
                _part(v, lo, hi),
                w[lo:hi],
                out[:, lo:hi],
                greeks,
            )
        bad = _invalid(s, k, t, r, q, v, n)
        limit = ~bad & (np.equal(v, 0) | np.equal(t, 0))
        if limit.any():
            idx = np.flatnonzero(limit)
            values = _limit(_at(s, idx), _at(k, idx), _at(t, idx), _at(r, idx), _at(q, idx), w[idx])
            for row, val in zip(out, values, strict=False):
                row[idx] = val
        if bad.any():
            out[:, bad] = np.nan
    return shape, out, ops, w, bad


def bsm_price(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time: npt.ArrayLike,
    rate: npt.ArrayLike,
    div_yield: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> FloatArray:
    """European Black-Scholes-Merton value of each option."""
    shape, out, *_ = _compute(spot, strike, time, rate, div_yield, vol, is_call, greeks=False)
    price: FloatArray = out[0].reshape(shape)
    return price


def bsm_greeks(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time: npt.ArrayLike,
    rate: npt.ArrayLike,
    div_yield: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> BsmGreeks:
    """European value, delta, gamma, theta/day, vega/vol point, rho/rate point."""
    shape, out, ops, w, bad = _compute(
        spot, strike, time, rate, div_yield, vol, is_call, greeks=True
    )
    s, k = ops[0], ops[1]
    price = out[0]
    with np.errstate(invalid="ignore"):
        # Exercise value above the European value by more than rounding noise.
        shortfall = w * (s - k) - price
        early = (shortfall > _EXERCISE_TOLERANCE * k) & ~bad
    return BsmGreeks(
        price=out[0].reshape(shape),
        delta=out[1].reshape(shape),
        gamma=out[2].reshape(shape),
        theta=out[3].reshape(shape),
        vega=out[4].reshape(shape),
        rho=out[5].reshape(shape),
        early_exercise=early.reshape(shape),
    )
