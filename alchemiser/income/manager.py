"""Managing open income positions: settlement from the broker, exits, rolls, the wheel.

``settle`` runs first on every pass: a short option gone from the broker's book
is explained from the account activities since it was opened — expired
(OPEXP: the whole credit is kept) or assigned (OPASN). An assigned put turns
into shares at cost basis strike − premium per share and starts a wheel cycle;
the screen then writes covered calls on those shares with strike ≥ that basis.
An assigned call on a wheel's shares ends the cycle (called away) with the
cycle's realised P&L; on the user's own shares it is recorded as called away.
Every transition is an income event with its realised P&L, recorded once.

``manage`` then applies the exit rules (:mod:`alchemiser.income.exits`) to
each open position: stop loss and take profit buy it back; near expiry it is
rolled (bought back, then the best contract the screen proposes for the same
name and kind is sold) or closed, as ``income.management.near_expiry_action``
says. Closing orders are risk-reducing: they pass in REDUCING and HALTED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import structlog

from alchemiser.broker.base import BrokerError
from alchemiser.domain.options import parse_occ
from alchemiser.domain.trading import Activity, ActivityType
from alchemiser.hedging.book import spots
from alchemiser.income.candidates import SHARES_PER_CONTRACT as MULTIPLIER
from alchemiser.income.context import IncomeContext
from alchemiser.income.exits import ExitDecision, OpenShort, assigned_cost_basis, exit_decision
from alchemiser.income.screening import IncomeScreener
from alchemiser.income.trader import IncomeTrader, Proposal
from alchemiser.store.income import ASSIGNED, EXPIRED, IncomePositionView
from alchemiser.store.orders import IntentStatus

log = structlog.stdlib.get_logger("alchemiser.income")

# Activities are read from a little before a position was opened.
ACTIVITY_MARGIN = timedelta(minutes=5)
_SETTLEMENTS = (ActivityType.OPASN, ActivityType.OPEXP, ActivityType.OPEXC)


@dataclass
class ManageReport:
    session_date: date
    settled: list[dict[str, Any]] = field(default_factory=list)
    exits: list[dict[str, Any]] = field(default_factory=list)
    held: int = 0
    expired_approvals: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "settled": self.settled,
            "exits": self.exits,
            "held": self.held,
            "expired_approvals": self.expired_approvals,
        }


class IncomeManager:
    def __init__(self, ctx: IncomeContext, trader: IncomeTrader) -> None:
        self.ctx = ctx
        self.trader = trader

    # -- settlement --------------------------------------------------------------------

    async def settle(self) -> list[dict[str, Any]]:
        """Explain open positions the broker no longer holds (expiry, assignment)."""
        ctx = self.ctx
        open_positions = [p for p in await ctx.store.open_positions() if p.contracts > 0]
        if not open_positions:
            return []
        held: dict[str, Decimal] = {}
        for p in await ctx.broker.get_positions():
            if p.is_option:
                held[p.symbol] = held.get(p.symbol, Decimal(0)) + p.qty
        gone = [p for p in open_positions if held.get(p.symbol, Decimal(0)) > -p.contracts]
        if not gone:
            return []
        since = min(p.opened_at for p in gone) - ACTIVITY_MARGIN
        activities = await ctx.broker.get_activities(since, _SETTLEMENTS)
        settled = []
        for position in gone:
            mine = [a for a in activities if a.symbol == position.symbol]
            outcome = await self._settle_one(position, mine, held.get(position.symbol))
            if outcome is not None:
                settled.append(outcome)
        return settled

    async def _settle_one(
        self, position: IncomePositionView, activities: list[Activity], held: Decimal | None
    ) -> dict[str, Any] | None:
        ctx = self.ctx
        assigned = [a for a in activities if a.activity_type is ActivityType.OPASN]
        expired = [a for a in activities if a.activity_type is ActivityType.OPEXP]
        if assigned:
            activity = assigned[-1]
            view, changed = await ctx.store.settle(
                position.id,
                ASSIGNED,
                f"activity:{activity.id}",
                {
                    "activity_id": activity.id,
                    "symbol": position.symbol,
                    "strike": str(position.strike),
                },
            )
            if not changed:
                return None
            return await self._assigned(view)
        if expired:
            activity = expired[-1]
            view, changed = await ctx.store.settle(
                position.id,
                EXPIRED,
                f"activity:{activity.id}",
                {"activity_id": activity.id, "symbol": position.symbol},
            )
            if not changed:
                return None
            log.info(
                "income_position_expired",
                position_id=view.id,
                symbol=view.symbol,
                realized_pnl=str(view.realized_pnl),
            )
            return {"position_id": view.id, "outcome": "expired", "pnl": view.realized_pnl}
        # Contracts missing with no settlement: a close being worked books itself; else say so.
        if position.close_intent_key:
            intent = await ctx.orders.result(position.close_intent_key)
            if intent is not None and not intent.status.is_final:
                return None
            if intent is not None and intent.status is IntentStatus.FILLED:
                return None
        log.warning(
            "income_position_unexplained",
            position_id=position.id,
            symbol=position.symbol,
            expected=-position.contracts,
            broker=None if held is None else str(held),
            note="no expiry or assignment activity explains it; reconciliation decides",
        )
        return None

    async def _assigned(self, put_or_call: IncomePositionView) -> dict[str, Any]:
        ctx = self.ctx
        p = put_or_call
        shares = p.contracts_opened * MULTIPLIER
        if not p.is_call:
            basis = assigned_cost_basis(p.strike, p.credit_per_share)
            wheel = await ctx.store.start_wheel(p, shares, basis)
            log.info(
                "income_put_assigned",
                position_id=p.id,
                symbol=p.symbol,
                shares=shares,
                cost_basis=str(basis),
                wheel_id=wheel.id,
            )
            return {"position_id": p.id, "outcome": "assigned", "wheel_id": wheel.id}
        ended = None
        if p.wheel_id:
            ended = await ctx.store.end_wheel(
                p.wheel_id, p.strike, "called_away", f"called-away:{p.id}"
            )
        log.info(
            "income_shares_called_away",
            position_id=p.id,
            symbol=p.symbol,
            shares=shares,
            strike=str(p.strike),
            wheel_id=p.wheel_id,
            wheel_pnl=None if ended is None else str(ended.realized_pnl),
        )
        return {"position_id": p.id, "outcome": "called_away", "wheel_id": p.wheel_id}

    # -- exits ------------------------------------------------------------------------

    async def manage(self, session_date: date) -> ManageReport:
        """Settle, then apply the exit rules to every open position."""
        ctx = self.ctx
        report = ManageReport(session_date)
        report.expired_approvals = len(await ctx.store.expire_due())
        report.settled = await self.settle()
        positions = [p for p in await ctx.store.open_positions() if p.contracts > 0]
        if not positions:
            return report
        try:
            quotes = await ctx.broker.get_option_quotes([p.symbol for p in positions])
        except BrokerError as exc:
            log.warning("income_manage_no_quotes", error=str(exc))
            return report
        m = ctx.income.management
        for position in positions:
            snap = quotes.get(position.symbol)
            if snap is None or snap.bid < 0 or snap.ask <= 0 or snap.bid > snap.ask:
                log.warning(
                    "income_manage_bad_quote", position_id=position.id, symbol=position.symbol
                )
                report.held += 1
                continue
            decision = exit_decision(
                _open_short(position),
                snap.mid,
                snap.implied_volatility,
                session_date,
                m,
            )
            if decision.action == "stop_loss" and await self._awaiting_assignment(
                position, session_date
            ):
                # In its last days and in the money, the wheel takes the shares (a put) or
                # sells them at the strike (a call) instead of buying back at a loss.
                decision = ExitDecision("near_expiry", f"{decision.reason}; in the money at expiry")
            if decision.action == "hold":
                report.held += 1
                continue
            log.info(
                "income_exit_triggered",
                position_id=position.id,
                symbol=position.symbol,
                action=decision.action,
                reason=decision.reason,
            )
            if decision.action == "near_expiry":
                outcome = await self._near_expiry(position, snap.ask, session_date)
            else:
                result = await self.trader.close(position, decision.action)
                outcome = result.status.value
            report.exits.append(
                {
                    "position_id": position.id,
                    "symbol": position.symbol,
                    "action": decision.action,
                    "reason": decision.reason,
                    "outcome": outcome,
                }
            )
        log.info(
            "income_manage_completed", session_date=session_date.isoformat(), **report.summary()
        )
        return report

    async def _in_the_money(self, position: IncomePositionView) -> tuple[bool, Decimal | None]:
        spot = (await spots(self.ctx.broker, [position.underlying])).get(position.underlying)
        itm = spot is not None and (
            spot > position.strike if position.is_call else spot < position.strike
        )
        return itm, spot

    async def _awaiting_assignment(self, position: IncomePositionView, today: date) -> bool:
        """In the money within the DTE threshold, with ``itm_near_expiry = "let_assign"``."""
        m = self.ctx.income.management
        if (
            m.itm_near_expiry != "let_assign"
            or (position.expiry - today).days > m.roll_or_close_at_dte
        ):
            return False
        return (await self._in_the_money(position))[0]

    async def _near_expiry(
        self, position: IncomePositionView, ask: Decimal, session_date: date
    ) -> str:
        """At the DTE threshold: let an in-the-money option be assigned, roll, or close."""
        m = self.ctx.income.management
        itm, spot = await self._in_the_money(position)
        if itm and m.itm_near_expiry == "let_assign":
            # The wheel's next step: a put becomes shares, a call sells them at the strike.
            log.info(
                "income_left_to_assignment",
                position_id=position.id,
                symbol=position.symbol,
                spot=None if spot is None else str(spot),
                strike=str(position.strike),
            )
            return "held in the money: left to assignment"
        if m.near_expiry_action == "close" or (itm and m.itm_near_expiry == "close"):
            return (await self.trader.close(position, "near_expiry")).status.value
        return await self._roll(position, ask, session_date)

    async def _roll(self, position: IncomePositionView, ask: Decimal, session_date: date) -> str:
        """Sell the best contract the screen proposes for the same name and kind after buying back.

        With ``roll_credit_only`` the roll happens only when the new sale takes in more
        than the buyback costs at the ask; otherwise the position is just closed.
        """
        m = self.ctx.income.management
        report = await IncomeScreener(self.ctx).run(
            session_date, record=True, releasing=frozenset({position.id})
        )
        match = [
            p
            for p, _ in report.proposals
            if p.kind == position.kind and parse_occ(p.symbol).root == position.underlying
        ]
        contracts = position.contracts
        if not match:
            log.info(
                "income_roll_no_replacement",
                position_id=position.id,
                symbol=position.symbol,
                note="no contract passed the screens: closed instead",
            )
            return (await self.trader.close(position, "near_expiry")).status.value
        proposal = match[0]
        if m.roll_credit_only and proposal.min_credit <= ask:
            log.info(
                "income_roll_not_for_credit",
                position_id=position.id,
                buyback_ask=str(ask),
                new_credit=str(proposal.min_credit),
                note="roll_credit_only: closed instead",
            )
            return (await self.trader.close(position, "near_expiry")).status.value
        closed = await self.trader.close(position, "rolled")
        if closed.status is not IntentStatus.FILLED:
            return f"close {closed.status.value}: not rolled"
        replacement = Proposal(
            kind=proposal.kind,
            symbol=proposal.symbol,
            contracts=min(proposal.contracts, contracts),
            min_credit=proposal.min_credit,
            intent_key=f"income-roll-open:{position.id}",
            entry_iv=proposal.entry_iv,
            candidate_id=proposal.candidate_id,
            wheel_id=position.wheel_id,
            rolled_from=position.id,
            purpose="roll_open",
        )
        result = await self.trader.open(replacement)
        if result.filled_qty > 0:
            await self.ctx.store.link_roll(position.id, replacement.position_id)
        return f"rolled to {proposal.symbol}: {result.status.value}"


def _open_short(p: IncomePositionView) -> OpenShort:
    return OpenShort(
        kind="covered_call" if p.is_call else "cash_secured_put",
        symbol=p.symbol,
        strike=p.strike,
        expiry=p.expiry,
        contracts=p.contracts,
        credit_per_share=p.credit_per_share,
        entry_iv=None if p.entry_iv is None else float(p.entry_iv),
    )
