"""Implied volatility: round trips, bounds and reason flags, robustness in the wings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alchemiser.domain.implied_vol import (
    IvFlag,
    implied_vol,
    normalised_black,
    normalised_implied_vol,
)
from alchemiser.domain.pricing import bsm_greeks, bsm_price


def test_textbook_price_gives_back_its_vol() -> None:
    # Hull: S=42, K=40, r=10 %, T=0.5 and σ=20 % price the call at 4.7594.
    price = bsm_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, True)
    iv = implied_vol(price, 42.0, 40.0, 0.5, 0.10, 0.0, True)
    assert float(iv.vol) == pytest.approx(0.20, abs=1e-12)
    assert int(iv.flag) == IvFlag.OK
    # A rounded market price gives a nearby vol: 4.76 is a little above the model price.
    rounded = implied_vol(4.76, 42.0, 40.0, 0.5, 0.10, 0.0, True)
    assert 0.2 < float(rounded.vol) < 0.201


def _grid() -> tuple[np.ndarray, ...]:
    """Every combination of moneyness, expiry, vol, right and carry."""
    m, t, v, c, r = np.meshgrid(
        np.linspace(-2.0, 2.0, 41),  # ln(K/S)
        np.array([1, 2, 7, 30, 91, 365, 730, 1825]) / 365.0,
        np.array([0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5, 3.0]),
        np.array([True, False]),
        np.array([-0.01, 0.0, 0.05]),
        indexing="ij",
    )
    s = np.full(m.shape, 100.0)
    return s, s * np.exp(m), t, r, np.full(m.shape, 0.015), v, c


def test_round_trip_on_a_grid_wherever_vega_is_meaningful() -> None:
    s, k, t, r, q, v, c = _grid()
    g = bsm_greeks(s, k, t, r, q, v, c)
    iv = implied_vol(g.price, s, k, t, r, q, c)
    vega = g.vega * 100.0  # ∂price/∂σ
    judged = vega > 1e-4
    assert judged.sum() > 6_000  # of 15,744: the rest carry (almost) no time value
    assert iv.flag[judged].tolist() == [IvFlag.OK] * int(judged.sum())
    assert np.max(np.abs(iv.vol - v)[judged]) < 1e-6
    # Much tighter where the price carries plenty of information.
    assert np.max(np.abs(iv.vol - v)[vega > 1e-2]) < 1e-9


def test_no_nan_for_any_price_strictly_inside_the_bounds() -> None:
    s, k, t, r, q, _, c = _grid()
    disc, fwd = np.exp(-r * t), s * np.exp((r - q) * t)
    lower = disc * np.maximum(np.where(c, fwd - k, k - fwd), 0.0)
    upper = np.where(c, s * np.exp(-q * t), k * disc)
    for frac in (1e-9, 1e-4, 0.01, 0.5, 0.99, 1 - 1e-6):
        price = lower + frac * (upper - lower)
        inside = (price > lower) & (price < upper)
        iv = implied_vol(price, s, k, t, r, q, c)
        assert np.isfinite(iv.vol[inside]).all(), frac
        assert (iv.vol[inside] >= 0).all()
        # And the vol reproduces the price (to the rounding of price - intrinsic).
        back = bsm_price(s, k, t, r, q, iv.vol, c)
        ok = inside & (iv.flag == IvFlag.OK)
        tol = 1e-10 * np.maximum(price, 1e-300) + 1e-13 * np.maximum(s, k)
        assert (np.abs(back - price)[ok] <= tol[ok]).all(), frac


settings_rt = settings(max_examples=300, deadline=None)


@settings_rt
@given(
    st.floats(1.0, 2000.0),
    st.floats(-1.5, 1.5),
    st.floats(0.5 / 365.0, 5.0),
    st.floats(-0.02, 0.1),
    st.floats(0.0, 0.06),
    st.floats(0.01, 4.0),
    st.booleans(),
)
def test_hypothesis_round_trip(
    s: float, m: float, t: float, r: float, q: float, v: float, call: bool
) -> None:
    k = s * math.exp(m)
    g = bsm_greeks(s, k, t, r, q, v, call)
    iv = implied_vol(g.price, s, k, t, r, q, call)
    if float(g.vega) * 100 > 1e-4:
        assert int(iv.flag) == IvFlag.OK
        assert float(iv.vol) == pytest.approx(v, abs=1e-6)
    else:
        # Too little information to recover σ, but never garbage: a number or a flag.
        assert int(iv.flag) in (IvFlag.OK, IvFlag.AT_INTRINSIC)
        assert math.isfinite(float(iv.vol))


@settings_rt
@given(st.floats(-30.0, 30.0), st.floats(1e-3, 20.0), st.booleans())
def test_normalised_round_trip(x: float, s: float, call: bool) -> None:
    beta = float(normalised_black(x, s, call))
    intrinsic = max((1 if call else -1) * (math.exp(x / 2) - math.exp(-x / 2)), 0.0)
    out = float(normalised_implied_vol(beta, x, call))
    upper = math.exp(x / 2 if call else -x / 2)
    if beta >= upper * (1 - 4e-16):
        # Rounded onto its upper bound (to the ulp of exp): NaN, or a vol that reprices.
        assert math.isnan(out) or abs(float(normalised_black(x, out, call)) - beta) <= 1e-14 * upper
        return
    if beta <= intrinsic:
        assert out == 0.0 or out == pytest.approx(s, rel=0.5)  # (almost) no time value left
        return
    # How well β pins s down: a few ulps of the two terms of b over ∂b/∂s.
    w = 1.0 if call else -1.0
    h, t = x / s, s / 2
    terms = math.exp(x / 2) * 0.5 * math.erfc(-w * (h + t) / math.sqrt(2)) + math.exp(
        -x / 2
    ) * 0.5 * math.erfc(-w * (h - t) / math.sqrt(2))
    vega = math.exp(-0.5 * (h * h + t * t)) / math.sqrt(2 * math.pi)
    rounding = 16 * 2.2e-16 * max(terms, intrinsic)
    if beta - intrinsic <= 4 * rounding and out == 0.0:
        return  # the time value is within rounding of zero: read as at intrinsic
    if vega > 0 and beta - intrinsic > 1e-290:  # not at the edge of underflow
        resolution = rounding / vega
        assert abs(out - s) <= 1e-9 * s + resolution
    else:
        assert math.isfinite(out) and out >= 0


@pytest.mark.parametrize(
    ("s", "k", "t", "v", "call"),
    [
        (100.0, 130.0, 1 / 365, 0.5, True),  # far OTM call (10 sd), one day
        (100.0, 30.0, 1 / 365, 0.9, False),  # far OTM put, one day
        (100.0, 60.0, 10.0, 0.3, True),  # deep ITM call, ten years
        (100.0, 160.0, 3.0, 0.25, False),  # deep ITM put, three years
        (100.0, 100.0, 1 / (365 * 24), 0.15, True),  # ATM, one hour
        (100.0, 100.0, 30.0, 2.5, False),  # ATM, huge total vol
        (100.0, 101.0, 0.02, 0.005, True),  # near ATM, tiny vol
    ],
)
def test_wings_and_extremes_converge(s: float, k: float, t: float, v: float, call: bool) -> None:
    price = bsm_price(s, k, t, 0.03, 0.01, v, call)
    iv = implied_vol(price, s, k, t, 0.03, 0.01, call)
    assert int(iv.flag) == IvFlag.OK
    assert float(iv.vol) == pytest.approx(v, rel=1e-7)


def test_flags_for_prices_outside_the_bounds() -> None:
    s, k, t, r, q = 100.0, 90.0, 0.5, 0.05, 0.0
    intrinsic = s - k * math.exp(-r * t)  # discounted, for the call
    prices = [intrinsic - 0.01, -0.5, s, s + 1.0, intrinsic, 12.0, 0.0, 12.0, 12.0, 12.0]
    times = [t, t, t, t, t, 0.0, t, -1.0, t, t]
    spots = [s] * 8 + [math.nan, -5.0]
    rights = [True, True, True, True, True, True, False, True, True, True]
    iv = implied_vol(prices, spots, k, times, r, q, rights)
    assert iv.flag.tolist() == [
        IvFlag.BELOW_INTRINSIC,
        IvFlag.BELOW_INTRINSIC,
        IvFlag.ABOVE_UPPER_BOUND,
        IvFlag.ABOVE_UPPER_BOUND,
        IvFlag.AT_INTRINSIC,
        IvFlag.NON_POSITIVE_TIME,
        IvFlag.AT_INTRINSIC,  # an OTM put quoted at zero
        IvFlag.NON_POSITIVE_TIME,
        IvFlag.INVALID_INPUT,
        IvFlag.INVALID_INPUT,
    ]
    vol = iv.vol.tolist()
    assert vol[4] == 0.0 and vol[6] == 0.0
    for i in (0, 1, 2, 3, 5, 7, 8, 9):
        assert math.isnan(vol[i])
    assert iv.ok.tolist() == [False] * 10


def test_put_upper_bound_is_the_discounted_strike() -> None:
    k, r, t = 100.0, 0.05, 1.0
    bound = k * math.exp(-r * t)
    iv = implied_vol([bound, bound * (1 - 1e-9)], 50.0, k, t, r, 0.0, False)
    assert iv.flag.tolist() == [IvFlag.ABOVE_UPPER_BOUND, IvFlag.OK]
    assert math.isfinite(iv.vol[1]) and iv.vol[1] > 1.0


def test_shape_is_kept_and_blocks_do_not_change_results() -> None:
    rng = np.random.default_rng(3)
    n = 30_000
    s = rng.uniform(50, 150, n)
    k = s * np.exp(rng.normal(0, 0.3, n))
    t = rng.uniform(0.01, 2, n)
    v = rng.uniform(0.05, 1.0, n)
    c = rng.random(n) < 0.5
    p = bsm_price(s, k, t, 0.02, 0.0, v, c)
    whole = implied_vol(p, s, k, t, 0.02, 0.0, c)
    square = implied_vol(
        p.reshape(100, 300),
        s.reshape(100, 300),
        k.reshape(100, 300),
        t.reshape(100, 300),
        0.02,
        0.0,
        c.reshape(100, 300),
    )
    assert square.vol.shape == (100, 300) and square.flag.shape == (100, 300)
    np.testing.assert_array_equal(square.vol.reshape(-1), whole.vol)
    for i in (0, 12_287, 12_288, n - 1):
        one = implied_vol(p[i], s[i], k[i], t[i], 0.02, 0.0, c[i])
        assert float(one.vol) == whole.vol[i] or (
            math.isnan(float(one.vol)) and math.isnan(whole.vol[i])
        )
