"""Vectorised Black-Scholes-Merton implied volatility with a reason per element.

The solver follows the ideas of P. Jäckel, "Let's Be Rational" (Wilmott,
2015), written here for NumPy arrays:

1. Normalise: forward F = S e^{(r-q)T}, x = ln(F/K), and the undiscounted
   price over √(FK). An in-the-money option is replaced by its
   out-of-the-money twin through put-call parity (its time value carries
   all the information about volatility; the intrinsic part only adds
   rounding error), and puts are mapped to calls (b_put(x) = b_call(-x)).
   What remains is one equation b(x, s) = β with x ≤ 0, 0 < β < e^{x/2},
   for the total volatility s = σ√T.
2. Initial guess: the curve b(s) is split at its inflection point
   s_c = √(2|x|) and at the two points where the tangent there meets 0 and
   the upper bound. In each of the four pieces a shape-preserving rational
   cubic interpolates s (or a transform of β whose inverse is explicit)
   between points where b and its derivatives are known exactly.
3. Two Householder steps of order 3 on an objective chosen per piece
   (1/ln b in the lowest piece, b - β in the middle, ln(b_max - b) in the
   highest) take the guess to machine precision.
4. Any element whose last step was not tiny is finished by a bracketed
   Newton/bisection loop: a safety net, met in stress tests only at absurd
   extremes (|ln(F/K)| > 25 with the price within 0.2 % of its bound, or
   normalised prices near the underflow limit, ~1e-300, where double
   precision itself runs out).

Prices outside the no-arbitrage bounds get NaN and a flag; every price inside
them gets a finite volatility.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import scipy.special  # type: ignore[import-untyped, unused-ignore]  # stubs optional

from alchemiser.domain.pricing import ndtr

__all__ = [
    "ImpliedVol",
    "IvFlag",
    "implied_vol",
    "normalised_black",
    "normalised_implied_vol",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
IntArray: TypeAlias = npt.NDArray[np.intp]

# Inverse of the standard normal CDF (a NumPy ufunc).
ndtri: Callable[[npt.ArrayLike], FloatArray] = scipy.special.ndtri

_INV_SQRT_2PI = 0.3989422804014327
_SQRT_3 = 1.7320508075688772
_TWO_PI = 6.283185307179586
_TWO_PI_OVER_SQRT_27 = 1.2091995761561452
_PI_OVER_6 = 0.5235987755982988
_SQRT_PI_OVER_2 = 1.2533141373155003
_EPS = float(np.finfo(np.float64).eps)
_DBL_MIN = float(np.finfo(np.float64).tiny)
_DBL_MAX = float(np.finfo(np.float64).max)
_SQRT_DBL_MAX = 1.3407807929942596e154
# Rational cubic control parameter limits (Delbourgo & Gregory, as used by Jäckel).
_R_MIN = -(1.0 - np.sqrt(_EPS))
_R_MAX = 2.0 / (_EPS * _EPS)
# A last step smaller than this (relative to s) means converged: the step is of
# order 4, so the error it leaves is about its fourth power, below double precision.
_CONVERGED_STEP = 1e-5
# Elements per block: temporaries of 96 KiB stay near the cache and below the
# allocator's mmap threshold (large temporaries cost page faults on every call).
_BLOCK = 12288
# A time value within this many ulps of zero is zero (rounding noise of price - intrinsic).
_INTRINSIC_ULPS = 16.0


class IvFlag(IntEnum):
    """Why an element has the volatility it has."""

    OK = 0
    AT_INTRINSIC = 1  # no time value: the volatility is 0
    BELOW_INTRINSIC = 2  # price below the discounted intrinsic value (or negative): NaN
    ABOVE_UPPER_BOUND = 3  # price at or above S e^{-qT} (call) or K e^{-rT} (put): NaN
    NON_POSITIVE_TIME = 4  # T <= 0: NaN
    INVALID_INPUT = 5  # non-finite input, or spot/strike not positive: NaN
    NOT_CONVERGED = 6  # the solver failed (a bug if ever seen): NaN


@dataclass(frozen=True, slots=True)
class ImpliedVol:
    """Annualised implied volatility and the reason flag, element by element."""

    vol: FloatArray
    flag: npt.NDArray[np.int8]

    @property
    def ok(self) -> BoolArray:
        return np.asarray(self.flag == IvFlag.OK)


# --- normalised Black function -------------------------------------------------


def _black(x: FloatArray, s: FloatArray, bm: FloatArray, ib: FloatArray) -> FloatArray:
    """Normalised Black call b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2)."""
    h = x / s
    t = 0.5 * s
    b = ndtr(h + t)
    b *= bm
    b -= ib * ndtr(h - t)
    return np.maximum(b, 0.0, out=b)


def _black_complement(x: FloatArray, s: FloatArray, bm: FloatArray, ib: FloatArray) -> FloatArray:
    """e^{x/2} - b(x, s), computed without cancellation for large s."""
    h = x / s
    t = 0.5 * s
    c = ndtr(-(h + t))
    c *= bm
    c += ib * ndtr(h - t)
    return c


def _vega(x: FloatArray, s: FloatArray) -> FloatArray:
    """∂b/∂s = φ(x/s + s/2) e^{x/2} = exp(-(h² + t²)/2)/√(2π)."""
    h = x / s
    t = 0.5 * s
    v = h * h
    v += t * t
    v *= -0.5
    np.exp(v, out=v)
    v *= _INV_SQRT_2PI
    return v


def normalised_black(x: npt.ArrayLike, s: npt.ArrayLike, is_call: npt.ArrayLike) -> FloatArray:
    """Undiscounted Black price over √(FK) for log-moneyness x = ln(F/K), s = σ√T."""
    xa, sa = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(s, np.float64))
    w = np.where(np.asarray(is_call, np.bool_), 1.0, -1.0)
    with np.errstate(all="ignore"):
        h = xa / sa
        t = 0.5 * sa
        b = w * (np.exp(0.5 * xa) * ndtr(w * (h + t)) - np.exp(-0.5 * xa) * ndtr(w * (h - t)))
        intrinsic = np.maximum(w * (np.exp(0.5 * xa) - np.exp(-0.5 * xa)), 0.0)
    return np.asarray(np.where(sa > 0, b, intrinsic), dtype=np.float64)


# --- rational cubic interpolation (Delbourgo & Gregory) ------------------------


def _is_zero(a: FloatArray) -> BoolArray:
    return np.asarray(np.abs(a) < _DBL_MIN)


def _rc_interpolate(
    x: FloatArray,
    x_l: FloatArray,
    x_r: FloatArray,
    y_l: FloatArray,
    y_r: FloatArray,
    d_l: FloatArray,
    d_r: FloatArray,
    r: FloatArray,
) -> FloatArray:
    h = x_r - x_l
    t = (x - x_l) / h
    omt = 1.0 - t
    t2 = t * t
    omt2 = omt * omt
    cubic = (
        y_r * t2 * t
        + (r * y_r - h * d_r) * t2 * omt
        + (r * y_l + h * d_l) * t * omt2
        + y_l * omt2 * omt
    ) / (1.0 + (r - 3.0) * t * omt)
    linear = y_r * t + y_l * omt
    out = np.where(r >= _R_MAX, linear, cubic)
    return np.asarray(np.where(np.abs(h) <= 0, 0.5 * (y_l + y_r), out), dtype=np.float64)


def _rc_min_control(
    d_l: FloatArray, d_r: FloatArray, s: FloatArray, prefer_shape: bool
) -> FloatArray:
    monotonic = (d_l * s >= 0) & (d_r * s >= 0)
    convex = (d_l <= s) & (s <= d_r)
    concave = (d_l >= s) & (s >= d_r)
    big = _R_MAX if prefer_shape else -_DBL_MAX
    r1 = np.where(monotonic, np.where(_is_zero(s), big, (d_r + d_l) / s), -_DBL_MAX)
    d_r_m_d_l = d_r - d_l
    d_r_m_s = d_r - s
    s_m_d_l = s - d_l
    shaped = convex | concave
    r2_shape = np.where(
        _is_zero(s_m_d_l) | _is_zero(d_r_m_s),
        big,
        np.maximum(np.abs(d_r_m_d_l / d_r_m_s), np.abs(d_r_m_d_l / s_m_d_l)),
    )
    r2 = np.where(shaped, r2_shape, np.where(monotonic, big, -_DBL_MAX))
    r = np.maximum(np.maximum(r1, r2), _R_MIN)
    # Neither monotonic nor convex nor concave: revert to the standard cubic.
    return np.asarray(np.where(monotonic | shaped, r, _R_MIN), dtype=np.float64)


def _rc_control_fit(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.where(
        _is_zero(denominator), np.where(numerator > 0, _R_MAX, _R_MIN), numerator / denominator
    )
    return np.asarray(np.where(_is_zero(numerator), 0.0, out), dtype=np.float64)


def _rc_control_right(
    x_l: FloatArray,
    x_r: FloatArray,
    y_l: FloatArray,
    y_r: FloatArray,
    d_l: FloatArray,
    d_r: FloatArray,
    second_r: FloatArray,
    prefer_shape: bool,
) -> FloatArray:
    """Control parameter matching the second derivative at the right end (convex-safe)."""
    h = x_r - x_l
    slope = (y_r - y_l) / h
    r = _rc_control_fit(0.5 * h * second_r + (d_r - d_l), d_r - slope)
    return np.maximum(r, _rc_min_control(d_l, d_r, slope, prefer_shape))


def _rc_control_left(
    x_l: FloatArray,
    x_r: FloatArray,
    y_l: FloatArray,
    y_r: FloatArray,
    d_l: FloatArray,
    d_r: FloatArray,
    second_l: FloatArray,
    prefer_shape: bool,
) -> FloatArray:
    """Control parameter matching the second derivative at the left end (convex-safe)."""
    h = x_r - x_l
    slope = (y_r - y_l) / h
    r = _rc_control_fit(0.5 * h * second_l + (d_r - d_l), slope - d_l)
    return np.maximum(r, _rc_min_control(d_l, d_r, slope, prefer_shape))


# --- transformed maps used for the guesses in the outer pieces ------------------


def _lower_map(x: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """f(β) = 2π|x|/√27 · N(-|x|/(√3 s))³ and its first two β-derivatives, at s."""
    ax = -x
    z = ax / (_SQRT_3 * s)
    y = z * z
    s2 = s * s
    big_phi = ndtr(-z)
    phi = _INV_SQRT_2PI * np.exp(-0.5 * y)
    fpp = (
        _PI_OVER_6
        * y
        / (s2 * s)
        * big_phi
        * (8.0 * _SQRT_3 * s * ax + (3.0 * s2 * (s2 - 8.0) - 8.0 * x * x) * big_phi / phi)
        * np.exp(2.0 * y + 0.25 * s2)
    )
    phi2 = big_phi * big_phi
    fp = _TWO_PI * y * phi2 * np.exp(y + 0.125 * s2)
    f = _TWO_PI_OVER_SQRT_27 * ax * (phi2 * big_phi)
    return f, fp, fpp


def _inverse_lower_map(x: FloatArray, f: FloatArray) -> FloatArray:
    q = np.cbrt(f / (_TWO_PI_OVER_SQRT_27 * -x))
    return np.asarray(np.abs(x / (_SQRT_3 * ndtri(q))), dtype=np.float64)


def _upper_map(x: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """f(β) = N(-s/2) and its first two β-derivatives, at s."""
    f = ndtr(-0.5 * s)
    w = (x / s) ** 2
    fp = -0.5 * np.exp(0.5 * w)
    fpp = _SQRT_PI_OVER_2 * np.exp(w + 0.125 * s * s) * w / s
    return f, fp, fpp


# --- the solver ----------------------------------------------------------------


def _householder(newton: FloatArray, halley: FloatArray, hh3: FloatArray) -> FloatArray:
    """Step of the order-3 Householder method given the three derivative ratios."""
    num = 0.5 * halley
    num *= newton
    num += 1.0
    den = hh3 * newton
    den *= 1.0 / 6.0
    den += halley
    den *= newton
    den += 1.0
    num /= den
    num *= newton
    return num


def _step_middle(
    x: FloatArray, s: FloatArray, beta: FloatArray, bm: FloatArray, ib: FloatArray
) -> FloatArray:
    """Objective b(s) - β."""
    b = _black(x, s, bm, ib)
    bp = _vega(x, s)
    newton = (beta - b) / bp
    xs = x / s
    halley = xs * xs / s - 0.25 * s
    xs2 = xs / s
    hh3 = halley * halley - 3.0 * xs2 * xs2 - 0.25
    return _householder(newton, halley, hh3)


def _step_lower(
    x: FloatArray,
    s: FloatArray,
    ln_beta: FloatArray,
    bm: FloatArray,
    ib: FloatArray,
) -> FloatArray:
    """Objective 1/ln b(s) - 1/ln β: nearly linear where b is exponentially small."""
    b = _black(x, s, bm, ib)
    bp = _vega(x, s)
    ln_b = np.log(b)
    bpob = bp / b
    h = x / s
    b_halley = h * h / s - 0.25 * s
    newton = (ln_beta - ln_b) * ln_b / ln_beta / bpob
    inv_ln_b = 1.0 / ln_b
    halley = b_halley - bpob * (1.0 + 2.0 * inv_ln_b)
    hs = h / s
    b_hh3 = b_halley * b_halley - 3.0 * hs * hs - 0.25
    hh3 = (
        b_hh3
        + 2.0 * bpob * bpob * (1.0 + 3.0 * inv_ln_b * (1.0 + inv_ln_b))
        - 3.0 * b_halley * bpob * (1.0 + 2.0 * inv_ln_b)
    )
    return _householder(newton, halley, hh3)


def _step_upper(
    x: FloatArray,
    s: FloatArray,
    ln_gap: FloatArray,
    bm: FloatArray,
    ib: FloatArray,
) -> FloatArray:
    """Objective ln(b_max - β) - ln(b_max - b(s)): tames the flat top of b."""
    gap = _black_complement(x, s, bm, ib)
    bp = _vega(x, s)
    g = ln_gap - np.log(gap)
    gp = bp / gap
    xs = x / s
    b_halley = xs * xs / s - 0.25 * s
    xs2 = xs / s
    b_hh3 = b_halley * b_halley - 3.0 * xs2 * xs2 - 0.25
    newton = -g / gp
    halley = b_halley + gp
    hh3 = b_hh3 + gp * (2.0 * gp + 3.0 * b_halley)
    return _householder(newton, halley, hh3)


def _iterate(
    kind: int,
    x: FloatArray,
    s: FloatArray,
    beta: FloatArray,
    bm: FloatArray,
    ib: FloatArray,
    steps: int,
) -> tuple[FloatArray, FloatArray]:
    """Run ``steps`` Householder steps; return s and the size of the last step."""
    if kind == 0:
        target = np.log(beta)
    elif kind == 2:
        target = np.log(bm - beta)
    else:
        target = beta
    ds = np.zeros_like(s)
    for _ in range(steps):
        if kind == 0:
            ds = _step_lower(x, s, target, bm, ib)
        elif kind == 2:
            ds = _step_upper(x, s, target, bm, ib)
        else:
            ds = _step_middle(x, s, target, bm, ib)
        # Never more than halve s in one step: keeps s positive.
        np.maximum(ds, -0.5 * s, out=ds)
        s = s + ds
    return s, ds


def _polish(x: FloatArray, s: FloatArray, beta: FloatArray) -> FloatArray:
    """Bracketed Newton/bisection for the rare elements the main steps left unfinished."""
    bm = np.exp(0.5 * x)
    ib = 1.0 / bm
    lo = np.zeros_like(s)
    hi = np.full_like(s, np.inf)
    s = np.where(np.isfinite(s) & (s > 0), s, np.sqrt(-2.0 * x) + 1.0)
    done = np.zeros(s.shape, dtype=np.bool_)
    for _ in range(200):
        b = _black(x, s, bm, ib)
        below = b < beta
        lo = np.where(below, np.maximum(lo, s), lo)
        hi = np.where(below, hi, np.minimum(hi, s))
        bp = _vega(x, s)
        newton = s + (beta - b) / bp
        bisect = np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * s)
        inside = np.isfinite(newton) & (newton > lo) & (newton < hi)
        s_new = np.where(inside, newton, bisect)
        done |= np.abs(s_new - s) <= 4.0 * _EPS * s
        s = np.where(done, s, s_new)
        if done.all():
            break
    return np.where(done, s, np.nan)


def _solve(beta: FloatArray, x: FloatArray) -> FloatArray:
    """s with b(x, s) = β for x ≤ 0 and 0 < β < e^{x/2} (flat arrays)."""
    n = beta.size
    bm = np.exp(0.5 * x)
    ib = 1.0 / bm
    s_c = np.sqrt(-2.0 * x)
    # At the inflection point s_c = √(2|x|): x/s + s/2 = 0 and x/s - s/2 = -s_c, so
    # b_c = e^{x/2}/2 - e^{-x/2} N(-s_c) and b'(s_c) = e^{x/2}/√(2π) (also right at x = 0).
    b_c = ndtr(-s_c)
    b_c *= -ib
    b_c += 0.5 * bm
    v_c = bm * _INV_SQRT_2PI
    lower = beta < b_c
    # The tangent at s_c meets b = 0 at s_l and b = b_max at s_h.
    s_edge = np.where(lower, s_c - b_c / v_c, s_c + (bm - b_c) / v_c)
    b_edge = _black(x, s_edge, bm, ib)
    b_edge[(s_edge <= 0) | ~np.isfinite(s_edge)] = 0.0
    branch = np.where(lower, np.where(beta < b_edge, 0, 1), np.where(beta <= b_edge, 2, 3))
    s = np.empty(n)
    last = np.zeros(n)

    def take(idx: IntArray) -> tuple[FloatArray, ...]:
        return (
            x[idx],
            beta[idx],
            bm[idx],
            ib[idx],
            s_c[idx],
            b_c[idx],
            v_c[idx],
            s_edge[idx],
            b_edge[idx],
        )

    # Lowest piece: interpolate the lower map f(β) from f(0) = 0, f'(0) = 1 to s_l.
    idx = np.flatnonzero(branch == 0)
    if idx.size:
        xi, be, bmi, ibi, _, _, _, s_l, b_l = take(idx)
        f_l, fp_l, fpp_l = _lower_map(xi, s_l)
        zero, one = np.zeros_like(xi), np.ones_like(xi)
        r = _rc_control_right(zero, b_l, zero, f_l, one, fp_l, fpp_l, True)
        f = _rc_interpolate(be, zero, b_l, zero, f_l, one, fp_l, r)
        t = be / b_l
        # Round-off can make the cubic non-positive for extreme x: use the quadratic.
        f = np.where(f > 0, f, (f_l * t + b_l * (1.0 - t)) * t)
        guess = _inverse_lower_map(xi, f)
        s[idx], last[idx] = _iterate(0, xi, guess, be, bmi, ibi, 2)

    # Middle pieces: interpolate s(β) directly, slopes 1/b'.
    mid_idx = np.flatnonzero((branch == 1) | (branch == 2))
    if mid_idx.size:
        xi, be, bmi, ibi, s_ci, b_ci, v_ci, s_e, b_e = take(mid_idx)
        v_e = _vega(xi, s_e)
        is_low = branch[mid_idx] == 1
        # Left end is (b_l, s_l) below the inflection point, (b_c, s_c) above it.
        x_l = np.where(is_low, b_e, b_ci)
        x_r = np.where(is_low, b_ci, b_e)
        y_l = np.where(is_low, s_e, s_ci)
        y_r = np.where(is_low, s_ci, s_e)
        d_l = np.where(is_low, 1.0 / v_e, 1.0 / v_ci)
        d_r = np.where(is_low, 1.0 / v_ci, 1.0 / v_e)
        # Zero second derivative at the inflection end (right end below it, left
        # end above it): both fits then share the numerator d_r - d_l.
        slope = (y_r - y_l) / (x_r - x_l)
        fit = _rc_control_fit(d_r - d_l, np.where(is_low, d_r - slope, slope - d_l))
        r = np.maximum(fit, _rc_min_control(d_l, d_r, slope, False))
        guess = _rc_interpolate(be, x_l, x_r, y_l, y_r, d_l, d_r, r)
        s[mid_idx], last[mid_idx] = _iterate(1, xi, guess, be, bmi, ibi, 2)

    # Highest piece: interpolate the upper map f(β) = N(-s/2) from s_h to f(b_max) = 0.
    idx = np.flatnonzero(branch == 3)
    if idx.size:
        xi, be, bmi, ibi, _, _, _, s_h, b_h = take(idx)
        f_h, fp_h, fpp_h = _upper_map(xi, s_h)
        zero = np.zeros_like(xi)
        half = np.full_like(xi, -0.5)
        r = _rc_control_left(b_h, bmi, f_h, zero, fp_h, half, fpp_h, True)
        f = _rc_interpolate(be, b_h, bmi, f_h, zero, fp_h, half, r)
        f = np.where(np.abs(fpp_h) < _SQRT_DBL_MAX, f, -1.0)
        gap = bmi - b_h
        t = (be - b_h) / gap
        f = np.where(f > 0, f, (f_h * (1.0 - t) + 0.5 * gap * t) * (1.0 - t))
        guess = -2.0 * ndtri(f)
        # Near the top use ln(b_max - b); below half of b_max the plain objective is better.
        top = be > 0.5 * bmi
        sub = np.flatnonzero(top)
        if sub.size:
            si, li = _iterate(2, xi[sub], guess[sub], be[sub], bmi[sub], ibi[sub], 2)
            s[idx[sub]], last[idx[sub]] = si, li
        sub = np.flatnonzero(~top)
        if sub.size:
            si, li = _iterate(1, xi[sub], guess[sub], be[sub], bmi[sub], ibi[sub], 2)
            s[idx[sub]], last[idx[sub]] = si, li

    unfinished = ~(np.abs(last) <= _CONVERGED_STEP * s) | ~(s > 0)
    if unfinished.any():
        idx = np.flatnonzero(unfinished)
        s[idx] = _polish(x[idx], s[idx], beta[idx])
    return s


def normalised_implied_vol(
    beta: npt.ArrayLike, x: npt.ArrayLike, is_call: npt.ArrayLike
) -> FloatArray:
    """s = σ√T from a normalised price β = price/(D√(FK)) and x = ln(F/K).

    NaN where β is outside [intrinsic, upper bound); 0 at intrinsic (to rounding).
    """
    b, xa, c = np.broadcast_arrays(
        np.asarray(beta, np.float64), np.asarray(x, np.float64), np.asarray(is_call, np.bool_)
    )
    shape = b.shape
    b, xa, c = b.reshape(-1), xa.reshape(-1), c.reshape(-1)
    w = np.where(c, 1.0, -1.0)
    out = np.full(b.size, np.nan)
    with np.errstate(all="ignore"):
        intrinsic = np.maximum(w * (np.exp(0.5 * xa) - np.exp(-0.5 * xa)), 0.0)
        upper = np.exp(0.5 * w * xa)
        tv = b - intrinsic
        noise = _INTRINSIC_ULPS * _EPS * np.where(intrinsic > 0, upper, b)
        ax = -np.abs(xa)
        finite = np.isfinite(xa) & np.isfinite(b)
        ok = (tv > noise) & (b < upper) & finite
        # The OTM twin stays below its bound even where rounding says otherwise.
        twin = np.minimum(tv[ok], np.exp(0.5 * ax[ok]) * (1.0 - _EPS))
        out[ok] = _solve(twin, ax[ok])
        out[(np.abs(tv) <= noise) & finite] = 0.0
    return out.reshape(shape)


def implied_vol(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    time: npt.ArrayLike,
    rate: npt.ArrayLike,
    div_yield: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> ImpliedVol:
    """Black-Scholes-Merton implied volatility of European option prices.

    Arguments broadcast like those of ``bsm_price``. For American quotes
    (listed equity options) use out-of-the-money options, whose
    early-exercise premium is negligible.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (price, spot, strike, time, rate, div_yield)]
    calls = np.asarray(is_call, dtype=np.bool_)
    shape = np.broadcast_shapes(*(a.shape for a in arrays), calls.shape)
    flat = [np.broadcast_to(a, shape).reshape(-1) for a in arrays]
    c = np.broadcast_to(calls, shape).reshape(-1)
    n = c.size
    vol = np.empty(n)
    flag = np.empty(n, dtype=np.int8)
    with np.errstate(all="ignore"):
        # Blocks keep every temporary small: in cache, and reused by the allocator.
        for lo in range(0, n, _BLOCK):
            hi = min(lo + _BLOCK, n)
            p, s, k, t, r, q = (a[lo:hi] for a in flat)
            vol[lo:hi], flag[lo:hi] = _implied_vol_block(p, s, k, t, r, q, c[lo:hi])
    return ImpliedVol(vol=vol.reshape(shape), flag=flag.reshape(shape))


