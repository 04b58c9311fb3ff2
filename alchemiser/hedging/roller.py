"""Rolls and expiries: hedges are replaced before theta bites, and nothing stays ACTIVE forever.

The roll check (15:45 New York) applies the template's rules to each active
hedge; a hedge that must roll emits ``HedgeRollTriggered`` and goes on the
roll queue (one message per hedge and day). The roll itself sizes the
replacement first, inside the caps; only if a replacement can be bought (or
the hedge is at critical DTE) is the old one sold, then the new one bought,
tracked as one unit: the old hedge ends ROLLED with ``rolled_to``, the new
one starts ACTIVE with ``rolled_from``. Expiries are settled by the
reconciliation (alchemiser/broker/reconcile.py) after every close.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from alchemiser.domain.trading import OrderLeg, PositionIntent, Side
from alchemiser.execution.engine import ExecutionPlan
from alchemiser.hedging.book import book_quotes, holding_of
from alchemiser.hedging.context import ROLL_QUEUE, HedgingContext
from alchemiser.hedging.evaluator import HedgeEvaluator
from alchemiser.hedging.events import Recommendation, hedge_roll_triggered
from alchemiser.hedging.rolls import check_roll
from alchemiser.store.audit import current_correlation_id
from alchemiser.store.hedges import (
    ACTIVE,
    HOLDING,
    PENDING_ROLL,
    ROLLED,
    HedgeView,
)
from alchemiser.store.orders import FillEvent

if TYPE_CHECKING:
    from alchemiser.hedging.executor import HedgeExecutor

log = structlog.stdlib.get_logger("alchemiser.hedging")

CRITICAL = "critical_dte"


@dataclass(frozen=True)
class RollCandidate:
    hedge_id: str
    reason: str
    dte: int


class RollManager:
    def __init__(self, ctx: HedgingContext, executor: HedgeExecutor) -> None:
        self.ctx = ctx
        self.executor = executor

    async def check(self, session_date: date, *, enqueue: bool = True) -> list[RollCandidate]:
        """Apply the roll rules to every active hedge; trigger (and enqueue) the rolls due."""
        ctx = self.ctx
        now = ctx.clock.now()
        # A hedge already replaced and left to expire (roll_state ROLLED) is done rolling.
        active = [h for h in await ctx.store.active() if h.contracts > 0 and h.roll_state != ROLLED]
        if not active:
            return []
        quotes = await book_quotes(ctx.broker, active)
        due: list[RollCandidate] = []
        for hedge in active:
            roll = check_roll(holding_of(hedge, quotes), now, quotes, ctx.hedging)
            if roll.missing:
                log.info("roll_check_data_missing", hedge_id=hedge.id, missing=list(roll.missing))
            if roll.reason is None:
                continue
            due.append(RollCandidate(hedge.id, roll.reason, roll.dte))
            event = hedge_roll_triggered(
                correlation_id=current_correlation_id() or "",
                hedge_id=hedge.id,
                option_symbol=hedge.long_symbol,
                underlying_symbol=hedge.underlying,
                current_dte=roll.dte,
                current_contracts=hedge.contracts,
                roll_reason=roll.reason,
            )
            log.info("Hedge roll triggered", hedge_id=hedge.id, reason=roll.reason, dte=roll.dte)
            if not enqueue:
                continue
            result = await ctx.queue.enqueue(
                ROLL_QUEUE,
                {**event, "session_date": session_date.isoformat()},
                dedupe_key=f"hedge-roll:{ctx.account}:{hedge.id}:{session_date.isoformat()}",
            )
            if result.created:
                await ctx.store.set_roll_state(hedge.id, PENDING_ROLL)
                await ctx.audit.record(
                    "HedgeRollTriggered", related_ids={"hedge_id": hedge.id}, details=event
                )
        return due

    async def roll(self, event: Mapping[str, Any]) -> str:
        """Carry out one roll (idempotent per hedge and day): returns what happened.

        The replacement is bought first and only then the old hedge sold, so the
        book is never left without the protection it had; a replacement that
        cannot be bought within the caps keeps the old hedge. A sale that does
        not fill by the close is retried at the next roll check (the replacement
        is not bought twice: ``rolled_to`` is set).
        """
        ctx = self.ctx
        hedge = await ctx.store.get(str(event["hedge_id"]))
        if hedge is None or hedge.state != ACTIVE:
            return "not_active"
        session = date.fromisoformat(str(event["session_date"]))
        reason = str(event.get("roll_reason") or "")
        correlation_id = str(event.get("correlation_id") or "")
        if hedge.rolled_to is None:
            opened = await self._open_replacement(hedge, session, reason, correlation_id)
            if opened is None and reason != CRITICAL:
                await ctx.store.set_roll_state(hedge.id, HOLDING)
                return "deferred"
        if not await self._has_bid(hedge):
            # Worthless to sell (no bid): the replacement is in place; the old hedge
            # stays until its expiry settles it, and is not tried again.
            await ctx.store.set_roll_state(hedge.id, ROLLED)
            await ctx.audit.record(
                "LEFT_TO_EXPIRE",
                related_ids={"hedge_id": hedge.id},
                details={"reason": "no bid to sell into", "rolled_to": hedge.rolled_to},
                correlation_id=correlation_id or None,
            )
            log.info("hedge_left_to_expire", hedge_id=hedge.id, rolled_to=hedge.rolled_to)
            return "left_to_expire"
        closed = await self._close(hedge, session)
        if closed < hedge.contracts:
            log.warning("hedge_roll_close_incomplete", hedge_id=hedge.id, closed=closed)
            return "close_incomplete"
        await ctx.audit.record(
            "ROLLED",
            related_ids={"hedge_id": hedge.id, "rolled_to": hedge.rolled_to or ""},
            details={"reason": reason, "closed": closed},
            correlation_id=correlation_id or None,
        )
        return "rolled"

    async def _has_bid(self, hedge: HedgeView) -> bool:
        quotes = await self.ctx.broker.get_option_quotes([hedge.long_symbol])
        snap = quotes.get(hedge.long_symbol)
        return snap is not None and snap.bid > 0

    async def _open_replacement(
        self, hedge: HedgeView, session: date, reason: str, correlation_id: str
    ) -> str | None:
        """Buy the replacement (sized without the hedge it replaces); its id, or None."""
        ctx = self.ctx
        replacement = await HedgeEvaluator(ctx).assess(
            session, replacing=hedge.id, template=hedge.template
        )
        recs = replacement.event["recommendations"]
        if recs:
            rec = Recommendation.from_json(recs[0])
            # One attempt per session: a replacement that did not fill is chosen afresh
            # (perhaps another contract) the next day, under a key of its own.
            opened = await self.executor.open_hedge(
                rec,
                f"hedge-roll-open:{hedge.id}:{session.isoformat()}",
                hedge.plan_id,
                correlation_id,
                purpose="roll_open",
                rolled_from=hedge.id,
            )
            if opened.filled > 0:
                await ctx.store.link_roll(hedge.id, opened.hedge_id)
                return opened.hedge_id
        why = replacement.skip_reason or "replacement not filled"
        log.warning(
            "hedge_roll_deferred",
            hedge_id=hedge.id,
            reason=reason,
            why=why,
            note="the hedge is kept until a replacement can be bought within the caps",
        )
        await ctx.audit.record(
            "ROLL_DEFERRED",
            related_ids={"hedge_id": hedge.id},
            details={"reason": reason, "why": why},
            correlation_id=correlation_id or None,
        )
        return None

    async def _close(self, hedge: HedgeView, session: date) -> int:
        """Sell the hedge (one multi-leg order for a spread); returns contracts closed."""
        ctx = self.ctx
        store = ctx.store
        legs = [OrderLeg(hedge.long_symbol, Side.SELL, 1, PositionIntent.SELL_TO_CLOSE)]
        if hedge.short_symbol:
            legs.append(OrderLeg(hedge.short_symbol, Side.BUY, 1, PositionIntent.BUY_TO_CLOSE))

        async def on_fill(session: AsyncSession, fill: FillEvent) -> None:
            await store.add_closing_fill(session, hedge.id, fill.delta_qty, -fill.cost)

        # One sale attempt per day: a day order that expired is tried again the next session.
        key = f"hedge-roll-close:{hedge.id}:{session.isoformat()}"
        await store.set_roll_state(hedge.id, PENDING_ROLL, close_intent_key=key)
        result = await ctx.orders.execute(
            ExecutionPlan(
                intent_key=key,
                strategy="hedge",
                purpose="roll_close",
                legs=tuple(legs),
                qty=hedge.contracts,
                direction="credit",
                related_ids={"hedge_id": hedge.id},
                max_slippage_pct=ctx.hedging.orders.close_max_slippage_pct,
            ),
            on_fill,
        )
        return result.filled_qty
