"""Income shorts at the broker: reconciliation leaves them to the income module, and the
income manager settles expiry and assignment from the broker's activities (the wheel).

Real services on the simulated broker (wheel scenario): the puts are sold through the
``IncomeTrader`` (the shared order life cycle and pre-trade checks), the sim settles them
at their expiry close, ``IncomeManager.settle`` explains what is gone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.broker.reconcile import Reconciler
from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.daemon import Services
from alchemiser.domain.options import parse_occ
from alchemiser.domain.trading import ActivityType, OptionSnapshot
from alchemiser.income.manager import IncomeManager
from alchemiser.income.trader import IncomeTrader, Proposal, min_credit
from alchemiser.store.income import ASSIGNED, EXPIRED, OPEN, SHARES, IncomePositionView
from alchemiser.store.orders import IntentStatus
from alchemiser.wiring import build_reconciler
from tests.helpers import make_services, run_on_manual_clock

START = date(2026, 1, 2)
SCENARIO = Path(__file__).resolve().parents[2] / "config" / "sim_scenario_wheel.toml"
UNDERLYING = "KO"
TICK = Decimal("0.05")
WATCH = ["KO", "PG", "JPM", "XOM", "NVDA"]
WATCH_TOML = "[" + ", ".join(f'"{w}"' for w in WATCH) + "]"
CONTRACTS = 2


async def wheel_services(engine: AsyncEngine, tmp_path: Path) -> Services:
    config = tmp_path / "alchemiser.toml"
    config.write_text(
        f'[sim]\nstart_date = {START.isoformat()}\nscenario = "{SCENARIO}"\n\n'
        f'[income]\napproval = "manual"\nwatch_list = {WATCH_TOML}\n\n'
        # The sim matches orders once a minute: polling every 2 s only costs real time.
        "[income.orders]\npoll_interval_seconds = 30\n"
    )
    clock = ManualClock(datetime.combine(START, time(10, 30), NEW_YORK))
    return await make_services(engine, clock, config)


def reconciler(services: Services, *, with_income: bool = True) -> Reconciler:
    return build_reconciler(
        services.broker,
        services.sessions,
        services.clock,
        services.calendar,
        services.audit,
        services.hedging.store,
        services.income.store.account,
        income=services.income.store if with_income else None,
    )


async def near_puts(services: Services, underlying: str) -> list[OptionSnapshot]:
    """The underlying's puts expiring within two weeks that the order life cycle can sell:
    a mid of 1+ and a bid at or above the lowest limit it may step to (mid less
    income.orders.max_slippage_pct, on $0.05 ticks)."""
    chain = await services.broker.get_option_chain(underlying, expiry_to=START + timedelta(days=14))
    slippage = services.settings.current.income.orders.max_slippage_pct

    def lowest_limit(s: OptionSnapshot) -> Decimal:
        floor = s.mid * (1 - slippage / 100)
        return (floor / TICK).to_integral_value(rounding=ROUND_CEILING) * TICK

    return sorted(
        (
            s
            for s in chain
            if not s.contract.right.is_call
            and s.mid >= 1
            and s.bid >= lowest_limit(s)
            and s.underlying_price is not None
        ),
        key=lambda s: (s.contract.expiry, s.contract.strike),
    )


async def deep_itm_puts(services: Services) -> list[OptionSnapshot]:
    """Puts 10 %+ in the money: the sim assigns them at expiry unless the stock rallies."""
    return [
        s
        for s in await near_puts(services, UNDERLYING)
        if s.contract.strike >= s.underlying_price * Decimal("1.10")  # type: ignore[operator]
    ]


async def far_otm_puts(services: Services) -> list[OptionSnapshot]:
    """The watch list's puts at least 5 % out of the money, farthest first."""
    puts = [
        s
        for underlying in WATCH
        for s in await near_puts(services, underlying)
        if s.contract.strike <= s.underlying_price * Decimal("0.95")  # type: ignore[operator]
    ]
    return sorted(puts, key=lambda s: s.contract.strike / s.underlying_price)  # type: ignore[operator]


