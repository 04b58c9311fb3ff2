"""The hedge executor: consumes evaluations from the queue and buys what they decided.

Every order goes through the shared order life cycle (intent written first,
deterministic client order id, re-pricing within the price the decision was
sized at). Fills update the hedge position and the premium spend ledger in the
fill's own transaction. Before every opening order the caps are checked again
against the ledger and the NAV of the moment, so no sequence of evaluations,
redeliveries or concurrent plans can spend past them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from alchemiser.broker.base import Broker, BrokerError
from alchemiser.clock import NEW_YORK, Clock
from alchemiser.domain.options import parse_occ
from alchemiser.domain.trading import OrderLeg, PositionIntent, Side
from alchemiser.execution.engine import ExecutionPlan, ExecutionResult, PreTradeRejected
from alchemiser.hedging.context import EXECUTION_QUEUE, PLAN_QUEUE, ROLL_QUEUE, HedgingContext
from alchemiser.hedging.events import (
    Recommendation,
    all_hedges_completed,
    hedge_executed,
)
from alchemiser.settings import LiveSettings
from alchemiser.store.hedges import HedgeStore, NewHedge
from alchemiser.store.orders import FillEvent

log = structlog.stdlib.get_logger("alchemiser.hedging")

OPENING_PURPOSES = ("open", "roll_open")


def hedge_id_for(intent_key: str) -> str:
    return "hedge-" + hashlib.sha256(intent_key.encode()).hexdigest()[:16]


class HedgeCapCheck:
    """The pre-trade check of every hedge order: premium caps against the ledger, live."""

    def __init__(
        self, broker: Broker, store: HedgeStore, clock: Clock, settings: LiveSettings
    ) -> None:
        self._broker = broker
        self._store = store
        self._clock = clock
        self._settings = settings

    async def check(self, plan: ExecutionPlan, qty: int, limit_price: Decimal) -> None:
        if plan.purpose not in OPENING_PURPOSES or plan.direction != "debit":
            return  # closing and selling never add to spend
        caps = self._settings.current.hedging.caps
        nav = (await self._broker.get_account()).equity
        if nav <= 0:
            raise PreTradeRejected(f"NAV is {nav}: no hedge premium can be spent")
        mtd, ytd = await self._store.spend(self._clock.now())
        new = limit_price * qty * 100
        hedge_id = plan.related_ids.get("hedge_id")
        held = await self._store.get(hedge_id) if hedge_id else None
        position_before = held.premium_paid if held is not None else Decimal(0)
        limits = (
            ("monthly premium cap", mtd, caps.monthly_pct, "month-to-date spend"),
            ("annual premium cap", ytd, caps.annual_pct, "year-to-date spend"),
            (
                "per-position premium cap",
                position_before,
                caps.per_position_pct,
                "this hedge's premium",
            ),
        )
        for name, before, pct, what in limits:
            cap = nav * pct / 100
            if before + new > cap:
                raise PreTradeRejected(
                    f"{name}: {what} {before:.2f} + this order {new:.2f} = {before + new:.2f} "
                    f"would exceed {cap:.2f} ({pct} % of NAV {nav:.2f})"
                )


# Outcomes that mean something went wrong (a price that never crossed is not one).
FAILED_STATUSES = frozenset({"rejected", "failed", "unknown"})


@dataclass
class OpenOutcome:
    executed: dict[str, Any]
    hedge_id: str
    filled: int
    status: str


class HedgeExecutor:
    def __init__(self, ctx: HedgingContext) -> None:
        self.ctx = ctx
        self.busy = False
        self._drain_lock = asyncio.Lock()

    # -- the queue ----------------------------------------------------------------

    async def drain(self, worker_id: str, queue: str) -> int:
        """Process every available job of ``queue``; returns how many were handled.

        One drain at a time in this process (jobs and the background consumer share
        the executor); other processes are kept apart by the queue's exclusive claim.
        """
        async with self._drain_lock:
            return await self._drain(worker_id, queue)

    async def _drain(self, worker_id: str, queue: str) -> int:
        handled = 0
        while True:
            job = await self.ctx.queue.claim(queue, worker_id)
            if job is None:
                return handled
            self.busy = True
            try:
                await self._handle(queue, job.payload, worker_id)
                await self.ctx.queue.complete(job.id, worker_id)
            except Exception as exc:
                log.exception("hedge_job_failed", job_id=job.id, queue=queue)
                await self.ctx.queue.fail(job.id, worker_id, f"{type(exc).__name__}: {exc}")
                await self.record_cycle("execution", ok=False, error=str(exc))
            finally:
                self.busy = False
            handled += 1

    async def _handle(self, queue: str, payload: Mapping[str, Any], worker_id: str) -> None:
        from alchemiser.hedging.evaluator import HedgeEvaluator
        from alchemiser.hedging.roller import RollManager

        if queue == EXECUTION_QUEUE:
            await self.execute_event(payload)
        elif queue == ROLL_QUEUE:
            await RollManager(self.ctx, self).roll(payload)
        elif queue == PLAN_QUEUE:
            # An external rebalancer's RebalancePlanned: evaluate with its plan id, then
            # execute what that evaluation decided (its own dedupe key includes the plan).
            session = self.session_date()
            if session is None:
                raise RuntimeError("RebalancePlanned outside a trading session: retried later")
            await HedgeEvaluator(self.ctx).evaluate(session, plan_id=str(payload["plan_id"]))
            await self._drain(worker_id, EXECUTION_QUEUE)
        else:
            raise ValueError(f"no handler for queue {queue!r}")

    def session_date(self) -> date | None:
        """Today's NYSE session in New York, or None on a closed day."""
        day = self.ctx.clock.now().astimezone(NEW_YORK).date()
        return day if self.ctx.calendar.is_session(day) else None

    async def consume(self, worker_id: str) -> int:
        """One pass of the background consumer over every hedging queue."""
        handled = 0
        for queue in (PLAN_QUEUE, EXECUTION_QUEUE, ROLL_QUEUE):
            handled += await self.drain(worker_id, queue)
        return handled

    # -- executing an evaluation ---------------------------------------------------

    async def execute_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Buy the recommendations of one HedgeEvaluationCompleted event (idempotently)."""
        ctx = self.ctx
        session = str(event.get("session_date") or ctx.clock.now().date().isoformat())
        plan_id = event.get("plan_id")
        correlation_id = str(event.get("correlation_id") or "")
        executed: list[dict[str, Any]] = []
        statuses: list[str] = []
        positions: list[dict[str, Any]] = []
        for index, raw in enumerate(event.get("recommendations") or []):
            rec = Recommendation.from_json(raw)
            key = f"hedge-open:{ctx.account}:{session}:{plan_id or '-'}:{index}"
            outcome = await self.open_hedge(rec, key, plan_id, correlation_id, purpose="open")
            executed.append(outcome.executed)
            statuses.append(outcome.status)
            held = await ctx.store.get(outcome.hedge_id)
            if held is not None:
                positions.append(held.as_json())
        nav = (await ctx.broker.get_account()).equity
        summary = all_hedges_completed(
            correlation_id=correlation_id,
            plan_id=plan_id,
            executed=executed,
            nav=nav,
            hedge_positions=positions,
            was_skipped=not executed,
        )
        await ctx.audit.record(
            "AllHedgesCompleted", details=summary, correlation_id=correlation_id or None
        )
        log.info(
            "Hedge execution completed",
            succeeded=summary["succeeded_hedges"],
            failed=summary["failed_hedges"],
            total_premium_spent=summary["total_premium_spent"],
        )
        problems = [
            f"{e['option_symbol']}: {e['error_message']}"
            for e, status in zip(executed, statuses, strict=True)
            if status in FAILED_STATUSES
        ]
        await self.record_cycle("execution", ok=not problems, error="; ".join(problems) or None)
        return summary

    async def open_hedge(
        self,
        rec: Recommendation,
        key: str,
        plan_id: str | None,
        correlation_id: str,
        *,
        purpose: str,
        rolled_from: str | None = None,
    ) -> OpenOutcome:
        """Buy one recommendation: a put, or a spread (one multi-leg order or legged)."""
        ctx = self.ctx
        if rec.option_symbol is None:
            raise ValueError(f"recommendation for {rec.underlying_symbol} names no option")
        hedge_id = hedge_id_for(key)
        long_contract = parse_occ(rec.option_symbol)
        short_contract = parse_occ(rec.short_option_symbol) if rec.short_option_symbol else None
        hedge = NewHedge(
            id=hedge_id,
            underlying=rec.underlying_symbol,
            template=rec.hedge_template,
            long_symbol=rec.option_symbol,
            long_strike=long_contract.strike,
            short_symbol=rec.short_option_symbol,
            short_strike=short_contract.strike if short_contract else None,
            expiry=long_contract.expiry,
            open_intent_key=key,
            plan_id=plan_id,
            rolled_from=rolled_from,
        )
        account = await ctx.broker.get_account()
        native = short_contract is None or (
            ctx.hedging.orders.multi_leg and account.options_approved_level >= 3
        )
        if native:
            result = await self._buy(rec, key, hedge, purpose)
        else:
            result = await self._buy_legged(rec, key, hedge, purpose, correlation_id)
        order_id = await self._broker_order_id(result)
        success = result.filled_qty > 0
        executed = hedge_executed(
            correlation_id=correlation_id,
            hedge_id=hedge_id if success else None,
            plan_id=plan_id,
            order_id=order_id,
            option_symbol=rec.option_symbol,
            underlying_symbol=rec.underlying_symbol,
            quantity=result.filled_qty,
            filled_price=result.avg_price,
            total_premium=result.cost,
            nav=account.equity,
            success=success,
            error_message=None if success else (result.error or str(result.status)),
        )
        await ctx.audit.record(
            "HedgeExecuted",
            related_ids={"hedge_id": hedge_id, "intent_key": key},
            details=executed,
            correlation_id=correlation_id or None,
        )
        if success:
            await ctx.audit.record(
                "OPENED",
                related_ids={"hedge_id": hedge_id},
                details={
                    "contracts": result.filled_qty,
                    "premium": result.cost,
                    "rolled_from": rolled_from,
                },
                correlation_id=correlation_id or None,
            )
        log.info(
            "hedge_order_done",
            hedge_id=hedge_id,
            status=str(result.status),
            filled=result.filled_qty,
        )
        return OpenOutcome(executed, hedge_id, result.filled_qty, str(result.status))

    async def _buy(
        self, rec: Recommendation, key: str, hedge: NewHedge, purpose: str
    ) -> ExecutionResult:
        legs = [OrderLeg(hedge.long_symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN)]
        if hedge.short_symbol:
            legs.append(OrderLeg(hedge.short_symbol, Side.SELL, 1, PositionIntent.SELL_TO_OPEN))
        plan = ExecutionPlan(
            intent_key=key,
            strategy="hedge",
            purpose=purpose,
            legs=tuple(legs),
            qty=rec.contracts_estimated,
            direction="debit",
            related_ids={"hedge_id": hedge.id},
            # No hard limit at the evaluation's ask: the market moves between evaluation and
            # execution. The order is bounded by the slippage rule, and the caps (the
            # invariants) by HedgeCapCheck at every submit, with the price actually sent.
        )
        return await self.ctx.orders.execute(plan, self._opening_fill(hedge))

    def _opening_fill(self, hedge: NewHedge) -> Any:
        store = self.ctx.store

        async def on_fill(session: AsyncSession, fill: FillEvent) -> None:
            await store.add_opening_fill(session, hedge, fill.delta_qty, fill.price, fill.cost)
            await store.record_spend(
                session,
                fill.cost,
                hedge.id,
                f"{fill.client_order_id}@{fill.intent.filled_qty}",
                fill.at,
            )

        return on_fill

    async def _buy_legged(
        self, rec: Recommendation, key: str, hedge: NewHedge, purpose: str, correlation_id: str
    ) -> ExecutionResult:
        """Long leg first, then the short leg with retries, else a compensating close."""
        ctx = self.ctx
        assert hedge.short_symbol is not None and hedge.short_strike is not None
        long_only = NewHedge(**{**hedge.__dict__, "short_symbol": None, "short_strike": None})
        long_plan = ExecutionPlan(
            intent_key=f"{key}:long",
            strategy="hedge",
            purpose=purpose,
            legs=(OrderLeg(hedge.long_symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),),
            qty=rec.contracts_estimated,
            direction="debit",
            related_ids={"hedge_id": hedge.id},
        )
        long_result = await ctx.orders.execute(long_plan, self._opening_fill(long_only))
        if long_result.filled_qty <= 0:
            return long_result
        qty = long_result.filled_qty
        store = ctx.store

        async def on_short_fill(session: AsyncSession, fill: FillEvent) -> None:
            await store.attach_short_leg(
                session,
                hedge.id,
                hedge.short_symbol or "",
                hedge.short_strike or Decimal(0),
                fill.price * fill.delta_qty * 100,
            )
            await store.record_spend(
                session,
                fill.cost,
                hedge.id,
                f"{fill.client_order_id}@{fill.intent.filled_qty}",
                fill.at,
            )

        settings = ctx.hedging.orders
        remaining = qty
        for attempt in range(settings.legging_retries + 1):
            if attempt:
                await ctx.clock.sleep(settings.legging_backoff_seconds * 2 ** (attempt - 1))
            short_plan = ExecutionPlan(
                intent_key=f"{key}:short:{attempt}",
                strategy="hedge",
                purpose="open_short_leg",
                legs=(OrderLeg(hedge.short_symbol, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),),
                qty=remaining,
                direction="credit",
                related_ids={"hedge_id": hedge.id},
            )
            short_result = await ctx.orders.execute(short_plan, on_short_fill)
            remaining -= short_result.filled_qty
            if remaining <= 0:
                return long_result
        # The short leg never filled in full: close the unmatched long contracts.
        await self._compensate(hedge, remaining, key, correlation_id)
        return long_result

    async def _compensate(self, hedge: NewHedge, qty: int, key: str, correlation_id: str) -> None:
        ctx = self.ctx
        store = ctx.store

        async def on_close_fill(session: AsyncSession, fill: FillEvent) -> None:
            await store.add_closing_fill(session, hedge.id, fill.delta_qty, -fill.cost)

        plan = ExecutionPlan(
            intent_key=f"{key}:compensate",
            strategy="hedge",
            purpose="compensating_close",
            legs=(OrderLeg(hedge.long_symbol, Side.SELL, 1, PositionIntent.SELL_TO_CLOSE),),
            qty=qty,
            direction="credit",
            related_ids={"hedge_id": hedge.id},
            max_slippage_pct=ctx.hedging.orders.close_max_slippage_pct,
        )
        try:
            result = await ctx.orders.execute(plan, on_close_fill)
            closed = result.filled_qty
        except BrokerError as exc:
            closed, result = 0, None
            log.error("compensating_close_failed", error=str(exc))
        if closed < qty:
            log.critical(
                "manual reconciliation required",
                hedge_id=hedge.id,
                long_symbol=hedge.long_symbol,
                short_symbol=hedge.short_symbol,
                unmatched_long_contracts=qty - closed,
                why="the short leg did not fill and the compensating close did not complete",
            )
            await ctx.audit.record(
                "MANUAL_RECONCILIATION_REQUIRED",
                related_ids={"hedge_id": hedge.id, "intent_key": key},
                details={
                    "unmatched_long_contracts": qty - closed,
                    "long_symbol": hedge.long_symbol,
                },
                correlation_id=correlation_id or None,
            )

    async def _broker_order_id(self, result: ExecutionResult) -> str | None:
        if not result.orders:
            return None
        try:
            order = await self.ctx.broker.get_order_by_client_id(result.orders[-1])
        except BrokerError:
            return None
        return order.id if order is not None else None

    # -- failures and the kill switch ------------------------------------------------

    async def record_cycle(self, kind: str, ok: bool, error: str | None = None) -> None:
        """Record a cycle; trip the kill switch after too many failures in the window."""
        ctx = self.ctx
        await ctx.store.record_cycle(kind, ok, error)
        if ok:
            return
        rule = ctx.hedging.kill_switch
        since = ctx.clock.now() - timedelta(hours=rule.window_hours)
        failures = await ctx.store.failed_cycles_since(since)
        switch = await ctx.store.kill_switch()
        if failures >= rule.failed_cycles and switch.enabled:
            reason = (
                f"{failures} failed hedging cycles within {rule.window_hours} h (last: {error})"
            )
            await ctx.store.set_kill_switch(False, reason, "auto")
            log.critical(
                "hedging_kill_switch_tripped", reason=reason, resume="alchemiser hedge enable"
            )
            await ctx.audit.record("KILL_SWITCH_TRIPPED", details={"reason": reason})
