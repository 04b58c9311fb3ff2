"""Reconciliation with the broker: at start-up (before the scheduler) and after each session.

:meth:`Reconciler.run` makes our records agree with the broker's, or stops
opening trades until a person has looked:

1. **Orders in flight.** Every intent the order store holds as pending,
   working or unknown is resolved by client order id. Found at the broker:
   its state and fills are taken (fills booked exactly once, through the
   strategy's fill handler when the caller gives one), and an order still open
   is cancelled (it was priced before the restart and nothing chases it any
   more). Not found and never acknowledged: it never left us, so it is marked
   "not sent" and will never be sent on its old price. An intent with no open
   order left gets its final status from its fills.
2. **Positions.** The broker's option positions are matched against the
   ACTIVE hedges (long leg +contracts, short leg −contracts). A hedge whose
   contracts are gone is explained from the account activities since it was
   opened: expired (OPEXP), exercised or assigned (OPEXC, OPASN), or closed by
   a trade that is not ours ("closed outside the daemon": CLOSED with the
   proceeds of those trades). Options another strategy accounts for (the
   income module's short calls and puts, which it settles itself) are taken
   out first. An option position nothing accounts for is adopted as
   *external* (stored, logged, never managed). Equity positions
   are the user's book and never a mismatch.
3. **Mismatches** nothing explains (contracts that differ from ours, an
   order the broker acknowledged and no longer knows...) set the persisted
   trading state to HALTED, logged ``reconciliation_failed`` at CRITICAL with
   every discrepancy and audited. :class:`TradingStateGate` then refuses
   opening orders (closing ones pass) until ``alchemiser reconcile --accept``
   (our records are adjusted to the broker's, audited) or
   ``alchemiser trading resume``.

The comparison itself is pure (:func:`allocate`, :func:`explain_shortfall`,
:func:`classify_leftover`, :func:`final_status`, :func:`is_closing`) and unit
tested without a broker or a database.

Symbols that an intent still being worked by an executor trades ("in motion")
are never called a mismatch: the executor's own fill booking settles them, and
the next reconciliation looks again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from alchemiser.broker.base import (
    Broker,
    BrokerError,
    BrokerUnavailable,
    NotFound,
    OrderOutcomeUnknown,
    OrderRejected,
)
from alchemiser.clock import NEW_YORK, Clock
from alchemiser.domain.options import OccSymbolError, OptionRight, parse_occ
from alchemiser.domain.trading import (
    Activity,
    ActivityType,
    Order,
    PositionIntent,
    Side,
)
from alchemiser.execution.engine import ExecutionPlan, PreTradeRejected
from alchemiser.store.audit import AuditLog
from alchemiser.store.hedges import (
    ACTIVE,
    CLOSED,
    EXERCISED,
    EXPIRED,
    HedgeStore,
    HedgeView,
    NewHedge,
)
from alchemiser.store.orders import (
    OPTION_MULTIPLIER,
    BrokerOrderRecord,
    BrokerOrderStatus,
    FillEvent,
    FillHandler,
    InFlightIntent,
    IntentRecord,
    IntentStatus,
    OrderStore,
)
from alchemiser.store.reconcile_state import (
    ExternalPositionView,
    TradingMode,
    TradingStateStore,
    TradingStateView,
)
from alchemiser.trading_calendar import TradingCalendar, nyse_calendar

__all__ = [
    "Allocation",
    "Discrepancy",
    "Explanation",
    "FillHandlerFactory",
    "HedgeLegs",
    "LeftoverVerdict",
    "ReconcileReport",
    "Reconciler",
    "TradingStateGate",
    "allocate",
    "classify_leftover",
    "explain_shortfall",
    "final_status",
    "hedge_fill_handlers",
    "is_closing",
]

log = structlog.stdlib.get_logger("alchemiser.reconcile")

T = TypeVar("T")

# Builds the fill handler of one intent (None: book the fill on the intent only).
FillHandlerFactory = Callable[[IntentRecord], FillHandler | None]

OPENING_PURPOSES = frozenset({"open", "roll_open", "open_short_leg"})
CLOSING_PURPOSES = frozenset({"close", "roll_close", "compensating_close"})
_OPENS = frozenset({PositionIntent.BUY_TO_OPEN, PositionIntent.SELL_TO_OPEN})
_CLOSES = frozenset({PositionIntent.BUY_TO_CLOSE, PositionIntent.SELL_TO_CLOSE})
_SETTLEMENTS = frozenset({ActivityType.OPEXP, ActivityType.OPEXC, ActivityType.OPASN})
_TRADES = frozenset({ActivityType.FILL, ActivityType.OPTRD})
ACTIVITY_TYPES = (*_TRADES, *_SETTLEMENTS)

BROKER_ATTEMPTS = 4
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0)
# After a cancel, how often to re-read the order (a real broker cancels asynchronously).
CANCEL_CONFIRM_POLLS = 10
CANCEL_POLL_SECONDS = 1.0
# Activities are read from a little before a hedge's opening intent was created.
ACTIVITY_MARGIN = timedelta(minutes=5)
# How many of the newest hedges are checked for "closed by us, still held at the broker".
CLOSED_HEDGE_LOOKBACK = 200
CENT = Decimal("0.01")
ZERO = Decimal(0)
_TEMPORARY = (BrokerUnavailable, OrderOutcomeUnknown, TimeoutError)


# -- the pre-trade gate -------------------------------------------------------------------


def is_closing(plan: ExecutionPlan) -> bool:
    """Whether a plan only closes positions (fail closed: anything unclear is opening).

    A leg marked ``*_to_open`` makes it opening; all legs ``*_to_close`` make it
    closing; otherwise its purpose decides.
    """
    intents = [leg.position_intent for leg in plan.legs]
    if any(i in _OPENS for i in intents):
        return False
    if all(i in _CLOSES for i in intents):
        return True
    return plan.purpose in CLOSING_PURPOSES


class TradingStateGate:
    """A :class:`~alchemiser.execution.engine.PreTradeCheck`: no opening order unless ACTIVE."""

    def __init__(self, state: TradingStateStore) -> None:
        self._state = state

    async def check(self, plan: ExecutionPlan, qty: int, limit_price: Decimal) -> None:
        if is_closing(plan):
            return  # a halted book must still be able to shrink
        current = await self._state.trading_state()
        if current.allows_opening:
            return
        since = current.since.isoformat(timespec="seconds") if current.since else "?"
        raise PreTradeRejected(
            f"trading {current.state.value.lower()}: {current.reason or 'no reason recorded'} "
            f"(since {since}, by {current.changed_by or '?'}; lift it with "
            "`alchemiser reconcile --accept` or `alchemiser trading resume`)"
        )


# -- fill handlers for the hedges ---------------------------------------------------------


def hedge_fill_handlers(store: HedgeStore) -> dict[str, FillHandlerFactory]:
    """``{"hedge": factory}``: books a hedge intent's fills as the hedge executor does.

    Built from the intent alone (``related_ids["hedge_id"]``, legs, purpose), so a
    fill that landed while the daemon was down updates the hedge position and the
    spend ledger exactly as ``HedgeExecutor`` would have (same fill references).
    A hedge first created here gets its template from its shape (spread:
    smoothing, single put: tail_first) and no plan id.
    """

    def factory(intent: IntentRecord) -> FillHandler | None:
        hedge_id = intent.related_ids.get("hedge_id")
        if not hedge_id:
            return None
        hedge_id = str(hedge_id)
        buys = [leg for leg in intent.legs if leg.side is Side.BUY]
        sells = [leg for leg in intent.legs if leg.side is Side.SELL]
        if intent.purpose in ("open", "roll_open") and intent.direction == "debit" and buys:
            long = parse_occ(buys[0].symbol)
            short = parse_occ(sells[0].symbol) if sells else None
            key = intent.intent_key.removesuffix(":long")  # a legged spread's long leg
            rolled_from = (
                key.removeprefix("hedge-roll-open:").split(":")[0]  # hedge-roll-open:ID:DATE
                if intent.purpose == "roll_open" and key.startswith("hedge-roll-open:")
                else None
            )
            hedge = NewHedge(
                id=hedge_id,
                underlying=long.root,
                template="smoothing" if short is not None else "tail_first",
                long_symbol=buys[0].symbol,
                long_strike=long.strike,
                short_symbol=sells[0].symbol if sells else None,
                short_strike=short.strike if short is not None else None,
                expiry=long.expiry,
                open_intent_key=key,
                rolled_from=rolled_from,
            )

            async def on_open(session: AsyncSession, fill: FillEvent) -> None:
                await store.add_opening_fill(session, hedge, fill.delta_qty, fill.price, fill.cost)
                await store.record_spend(session, fill.cost, hedge_id, _fill_ref(fill), fill.at)

            return on_open
        if intent.purpose == "open_short_leg" and sells:
            symbol = sells[0].symbol
            strike = parse_occ(symbol).strike

            async def on_short(session: AsyncSession, fill: FillEvent) -> None:
                credit = fill.price * fill.delta_qty * OPTION_MULTIPLIER
                await store.attach_short_leg(session, hedge_id, symbol, strike, credit)
                await store.record_spend(session, fill.cost, hedge_id, _fill_ref(fill), fill.at)

            return on_short
        if intent.direction == "credit" and intent.purpose in CLOSING_PURPOSES:

            async def on_close(session: AsyncSession, fill: FillEvent) -> None:
                await store.add_closing_fill(session, hedge_id, fill.delta_qty, -fill.cost)

            return on_close
        return None

    return {"hedge": factory}


def _fill_ref(fill: FillEvent) -> str:
    # The hedge executor's reference: the same fill is never booked twice in the ledger.
    return f"{fill.client_order_id}@{fill.intent.filled_qty}"


# -- pure comparison ----------------------------------------------------------------------


@dataclass(frozen=True)
class HedgeLegs:
    """A hedge as the broker positions it should account for."""

    hedge_id: str
    contracts: int
    legs: tuple[tuple[str, int], ...]  # (symbol, +1 long / −1 short) per contract

    @classmethod
    def of(cls, hedge: HedgeView) -> HedgeLegs:
        legs = [(hedge.long_symbol, 1)]
        if hedge.short_symbol:
            legs.append((hedge.short_symbol, -1))
        return cls(hedge.id, max(hedge.contracts, 0), tuple(legs))

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(symbol for symbol, _ in self.legs)


@dataclass(frozen=True)
class Allocation:
    """Which broker contracts each hedge's legs account for, and what nothing accounts for."""

    taken: dict[str, dict[str, int]]  # hedge id -> leg symbol -> contracts found
    leftover: dict[str, Decimal]  # symbol -> signed quantity no hedge accounts for (non-zero)

    def shortfall(self, hedge: HedgeLegs) -> dict[str, int]:
        """Contracts missing per leg (0 where the broker holds all of them)."""
        found = self.taken.get(hedge.hedge_id, {})
        return {symbol: hedge.contracts - found.get(symbol, 0) for symbol in hedge.symbols}