def _implied_vol_block(
    p: FloatArray,
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    c: BoolArray,
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    n = p.size
    vol = np.full(n, np.nan)
    flag = np.zeros(n, dtype=np.int8)
    finite = np.isfinite(p) & np.isfinite(s) & np.isfinite(k) & np.isfinite(t)
    finite &= np.isfinite(r) & np.isfinite(q)
    valid = finite & (s > 0) & (k > 0)
    discount = np.exp(-r * t)
    forward = s * np.exp((r - q) * t)
    undiscounted = p / discount
    w = np.where(c, 1.0, -1.0)
    intrinsic = np.maximum(w * (forward - k), 0.0)
    upper = np.where(c, forward, k)
    tv = undiscounted - intrinsic
    # Rounding noise of the time value: relative to the price for an OTM option,
    # to the forward/strike level for an ITM one (price - intrinsic cancels).
    noise = _INTRINSIC_ULPS * _EPS * np.where(intrinsic > 0, np.maximum(forward, k), undiscounted)
    bad_time = valid & ~(t > 0)
    above = valid & ~bad_time & (undiscounted >= upper)
    pending = valid & ~bad_time & ~above
    below = pending & ((tv < -noise) | (p < 0))
    pending &= ~below
    at_intrinsic = pending & (tv <= noise)
    solve = pending & ~at_intrinsic
    flag[~valid] = IvFlag.INVALID_INPUT
    flag[bad_time] = IvFlag.NON_POSITIVE_TIME
    flag[above] = IvFlag.ABOVE_UPPER_BOUND
    flag[below] = IvFlag.BELOW_INTRINSIC
    flag[at_intrinsic] = IvFlag.AT_INTRINSIC
    vol[at_intrinsic] = 0.0
    if solve.all():
        idx = None
        f, kk, tvs, ts = forward, k, tv, t
    else:
        idx = np.flatnonzero(solve)
        if not idx.size:
            return vol, flag
        f, kk, tvs, ts = forward[idx], k[idx], tv[idx], t[idx]
    ax = np.log(f / kk)
    np.abs(ax, out=ax)
    np.negative(ax, out=ax)
    beta = tvs / np.sqrt(f * kk)
    # Rounding can push the OTM twin's price to its bound; that is a huge vol, not NaN.
    np.minimum(beta, np.exp(0.5 * ax) * (1.0 - _EPS), out=beta)
    sigma = _solve(beta, ax)
    sigma /= np.sqrt(ts)
    failed = ~np.isfinite(sigma)
    if idx is None:
        vol = sigma
        flag[failed] = IvFlag.NOT_CONVERGED
    else:
        vol[idx] = sigma
        flag[idx[failed]] = IvFlag.NOT_CONVERGED
    return vol, flag