async def sell_one(services: Services, snaps: list[OptionSnapshot], key: str) -> IncomePositionView:
    """Sell the first of ``snaps`` whose order fills (quotes move; a few tries at most)."""
    assert snaps, f"no sellable put for {key}"
    for attempt, snap in enumerate(snaps[:3]):
        position = await sell(services, snap, f"{key}#{attempt}")
        if position is not None:
            return position
    raise AssertionError(f"none of {[s.contract.occ_symbol for s in snaps[:3]]} filled")


async def sell(services: Services, snap: OptionSnapshot, key: str) -> IncomePositionView | None:
    symbol = snap.contract.occ_symbol
    proposal = Proposal(
        kind="cash_secured_put",
        symbol=symbol,
        contracts=CONTRACTS,
        min_credit=min_credit(snap.mid, Decimal(10)),  # a test sale: the floor is loose
        intent_key=key,
    )
    clock = services.clock
    assert isinstance(clock, ManualClock)
    result = await run_on_manual_clock(clock, IncomeTrader(services.income).open(proposal))
    position = await services.income.store.get(proposal.position_id)
    if result.status is not IntentStatus.FILLED:
        assert position is None or position.contracts == result.filled_qty
        return None
    assert position is not None and position.contracts == CONTRACTS and position.state == OPEN
    return position