def allocate(hedges: Sequence[HedgeLegs], held: Mapping[str, Decimal]) -> Allocation:
    """Hand the broker's option positions to the hedges, oldest first, leg by leg.

    Each leg takes what the broker holds of its symbol with its sign, up to the
    hedge's contracts; the rest is leftover (another hedge on the same contract
    takes after it).
    """
    available = {symbol: Decimal(qty) for symbol, qty in held.items()}
    taken: dict[str, dict[str, int]] = {}
    for hedge in hedges:
        per_leg: dict[str, int] = {}
        for symbol, sign in hedge.legs:
            have = available.get(symbol, ZERO) * sign
            whole = int(have.to_integral_value(rounding=ROUND_FLOOR)) if have > 0 else 0
            n = min(hedge.contracts, whole)
            per_leg[symbol] = n
            available[symbol] = available.get(symbol, ZERO) - sign * n
        taken[hedge.hedge_id] = per_leg
    return Allocation(taken, {s: q for s, q in available.items() if q != 0})


class Outcome(StrEnum):
    EXPIRED = "expired"
    EXERCISED = "exercised"  # a leg exercised or assigned at (or before) expiry
    CLOSED_OUTSIDE = "closed_outside"


@dataclass(frozen=True)
class Explanation:
    """Why contracts of a hedge are gone at the broker."""

    outcome: Outcome
    contracts: int
    proceeds: (
        Decimal | None
    )  # closed outside: cash of those trades; settlement: None (valued later)
    activity_ids: tuple[str, ...]
    note: str = ""


