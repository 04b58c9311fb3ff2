"""Income orders: selling to open, buying back to close, rolling; approved trades from the queue.

Every order is an :class:`ExecutionPlan` worked by the shared order life cycle
(intent written first, deterministic client order id, limit from mid stepping
toward the far side within ``income.orders``), behind the pre-trade checks:
the trading-state gate and the risk engine's income limits. Fills book the
income position in the fill's own transaction (:mod:`alchemiser.income.fills`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal

import structlog

from alchemiser.domain.options import parse_occ
from alchemiser.domain.trading import OrderLeg, PositionIntent, Side
from alchemiser.execution.engine import ExecutionPlan, ExecutionResult
from alchemiser.income.context import IncomeContext
from alchemiser.income.fills import income_fill_handler
from alchemiser.store.income import APPROVED, IncomePositionView, position_id_for

log = structlog.stdlib.get_logger("alchemiser.income")

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Proposal:
    """A sale the screen decided on (or a person approved)."""

    kind: str
    symbol: str
    contracts: int
    min_credit: Decimal  # per share: the least the order takes
    intent_key: str
    entry_iv: Decimal | None = None
    candidate_id: int | None = None
    wheel_id: str | None = None
    rolled_from: str | None = None
    purpose: str = "open"
    score: Decimal = Decimal(0)
    rationale: str = ""

    @property
    def position_id(self) -> str:
        return position_id_for(self.intent_key)


def open_intent_key(session_date: date, symbol: str) -> str:
    """One sale of a contract per session: a re-run of the screen sends nothing twice."""
    return f"income-open:{session_date.isoformat()}:{symbol}"


def min_credit(mid: Decimal, max_slippage_pct: Decimal) -> Decimal:
    """The least credit per share the order may take: mid less the allowed slippage, in cents."""
    return (mid * (1 - max_slippage_pct / 100)).quantize(_CENT, rounding=ROUND_DOWN)


class IncomeTrader:
    def __init__(self, ctx: IncomeContext) -> None:
        self.ctx = ctx

    async def open(self, proposal: Proposal) -> ExecutionResult:
        """Sell to open; the position is created by its first fill."""
        related = {"position_id": proposal.position_id, "kind": proposal.kind}
        if proposal.entry_iv is not None:
            related["entry_iv"] = str(proposal.entry_iv)
        if proposal.candidate_id is not None:
            related["candidate_id"] = str(proposal.candidate_id)
        if proposal.wheel_id:
            related["wheel_id"] = proposal.wheel_id
        if proposal.rolled_from:
            related["rolled_from"] = proposal.rolled_from
        plan = ExecutionPlan(
            intent_key=proposal.intent_key,
            strategy="income",
            purpose=proposal.purpose,
            legs=(OrderLeg(proposal.symbol, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),),
            qty=proposal.contracts,
            direction="credit",
            related_ids=related,
            price_limit=proposal.min_credit,
        )
        result = await self.ctx.orders.execute(plan, income_fill_handler(self.ctx.store, plan))
        log.info(
            "income_order_finished",
            kind=proposal.kind,
            symbol=proposal.symbol,
            purpose=proposal.purpose,
            status=result.status.value,
            filled=result.filled_qty,
            target=proposal.contracts,
            credit=None if result.avg_price is None else str(result.avg_price),
            error=result.error,
        )
        return result

    async def close(self, position: IncomePositionView, reason: str) -> ExecutionResult:
        """Buy back what is still open of ``position`` (``reason``: take_profit, stop_loss...)."""
        # One buyback attempt per session: an unfilled one is tried again the next day.
        key = f"income-close:{position.id}:{self.ctx.today().isoformat()}"
        await self.ctx.store.set_close_intent(position.id, key)
        plan = ExecutionPlan(
            intent_key=key,
            strategy="income",
            purpose="roll_close" if reason == "rolled" else "close",
            legs=(OrderLeg(position.symbol, Side.BUY, 1, PositionIntent.BUY_TO_CLOSE),),
            qty=position.contracts,
            direction="debit",
            related_ids={"position_id": position.id, "reason": reason},
            max_slippage_pct=self.ctx.income.orders.close_max_slippage_pct,
        )
        result = await self.ctx.orders.execute(plan, income_fill_handler(self.ctx.store, plan))
        log.info(
            "income_position_close_finished",
            position_id=position.id,
            symbol=position.symbol,
            reason=reason,
            status=result.status.value,
            filled=result.filled_qty,
            target=position.contracts,
            paid=None if result.avg_price is None else str(result.avg_price),
            error=result.error,
        )
        return result

    async def execute_approved(self) -> int:
        """Send every approved trade not sent yet (approvals expire at the close)."""
        await self.ctx.store.expire_due()
        sent = 0
        for approval in await self.ctx.store.approvals((APPROVED,)):
            proposal = Proposal(
                kind=approval.kind,
                symbol=approval.symbol,
                contracts=approval.contracts,
                min_credit=approval.min_credit,
                intent_key=approval.intent_key,
                candidate_id=approval.candidate_id,
            )
            result = await self.open(proposal)
            await self.ctx.store.mark_executed(
                approval.id, f"{result.status.value}: {result.filled_qty}/{approval.contracts}"
            )
            sent += 1
        return sent


async def act_on_proposals(
    ctx: IncomeContext, proposals: list[Proposal], session_date: date
) -> dict[str, int]:
    """Carry out what the screen decided: sell now (``auto``) or wait for a person (``manual``).

    A manual proposal waits in the approval queue until the session's close, then expires
    (a quote from the morning is no basis for a sale tomorrow).
    """
    counts = {"sent": 0, "pending": 0}
    if ctx.income.approval == "auto":
        trader = IncomeTrader(ctx)
        for proposal in proposals:
            await trader.open(proposal)
            counts["sent"] += 1
        return counts
    expires = ctx.calendar.session_close(session_date)
    for proposal in proposals:
        if proposal.candidate_id is None:
            raise ValueError(f"{proposal.symbol}: a proposal is recorded before it waits")
        approval = await ctx.store.add_approval(
            candidate_id=proposal.candidate_id,
            kind=proposal.kind,
            underlying=parse_occ(proposal.symbol).root,
            symbol=proposal.symbol,
            contracts=proposal.contracts,
            min_credit=proposal.min_credit,
            score=proposal.score,
            rationale=proposal.rationale,
            intent_key=proposal.intent_key,
            expires_at=expires,
        )
        counts["pending"] += 1
        log.info(
            "income_approval_pending",
            approval_id=approval.id,
            symbol=proposal.symbol,
            contracts=proposal.contracts,
            min_credit=str(proposal.min_credit),
            expires_at=expires.isoformat(),
            answer=f"alchemiser approvals approve {approval.id} | reject {approval.id}",
        )
    return counts
