"""The pre-trade check of income orders: pure rules, then the check on the real sim broker."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.daemon import Services
from alchemiser.domain.options import OptionRight, parse_occ
from alchemiser.domain.trading import OrderLeg, OrderRequest, OrderStatus, PositionIntent, Side
from alchemiser.execution.engine import ExecutionPlan, PreTradeCheck, PreTradeRejected
from alchemiser.market.reference import TomlReferenceData
from alchemiser.risk.book import RiskPosition
from alchemiser.risk.greeks import book_greeks
from alchemiser.risk.pretrade import (
    AUDIT_ACTION,
    IncomeRiskCheck,
    ProposedLeg,
    check_cash_secured,
    check_covered,
    check_net_delta,
    check_net_gamma,
    check_position_count,
    check_sector,
    check_trade_size,
    check_vega,
    greek_breaches,
    leg_notional,
)
from alchemiser.settings.risk import RiskSettings
from tests.helpers import make_services

D = Decimal
NAV = D(150_000)
TUESDAY = date(2026, 1, 6)
START = datetime.combine(TUESDAY, time(10, 30), NEW_YORK)
HELD_PUT = "KO260220P00065000"  # sold once in the fixture: the income book's one position
NEW_PUT = "KO260220P00060000"
REFERENCE = TomlReferenceData.parse(
    {"symbols": {"KO": {"sector": "Consumer Staples", "beta": 0.5}, "AAPL": {"beta": 1.2}}}
)


# -- pure rules --------------------------------------------------------------------------------


def leg(symbol: str, contracts: int, spot: str = "67") -> ProposedLeg:
    return ProposedLeg(symbol, parse_occ(symbol), contracts, D(spot))


def test_notional_of_a_sold_put_is_cash_secured_and_of_a_sold_call_the_shares_covered() -> None:
    assert leg_notional(leg("KO260220P00065000", -2)) == D(13_000)
    assert leg_notional(leg("KO260220C00070000", -2, spot="66.95")) == D("13390.00")
    assert leg_notional(leg("KO260220P00065000", 2)) == 0  # a bought leg secures nothing


def test_per_trade_limit_just_inside_and_just_outside() -> None:
    assert check_trade_size(D(7_500), NAV, D(5)) is None
    breach = check_trade_size(D(8_100), NAV, D(5))
    assert breach is not None
    assert breach.message == (
        "per-trade limit: this trade 8,100.00 = 5.40 % of NAV > 5 % of NAV (7,500.00)"
    )
    assert (breach.value, breach.limit_value) == (D(8_100), D(7_500))


def test_position_count_limit() -> None:
    assert check_position_count(10, 10) is None
    breach = check_position_count(11, 10)
    assert breach is not None
    assert breach.message == (
        "income position limit: 11 open income positions after this trade > 10 allowed"
    )


def test_cash_secured_limit() -> None:
    assert check_cash_secured(D(20_000), D(6_500), D(13_500)) is None
    breach = check_cash_secured(D(20_000), D(6_500), D("13500.01"))
    assert breach is not None
    assert breach.message.startswith("cash-secured limit: this put needs 13,500.01 of cash")
    assert "> 13,500.00 free" in breach.message


def test_covered_call_limit() -> None:
    assert check_covered(D(300), D(100), D(200)) is None
    breach = check_covered(D(300), D(100), D(300))
    assert breach is not None
    assert breach.message.startswith("covered-call limit: this call needs 300 shares > 200 free")


def test_sector_limit() -> None:
    assert check_sector("Energy", D(30_000), D(7_500), NAV, D(25)) is None
    breach = check_sector("Energy", D(30_000), D(7_600), NAV, D(25))
    assert breach is not None
    assert breach.message == (
        "sector limit: Energy 37,600.00 after this trade = 25.07 % of NAV > 25 % of NAV (37,500.00)"
    )


@pytest.mark.parametrize("sign", [1, -1])
def test_net_delta_limit_both_ways(sign: int) -> None:
    assert check_net_delta(D(sign * 30_000), NAV, D("0.20")) is None
    breach = check_net_delta(D(sign * 30_015), NAV, D("0.20"))
    assert breach is not None
    assert breach.limit == "net delta limit"
    assert f"{sign * 0.2001:.4f} of NAV, outside ±0.2" in breach.message


def test_net_gamma_limit() -> None:
    assert check_net_gamma(D(-7_500), NAV, D("0.05")) is None
    breach = check_net_gamma(D(-7_515), NAV, D("0.05"))
    assert breach is not None
    assert "net gamma limit" in breach.message and "-0.0501 of NAV, outside ±0.05" in breach.message


def test_vega_limit_is_strict() -> None:
    assert check_vega(D("-2999.99"), NAV, D(2)) is None
    breach = check_vega(D(-3_000), NAV, D(2))
    assert breach is not None
    assert breach.message == (
        "vega limit: income book vega 3,000.00 per vol point = 2.00 % of NAV ≥ "
        "2 % of NAV (3,000.00)"
    )


def test_greek_limits_on_real_book_greeks() -> None:
    """Rule 5 on book_greeks output: limits set just above and just below the book's figures."""
    c = parse_occ("KO260220P00060000")
    short_puts = RiskPosition(
        symbol=c.occ_symbol,
        kind="option",
        qty=-20.0,
        strategy="income",
        underlying="KO",
        spot=66.95,
        strike=float(c.strike),
        expiry=c.expiry,
        right=OptionRight.PUT,
        iv=0.26,
    )
    income = book_greeks([short_puts], as_of=TUESDAY, rate=0.04, betas=REFERENCE).by_strategy[
        "income"
    ]
    delta = income.beta_delta_dollars / NAV
    gamma = income.gamma_dollars / NAV
    vega_pct = abs(income.vega) / NAV * 100
    assert delta > 0 and gamma < 0 and income.vega < 0  # short puts: long delta, short gamma/vega
    tiny = D("0.0001")
    inside = RiskSettings(
        max_abs_net_delta=abs(delta) + tiny,
        max_abs_net_gamma=abs(gamma) + tiny,
        max_vega_pct=vega_pct + tiny,
    )
    assert greek_breaches(income, NAV, inside) == []
    outside = RiskSettings(
        max_abs_net_delta=abs(delta) - tiny,
        max_abs_net_gamma=abs(gamma) - tiny,
        max_vega_pct=vega_pct - tiny,
    )
    assert [b.limit for b in greek_breaches(income, NAV, outside)] == [
        "net delta limit",
        "net gamma limit",
        "vega limit",
    ]