def explain_shortfall(
    hedge: HedgeLegs,
    shortfall: int,
    activities: Sequence[Activity],
    our_order_ids: Iterable[str],
    *,
    past_expiry: bool,
) -> Explanation | None:
    """Explain ``shortfall`` contracts (missing on every leg alike) from account activities.

    - All contracts gone and an expiry, exercise or assignment on a leg:
      settled, EXERCISED if a leg was exercised or assigned, else EXPIRED.
    - Closing trades on every leg that are not ours (a FILL of an order we did
      not send, or an OPTRD) covering the shortfall: closed outside the daemon,
      with those trades' cash (pro rata if they closed more).
    - All contracts gone, past the expiry close, no activity: settled at expiry
      (the caller judges exercise from the price; brokers post activities late).
    - Otherwise None: a mismatch.
    """
    if shortfall <= 0:
        return None
    ours = set(our_order_ids)
    signs = dict(hedge.legs)
    relevant = [a for a in activities if a.symbol in signs]
    whole = shortfall >= hedge.contracts
    settled = [
        a for a in relevant if a.activity_type in _SETTLEMENTS and a.qty * signs[a.symbol] < 0
    ]
    if whole and settled:
        return _settlement(hedge, settled, shortfall)
    trades = [
        a
        for a in relevant
        if a.activity_type in _TRADES
        and (a.order_id is None or a.order_id not in ours)
        and a.qty * signs[a.symbol] < 0  # reduces the leg: a sell of the long, a buy of the short
    ]
    closed = {
        symbol: sum((-a.qty * sign for a in trades if a.symbol == symbol), ZERO)
        for symbol, sign in hedge.legs
    }
    n = min(closed.values())
    if n >= shortfall:
        cash = sum((_cash_of(a) for a in trades), ZERO)
        proceeds = cash if n == shortfall else (cash * shortfall / n)
        return Explanation(
            Outcome.CLOSED_OUTSIDE,
            shortfall,
            proceeds.quantize(CENT, rounding=ROUND_HALF_EVEN),
            tuple(a.id for a in trades),
        )
    if whole and past_expiry:
        # Gone after its expiry with no activity posted yet (brokers post them late).
        return _settlement(hedge, [], shortfall)
    return None


def _settlement(hedge: HedgeLegs, settled: Sequence[Activity], contracts: int) -> Explanation:
    kinds = {a.activity_type for a in settled}
    exercised = bool(kinds & {ActivityType.OPEXC, ActivityType.OPASN})
    return Explanation(
        Outcome.EXERCISED if exercised else Outcome.EXPIRED,
        contracts,
        None,
        tuple(a.id for a in settled),
        "" if settled else "no settlement activity found: judged from the expiry",
    )


def _cash_of(activity: Activity) -> Decimal:
    """Cash of an option trade activity: + received, − paid."""
    if activity.net_amount is not None:
        return activity.net_amount
    return -activity.qty * (activity.price or ZERO) * OPTION_MULTIPLIER


class LeftoverKind(StrEnum):
    KNOWN_EXTERNAL = "known_external"  # as adopted before
    ADOPT = "adopt"  # new (or changed) external position
    EXCESS_ON_HEDGE = "excess_on_hedge"  # more of a hedge's contract than our hedges hold
    CLOSED_HEDGE_HELD = "closed_hedge_held"  # a hedge we closed is still held
    IN_MOTION = "in_motion"  # traded by an intent still being worked: look next time


@dataclass(frozen=True)
class LeftoverVerdict:
    symbol: str
    qty: Decimal
    kind: LeftoverKind
    previous: Decimal | None  # the stored external quantity, if any


def classify_leftover(
    leftover: Mapping[str, Decimal],
    externals: Mapping[str, Decimal],
    *,
    active_symbols: Iterable[str],
    closed_symbols: Iterable[str],
    in_motion: Iterable[str],
) -> tuple[list[LeftoverVerdict], list[str]]:
    """Judge each position no hedge accounts for; also return stored externals now gone."""
    active, closed, moving = set(active_symbols), set(closed_symbols), set(in_motion)
    verdicts = []
    for symbol in sorted(leftover):
        qty = leftover[symbol]
        previous = externals.get(symbol)
        if previous is not None and previous == qty:
            kind = LeftoverKind.KNOWN_EXTERNAL
        elif symbol in moving:
            kind = LeftoverKind.IN_MOTION
        elif symbol in active:
            kind = LeftoverKind.EXCESS_ON_HEDGE
        elif symbol in closed:
            kind = LeftoverKind.CLOSED_HEDGE_HELD
        else:
            kind = LeftoverKind.ADOPT
        verdicts.append(LeftoverVerdict(symbol, qty, kind, previous))
    gone = sorted(s for s in externals if s not in leftover and s not in moving)
    return verdicts, gone


def final_status(intent: IntentRecord, orders: Sequence[BrokerOrderRecord]) -> IntentStatus:
    """An intent's final status from its fills once no order of it is open."""
    if intent.filled_qty >= intent.target_qty:
        return IntentStatus.FILLED
    if intent.filled_qty > 0:
        return IntentStatus.PARTIAL
    last = orders[-1] if orders else None
    if (
        last is not None
        and last.status is BrokerOrderStatus.REJECTED
        and not (last.reject_reason or "").startswith("not sent")
    ):
        return IntentStatus.REJECTED
    return IntentStatus.UNFILLED


# -- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Discrepancy:
    """Something the broker and our records disagree on that nothing explains."""

    kind: str
    detail: str
    symbol: str | None = None
    hedge_id: str | None = None
    client_order_id: str | None = None
    ours: Decimal | None = None
    broker: Decimal | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ResolvedOrder:
    intent_key: str
    client_order_id: str
    action: str  # applied | canceled | not_sent | still_open
    status: str
    filled_qty: int


@dataclass(frozen=True)
class HedgeChange:
    hedge_id: str
    state: str  # EXPIRED | EXERCISED | CLOSED (whole) | ACTIVE (partly closed)
    contracts: int
    proceeds: Decimal
    how: str  # expired | exercised | closed_outside | accepted