async def test_reconciliation_leaves_open_income_shorts_to_the_income_module(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    services = await wheel_services(engine, tmp_path)
    position = await sell_one(services, await deep_itm_puts(services), "test-income-short")
    held = {p.symbol: p.qty for p in await services.broker.get_positions()}
    assert held[position.symbol] == -CONTRACTS

    report = await reconciler(services).run()
    assert report.adopted_externals == [] and report.mismatches == []
    assert not report.halted and not report.trading_blocked and report.clean
    # The income position is untouched, and still the income module's.
    assert await services.income.store.expected_contracts() == {position.symbol: -CONTRACTS}
    assert await services.hedging.store.active() == []

    # Its expiry passes: the short is gone at the broker before the income job settles it.
    # Not a mismatch: settling it (expiry, assignment) is the income module's job.
    clock = services.clock
    assert isinstance(clock, ManualClock)
    await clock.advance_to(services.calendar.session_close(position.expiry) + timedelta(minutes=5))
    assert position.symbol not in {p.symbol for p in await services.broker.get_positions()}
    after_expiry = await reconciler(services).run()
    assert after_expiry.adopted_externals == [] and after_expiry.mismatches == []
    assert not after_expiry.halted and after_expiry.clean
    assert (await services.income.store.get(position.id)).state == OPEN  # type: ignore[union-attr]


async def test_without_the_income_store_an_income_short_looks_external(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """The contrast that gives the test above its meaning."""
    services = await wheel_services(engine, tmp_path)
    position = await sell_one(services, await deep_itm_puts(services), "test-income-short")
    blind = await reconciler(services, with_income=False).run()
    assert [s for s, _, _ in blind.adopted_externals] == [position.symbol]


async def test_an_assigned_put_starts_a_wheel_at_strike_less_premium_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    services = await wheel_services(engine, tmp_path)
    clock = services.clock
    assert isinstance(clock, ManualClock)
    put = await sell_one(services, await deep_itm_puts(services), "test-deep-itm-put")
    otm = await sell_one(services, await far_otm_puts(services), "test-far-otm-put")
    shares_before = {p.symbol: p.qty for p in await services.broker.get_positions()}

    manager = IncomeManager(services.income, IncomeTrader(services.income))
    assert await manager.settle() == []  # both still held: nothing to explain

    last_expiry = max(put.expiry, otm.expiry)
    await clock.advance_to(services.calendar.session_close(last_expiry) + timedelta(minutes=5))
    activities = await services.broker.get_activities(
        put.opened_at, (ActivityType.OPASN, ActivityType.OPEXP)
    )
    kinds = {a.symbol: a.activity_type for a in activities}
    # The sim's verdict (the underlying's close at expiry against each strike) is the premise.
    assert kinds.get(put.symbol) is ActivityType.OPASN, activities
    assert kinds.get(otm.symbol) is ActivityType.OPEXP, activities

    settled = await manager.settle()
    assert sorted(s["outcome"] for s in settled) == ["assigned", "expired"]
    store = services.income.store
    assigned = await store.get(put.id)
    assert assigned is not None
    assert (assigned.state, assigned.contracts, assigned.close_reason) == (ASSIGNED, 0, "assigned")
    # The option's own P&L is the credit kept; the shares carry the rest.
    assert assigned.realized_pnl == assigned.credit == put.credit
    expired = await store.get(otm.id)
    assert expired is not None and expired.state == EXPIRED
    assert expired.realized_pnl == otm.credit > 0

    [wheel] = await store.wheels()
    assert wheel.state == SHARES and wheel.underlying == parse_occ(put.symbol).root
    assert wheel.put_position_id == put.id
    assert wheel.shares == 100 * put.contracts_opened
    assert wheel.cost_basis == put.strike - put.credit_per_share
    assert wheel.cost_basis < put.strike
    assert wheel.premium == put.credit
    # The broker agrees: the assignment bought the wheel's shares at the strike.
    shares_after = {p.symbol: p.qty for p in await services.broker.get_positions()}
    assert shares_after[UNDERLYING] - shares_before.get(UNDERLYING, Decimal(0)) == wheel.shares
    assert put.symbol not in shares_after and otm.symbol not in shares_after
    assert await store.open_positions() == []

    # Settling again changes nothing: no second event, no second wheel.
    events = await store.events()
    assert await manager.settle() == []
    assert await store.events() == events
    assert await store.wheels(state=None) == [wheel]
    assert [e.event for e in events].count("WHEEL_STARTED") == 1
    assert [e.event for e in events].count(ASSIGNED) == 1

    # And reconciliation finds nothing wrong with the settled book.
    report = await reconciler(services).run()
    assert report.clean and not report.halted and report.adopted_externals == []


async def test_a_call_assigned_on_wheel_shares_ends_the_cycle_with_its_pnl(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    services = await wheel_services(engine, tmp_path)
    clock = services.clock
    assert isinstance(clock, ManualClock)
    put = await sell_one(services, await deep_itm_puts(services), "test-wheel-put")
    manager = IncomeManager(services.income, IncomeTrader(services.income))
    await clock.advance_to(services.calendar.session_close(put.expiry) + timedelta(minutes=5))
    await manager.settle()
    [wheel] = await services.income.store.wheels()

    # Next session: a call deep in the money on the wheel's shares, at the next expiry.
    day = services.calendar.next_session(put.expiry)
    await clock.advance_to(datetime.combine(day, time(10, 30), NEW_YORK))
    chain = await services.broker.get_option_chain(UNDERLYING, expiry_to=day + timedelta(days=40))
    calls = sorted(
        (
            s
            for s in chain
            if s.contract.right.is_call
            and s.underlying_price is not None
            and s.contract.strike <= s.underlying_price * Decimal("0.90")
            and s.bid > 0
        ),
        key=lambda s: (s.contract.expiry, -s.contract.strike),
    )
    assert calls, "no deep in-the-money call to sell"
    call: IncomePositionView | None = None
    for attempt, snap in enumerate(calls[:3]):
        proposal = Proposal(
            kind="covered_call",
            symbol=snap.contract.occ_symbol,
            contracts=wheel.shares // 100,
            min_credit=min_credit(snap.mid, Decimal(10)),
            intent_key=f"test-wheel-call#{attempt}",
            wheel_id=wheel.id,
        )
        result = await run_on_manual_clock(clock, IncomeTrader(services.income).open(proposal))
        if result.status is IntentStatus.FILLED:
            call = await services.income.store.get(proposal.position_id)
            break
    assert call is not None and call.wheel_id == wheel.id

    await clock.advance_to(services.calendar.session_close(call.expiry) + timedelta(minutes=5))
    settled = await manager.settle()
    assert [s["outcome"] for s in settled] == ["called_away"]
    [done] = await services.income.store.wheels(state=None)
    assert done.state == "DONE" and done.ended_at is not None
    # Bought at the put's strike, sold at the call's, plus every premium of the cycle.
    premium = put.credit + call.credit
    assert done.premium == premium
    assert done.realized_pnl == (call.strike - put.strike) * wheel.shares + premium
    events = [e.event for e in await services.income.store.events()]
    assert events.count("WHEEL_ENDED") == 1
    assert await manager.settle() == []  # once
