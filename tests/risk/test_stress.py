"""Stress scenarios: full BSM repricing at the shocked inputs, strategy split, hedge payoff."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from alchemiser.domain.options import OptionRight
from alchemiser.domain.pricing import bsm_price
from alchemiser.market.reference import SymbolInfo, TomlReferenceData
from alchemiser.risk import RiskPosition, Strategy, stress_test
from alchemiser.settings.risk import RiskSettings, StressScenario

AS_OF = date(2026, 1, 2)
R = 0.04
T = 60 / 365


def _put(qty: float, underlying: str = "QQQ", strategy: Strategy = "hedge") -> RiskPosition:
    return RiskPosition(
        f"{underlying}-P",
        "option",
        qty,
        strategy,
        underlying,
        500.0,
        strike=450.0,
        expiry=AS_OF + timedelta(days=60),
        right=OptionRight.PUT,
        iv=0.22,
    )


def _money(x: float) -> Decimal:
    return Decimal(repr(x)).quantize(Decimal("0.01"))


def test_long_put_pnl_is_bsm_repricing_at_shocked_inputs() -> None:
    scenarios = [
        StressScenario(name="crash", index_move_pct=Decimal(-20), vol_shift_points=Decimal(20)),
        StressScenario(name="crush", vol_shift_pct=Decimal(-30)),
        StressScenario(name="rates", rate_shift_points=Decimal(1)),
    ]
    beta = 1.15
    report = stress_test(
        [_put(3)], scenarios, as_of=AS_OF, rate=R, betas={"QQQ": beta}, nav=Decimal(1_000_000)
    )
    base = float(bsm_price(500.0, 450.0, T, R, 0.0, 0.22, False))
    expected = [
        bsm_price(500.0 * (1 - 0.20 * beta), 450.0, T, R, 0.0, 0.42, False),
        bsm_price(500.0, 450.0, T, R, 0.0, 0.22 * 0.7, False),
        bsm_price(500.0, 450.0, T, R + 0.01, 0.0, 0.22, False),
    ]
    for res, price in zip(report.scenarios, expected, strict=True):
        pnl = 300 * (float(price) - base)
        assert res.pnl == _money(pnl)
        assert res.pnl_by_strategy["hedge"] == res.pnl
        assert res.pnl_by_strategy["income"] == Decimal("0.00")
    crash = report.scenarios[0]
    assert crash.pnl > 0 and report.scenarios[1].pnl < 0 and report.scenarios[2].pnl < 0
    assert report.hedge_payoff_pct_nav == pytest.approx(
        Decimal(float(crash.pnl) / 10_000), abs=Decimal("0.0001")
    )
    assert crash.pnl_pct_nav == report.hedge_payoff_pct_nav


def test_default_scenarios_with_reference_and_single_name_gap() -> None:
    ref = TomlReferenceData(
        {
            "SPY": SymbolInfo("SPY", beta=Decimal(1), tracks="SPY"),
            "AAPL": SymbolInfo("AAPL", beta=Decimal("1.2")),
            "KO": SymbolInfo("KO", beta=Decimal("0.6")),
        }
    )
    book = [
        RiskPosition("SPY", "equity", 1000, "equity", "SPY", 600.0),  # largest, but an index
        RiskPosition("AAPL", "equity", 400, "equity", "AAPL", 250.0),  # largest single name
        RiskPosition("KO", "equity", 100, "equity", "KO", 70.0),
        _put(-2, "KO", "income"),
    ]
    settings = RiskSettings()
    report = stress_test(
        book, settings.stress_scenarios, as_of=AS_OF, rate=R, betas=ref, nav=Decimal(1_000_000)
    )
    by_name = {r.name: r for r in report.scenarios}
    assert list(by_name) == [s.name for s in settings.stress_scenarios]
    gap = by_name["single_name_gap"]
    assert gap.gapped_symbol == "AAPL"
    assert gap.pnl == Decimal("-25000.00")  # 25 % of 100 000 of AAPL, nothing else moves
    down10 = by_name["index_down_10"]
    # Equity leg: -10 % × beta on each name.
    assert down10.pnl_by_strategy["equity"] == _money(-60_000 - 0.12 * 100_000 - 0.06 * 7_000)
    assert down10.pnl_by_strategy["income"] < 0  # short KO puts lose in a sell-off
    assert report.hedge_payoff_pct_nav == Decimal("0.0000")  # no hedges held
    assert by_name["vol_crush"].pnl_by_strategy["income"] > 0  # short vega gains
    assert by_name["index_down_30"].pnl < by_name["index_down_20"].pnl < down10.pnl < 0


def test_empty_book_and_no_nav() -> None:
    report = stress_test([], RiskSettings().stress_scenarios, as_of=AS_OF, rate=R, betas={})
    assert all(r.pnl == Decimal("0.00") and r.pnl_pct_nav is None for r in report.scenarios)
    assert report.hedge_payoff_pct_nav is None
