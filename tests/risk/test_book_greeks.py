"""Book building and dollar-greek aggregation against hand-computed small books."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from alchemiser.domain.options import OptionRight
from alchemiser.domain.trading import AssetClass, Position
from alchemiser.market.reference import SymbolInfo, TomlReferenceData
from alchemiser.risk import RiskPosition, Strategy, book_greeks, build_book
from alchemiser.sim.market import SimMarket

AS_OF = date(2026, 1, 2)
R = 0.04


def _n(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _bs_put(s: float, k: float, t: float, r: float, v: float) -> dict[str, float]:
    """Closed-form European put (q = 0), written out independently of the library."""
    d1 = (math.log(s / k) + (r + 0.5 * v * v) * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    return {
        "price": k * math.exp(-r * t) * _n(-d2) - s * _n(-d1),
        "delta": _n(d1) - 1.0,
        "gamma": pdf / (s * v * math.sqrt(t)),
        "vega": s * pdf * math.sqrt(t) / 100.0,
        "theta": (-s * pdf * v / (2 * math.sqrt(t)) + r * k * math.exp(-r * t) * _n(-d2)) / 365.0,
        "rho": -k * t * math.exp(-r * t) * _n(-d2) / 100.0,
    }


def _put(qty: float, strategy: Strategy = "hedge", underlying: str = "SPY") -> RiskPosition:
    return RiskPosition(
        symbol=f"{underlying}260402P00450000",
        kind="option",
        qty=qty,
        strategy=strategy,
        underlying=underlying,
        spot=500.0,
        strike=450.0,
        expiry=AS_OF + timedelta(days=90),
        right=OptionRight.PUT,
        iv=0.25,
    )


def _money(x: float) -> Decimal:
    return Decimal(repr(x)).quantize(Decimal("0.01"))


def test_small_book_hand_computed() -> None:
    stock = RiskPosition(
        symbol="AAPL", kind="equity", qty=100, strategy="equity", underlying="AAPL", spot=500.0
    )
    book = [stock, _put(2), _put(-1, "income", "AAPL")]
    g = book_greeks(book, as_of=AS_OF, rate=R, betas={"SPY": 1.0, "AAPL": 1.2})
    p = _bs_put(500.0, 450.0, 90 / 365, R, 0.25)

    hedge = g.by_strategy["hedge"]
    assert hedge.market_value == _money(200 * p["price"])
    assert hedge.delta_dollars == _money(200 * p["delta"] * 500)
    assert hedge.beta_delta_dollars == _money(200 * p["delta"] * 500)
    assert hedge.gamma_dollars == _money(200 * p["gamma"] * 500**2 * 0.01)
    assert hedge.theta == _money(200 * p["theta"])
    assert hedge.vega == _money(200 * p["vega"])
    assert hedge.rho == _money(200 * p["rho"])

    aapl = g.by_underlying["AAPL"]
    aapl_dd = 100 * 500.0 - 100 * p["delta"] * 500
    assert aapl.delta_dollars == _money(aapl_dd)
    assert aapl.beta_delta_dollars == _money(1.2 * aapl_dd)
    assert aapl.gamma_dollars == _money(-100 * p["gamma"] * 500**2 * 0.01)
    assert aapl.vega == _money(-100 * p["vega"])

    assert g.by_strategy["equity"].delta_dollars == Decimal("50000.00")
    assert g.by_strategy["equity"].gamma_dollars == Decimal("0.00")
    total_bd = 200 * p["delta"] * 500 + 1.2 * aapl_dd
    assert abs(g.total.beta_delta_dollars - _money(total_bd)) <= Decimal("0.01")
    assert abs(g.total.vega - _money(100 * p["vega"])) <= Decimal("0.01")
    assert [x.symbol for x in g.positions] == [b.symbol for b in book]
    assert not any(x.early_exercise for x in g.positions)


def test_betas_from_reference_use_leverage_and_default() -> None:
    ref = TomlReferenceData(
        {
            "TQQQ": SymbolInfo("TQQQ", beta=Decimal("1.15"), leverage=Decimal(3), tracks="QQQ"),
        }
    )
    book = [
        RiskPosition("TQQQ", "equity", 10, "equity", "TQQQ", 100.0),
        RiskPosition("XYZ", "equity", 10, "equity", "XYZ", 100.0),
    ]
    g = book_greeks(book, as_of=AS_OF, rate=R, betas=ref)
    assert g.by_underlying["TQQQ"].beta_delta_dollars == Decimal("3450.00")
    assert g.by_underlying["XYZ"].beta_delta_dollars == Decimal("1000.00")  # unknown → 1


def test_missing_beta_is_an_error() -> None:
    with pytest.raises(ValueError, match="no beta for SPY"):
        book_greeks([_put(1)], as_of=AS_OF, rate=R, betas={})


def test_build_book_from_sim_market() -> None:
    market = SimMarket(seed=7, start=date(2025, 1, 2))
    at = datetime(2025, 3, 3, 18, 0, tzinfo=UTC)
    spy = market.stock_quote("SPY", at)
    chain = market.chain("SPY", at, expiry_from=at.date() + timedelta(days=20))
    puts = [c for c in chain if c.contract.right is OptionRight.PUT]
    put = min(
        puts, key=lambda c: (abs(c.contract.strike - spy.mid * Decimal("0.95")), c.contract.expiry)
    )
    quotes = market.option_quotes([put.symbol], at)
    positions = [
        Position(
            "SPY",
            AssetClass.EQUITY,
            Decimal(100),
            spy.last,
            spy.last,
            spy.last * 100,
            spy.last * 100,
        ),
        Position(
            put.symbol,
            AssetClass.OPTION,
            Decimal(3),
            put.mid,
            put.mid,
            put.mid * 300,
            put.mid * 300,
            multiplier=100,
        ),
    ]
    book = build_book(positions, {"SPY": spy}, quotes, {put.symbol: "hedge"})
    assert [p.strategy for p in book] == ["equity", "hedge"]
    opt = book[1]
    assert opt.underlying == "SPY" and opt.units == 300 and opt.iv == put.implied_volatility
    assert opt.strike == float(put.contract.strike) and opt.spot == float(spy.mid)
    g = book_greeks(book, as_of=at.date(), rate=R, betas={"SPY": 1.0})
    assert g.by_strategy["hedge"].delta_dollars < 0 < g.by_strategy["equity"].delta_dollars
    # The model value of the put is near its quoted mark (the sim prices with BSM-like IVs).
    assert float(g.by_strategy["hedge"].market_value) == pytest.approx(
        300 * float(put.mid), rel=0.2
    )
    with pytest.raises(ValueError, match="no strategy tag"):
        build_book(positions, {"SPY": spy}, quotes, {})