@dataclass
class ReconcileReport:
    """What one reconciliation found and did."""

    account: str
    started_at: datetime
    accept: bool
    finished_at: datetime | None = None
    nav: Decimal | None = None
    trading_blocked: bool = False
    resolved_orders: list[ResolvedOrder] = field(default_factory=list)
    finalized_intents: list[tuple[str, str]] = field(default_factory=list)  # (key, status)
    deferred_intents: list[str] = field(default_factory=list)
    settled_hedges: list[HedgeChange] = field(default_factory=list)
    closed_hedges: list[HedgeChange] = field(default_factory=list)
    adopted_externals: list[tuple[str, Decimal, str]] = field(default_factory=list)
    dropped_externals: list[str] = field(default_factory=list)
    external_open_orders: int = 0
    mismatches: list[Discrepancy] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # what --accept changed
    deferred_symbols: list[str] = field(default_factory=list)
    state: TradingStateView | None = None

    @property
    def clean(self) -> bool:
        return not self.mismatches

    @property
    def halted(self) -> bool:
        return self.state is not None and not self.state.allows_opening

    def counts(self) -> dict[str, int]:
        return {
            "resolved_orders": len(self.resolved_orders),
            "finalized_intents": len(self.finalized_intents),
            "deferred_intents": len(self.deferred_intents),
            "settled_hedges": len(self.settled_hedges),
            "closed_hedges": len(self.closed_hedges),
            "adopted_externals": len(self.adopted_externals),
            "dropped_externals": len(self.dropped_externals),
            "mismatches": len(self.mismatches),
            "accepted": len(self.accepted),
        }

    def lines(self) -> list[str]:
        """The report as text for the command line."""
        out = [
            f"reconciliation of account {self.account} at {self.started_at.isoformat(timespec='seconds')}"
            + (" (--accept)" if self.accept else ""),
        ]
        if self.nav is not None:
            out.append(
                f"  NAV {self.nav}"
                + ("  (broker: trading blocked)" if self.trading_blocked else "")
            )
        for o in self.resolved_orders:
            out.append(
                f"  order {o.client_order_id}: {o.action} ({o.status}, {o.filled_qty} filled)"
            )
        for key, status in self.finalized_intents:
            out.append(f"  intent {key}: {status}")
        for key in self.deferred_intents:
            out.append(f"  intent {key}: left to its executor (recently active)")
        for h in self.settled_hedges + self.closed_hedges:
            out.append(
                f"  hedge {h.hedge_id}: {h.how} -> {h.state} "
                f"({h.contracts} contracts, proceeds {h.proceeds})"
            )
        for symbol, qty, how in self.adopted_externals:
            out.append(f"  external position {symbol} {qty}: {how} (never managed)")
        for symbol in self.dropped_externals:
            out.append(f"  external position {symbol}: no longer held")
        if self.external_open_orders:
            out.append(f"  {self.external_open_orders} open order(s) at the broker are not ours")
        for symbol in self.deferred_symbols:
            out.append(f"  {symbol}: in motion (an order is being worked), checked next time")
        label = "MISMATCH (accepted)" if self.accept else "MISMATCH"
        for d in self.mismatches:
            out.append(f"  {label} {d.kind}: {d.detail}")
        for a in self.accepted:
            out.append(f"  accepted: {a}")
        counts = self.counts()
        out.append(
            "summary: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if v)
            if any(counts.values())
            else "summary: broker and records agree, nothing to do"
        )
        if self.state is not None:
            state = self.state
            line = f"trading: {state.state.value}"
            if not state.allows_opening:
                line += f" ({state.reason}); lift with `alchemiser reconcile --accept` or `alchemiser trading resume`"
            out.append(line)
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "started_at": self.started_at.isoformat(),
            "accept": self.accept,
            "counts": self.counts(),
            "mismatches": [d.as_json() for d in self.mismatches],
            "accepted": list(self.accepted),
            "state": None if self.state is None else self.state.state.value,
        }


# -- the reconciler -----------------------------------------------------------------------


Fix = Callable[[], Awaitable[str]]