# -- the check on the real sim broker ----------------------------------------------------------


def write_config(tmp_path: Path, *, max_income_positions: int = 10) -> Path:
    """Cash-rich scenario (KO and AAPL, 0.6× gross) and every limit but the tested ones wide."""
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(
        'name = "pretrade"\n[account]\nnav = 150000\noptions_level = 3\n'
        "[book]\ngross_exposure = 0.6\n[book.weights]\nKO = 1\nAAPL = 1\n"
    )
    path = tmp_path / "alchemiser.toml"
    path.write_text(
        f'[sim]\nstart_date = 2026-01-02\nscenario = "{scenario}"\n'
        '[broker]\naccount = "default"\n'
        "[risk]\nmax_trade_pct = 100\nmax_sector_pct = 100\nmax_abs_net_delta = 10\n"
        f"max_abs_net_gamma = 10\nmax_vega_pct = 100\nmax_income_positions = {max_income_positions}\n"
    )
    return path


@dataclasses.dataclass
class Env:
    services: Services
    check: IncomeRiskCheck
    income: set[str]
    config: Path


@pytest.fixture
async def env(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Env]:
    clock = ManualClock(START)
    config = write_config(tmp_path)
    services = await make_services(engine, clock, config)
    # One income position: a KO put sold at the bid (the sim fills it at once).
    [snap] = (await services.broker.get_option_quotes([HELD_PUT])).values()
    order = await services.broker.submit_order(
        OrderRequest(
            client_order_id="held-put",
            qty=D(1),
            limit_price=snap.bid,
            symbol=HELD_PUT,
            side=Side.SELL,
            position_intent=PositionIntent.SELL_TO_OPEN,
        )
    )
    assert order.status is OrderStatus.FILLED
    income = {HELD_PUT}

    async def income_symbols() -> set[str]:
        return set(income)

    check = IncomeRiskCheck(
        services.broker, services.settings, REFERENCE, services.audit, clock, income_symbols
    )
    yield Env(services, check, income, config)


def plan(
    symbol: str,
    qty: int,
    *,
    strategy: str = "income",
    side: Side = Side.SELL,
    intent: PositionIntent = PositionIntent.SELL_TO_OPEN,
) -> ExecutionPlan:
    return ExecutionPlan(
        intent_key=f"{strategy}-{symbol}-{qty}",
        strategy=strategy,
        purpose="open" if intent.value.endswith("open") else "close",
        legs=(OrderLeg(symbol, side, 1, intent),),
        qty=qty,
        direction="credit" if side is Side.SELL else "debit",
    )


async def run(env: Env, p: ExecutionPlan) -> None:
    await env.check.check(p, p.qty, D("0.30"))


async def test_it_is_a_pretrade_check(env: Env) -> None:
    assert isinstance(env.check, PreTradeCheck)


