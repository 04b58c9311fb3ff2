"""Scenario repricing: shocked model value minus current model value, never intrinsic alone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from alchemiser.domain.options import OptionContract, OptionRight
from alchemiser.domain.pricing import bsm_price
from alchemiser.hedging.payoff import (
    HedgeHolding,
    HedgeLeg,
    current_value,
    hedge_book_payoff,
    scenario_moves,
    scenario_payoff,
    scenario_value,
    years_to_expiry,
)
from alchemiser.settings.hedging import HedgingSettings
from tests.hedging.helpers import NOW, RATE, TODAY

D = Decimal
EXPIRY = TODAY + timedelta(days=90)


def qqq_put(strike: str, contracts: int = 1, **kw: object) -> HedgeLeg:
    contract = OptionContract("QQQ", EXPIRY, OptionRight.PUT, D(strike))
    return HedgeLeg(contract, contracts, **kw)  # type: ignore[arg-type]


def bsm(
    spot: float, strike: float, vol: float, expiry: date = EXPIRY, now: datetime = NOW
) -> float:
    return float(bsm_price(spot, strike, years_to_expiry(expiry, now), RATE, 0.0, vol, False))


def test_put_payoff_is_bsm_repricing_at_the_shocked_inputs_not_intrinsic() -> None:
    leg = qqq_put("450", 2, iv=0.20)
    payoff = scenario_payoff([leg], D(500), NOW, RATE, D(-20), D(10))
    shocked = bsm(400.0, 450.0, 0.30)
    current = bsm(500.0, 450.0, 0.20)
    assert float(payoff) == pytest.approx((shocked - current) * 200, abs=0.01)
    intrinsic = (450 - 400) * 200
    assert abs(float(payoff) - (intrinsic - current * 200)) > 100  # time value and vol count
    value = scenario_value([leg], D(500), NOW, RATE, D(-20), D(10))
    assert float(value) == pytest.approx(shocked * 200, abs=0.01)


def test_an_out_of_the_money_put_gains_in_the_scenario_where_intrinsic_says_zero() -> None:
    leg = qqq_put("380", 1, iv=0.20)  # still 5 % out of the money at -20 %
    payoff = scenario_payoff([leg], D(500), NOW, RATE, D(-20), D(10))
    assert payoff > D(500)


def test_zero_shock_pays_nothing() -> None:
    leg = qqq_put("450", 3, iv=0.2)
    assert scenario_payoff([leg], D(500), NOW, RATE, D(0), D(0)) == D("0.00")
    assert scenario_value([leg], D(500), NOW, RATE, D(0), D(0)) == current_value(
        [leg], D(500), NOW, RATE
    )


def test_spread_payoff_is_long_minus_short_and_within_the_width() -> None:
    long, short = qqq_put("470", 1, iv=0.22), qqq_put("420", -1, iv=0.26)
    payoff = scenario_payoff([long, short], D(500), NOW, RATE, D(-10), D(5))
    expected = (bsm(450, 470, 0.27) - bsm(500, 470, 0.22)) - (
        bsm(450, 420, 0.31) - bsm(500, 420, 0.26)
    )
    assert float(payoff) == pytest.approx(expected * 100, abs=0.01)
    value = scenario_value([long, short], D(500), NOW, RATE, D(-40), D(20))
    assert D(0) < value < D(50 * 100)


def test_iv_is_implied_from_the_mark_when_missing() -> None:
    mark = D(repr(bsm(500, 450, 0.25)))
    by_mark = scenario_payoff([qqq_put("450", mark=mark)], D(500), NOW, RATE, D(-20), D(10))
    by_iv = scenario_payoff([qqq_put("450", iv=0.25)], D(500), NOW, RATE, D(-20), D(10))
    assert abs(by_mark - by_iv) <= D("0.02")


def test_a_leg_without_iv_or_usable_mark_is_an_error() -> None:
    with pytest.raises(ValueError, match="no implied volatility and no mark"):
        scenario_payoff([qqq_put("450")], D(500), NOW, RATE, D(-20), D(10))
    with pytest.raises(ValueError, match="outside model bounds"):
        scenario_payoff([qqq_put("450", mark=D("500"))], D(500), NOW, RATE, D(-20), D(10))
    with pytest.raises(ValueError, match="spot"):
        scenario_payoff([qqq_put("450", iv=0.2)], D(0), NOW, RATE, D(-20), D(10))


def test_an_expired_leg_is_worth_its_intrinsic_value() -> None:
    leg = qqq_put("450", 1, iv=0.2)
    after = datetime.combine(EXPIRY + timedelta(days=1), NOW.timetz())
    assert scenario_value([leg], D(500), after, RATE, D(-20), D(10)) == D("5000.00")
    assert current_value([leg], D(500), after, RATE) == D("0.00")


def holding(
    hedge_id: str, underlying: str, *legs: HedgeLeg, template: str = "tail_first"
) -> HedgeHolding:
    return HedgeHolding(hedge_id, template, underlying, legs, NOW)  # type: ignore[arg-type]


def test_book_payoff_sums_holdings_times_contracts() -> None:
    a = holding("a", "QQQ", qqq_put("450", 2, iv=0.2))
    b = holding("b", "QQQ", qqq_put("420", 1, iv=0.24))
    total = hedge_book_payoff([a, b], {"QQQ": D(500)}, NOW, RATE, D(-20), D(10))
    parts = [scenario_payoff(h.legs, D(500), NOW, RATE, D(-20), D(10)) for h in (a, b)]
    assert abs(total - sum(parts)) <= D("0.01")
    assert hedge_book_payoff([], {}, NOW, RATE, D(-20), D(10)) == D("0.00")


def test_book_payoff_scales_the_move_across_underlyings() -> None:
    betas = HedgingSettings().underlying.static_betas
    moves = scenario_moves("QQQ", D(-20), betas, ["QQQ", "SPY"])
    assert moves["QQQ"] == D(-20)
    assert moves["SPY"] == D(-20) * D("1.00") / D("1.15")
    spy_leg = HedgeLeg(OptionContract("SPY", EXPIRY, OptionRight.PUT, D(540)), 1, iv=0.18)
    book = [holding("q", "QQQ", qqq_put("450", 1, iv=0.2)), holding("s", "SPY", spy_leg)]
    total = hedge_book_payoff(book, {"QQQ": D(500), "SPY": D(600)}, NOW, RATE, moves, D(10))
    spy_part = scenario_payoff([spy_leg], D(600), NOW, RATE, moves["SPY"], D(10))
    qqq_part = scenario_payoff(book[0].legs, D(500), NOW, RATE, D(-20), D(10))
    assert abs(total - spy_part - qqq_part) <= D("0.01")
    with pytest.raises(ValueError, match="no spot for SPY"):
        hedge_book_payoff(book, {"QQQ": D(500)}, NOW, RATE, D(-20), D(10))
    with pytest.raises(ValueError, match="no scenario move for SPY"):
        hedge_book_payoff(book, {"QQQ": D(500), "SPY": D(600)}, NOW, RATE, {"QQQ": D(-20)}, D(10))
    with pytest.raises(ValueError, match="no beta for DIA"):
        scenario_moves("QQQ", D(-20), betas, ["DIA"])


def test_holding_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="one long put, it has a short leg"):
        holding("x", "QQQ", qqq_put("450", 1), qqq_put("400", -1))
    with pytest.raises(ValueError, match="exactly one short leg"):
        holding("x", "QQQ", qqq_put("450", 1), template="smoothing")
    other = HedgeLeg(OptionContract("QQQ", EXPIRY + timedelta(days=7), OptionRight.PUT, D(400)), -1)
    with pytest.raises(ValueError, match="distinct, with one expiry"):
        holding("x", "QQQ", qqq_put("450", 1), other, template="smoothing")
    with pytest.raises(ValueError, match="not on SPY"):
        holding("x", "SPY", qqq_put("450", 1))
    with pytest.raises(ValueError, match="non-zero"):
        qqq_put("450", 0)
    spread = holding("s", "QQQ", qqq_put("470", 2), qqq_put("420", -2), template="smoothing")
    assert (spread.contracts, spread.width, spread.expiry) == (2, D(50), EXPIRY)
    assert HedgeLeg.from_occ(spread.long_leg.symbol, 2).contract == spread.long_leg.contract
