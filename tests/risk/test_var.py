"""Historical-simulation VaR/ES on known distributions and on the shipped SPY history."""

from __future__ import annotations

import csv
import math
import os
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from alchemiser.domain.options import OptionRight
from alchemiser.domain.pricing import bsm_price
from alchemiser.risk import (
    RiskPosition,
    delta_gamma_var,
    historical_var,
    log_returns,
    scenario_pnl,
    var_es,
)

AS_OF = date(2026, 1, 2)
R = 0.04
SPY_CSV = Path("/work/shared/data/SPY_daily.csv")
Z95, ES95 = 1.6448536, 2.0627128  # standard normal quantile and tail mean at 95 %


def _equity(qty: float, spot: float = 100.0, symbol: str = "SPY") -> RiskPosition:
    return RiskPosition(symbol, "equity", qty, "equity", symbol, spot)


def _put(qty: float, strike: float, spot: float, days: int = 60, iv: float = 0.2) -> RiskPosition:
    return RiskPosition(
        "SPY-P",
        "option",
        qty,
        "hedge",
        "SPY",
        spot,
        strike=strike,
        expiry=AS_OF + timedelta(days=days),
        right=OptionRight.PUT,
        iv=iv,
    )


def test_var_es_of_normal_sample() -> None:
    rng = np.random.default_rng(1)
    sigma = 1000.0
    var, es = var_es(rng.normal(0.0, sigma, 400_000), 0.95)
    assert var == pytest.approx(Z95 * sigma, rel=0.01)
    assert es == pytest.approx(ES95 * sigma, rel=0.01)


def test_linear_book_on_normal_returns() -> None:
    rng = np.random.default_rng(2)
    sigma = 0.01
    returns = rng.normal(0.0, sigma, (200_000, 1))
    book = [_equity(1000, 100.0)]  # 100 000 of SPY
    h = historical_var(book, returns, ["SPY"], as_of=AS_OF, rate=R, confidence=0.95)
    exposure = 100_000.0
    # Log-returns → simple returns: the loss at -1.645σ is (1 - e^{-1.645σ}) × exposure.
    assert float(h.var) == pytest.approx(exposure * (1 - math.exp(-Z95 * sigma)), rel=0.02)
    assert float(h.expected_shortfall) == pytest.approx(exposure * ES95 * sigma, rel=0.03)
    assert h.scenarios == 200_000
    assert h.es_by_strategy["equity"] == h.expected_shortfall
    p = delta_gamma_var(book, returns, ["SPY"], as_of=AS_OF, rate=R)
    assert float(p.delta_normal_var) == pytest.approx(exposure * Z95 * sigma, rel=0.01)
    assert float(p.delta_gamma_var) == pytest.approx(float(p.delta_normal_var), rel=1e-9)


def test_full_repricing_of_a_put() -> None:
    returns = np.array([[-0.10], [0.0], [0.05]])
    book = [_put(2, 95.0, 100.0)]
    pnl = scenario_pnl(book, returns, ["SPY"], as_of=AS_OF, rate=R)
    t = 60 / 365
    base = bsm_price(100.0, 95.0, t, R, 0.0, 0.2, False)
    shocked = bsm_price(100.0 * np.exp(returns[:, 0]), 95.0, t, R, 0.0, 0.2, False)
    np.testing.assert_allclose(pnl[:, 0], 200 * (shocked - base), rtol=1e-12)
    assert pnl[1, 0] == 0.0


def test_hedged_book_has_less_var_and_gamma_matters() -> None:
    rng = np.random.default_rng(3)
    returns = rng.standard_t(3, (5000, 2)) * 0.012
    naked = [_equity(1000, 100.0)]
    hedged = [*naked, _put(10, 97.0, 100.0, days=30)]
    a = historical_var(naked, returns, ["SPY", "QQQ"], as_of=AS_OF, rate=R)
    b = historical_var(hedged, returns, ["SPY", "QQQ"], as_of=AS_OF, rate=R)
    assert b.var < a.var and b.expected_shortfall < a.expected_shortfall
    assert b.es_by_strategy["hedge"] < 0  # the hedge pays in the tail
    p = delta_gamma_var(hedged, returns, ["SPY", "QQQ"], as_of=AS_OF, rate=R)
    assert p.pnl_skew > 0 and p.delta_gamma_var < p.delta_normal_var  # long gamma


def test_missing_history_is_an_error() -> None:
    with pytest.raises(ValueError, match="no return history for AAPL"):
        historical_var([_equity(1, symbol="AAPL")], np.zeros((10, 1)), ["SPY"], as_of=AS_OF, rate=R)


def _spy_closes() -> np.ndarray:
    if not SPY_CSV.is_file():
        reason = f"shipped SPY history not found at {SPY_CSV}"
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the shared data: {reason}")
        pytest.skip(reason)
    with SPY_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    # Adjusted closes: dividends do not show up as losses.
    return np.array([float(r["AdjClose"]) for r in rows])


def test_var_on_shipped_spy_history() -> None:
    closes = _spy_closes()
    returns = log_returns(closes[-253:, None])  # 252 sessions, as RiskSettings.history_sessions
    book = [_equity(1000, 100.0)]
    h = historical_var(book, returns, ["SPY"], as_of=AS_OF, rate=R)
    losses = -100_000.0 * np.expm1(returns[:, 0])
    assert float(h.var) == pytest.approx(np.quantile(losses, 0.95), abs=0.01)
    assert h.scenarios == 252
    # A plausible daily 95 % VaR of SPY: between 0.5 % and 5 % of exposure; ES above VaR.
    assert 500 < float(h.var) < 5000
    assert h.expected_shortfall > h.var
    sigma = float(np.std(returns))
    p = delta_gamma_var(book, returns, ["SPY"], as_of=AS_OF, rate=R)
    assert float(p.delta_normal_var) == pytest.approx(100_000 * Z95 * sigma, rel=0.01)
    # Over the whole history the put-hedged book loses less in the tail.
    full = log_returns(closes[:, None])
    hedged = [*book, _put(10, 95.0, 100.0, days=45)]
    a = historical_var(book, full, ["SPY"], as_of=AS_OF, rate=R)
    b = historical_var(hedged, full, ["SPY"], as_of=AS_OF, rate=R)
    assert b.expected_shortfall < a.expected_shortfall