async def test_cash_secured_on_the_sim_broker(env: Env) -> None:
    cash = (await env.services.broker.get_account()).cash
    free = cash - D(6_500)  # the held KO 65 put reserves 6,500
    fits = int(free // D(6_000))  # contracts of the KO 60 put the free cash secures
    await run(env, plan(NEW_PUT, fits))
    with pytest.raises(PreTradeRejected) as exc:
        await run(env, plan(NEW_PUT, fits + 1))
    needed = D(6_000) * (fits + 1)
    assert exc.value.reason == (
        f"cash-secured limit: this put needs {needed:,.2f} of cash > {free:,.2f} free "
        f"(cash {cash:,.2f} − 6,500.00 reserved by open short income puts)"
    )
    [entry] = await env.services.audit.entries(AUDIT_ACTION)
    assert entry.related_ids == {"intent_key": f"income-{NEW_PUT}-{fits + 1}"}
    [breach] = entry.details["breaches"]
    assert breach["limit"] == "cash-secured limit"
    assert D(breach["value"]) == needed and D(breach["limit_value"]) == free
    # A short put the income module does not own (a hedge leg) reserves nothing.
    env.income.clear()
    await run(env, plan(NEW_PUT, fits + 1))


async def test_position_count_and_a_settings_edit_on_the_sim_broker(env: Env) -> None:
    live = env.services.settings
    env.config.write_text(env.config.read_text().replace("positions = 10", "positions = 2"))
    assert live.reload().applied
    await run(env, plan(NEW_PUT, 1))  # 1 held + 1 new = 2 ≤ 2
    env.config.write_text(env.config.read_text().replace("positions = 2", "positions = 1"))
    assert live.reload().applied
    with pytest.raises(PreTradeRejected) as exc:
        await run(env, plan(NEW_PUT, 1))
    assert exc.value.reason == (
        "income position limit: 2 open income positions after this trade > 1 allowed"
    )
    await run(env, plan(HELD_PUT, 1))  # adding to the held position opens no new one


async def test_closing_orders_and_hedge_plans_always_pass(env: Env) -> None:
    env.config.write_text(env.config.read_text().replace("positions = 10", "positions = 0"))
    assert env.services.settings.reload().applied
    with pytest.raises(PreTradeRejected):
        await run(env, plan(NEW_PUT, 1))
    closing = plan(HELD_PUT, 1, side=Side.BUY, intent=PositionIntent.BUY_TO_CLOSE)
    await run(env, closing)
    # A hedge is not the income book's business, whatever its size.
    await run(
        env, plan(NEW_PUT, 1000, strategy="hedge", side=Side.BUY, intent=PositionIntent.BUY_TO_OPEN)
    )
    assert len(await env.services.audit.entries(AUDIT_ACTION)) == 1


async def test_per_trade_limit_on_the_sim_broker_reads_settings_each_call(env: Env) -> None:
    await run(env, plan(NEW_PUT, 2))  # 12,000 = 8 % of NAV, limit 100 %
    env.config.write_text(
        env.config.read_text().replace("max_trade_pct = 100", "max_trade_pct = 5")
    )
    assert env.services.settings.reload().applied
    with pytest.raises(PreTradeRejected) as exc:
        await run(env, plan(NEW_PUT, 2))
    assert exc.value.reason.startswith("per-trade limit: this trade 12,000.00 = ")
    assert "> 5 % of NAV (" in exc.value.reason


async def test_covered_call_on_the_sim_broker(env: Env) -> None:
    call = "KO260220C00070000"
    [ko] = [p for p in await env.services.broker.get_positions() if p.symbol == "KO"]
    fits = int(ko.qty // 100)
    await run(env, plan(call, fits))
    with pytest.raises(PreTradeRejected) as exc:
        await run(env, plan(call, fits + 1))
    assert exc.value.reason.startswith(
        f"covered-call limit: this call needs {(fits + 1) * 100} shares > {ko.qty} free "
        f"(held {ko.qty} − 0 covered by short income calls)"
    )


async def test_a_covered_call_adds_no_sector_exposure_but_a_put_does(env: Env) -> None:
    # KO's sector (Consumer Staples) already holds about 30 % of NAV in KO shares.
    env.config.write_text(
        env.config.read_text().replace("max_sector_pct = 100", "max_sector_pct = 20")
    )
    assert env.services.settings.reload().applied
    await run(env, plan("KO260220C00070000", 1))  # caps shares already held: passes
    with pytest.raises(PreTradeRejected) as exc:
        await run(env, plan(NEW_PUT, 1))
    assert exc.value.reason.startswith("sector limit: Consumer Staples ")


async def test_usage_reports_each_limit_as_a_fraction(env: Env) -> None:
    used = await env.check.usage(plan(NEW_PUT, 1), 1)
    nav = (await env.services.broker.get_account()).equity
    # Per trade: 6,000 of NAV × 100 %.
    assert used["per_trade"] == (D(6_000) / nav).quantize(D("0.0001"))
    assert used["positions"] == D("0.2")  # 2 of 10
    assert set(used) >= {"cash_secured", "net_delta", "net_gamma", "vega"}
    assert any(k.startswith("sector:") for k in used)
    closing = plan(HELD_PUT, 1, side=Side.BUY, intent=PositionIntent.BUY_TO_CLOSE)
    assert await env.check.usage(closing, 1) == {}