class Reconciler:
    """Brings our records in line with the broker's, or halts opening trades."""

    def __init__(
        self,
        broker: Broker,
        order_store: OrderStore,
        hedge_store: HedgeStore,
        audit: AuditLog,
        clock: Clock,
        account: str,
        *,
        state: TradingStateStore,
        fill_handlers: Mapping[str, FillHandlerFactory] | None = None,
        calendar: TradingCalendar | None = None,
        in_flight_grace_seconds: float = 0.0,
        strategy_positions: Callable[[], Awaitable[Mapping[str, int]]] | None = None,
    ) -> None:
        """``in_flight_grace_seconds``: an intent touched more recently than this is left to
        the executor working it (0 at start-up, when none runs; a few minutes for the
        end-of-session run, which may overlap a job)."""
        self._broker = broker
        self._orders = order_store
        self._hedges = hedge_store
        self._audit = audit
        self._clock = clock
        self.account = account
        self._state = state
        self._fill_handlers = dict(fill_handlers or {})
        self._calendar = calendar or nyse_calendar()
        self._grace = timedelta(seconds=in_flight_grace_seconds)
        # Option positions another strategy (income) accounts for and settles itself.
        self._strategy_positions = strategy_positions

    async def run(self, *, accept: bool = False, accepted_by: str = "operator") -> ReconcileReport:
        """Reconcile once. ``accept``: take the broker's state as the truth and lift a halt.

        Broker failures that persist through retries propagate (nothing is halted
        for an outage); the caller decides whether to start without a reconciliation.
        """
        now = self._clock.now()
        report = ReconcileReport(self.account, now, accept)
        before = await self._state.trading_state()
        log.info(
            "reconciliation_started",
            account=self.account,
            accept=accept,
            last_reconciled_at=(
                None if before.last_reconciled_at is None else before.last_reconciled_at.isoformat()
            ),
            trading_state=before.state.value,
        )
        try:
            await self._reconcile(report, accept, accepted_by)
        except BrokerError as exc:
            log.error(
                "reconciliation_incomplete",
                account=self.account,
                error=f"{type(exc).__name__}: {exc}",
                note="the broker could not be read; nothing was halted or accepted",
            )
            raise
        report.finished_at = self._clock.now()
        await self._state.mark_reconciled(report.finished_at)
        report.state = await self._state.trading_state()
        counts = report.counts()
        await self._audit.record(
            "RECONCILED",
            details={**counts, "accept": accept, "trading_state": report.state.state.value},
        )
        log.info(
            "reconciliation_done",
            account=self.account,
            clean=report.clean,
            trading_state=report.state.state.value,
            **counts,
        )
        return report

    async def _reconcile(self, report: ReconcileReport, accept: bool, by: str) -> None:
        fixes: list[Fix] = []
        account = await self._call("account", self._broker.get_account)
        report.nav = account.equity
        report.trading_blocked = account.trading_blocked
        if account.trading_blocked:
            log.warning("broker_trading_blocked", account=self.account)
        in_motion = await self._resolve_in_flight(report, fixes)
        in_motion |= await self._check_open_orders(report, fixes)
        await self._check_positions(report, fixes, in_motion)
        report.deferred_symbols = sorted(in_motion)
        if report.mismatches:
            if accept:
                await self._accept(report, fixes, by)
            else:
                await self._halt(report)
        elif accept:
            await self._lift(report, by, "no mismatch")

    # -- orders in flight ------------------------------------------------------------------

    async def _resolve_in_flight(self, report: ReconcileReport, fixes: list[Fix]) -> set[str]:
        """Resolve every intent in flight; returns the symbols still in motion."""
        in_motion: set[str] = set()
        now = self._clock.now()
        for item in await self._orders.in_flight():
            intent = item.intent
            symbols = {leg.symbol for leg in intent.legs}
            touched = max([intent.updated_at, *(o.updated_at for o in item.open_orders)])
            if self._grace and touched > now - self._grace:
                report.deferred_intents.append(intent.intent_key)
                in_motion |= symbols
                continue
            try:
                settled = await self._resolve_intent(report, fixes, item)
            except BrokerError:
                raise
            except Exception as exc:  # the fill handler or the database refused a booking
                error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "reconcile_fill_booking_failed", intent_key=intent.intent_key, error=error
                )
                report.mismatches.append(
                    Discrepancy(
                        "fill_booking_failed",
                        f"the fills of {intent.intent_key} could not be booked: {error}",
                    )
                )
                fixes.append(self._fix_book_on_intent(report, item))
                settled = False
            if not settled:
                in_motion |= symbols
        return in_motion

    def _fix_book_on_intent(self, report: ReconcileReport, item: InFlightIntent) -> Fix:
        """--accept: book the fills on the intent alone (the position is then the broker's)."""

        async def fix() -> str:
            await self._resolve_intent(report, [], item, use_handler=False)
            return (
                f"fills of {item.intent.intent_key} booked on the intent only; "
                "its position is compared as the broker holds it at the next reconciliation"
            )

        return fix

    async def _resolve_intent(
        self,
        report: ReconcileReport,
        fixes: list[Fix],
        item: InFlightIntent,
        *,
        use_handler: bool = True,
    ) -> bool:
        """Resolve one intent's open orders; True when it could be made final."""
        intent = item.intent
        factory = self._fill_handlers.get(intent.strategy) if use_handler else None
        handler = factory(intent) if factory is not None else None
        last_step = max((o.step for o in item.open_orders), default=-1)
        unresolved = False
        for row in item.open_orders:
            cid = row.client_order_id
            found = await self._call(
                "order_lookup", partial(self._broker.get_order_by_client_id, cid)
            )
            if found is None:
                if row.broker_order_id is None and row.status in (
                    BrokerOrderStatus.WRITTEN,
                    BrokerOrderStatus.UNKNOWN,
                ):
                    reason = (
                        f"not sent: superseded by step {last_step}"
                        if row.step < last_step
                        else "not sent: unknown to the broker at reconciliation"
                    )
                    await self._orders.mark_order(
                        cid, BrokerOrderStatus.REJECTED, reject_reason=reason
                    )
                    self._resolved(report, intent, cid, "not_sent", "rejected", 0)
                    continue
                unresolved = True
                report.mismatches.append(
                    Discrepancy(
                        "order_lost",
                        f"the broker does not know order {cid} of {intent.intent_key} although it "
                        f"acknowledged it as {row.broker_order_id} ({row.status.value})",
                        client_order_id=cid,
                    )
                )
                fixes.append(self._fix_lost_order(intent, cid))
                continue
            row, order = await self._apply(intent, cid, found, handler)
            action = "applied"
            if order.status.is_open:
                row, order = await self._cancel(intent, cid, order, handler)
                action = "canceled" if not order.status.is_open else "still_open"
                unresolved = unresolved or order.status.is_open
            self._resolved(report, intent, cid, action, row.status.value, row.filled_qty)
        if unresolved:
            return False
        return await self._finalize(report, intent)

    async def _apply(
        self, intent: IntentRecord, cid: str, order: Order, handler: FillHandler | None
    ) -> tuple[BrokerOrderRecord, Order]:
        row, event = await self._orders.apply_broker_order(cid, order, handler)
        if event is not None:
            log.info(
                "reconcile_fill_booked",
                intent_key=intent.intent_key,
                client_order_id=cid,
                fill_qty=event.delta_qty,
                fill_price=str(event.price),
                fill_cost=str(event.cost),
                position_booked=handler is not None,
            )
            if handler is None:
                log.warning(
                    "reconcile_fill_without_handler",
                    intent_key=intent.intent_key,
                    strategy=intent.strategy,
                    note="booked on the intent only: the position comparison will show it",
                )
        return row, order

    async def _cancel(
        self, intent: IntentRecord, cid: str, order: Order, handler: FillHandler | None
    ) -> tuple[BrokerOrderRecord, Order]:
        """Cancel an order priced before the restart and read it until it is final."""
        try:
            await self._call("cancel", lambda: self._broker.cancel_order(order.id))
        except OrderRejected:
            pass  # no longer cancelable: it filled or expired meanwhile; the re-read says
        except NotFound:
            pass  # the re-read below reports what became of it
        log.info("reconcile_order_canceled", intent_key=intent.intent_key, client_order_id=cid)
        row: BrokerOrderRecord | None = None
        for poll in range(CANCEL_CONFIRM_POLLS):
            if poll:
                await self._clock.sleep(CANCEL_POLL_SECONDS)
            order = await self._call("order_poll", partial(self._broker.get_order, order.id))
            row, order = await self._apply(intent, cid, order, handler)
            if not order.status.is_open:
                break
        assert row is not None
        return row, order

    def _resolved(
        self,
        report: ReconcileReport,
        intent: IntentRecord,
        cid: str,
        action: str,
        status: str,
        filled: int,
    ) -> None:
        report.resolved_orders.append(ResolvedOrder(intent.intent_key, cid, action, status, filled))
        log.info(
            "order_reconciled",
            intent_key=intent.intent_key,
            client_order_id=cid,
            action=action,
            status=status,
            filled_qty=filled,
        )

    async def _finalize(self, report: ReconcileReport, intent: IntentRecord) -> bool:
        orders = await self._orders.orders_of(intent.id)
        if any(not o.is_final for o in orders):
            return False
        intent = await self._orders.get_intent_by_id(intent.id)
        status = final_status(intent, orders)
        sent = [o for o in orders if not (o.reject_reason or "").startswith("not sent")]
        error = None
        if status is not IntentStatus.FILLED:
            error = (
                "finished by reconciliation: "
                + (
                    f"{len(orders) - len(sent)} order(s) never sent; "
                    if len(sent) < len(orders)
                    else ""
                )
                + f"{intent.filled_qty} of {intent.target_qty} filled"
            )
        final = await self._orders.set_intent_status(intent.id, status, error=error)
        report.finalized_intents.append((final.intent_key, final.status.value))
        await self._audit.record(
            "ORDER_RECONCILED",
            related_ids={"intent_key": final.intent_key, **final.related_ids},
            details={
                "status": final.status.value,
                "filled_qty": final.filled_qty,
                "target_qty": final.target_qty,
                "cost": final.cost,
                "orders": [
                    {"client_order_id": o.client_order_id, "status": o.status.value} for o in orders
                ],
            },
        )
        log.info(
            "order_intent_reconciled",
            intent_key=final.intent_key,
            status=final.status.value,
            filled_qty=final.filled_qty,
            target_qty=final.target_qty,
            cost=str(final.cost),
        )
        return True

    def _fix_lost_order(self, intent: IntentRecord, cid: str) -> Fix:
        async def fix() -> str:
            await self._orders.mark_order(
                cid, BrokerOrderStatus.REJECTED, reject_reason="lost at the broker: accepted"
            )
            orders = await self._orders.orders_of(intent.id)
            if all(o.is_final for o in orders):
                current = await self._orders.get_intent_by_id(intent.id)
                await self._orders.set_intent_status(
                    intent.id,
                    final_status(current, orders),
                    error=f"order {cid} lost at the broker: accepted at reconciliation",
                )
            return f"order {cid} recorded as lost (intent {intent.intent_key})"

        return fix

    async def _check_open_orders(self, report: ReconcileReport, fixes: list[Fix]) -> set[str]:
        """Open orders at the broker: the user's are noted; ours must be in flight with us."""
        in_motion: set[str] = set()
        for order in await self._call("open_orders", self._broker.list_open_orders):
            symbols = {order.symbol} if order.symbol else {leg.symbol for leg in order.legs}
            row = await self._orders.get_order(order.client_order_id)
            if row is None:
                report.external_open_orders += 1
                log.info(
                    "external_open_order",
                    broker_order_id=order.id,
                    client_order_id=order.client_order_id,
                    symbols=sorted(symbols),
                )
                continue
            in_motion |= symbols
            if row.is_final:
                detail = (
                    f"order {order.client_order_id} is {order.status.value} at the broker "
                    f"but {row.status.value} in our records"
                )
                report.mismatches.append(
                    Discrepancy(
                        "order_open_but_final", detail, client_order_id=order.client_order_id
                    )
                )
                fixes.append(self._fix_note(f"{detail}: left as it is at the broker"))
        return in_motion

    # -- positions ---------------------------------------------------------------------------

    async def _check_positions(
        self, report: ReconcileReport, fixes: list[Fix], in_motion: set[str]
    ) -> None:
        positions = await self._call("positions", self._broker.get_positions)
        held: dict[str, Decimal] = {}
        for p in positions:
            if p.is_option and p.qty != 0:  # equities are the user's book
                held[p.symbol] = held.get(p.symbol, ZERO) + p.qty
        if self._strategy_positions is not None:
            for symbol, qty in (await self._strategy_positions()).items():
                held[symbol] = _without(held.get(symbol, ZERO), Decimal(qty))
                if held[symbol] == 0:
                    del held[symbol]
        active = [h for h in await self._hedges.active() if h.contracts > 0]
        legs = [HedgeLegs.of(h) for h in active]
        allocation = allocate(legs, held)
        extras: dict[str, Decimal] = {}  # per symbol: contracts --accept hands to externals
        activities: list[Activity] | None = None
        for hedge, hl in zip(active, legs, strict=True):
            missing = allocation.shortfall(hl)
            if not any(missing.values()):
                continue
            if in_motion & set(hl.symbols):
                continue  # an order on it is being worked: its fills will settle this
            if activities is None:
                activities = await self._activities(active, allocation)
            await self._hedge_shortfall(report, fixes, hedge, hl, missing, activities, extras)
        externals = {e.symbol: e for e in await self._state.external_positions()}
        closed_symbols = {
            s
            for h in await self._hedges.history(CLOSED_HEDGE_LOOKBACK)
            if h.state != ACTIVE and h.expiry >= self._today()
            for s in (h.long_symbol, h.short_symbol)
            if s
        }
        verdicts, gone = classify_leftover(
            allocation.leftover,
            {s: e.qty for s, e in externals.items()},
            active_symbols={s for hl in legs for s in hl.symbols},
            closed_symbols=closed_symbols,
            in_motion=in_motion,
        )
        for verdict in verdicts:
            await self._leftover(report, fixes, verdict, externals.get(verdict.symbol), extras)
        for symbol in gone:
            async with self._state.transaction() as s:
                await self._state.drop_external(symbol, session=s)
                await self._audit.record(
                    "EXTERNAL_POSITION_GONE",
                    details={"symbol": symbol, "qty": externals[symbol].qty},
                    session=s,
                )
            report.dropped_externals.append(symbol)
            log.info("external_position_gone", symbol=symbol, qty=str(externals[symbol].qty))
        for symbol, qty in extras.items():
            # A ragged hedge's extra leg contracts join what else is held of the symbol.
            total = allocation.leftover.get(symbol, ZERO) + qty
            fixes.append(self._fix_adopt(symbol, total, "accepted: leg left over from a hedge"))

    async def _activities(
        self, active: Sequence[HedgeView], allocation: Allocation
    ) -> list[Activity]:
        """Option activities since the oldest hedge with contracts missing was opened."""
        starts = []
        for hedge in active:
            if not any(allocation.shortfall(HedgeLegs.of(hedge)).values()):
                continue
            start = hedge.entry_at
            intent = await self._orders.get_intent(hedge.open_intent_key)
            if intent is not None:
                # A fill booked late (at a reconciliation) may postdate the trade that closed it.
                start = min(start, intent.created_at)
            starts.append(start)
        since = min(starts) - ACTIVITY_MARGIN
        return await self._call(
            "activities", lambda: self._broker.get_activities(since, ACTIVITY_TYPES)
        )

    async def _our_order_ids(self, activities: Sequence[Activity], symbols: set[str]) -> set[str]:
        """Broker order ids among these trade activities that are orders we sent."""
        ours: set[str] = set()
        for order_id in {
            a.order_id
            for a in activities
            if a.order_id and a.symbol in symbols and a.activity_type in _TRADES
        }:
            try:
                order = await self._call("order", partial(self._broker.get_order, order_id))
            except NotFound:
                continue
            if await self._orders.get_order(order.client_order_id) is not None:
                ours.add(order_id)
        return ours

    async def _hedge_shortfall(
        self,
        report: ReconcileReport,
        fixes: list[Fix],
        hedge: HedgeView,
        hl: HedgeLegs,
        missing: dict[str, int],
        activities: Sequence[Activity],
        extras: dict[str, Decimal],
    ) -> None:
        found = {s: hl.contracts - m for s, m in missing.items()}
        uniform = len(set(missing.values())) == 1
        shortfall = max(missing.values())
        ours = await self._our_order_ids(activities, set(hl.symbols))
        explanation = None
        if uniform:
            explanation = explain_shortfall(
                hl, shortfall, activities, ours, past_expiry=self._past_expiry(hedge)
            )
        if explanation is not None:
            await self._apply_explanation(report, hedge, explanation)
            return
        held = ", ".join(f"{found[s]} {s}" for s in hl.symbols)
        # What happened to its contracts that was not our doing: a hint for the person.
        hints = sorted(
            {
                f"{a.activity_type.value} {a.qty} {a.symbol}"
                for a in activities
                if a.symbol in missing and not (a.order_id and a.order_id in ours)
            }
        )
        kind = "hedge_missing" if uniform and shortfall >= hl.contracts else "hedge_quantity"
        report.mismatches.append(
            Discrepancy(
                kind,
                f"hedge {hedge.id} has {hl.contracts} contracts in our records, "
                f"the broker holds {held}"
                + (
                    f"; activities not ours: {', '.join(hints)}"
                    if hints
                    else "; no activity explains it"
                ),
                symbol=hedge.long_symbol,
                hedge_id=hedge.id,
                ours=Decimal(hl.contracts),
                broker=Decimal(min(found.values())),
            )
        )
        keep = min(found.values())
        for symbol, sign in hl.legs:
            if found[symbol] > keep:  # a ragged spread: the extra contracts of a leg
                extras[symbol] = extras.get(symbol, ZERO) + sign * (found[symbol] - keep)
        fixes.append(self._fix_hedge(hedge, hl.contracts - keep))

    async def _apply_explanation(
        self, report: ReconcileReport, hedge: HedgeView, explanation: Explanation
    ) -> None:
        if explanation.outcome is Outcome.CLOSED_OUTSIDE:
            proceeds = explanation.proceeds or ZERO
            whole = explanation.contracts >= hedge.contracts
            async with self._state.transaction() as s:
                if whole:
                    view = await self._hedges.settle(hedge.id, CLOSED, proceeds, session=s)
                else:
                    view = await self._hedges.add_closing_fill(
                        s, hedge.id, explanation.contracts, proceeds
                    )
                await self._audit.record(
                    "CLOSED_OUTSIDE",
                    related_ids={"hedge_id": hedge.id},
                    details={
                        "contracts": explanation.contracts,
                        "proceeds": proceeds,
                        "activities": list(explanation.activity_ids),
                        "whole": whole,
                    },
                    session=s,
                )
            log.warning(
                "hedge_closed_outside",
                hedge_id=hedge.id,
                contracts=explanation.contracts,
                proceeds=str(proceeds),
                state=view.state,
                realized_pnl=None if view.realized_pnl is None else str(view.realized_pnl),
                note="closed by a trade the daemon did not send",
            )
            report.closed_hedges.append(
                HedgeChange(hedge.id, view.state, explanation.contracts, proceeds, "closed_outside")
            )
            return
        state = EXERCISED if explanation.outcome is Outcome.EXERCISED else EXPIRED
        proceeds = ZERO
        if not explanation.activity_ids:
            # No activity yet (brokers post them late): OCC exercises anything in the money.
            proceeds = await self._exercise_value(hedge)
            state = EXERCISED if proceeds > 0 else EXPIRED
            log.warning(
                "hedge_settled_without_activity",
                hedge_id=hedge.id,
                expiry=hedge.expiry.isoformat(),
                judged=state,
            )
        elif state == EXERCISED:
            proceeds = await self._exercise_value(hedge)
        async with self._state.transaction() as s:
            view = await self._hedges.settle(hedge.id, state, proceeds, session=s)
            await self._audit.record(
                state,
                related_ids={"hedge_id": hedge.id},
                details={
                    "proceeds": proceeds,
                    "activities": list(explanation.activity_ids),
                    "by": "reconciliation",
                },
                session=s,
            )
        log.info(
            "hedge_settled_at_expiry",
            hedge_id=hedge.id,
            state=state,
            proceeds=str(proceeds),
            realized_pnl=None if view.realized_pnl is None else str(view.realized_pnl),
            by="reconciliation",
        )
        if state == EXERCISED:
            log.warning(
                "hedge_exercised_into_shares",
                hedge_id=hedge.id,
                underlying=hedge.underlying,
                note="an exercise or assignment left a stock position: review it",
            )
        report.settled_hedges.append(
            HedgeChange(hedge.id, state, hedge.contracts, proceeds, state.lower())
        )

    async def _exercise_value(self, hedge: HedgeView) -> Decimal:
        """Intrinsic value of the hedge at the underlying's current price (as the roller does)."""
        quotes = await self._call(
            "stock_quotes", lambda: self._broker.get_stock_quotes([hedge.underlying])
        )
        quote = quotes.get(hedge.underlying)
        if quote is None:
            log.warning("exercise_value_unknown", hedge_id=hedge.id, underlying=hedge.underlying)
            return ZERO
        price = quote.mid if quote.bid > 0 and quote.ask > 0 else quote.last
        value = _intrinsic(hedge.long_symbol, hedge.long_strike, price)
        if hedge.short_symbol and hedge.short_strike is not None:
            value -= _intrinsic(hedge.short_symbol, hedge.short_strike, price)
        return (value * hedge.contracts * OPTION_MULTIPLIER).quantize(CENT)

    async def _leftover(
        self,
        report: ReconcileReport,
        fixes: list[Fix],
        verdict: LeftoverVerdict,
        stored: ExternalPositionView | None,
        extras: dict[str, Decimal],
    ) -> None:
        symbol, qty = verdict.symbol, verdict.qty
        if verdict.kind is LeftoverKind.KNOWN_EXTERNAL:
            await self._state.adopt_external(symbol, qty, stored.note if stored else "")
            return
        if verdict.kind is LeftoverKind.IN_MOTION:
            return
        if verdict.kind is LeftoverKind.ADOPT:
            note = (
                "adopted at reconciliation: no strategy of ours opened it"
                if verdict.previous is None
                else f"changed outside the daemon (was {verdict.previous})"
            )
            async with self._state.transaction() as s:
                how = await self._state.adopt_external(symbol, qty, note, session=s)
                await self._audit.record(
                    "EXTERNAL_POSITION_ADOPTED",
                    details={
                        "symbol": symbol,
                        "qty": qty,
                        "previous": verdict.previous,
                        "how": how,
                    },
                    session=s,
                )
            report.adopted_externals.append((symbol, qty, how))
            log.warning(
                "external_position_adopted",
                symbol=symbol,
                qty=str(qty),
                previous=None if verdict.previous is None else str(verdict.previous),
                note="never managed by the daemon",
            )
            return
        what = (
            "more than our hedges hold"
            if verdict.kind is LeftoverKind.EXCESS_ON_HEDGE
            else "although the hedge that held it is closed in our records"
        )
        report.mismatches.append(
            Discrepancy(
                verdict.kind.value,
                f"the broker holds {qty} {symbol} {what}"
                + (
                    f" (known external: {verdict.previous})" if verdict.previous is not None else ""
                ),
                symbol=symbol,
                broker=qty,
            )
        )
        total = qty + extras.pop(symbol, ZERO)
        fixes.append(self._fix_adopt(symbol, total, f"accepted at reconciliation: {what}"))

    def _fix_hedge(self, hedge: HedgeView, contracts: int) -> Fix:
        async def fix() -> str:
            async with self._state.transaction() as s:
                if contracts >= hedge.contracts:
                    await self._hedges.settle(hedge.id, CLOSED, ZERO, session=s)
                    what = f"hedge {hedge.id} closed (gone at the broker, proceeds unknown: 0)"
                else:
                    await self._hedges.add_closing_fill(s, hedge.id, contracts, ZERO)
                    what = (
                        f"hedge {hedge.id} reduced by {contracts} to "
                        f"{hedge.contracts - contracts} contracts"
                    )
                await self._audit.record(
                    "RECONCILE_ACCEPTED",
                    related_ids={"hedge_id": hedge.id},
                    details={"change": what, "contracts_removed": contracts},
                    session=s,
                )
            return what

        return fix

    def _fix_note(self, what: str) -> Fix:
        async def fix() -> str:
            await self._audit.record("RECONCILE_ACCEPTED", details={"change": "none", "note": what})
            return what

        return fix

    def _fix_adopt(self, symbol: str, qty: Decimal, note: str) -> Fix:
        async def fix() -> str:
            if qty == 0:
                return f"{symbol}: nothing left to adopt"
            async with self._state.transaction() as s:
                await self._state.adopt_external(symbol, qty, note, session=s)
                await self._audit.record(
                    "RECONCILE_ACCEPTED",
                    details={"change": "external position adopted", "symbol": symbol, "qty": qty},
                    session=s,
                )
            return f"{qty} {symbol} adopted as an external position (never managed)"

        return fix

    # -- outcomes ------------------------------------------------------------------------------

    async def _halt(self, report: ReconcileReport) -> None:
        found = [d.as_json() for d in report.mismatches]
        reason = f"reconciliation found {len(found)} unexplained mismatch(es): " + "; ".join(
            d.detail for d in report.mismatches[:3]
        )
        async with self._state.transaction() as s:
            state = await self._state.halt(reason, by="reconcile", session=s)
            await self._audit.record(
                "RECONCILIATION_FAILED",
                details={"mismatches": found, "trading_state": state.state.value},
                session=s,
            )
        log.critical(
            "reconciliation_failed",
            account=self.account,
            mismatches=found,
            trading_state=state.state.value,
            action="opening orders refused until `alchemiser reconcile --accept` "
            "or `alchemiser trading resume`",
        )

    async def _accept(self, report: ReconcileReport, fixes: list[Fix], by: str) -> None:
        for fix in fixes:
            report.accepted.append(await fix())
        await self._audit.record(
            "RECONCILIATION_ACCEPTED",
            details={
                "by": by,
                "mismatches": [d.as_json() for d in report.mismatches],
                "changes": list(report.accepted),
            },
        )
        log.warning(
            "reconciliation_accepted",
            account=self.account,
            by=by,
            mismatches=[d.as_json() for d in report.mismatches],
            changes=report.accepted,
        )
        await self._lift(report, by, f"{len(report.mismatches)} mismatch(es) accepted")

    async def _lift(self, report: ReconcileReport, by: str, why: str) -> None:
        """``--accept`` lifts a halt (a risk mode is the risk engine's to lift)."""
        current = await self._state.trading_state()
        if current.state is not TradingMode.HALTED:
            return
        async with self._state.transaction() as s:
            await self._state.resume(by, reason=f"reconcile --accept: {why}", session=s)
            await self._audit.record(
                "TRADING_RESUMED",
                details={
                    "by": by,
                    "via": "reconcile --accept",
                    "previous_state": current.state.value,
                    "previous_reason": current.reason,
                },
                session=s,
            )
        report.accepted.append(f"trading resumed (was HALTED: {current.reason})")
        log.warning("trading_resumed", by=by, via="reconcile --accept", previous=current.reason)

    # -- helpers -------------------------------------------------------------------------------

    def _today(self) -> date:
        return self._clock.now().astimezone(NEW_YORK).date()

    def _past_expiry(self, hedge: HedgeView) -> bool:
        cal = self._calendar
        day = hedge.expiry
        session = day if cal.is_session(day) else cal.previous_session(day)
        return bool(self._clock.now() >= cal.session_close(session))

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """A broker call, retried on temporary failures; the last failure propagates."""
        for attempt in range(BROKER_ATTEMPTS):
            try:
                return await call()
            except _TEMPORARY as exc:
                if attempt == BROKER_ATTEMPTS - 1:
                    raise
                log.warning(f"reconcile_{what}_failed", attempt=attempt + 1, error=str(exc))
                await self._clock.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])
        raise AssertionError("unreachable")  # pragma: no cover


def _without(held: Decimal, theirs: Decimal) -> Decimal:
    """What is left of ``held`` once another strategy's same-signed ``theirs`` is taken out.

    Only what is there is taken: a short the income module expects but the broker no
    longer holds is the income module's to settle (expiry, assignment), not a mismatch.
    """
    if theirs < 0 < held or held < 0 < theirs or theirs == 0:
        return held
    if theirs < 0:
        return min(ZERO, held - theirs)
    return max(ZERO, held - theirs)


def _intrinsic(symbol: str, strike: Decimal, price: Decimal) -> Decimal:
    try:
        right = parse_occ(symbol).right
    except OccSymbolError:
        right = OptionRight.PUT  # hedges are puts
    return max(ZERO, price - strike) if right.is_call else max(ZERO, strike - price)
