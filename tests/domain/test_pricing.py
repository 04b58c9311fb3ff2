"""Black-Scholes-Merton prices and greeks: textbook values, parity, finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alchemiser.domain.pricing import bsm_greeks, bsm_price

# --- textbook values -------------------------------------------------------------


def test_hull_call_and_put() -> None:
    # Hull, Options, Futures and Other Derivatives: S=42, K=40, r=10 %, σ=20 %, T=0.5.
    call, put = bsm_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, [True, False])
    assert call == pytest.approx(4.76, abs=0.005)
    assert put == pytest.approx(0.81, abs=0.005)


def test_hull_greeks_of_a_call() -> None:
    # Hull's greek examples: S=49, K=50, r=5 %, σ=20 %, T=20 weeks (0.3846 years):
    # price 2.40, delta 0.522, gamma 0.066, theta -4.31 a year, vega 12.1 and
    # rho 8.91 per unit (here per day, per vol point and per rate point).
    g = bsm_greeks(49.0, 50.0, 0.3846, 0.05, 0.0, 0.20, True)
    assert float(g.price) == pytest.approx(2.40, abs=0.005)
    assert float(g.delta) == pytest.approx(0.522, abs=0.0005)
    assert float(g.gamma) == pytest.approx(0.066, abs=0.0005)
    assert float(g.theta) * 365 == pytest.approx(-4.31, abs=0.005)
    assert float(g.vega) * 100 == pytest.approx(12.1, abs=0.05)
    assert float(g.rho) * 100 == pytest.approx(8.91, abs=0.005)


def test_hull_index_option_with_dividend_yield() -> None:
    # Hull: index 930, strike 900, r=8 %, q=3 %, σ=20 %, two months: call 51.83.
    call = bsm_price(930.0, 900.0, 2.0 / 12.0, 0.08, 0.03, 0.20, True)
    assert float(call) == pytest.approx(51.83, abs=0.005)


def test_scalar_inputs_give_zero_dimensional_results_and_shapes_broadcast() -> None:
    assert bsm_price(42.0, 40.0, 0.5, 0.1, 0.0, 0.2, True).shape == ()
    strikes = np.linspace(80, 120, 5)
    vols = np.array([[0.1], [0.2], [0.3]])
    g = bsm_greeks(100.0, strikes, 0.25, 0.03, 0.01, vols, True)
    assert g.price.shape == g.delta.shape == g.rho.shape == g.early_exercise.shape == (3, 5)
    # Each cell equals the scalar computation.
    single = bsm_price(100.0, strikes[2], 0.25, 0.03, 0.01, 0.3, True)
    assert g.price[2, 2] == pytest.approx(float(single), rel=1e-14)


# --- properties over the input space ----------------------------------------------

spots = st.floats(1.0, 1000.0)
log_moneyness = st.floats(-1.0, 1.0)
times = st.floats(1.0 / 365.0, 5.0)
rates = st.floats(-0.02, 0.10)
yields = st.floats(0.0, 0.08)
vols = st.floats(0.02, 2.0)


@given(spots, log_moneyness, times, rates, yields, vols)
def test_put_call_parity(s: float, m: float, t: float, r: float, q: float, v: float) -> None:
    k = s * math.exp(m)
    call, put = bsm_price(s, k, t, r, q, v, [True, False])
    forward_value = s * math.exp(-q * t) - k * math.exp(-r * t)
    assert call - put == pytest.approx(forward_value, abs=1e-11 * max(s, k))


@given(spots, log_moneyness, times, rates, yields, vols)
def test_price_within_no_arbitrage_bounds(
    s: float, m: float, t: float, r: float, q: float, v: float
) -> None:
    k = s * math.exp(m)
    call, put = bsm_price(s, k, t, r, q, v, [True, False])
    sq, kr = s * math.exp(-q * t), k * math.exp(-r * t)
    tol = 1e-12 * max(s, k)
    assert max(sq - kr, 0.0) - tol <= call <= sq + tol
    assert max(kr - sq, 0.0) - tol <= put <= kr + tol


@settings(max_examples=200)
@given(
    st.floats(20.0, 500.0),
    st.floats(-0.4, 0.4),
    st.floats(0.05, 3.0),
    rates,
    yields,
    st.floats(0.05, 1.0),
    st.booleans(),
)
def test_greeks_match_finite_differences(
    s: float, m: float, t: float, r: float, q: float, v: float, call: bool
) -> None:
    k = s * math.exp(m)
    g = bsm_greeks(s, k, t, r, q, v, call)

    def price(**bump: float) -> float:
        args = {"s": s, "k": k, "t": t, "r": r, "q": q, "v": v} | bump
        return float(bsm_price(args["s"], k, args["t"], args["r"], q, args["v"], call))

    # Central differences with steps on each variable's natural scale: the
    # truncation error is then ~1e-8 relative and rounding stays far below it.
    width = s * v * math.sqrt(t)  # one standard deviation of the spot at expiry
    hs = 1e-4 * width
    delta = (price(s=s + hs) - price(s=s - hs)) / (2 * hs)
    hg = 1e-3 * width
    gamma = (price(s=s + hg) - 2 * price() + price(s=s - hg)) / (hg * hg)
    ht = 1e-4 * t
    theta_year = -(price(t=t + ht) - price(t=t - ht)) / (2 * ht)
    hv = 1e-4 * v
    vega_unit = (price(v=v + hv) - price(v=v - hv)) / (2 * hv)
    hr = 1e-4 * v / math.sqrt(t)  # moves the log-forward by 1e-4 standard deviations
    rho_unit = (price(r=r + hr) - price(r=r - hr)) / (2 * hr)

    # Allowed error: 1e-4 relative (truncation grows a little in the tails) plus
    # the rounding of the differenced prices, ~1e-14 × price level / step.
    level = 1e-14 * max(s, k)

    def close(analytic: float, numeric: float, rounding: float) -> bool:
        return abs(analytic - numeric) <= 1e-4 * abs(analytic) + rounding

    assert close(float(g.delta), delta, level / hs), (float(g.delta), delta)
    assert close(float(g.gamma), gamma, level / hg**2), (float(g.gamma), gamma)
    theta = float(g.theta) * 365
    assert close(theta, theta_year, level / ht), (theta, theta_year)
    assert close(float(g.vega) * 100, vega_unit, level / hv), (float(g.vega) * 100, vega_unit)
    assert close(float(g.rho) * 100, rho_unit, level / hr), (float(g.rho) * 100, rho_unit)


def test_call_and_put_share_gamma_and_vega_and_deltas_differ_by_the_dividend_discount() -> None:
    s, k, t, r, q, v = 100.0, 95.0, 0.7, 0.04, 0.02, 0.3
    c = bsm_greeks(s, k, t, r, q, v, True)
    p = bsm_greeks(s, k, t, r, q, v, False)
    assert float(c.gamma) == pytest.approx(float(p.gamma), rel=1e-14)
    assert float(c.vega) == pytest.approx(float(p.vega), rel=1e-14)
    assert float(c.delta - p.delta) == pytest.approx(math.exp(-q * t), rel=1e-14)
    # Theta and rho parity: d/dT and d/dr of S e^{-qT} - K e^{-rT}.
    theta_diff = (q * s * math.exp(-q * t) - r * k * math.exp(-r * t)) / 365
    assert float(c.theta - p.theta) == pytest.approx(theta_diff, rel=1e-12)
    assert float(c.rho - p.rho) == pytest.approx(k * t * math.exp(-r * t) / 100, rel=1e-12)


# --- limits, invalid input and the American flag ----------------------------------


def test_zero_vol_and_zero_time_are_the_deterministic_limit() -> None:
    s, k, t, r, q = 100.0, 90.0, 0.5, 0.05, 0.01
    g = bsm_greeks(s, k, t, r, q, 0.0, [True, False])
    fwd_value = s * math.exp(-q * t) - k * math.exp(-r * t)
    assert g.price.tolist() == pytest.approx([fwd_value, 0.0])
    assert g.delta.tolist() == pytest.approx([math.exp(-q * t), 0.0])
    assert g.gamma.tolist() == [0.0, 0.0]
    assert g.vega.tolist() == [0.0, 0.0]
    # The limit agrees with a tiny but positive volatility.
    tiny = bsm_greeks(s, k, t, r, q, 1e-9, [True, False])
    for name in ("price", "delta", "theta", "rho"):
        assert getattr(g, name) == pytest.approx(getattr(tiny, name), abs=1e-9)
    expired = bsm_price(s, [90.0, 110.0], 0.0, r, q, 0.3, [True, True])
    assert expired.tolist() == pytest.approx([10.0, 0.0])


@pytest.mark.parametrize(
    ("s", "k", "t", "v"),
    [
        (0.0, 100.0, 1.0, 0.2),
        (100.0, -1.0, 1.0, 0.2),
        (100.0, 100.0, -0.1, 0.2),
        (100.0, 100.0, 1.0, -0.2),
        (math.nan, 100.0, 1.0, 0.2),
        (100.0, 100.0, math.inf, 0.2),
    ],
)
def test_invalid_inputs_give_nan_not_garbage(s: float, k: float, t: float, v: float) -> None:
    g = bsm_greeks([s, 100.0], [k, 100.0], [t, 1.0], 0.03, 0.0, [v, 0.2], True)
    for name in ("price", "delta", "gamma", "theta", "vega", "rho"):
        values = getattr(g, name)
        assert math.isnan(values[0]), name
        assert math.isfinite(values[1]), name
    assert not g.early_exercise[0]


def test_early_exercise_flags_deep_itm_puts_only() -> None:
    # With r > 0 a deep ITM European put is worth less than K - S: an American
    # put would be exercised, so the European figures are only a lower bound.
    g = bsm_greeks(
        100.0, [200.0, 100.0, 80.0, 200.0], 1.0, 0.05, 0.0, 0.2, [False, False, False, True]
    )
    assert g.early_exercise.tolist() == [True, False, False, False]
    assert g.price[0] < 100.0
    # A deep ITM call on a dividend payer is flagged too.
    call = bsm_greeks(200.0, 100.0, 1.0, 0.0, 0.05, 0.2, True)
    assert bool(call.early_exercise)


def test_large_batches_match_small_ones() -> None:
    # Blocked evaluation must not change results at block boundaries.
    rng = np.random.default_rng(7)
    n = 40_000
    s = rng.uniform(50, 150, n)
    k = s * np.exp(rng.normal(0, 0.2, n))
    t = rng.uniform(0.01, 2, n)
    v = rng.uniform(0.1, 0.6, n)
    c = rng.random(n) < 0.5
    whole = bsm_greeks(s, k, t, 0.03, 0.01, v, c)
    for lo in (0, 12_287, 12_288, 39_999):
        one = bsm_greeks(s[lo], k[lo], t[lo], 0.03, 0.01, v[lo], c[lo])
        assert float(one.price) == whole.price[lo]
        assert float(one.theta) == whole.theta[lo]
