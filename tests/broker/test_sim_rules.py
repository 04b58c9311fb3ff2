"""The pure broker rules: ticks, options levels, position accounting, Reg-T-like margin."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alchemiser.broker.sim_rules import (
    Holding,
    LegChange,
    OptionsLevel,
    RuleViolation,
    apply_trade,
    check_buying_power,
    check_options_level,
    check_price_increment,
    early_assignment_candidate,
    expires_in_the_money,
    margin_summary,
    required_options_level,
    stock_tick,
)
from alchemiser.domain.options import OptionContract, OptionRight
from alchemiser.domain.ticks import option_tick

D = Decimal
EXPIRY = date(2026, 3, 20)


def put(strike: str, root: str = "AAPL", expiry: date = EXPIRY) -> OptionContract:
    return OptionContract(root, expiry, OptionRight.PUT, D(strike))


def call(strike: str, root: str = "AAPL", expiry: date = EXPIRY) -> OptionContract:
    return OptionContract(root, expiry, OptionRight.CALL, D(strike))


def opt(contract: OptionContract, qty: int, mark: str) -> Holding:
    return Holding(contract.occ_symbol, D(qty), D(mark), contract)


# -- price increments ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("underlying", "price", "penny", "tick"),
    [
        ("SPY", "0.50", False, "0.01"),
        ("SPY", "12.00", False, "0.01"),
        ("QQQ", "7.31", True, "0.01"),
        ("IWM", "3.00", False, "0.01"),
        ("AAPL", "2.99", True, "0.01"),
        ("AAPL", "3.00", True, "0.05"),
        ("KO", "2.95", False, "0.05"),
        ("KO", "3.00", False, "0.10"),
    ],
)
def test_option_tick_follows_the_penny_interval_table(
    underlying: str, price: str, penny: bool, tick: str
) -> None:
    assert option_tick(underlying, D(price), penny_pilot=penny) == D(tick)


def test_stock_tick_is_a_cent_above_a_dollar_and_sub_penny_below() -> None:
    assert stock_tick(D("10")) == D("0.01")
    assert stock_tick(D("1")) == D("0.01")
    assert stock_tick(D("0.5")) == D("0.0001")


def test_off_increment_price_names_the_rule_and_the_values() -> None:
    check_price_increment(D("3.05"), D("0.05"), "AAPL put")
    with pytest.raises(RuleViolation) as err:
        check_price_increment(D("3.07"), D("0.05"), "AAPL put")
    assert err.value.rule == "price_increment"
    assert "3.07" in str(err.value) and "0.05" in str(err.value)


# -- options levels -----------------------------------------------------------------


def test_options_levels_as_alpaca() -> None:
    buy_open = [LegChange("X", D(0), D(1))]
    buy_close = [LegChange("X", D(-2), D(1))]
    sell_open = [LegChange("X", D(0), D(-1))]
    assert required_options_level(buy_open, multi_leg=False) is OptionsLevel.LONG
    assert required_options_level(buy_close, multi_leg=False) is OptionsLevel.COVERED
    assert required_options_level(sell_open, multi_leg=False) is OptionsLevel.COVERED
    assert required_options_level(sell_open, multi_leg=True) is OptionsLevel.SPREADS
    check_options_level(3, buy_open, multi_leg=True)
    with pytest.raises(RuleViolation) as err:
        check_options_level(2, buy_open, multi_leg=True)
    assert err.value.rule == "options_level"
    assert "level 3" in str(err.value) and "level 2" in str(err.value)
    with pytest.raises(RuleViolation, match="level 2"):
        check_options_level(1, buy_open, multi_leg=False)


# -- positions ------------------------------------------------------------------------


def test_apply_trade_averages_realises_and_flips() -> None:
    opened = apply_trade(D(0), D(0), D(10), D(100))
    assert (opened.qty, opened.avg_entry_price, opened.realized_pnl) == (D(10), D(100), D(0))
    added = apply_trade(D(10), D(100), D(10), D(110))
    assert added.avg_entry_price == D(105)
    reduced = apply_trade(D(20), D(105), D(-5), D(115))
    assert (reduced.qty, reduced.avg_entry_price, reduced.realized_pnl) == (D(15), D(105), D(50))
    flipped = apply_trade(D(15), D(105), D(-20), D(100))
    assert (flipped.qty, flipped.avg_entry_price, flipped.realized_pnl) == (D(-5), D(100), D(-75))
    short_cover = apply_trade(D(-2), D("3.00"), D(2), D("1.00"), multiplier=100)
    assert short_cover.qty == 0 and short_cover.realized_pnl == D(400)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-50, max_value=50).filter(bool),
            st.integers(min_value=1, max_value=10_000),
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=1, max_value=10_000),
)
def test_realised_pnl_of_a_round_trip_equals_its_cash_flow(
    trades: list[tuple[int, int]], close_cents: int
) -> None:
    qty, avg, realized, cash = D(0), D(0), D(0), D(0)
    for delta, cents in [*trades, (None, close_cents)]:
        step = -qty if delta is None else D(delta)
        price = D(cents) / 100
        result = apply_trade(qty, avg, step, price)
        qty, avg = result.qty, result.avg_entry_price
        realized += result.realized_pnl
        cash -= step * price
    assert qty == 0
    assert abs(realized - cash) < D("1e-12")


# -- expiry and assignment -------------------------------------------------------------


def test_exercise_by_exception_needs_a_cent_in_the_money() -> None:
    assert expires_in_the_money(OptionRight.PUT, D(100), D("99.99"))
    assert not expires_in_the_money(OptionRight.PUT, D(100), D("99.995"))
    assert not expires_in_the_money(OptionRight.PUT, D(100), D(100))
    assert expires_in_the_money(OptionRight.CALL, D(100), D("100.01"))


def test_early_assignment_needs_intrinsic_value_and_little_time_value() -> None:
    deep = early_assignment_candidate(OptionRight.PUT, D(100), D(80), D("20.02"), D("0.05"))
    rich = early_assignment_candidate(OptionRight.PUT, D(100), D(80), D("21.00"), D("0.05"))
    otm = early_assignment_candidate(OptionRight.CALL, D(100), D(80), D("0.01"), D("0.05"))
    assert deep and not rich and not otm


# -- margin ------------------------------------------------------------------------------


def test_a_2x_stock_book_uses_exactly_the_reg_t_initial_margin() -> None:
    book = [Holding("AAPL", D(1000), D(200)), Holding("MSFT", D(250), D(400))]
    m = margin_summary(D(-150_000), book, spreads_allowed=True)
    assert m.equity == D(150_000)
    assert m.long_market_value == D(300_000)
    assert m.initial_requirement == D(150_000)
    assert m.maintenance_requirement == D(75_000)
    assert m.excess == 0 and m.buying_power() == 0 and m.options_buying_power() == 0


def test_buying_power_is_twice_the_excess_and_options_buying_power_once() -> None:
    m = margin_summary(D(-100_000), [Holding("AAPL", D(1000), D(200))], spreads_allowed=True)
    assert m.excess == D(0)  # equity 100k, initial 100k
    m = margin_summary(D(-90_000), [Holding("AAPL", D(1000), D(200))], spreads_allowed=True)
    assert m.excess == D(10_000)
    assert m.buying_power() == D(20_000)
    assert m.options_buying_power() == D(10_000)
    assert m.buying_power(reserved=D(4_000)) == D(12_000)


def test_short_stock_margin() -> None:
    m = margin_summary(D(30_000), [Holding("AAPL", D(-100), D(200))], spreads_allowed=True)
    assert m.equity == D(10_000)
    assert m.initial_requirement == D(10_000)
    assert m.maintenance_requirement == D(6_000)


def test_long_options_are_paid_in_full() -> None:
    m = margin_summary(D(10_000), [opt(put("100"), 2, "1.50")], spreads_allowed=True)
    assert m.equity == D(10_300)
    assert m.initial_requirement == D(300)
    assert m.excess == D(10_000)


def test_a_short_put_is_cash_secured_net_of_its_premium() -> None:
    m = margin_summary(D(10_200), [opt(put("100"), -1, "2.00")], spreads_allowed=True)
    assert m.equity == D(10_000)
    assert m.initial_requirement == D(9_800)  # (strike − mark) × 100
    assert m.excess == D(200)


def test_a_covered_call_needs_nothing_beyond_the_shares() -> None:
    shares = Holding("AAPL", D(100), D(200))
    m = margin_summary(D(0), [shares, opt(call("210"), -1, "3.00")], spreads_allowed=True)
    assert m.initial_requirement == D(10_000)
    assert m.uncovered_calls == 0


def test_an_uncovered_call_is_flagged_and_margined_as_naked() -> None:
    m = margin_summary(
        D(50_000),
        [Holding("AAPL", D(50), D(200)), opt(call("210"), -1, "3.00")],
        spreads_allowed=True,
        underlying_prices={"AAPL": D(200)},
    )
    assert m.uncovered_calls == 1
    # stock 50 % of 10,000 + (max(20 % × 200 − 10, 10 % × 200) + 3) × 100
    assert m.initial_requirement == D(5_000) + D(3_300)


def test_a_credit_spread_requires_its_max_loss_at_level_3_only() -> None:
    short, long = opt(put("100"), -1, "3.00"), opt(put("95"), 1, "1.00")
    spread = margin_summary(D(10_000), [short, long], spreads_allowed=True)
    assert spread.initial_requirement == D(300)  # width 5 − credit 2, × 100
    legged = margin_summary(D(10_000), [short, long], spreads_allowed=False)
    assert legged.initial_requirement == D(100) + D(9_700)
    call_spread = margin_summary(
        D(10_000), [opt(call("100"), -1, "3.00"), opt(call("105"), 1, "1.00")], spreads_allowed=True
    )
    assert call_spread.initial_requirement == D(300)
    assert call_spread.uncovered_calls == 0


def test_a_long_that_expires_first_does_not_cover_a_short() -> None:
    short = opt(call("100", expiry=date(2026, 6, 19)), -1, "5.00")
    long = opt(call("105", expiry=date(2026, 3, 20)), 1, "1.00")
    m = margin_summary(D(10_000), [short, long], spreads_allowed=True)
    assert m.uncovered_calls == 1


def test_buying_power_check_names_the_rule_and_allows_risk_reduction() -> None:
    before = margin_summary(D(-90_000), [Holding("AAPL", D(1000), D(200))], spreads_allowed=True)
    ok = margin_summary(D(-110_000), [Holding("AAPL", D(1100), D(200))], spreads_allowed=True)
    check_buying_power(before, ok)  # 20,000 of stock on 10,000 excess: exactly allowed
    too_much = margin_summary(D(-110_200), [Holding("AAPL", D(1101), D(200))], spreads_allowed=True)
    with pytest.raises(RuleViolation) as err:
        check_buying_power(before, too_much)
    assert err.value.rule == "buying_power"
    assert "10100.00" in str(err.value) and "10000.00" in str(err.value)
    with pytest.raises(RuleViolation):
        check_buying_power(before, ok, reserved=D(1))
    # In a deficit, selling stock raises the excess and is always allowed.
    deficit = margin_summary(D(-160_000), [Holding("AAPL", D(1000), D(200))], spreads_allowed=True)
    sold = margin_summary(D(-140_000), [Holding("AAPL", D(900), D(200))], spreads_allowed=True)
    assert deficit.excess < 0 and sold.excess < 0
    check_buying_power(deficit, sold)
