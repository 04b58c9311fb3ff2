"""The order life cycle shared by hedging and income: price, send, chase, fill until done.

``OrderExecutor.execute(plan)`` works one :class:`ExecutionPlan` (one option,
or a spread as one multi-leg order) to a final status:

1. **Idempotent by intent key.** The intent is created (or found) in the
   order store first. A final intent returns its stored result and sends
   nothing. An intent in flight (a crash, a queue redelivery) is *resumed*:
   each broker order not known to be final is looked up by its deterministic
   client order id. Found: its state and fills are taken (fills not booked
   yet are booked exactly once). Not found and never acknowledged: it never
   reached the broker, so it is re-priced from fresh quotes and sent with the
   *same* client order id. A client id the broker knows is never sent again.
2. **Pricing** (:mod:`alchemiser.execution.pricing`): quotes of every leg,
   fail closed on a missing, crossed, zero, NaN or stale quote (intent
   ``failed``, nothing sent); first limit mid × (1 ∓ improvement), each later
   step ``reprice_step_pct`` of mid toward the far side, bounded by the
   maximum slippage (the clamped step is the last), rounded to a legal tick
   toward our side.
3. **Working an order.** Pre-trade check, then the broker order row is
   written, then it is sent. Polled every ``poll_interval_seconds`` for
   ``first_wait_seconds`` (step 0) or ``reprice_wait_seconds`` (later steps),
   fills booked as they appear; then cancelled, re-read until final (fills
   can land during the cancel) and the *remaining* quantity placed at the
   next step, at most ``max_reprice_steps`` times. Settings are read through
   the callable at every step, so a config edit applies to the next step.
4. **Errors.** ``OrderRejected``: intent ``rejected``, no retry.
   ``BrokerUnavailable``, ``OrderOutcomeUnknown`` or a timeout on submit: the
   order is looked up by client id (found: continue with it) and otherwise
   re-sent with the same client id, with backoff; still unresolved: intent
   ``unknown`` (never a guess). ``DuplicateClientOrderId``: looked up and
   continued. A broker outage while no order is open (quotes unavailable)
   raises ``BrokerUnavailable`` and leaves the intent in flight for the next
   ``execute`` (a queue retry) to resume.
5. **Fills and their effects commit together**: the caller's ``on_fill``
   runs inside the store transaction that books the fill. If booking fails
   (the handler raises, the database fails), the live order is cancelled
   (best effort), the intent is marked ``unknown`` and the error is raised;
   the next ``execute`` books the fill again, exactly once.

A final status with some but not all of the target filled is ``partial``; a
stop for a reason (no quote, pre-trade refusal, rejection) after some fill is
also ``partial``, with the reason in ``error``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

import structlog

from alchemiser.broker.base import (
    Broker,
    BrokerUnavailable,
    DuplicateClientOrderId,
    NotFound,
    OrderOutcomeUnknown,
    OrderRejected,
)
from alchemiser.clock import Clock
from alchemiser.domain.trading import (
    Order,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from alchemiser.execution.pricing import (
    NoValidQuote,
    StepPrice,
    Unpriceable,
    broker_limit,
    checked_touches,
    price_step,
)
from alchemiser.settings.orders import OrderSettings
from alchemiser.store.orders import (
    INTENT_KEY_MAX,
    BrokerOrderRecord,
    BrokerOrderStatus,
    FillEvent,
    FillHandler,
    IntentRecord,
    IntentStatus,
    NewIntent,
    OrderStore,
)

__all__ = [
    "STRATEGIES",
    "ExecutionPlan",
    "ExecutionResult",
    "FillEvent",
    "FillHandler",
    "OrderExecutor",
    "PreTradeCheck",
    "PreTradeRejected",
]

log = structlog.stdlib.get_logger("alchemiser.execution")

STRATEGIES = frozenset({"hedge", "income"})
MAX_LEGS = 4
# Broker calls that fail temporarily are retried this often, sleeping (Clock) between tries.
BROKER_ATTEMPTS = 4
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0)
# After a cancel, how many polls to wait for the broker to confirm the order is final.
CANCEL_CONFIRM_POLLS = 10
# A quote older than this is stale: nothing is priced from it.
DEFAULT_MAX_QUOTE_AGE_SECONDS = 300.0
_TEMPORARY = (BrokerUnavailable, OrderOutcomeUnknown, TimeoutError)


class PreTradeRejected(Exception):
    """The pre-trade check (the risk engine) refuses the order: nothing is sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class PreTradeCheck(Protocol):
    """Every order passes through this before it is sent (the risk engine implements it).

    ``qty`` is in contracts (units of the plan's ratio); ``limit_price`` per
    unit in the plan's direction's terms (paid for a debit, received for a
    credit; positive). Raise :class:`PreTradeRejected` to refuse.
    """

    async def check(self, plan: ExecutionPlan, qty: int, limit_price: Decimal) -> None: ...


@dataclass(frozen=True)
class ExecutionPlan:
    """One thing to trade: a single option order (one leg) or a multi-leg order (2-4 legs)."""

    intent_key: str
    strategy: str
    purpose: str
    legs: tuple[OrderLeg, ...]
    qty: int  # contracts (units of the ratio)
    direction: Literal["debit", "credit"]
    related_ids: Mapping[str, str] = field(default_factory=dict)
    # Hard bound per unit in the direction's terms (most a debit pays, least a credit
    # takes): the price the trade was sized and capped at. None: slippage bound only.
    price_limit: Decimal | None = None
    # This plan's own maximum slippage (% of mid), e.g. a wider one to get out of a
    # position; None: the settings' value.
    max_slippage_pct: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "legs", tuple(self.legs))
        object.__setattr__(self, "related_ids", dict(self.related_ids))
        problems = []
        if not self.intent_key or len(self.intent_key) > INTENT_KEY_MAX:
            problems.append(f"intent_key must be 1..{INTENT_KEY_MAX} characters")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy must be one of {sorted(STRATEGIES)}, got {self.strategy!r}")
        if not self.purpose or len(self.purpose) > 32:
            problems.append(f"purpose must be 1..32 characters, got {self.purpose!r}")
        if isinstance(self.qty, bool) or not isinstance(self.qty, int) or self.qty < 1:
            problems.append(f"qty must be a whole number of contracts >= 1, got {self.qty!r}")
        if self.direction not in ("debit", "credit"):
            problems.append(f"direction must be 'debit' or 'credit', got {self.direction!r}")
        if not 1 <= len(self.legs) <= MAX_LEGS:
            problems.append(f"a plan has 1-{MAX_LEGS} legs, got {len(self.legs)}")
        if len({leg.symbol for leg in self.legs}) != len(self.legs):
            problems.append("a contract appears in more than one leg")
        if any(leg.ratio_qty < 1 for leg in self.legs):
            problems.append("leg ratios must be >= 1")
        if len(self.legs) == 1:
            leg = self.legs[0]
            if leg.ratio_qty != 1:
                problems.append("a single-leg plan has ratio 1")
            expected = "debit" if leg.side is Side.BUY else "credit"
            if self.direction != expected:
                problems.append(
                    f"a single {leg.side.value} is a {expected}, not a {self.direction}"
                )
        if problems:
            raise ValueError(f"invalid execution plan {self.intent_key!r}: " + "; ".join(problems))

    def new_intent(self) -> NewIntent:
        return NewIntent(
            intent_key=self.intent_key,
            strategy=self.strategy,
            purpose=self.purpose,
            legs=self.legs,
            target_qty=self.qty,
            direction=self.direction,
            related_ids=self.related_ids,
        )


@dataclass(frozen=True)
class ExecutionResult:
    """Where an intent ended (or stands, if ``unknown``)."""

    intent_key: str
    status: IntentStatus
    filled_qty: int
    avg_price: Decimal | None  # per unit, direction's terms
    cost: Decimal  # signed cash: + paid, − received, multiplier applied
    orders: list[str]  # client order ids, by step
    error: str | None


@dataclass(frozen=True)
class _Finish:
    """Stop working the intent. ``kind`` "done" takes its status from the fills."""

    kind: Literal["done", "failed", "rejected", "unknown"]
    error: str | None = None


class _Next:
    """Go round again: the latest order is final; decide the next step."""


_NEXT = _Next()
_Outcome = _Finish | _Next


class _Unresolved:
    """A lookup by client id that the broker could not answer."""


_UNRESOLVED = _Unresolved()


class _BookingFailed(Exception):
    """Booking a fill failed (the fill handler or the database); carries the cause."""

    def __init__(self, original: BaseException, order: Order) -> None:
        super().__init__(str(original))
        self.original = original
        self.order = order


@dataclass
class _Run:
    """One execute call's context."""

    plan: ExecutionPlan
    intent_id: int
    on_fill: FillHandler | None
    log: Any


class OrderExecutor:
    """Works execution plans to a final status through a broker and the order store."""

    def __init__(
        self,
        broker: Broker,
        store: OrderStore,
        clock: Clock,
        settings: Callable[[], OrderSettings],
        pretrade: PreTradeCheck | None = None,
        *,
        penny_pilot: Callable[[str], bool] = lambda _underlying: False,
        max_quote_age_seconds: float | None = DEFAULT_MAX_QUOTE_AGE_SECONDS,
    ) -> None:
        self._broker = broker
        self._store = store
        self._clock = clock
        self._settings = settings
        self._pretrade = pretrade
        # False for a penny class only makes ticks coarser: still legal, never wrong.
        self._penny_pilot = penny_pilot
        self._max_quote_age = max_quote_age_seconds
        # One execute per intent at a time in this process (another process is
        # kept safe by the deterministic client ids and the store's row locks).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def execute(
        self, plan: ExecutionPlan, on_fill: FillHandler | None = None
    ) -> ExecutionResult:
        """Work ``plan`` until it is final (or unknown) and return where it ended."""
        lock = self._locks.get(plan.intent_key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[plan.intent_key] = lock
        async with lock:
            return await self._execute(plan, on_fill)

    async def result(self, intent_key: str) -> ExecutionResult | None:
        """The stored result of an intent, or None if there is no such intent."""
        intent = await self._store.get_intent(intent_key)
        return None if intent is None else await self._result(intent)

    # -- the life cycle --------------------------------------------------------

    async def _execute(self, plan: ExecutionPlan, on_fill: FillHandler | None) -> ExecutionResult:
        bound = log.bind(intent_key=plan.intent_key)
        intent, created = await self._store.create_intent(plan.new_intent())
        if created:
            bound.info(
                "order_intent_created",
                strategy=plan.strategy,
                purpose=plan.purpose,
                qty=plan.qty,
                direction=plan.direction,
                legs=[f"{leg.side.value} {leg.ratio_qty} {leg.symbol}" for leg in plan.legs],
            )
        if intent.status.is_final:
            bound.info("order_intent_already_final", status=intent.status.value)
            return await self._result(intent)
        if not created:
            # A crash, a queue redelivery or a retry after "unknown": resolve before sending.
            bound.info("order_intent_resumed", status=intent.status.value)
        if intent.status is not IntentStatus.WORKING:
            intent = await self._store.set_intent_status(intent.id, IntentStatus.WORKING)
        run = _Run(plan, intent.id, on_fill, bound)
        try:
            finish = await self._drive(run)
        except _BookingFailed as failure:
            await self._abandon(run, failure)
            raise failure.original from None
        intent = await self._finish(run, finish)
        return await self._result(intent)

    async def _drive(self, run: _Run) -> _Finish:
        while True:
            intent = await self._store.get_intent_by_id(run.intent_id)
            orders = await self._store.orders_of(intent.id)
            open_rows = [o for o in orders if not o.is_final]
            if open_rows:
                outcome = await self._resolve(run, intent, open_rows)
            else:
                outcome = await self._next_step(run, intent, orders)
            if isinstance(outcome, _Finish):
                return outcome

    async def _next_step(
        self, run: _Run, intent: IntentRecord, orders: list[BrokerOrderRecord]
    ) -> _Outcome:
        if intent.remaining_qty <= 0:
            return _Finish("done")
        settings = self._settings()
        last = orders[-1] if orders else None
        step = 0 if last is None else last.step + 1
        if last is not None:
            if last.status is BrokerOrderStatus.EXPIRED:
                return _Finish("done", f"order {last.client_order_id} expired at the close")
            if last.status is BrokerOrderStatus.REJECTED:
                return _Finish("rejected", last.reject_reason)
            if last.at_max_slippage or step > settings.max_reprice_steps:
                return _Finish("done")
        priced = await self._price(run, intent, step, settings)
        if isinstance(priced, _Finish):
            return priced
        qty = intent.remaining_qty
        refused = await self._check(run, qty, priced.price)
        if refused is not None:
            return refused
        row, created = await self._store.write_broker_order(
            intent.id,
            step,
            qty=qty,
            limit_price=broker_limit(run.plan.legs, run.plan.direction, priced.price),
            quote_mid=priced.mid,
            at_max_slippage=priced.clamped,
        )
        if not created:
            return _NEXT  # another worker wrote this step: resolve its row instead
        if step > 0:
            run.log.info(
                "order_repriced",
                client_order_id=row.client_order_id,
                step=step,
                qty=qty,
                limit=str(row.limit_price),
                mid=str(priced.mid),
                previous_limit=None if last is None else str(last.limit_price),
                at_max_slippage=priced.clamped,
            )
        return await self._submit_and_work(run, intent, row)

    async def _resolve(
        self, run: _Run, intent: IntentRecord, open_rows: list[BrokerOrderRecord]
    ) -> _Outcome:
        """Find out what became of orders not known to be final (after a crash or an error)."""
        *older, last = open_rows
        for row in older:
            # Never expected (a later step exists): settle it so two steps never work at once.
            found = await self._lookup(run, row.client_order_id)
            if isinstance(found, _Unresolved):
                return _Finish("unknown", f"cannot look up {row.client_order_id}")
            if found is None:
                await self._store.mark_order(
                    row.client_order_id,
                    BrokerOrderStatus.REJECTED,
                    reject_reason=f"not sent: superseded by step {last.step}",
                )
                continue
            row = await self._observe(run, row, found)
            if found.status.is_open:
                outcome = await self._cancel(run, row, found)
                if isinstance(outcome, _Finish):
                    return outcome
        found = await self._lookup(run, last.client_order_id)
        if isinstance(found, _Unresolved):
            return _Finish(
                "unknown", f"cannot look up {last.client_order_id}: the broker is unavailable"
            )
        if found is None:
            if last.broker_order_id is None and last.status in (
                BrokerOrderStatus.WRITTEN,
                BrokerOrderStatus.UNKNOWN,
            ):
                run.log.info(
                    "order_outcome_resolved",
                    client_order_id=last.client_order_id,
                    found=False,
                    action="send",
                )
                return await self._send_unsent(run, intent, last)
            return _Finish(
                "unknown",
                f"the broker does not know {last.client_order_id} although it acknowledged it "
                f"as {last.broker_order_id} ({last.status.value})",
            )
        run.log.info(
            "order_outcome_resolved",
            client_order_id=last.client_order_id,
            found=True,
            broker_order_id=found.id,
            status=found.status.value,
            filled_qty=str(found.filled_qty),
        )
        row = await self._observe(run, last, found)
        return await self._work(run, row, found)

    async def _send_unsent(
        self, run: _Run, intent: IntentRecord, row: BrokerOrderRecord
    ) -> _Outcome:
        """A written row the broker never received: price it afresh and send it, same id."""
        qty = intent.remaining_qty
        if qty <= 0:
            await self._store.mark_order(
                row.client_order_id, BrokerOrderStatus.REJECTED, reject_reason="not sent: filled"
            )
            return _NEXT
        priced = await self._price(run, intent, row.step, self._settings())
        if isinstance(priced, _Finish):
            await self._store.mark_order(
                row.client_order_id,
                BrokerOrderStatus.REJECTED,
                reject_reason=f"not sent: {priced.error}",
            )
            return priced
        refused = await self._check(run, qty, priced.price)
        if refused is not None:
            await self._store.mark_order(
                row.client_order_id,
                BrokerOrderStatus.REJECTED,
                reject_reason=f"not sent: {refused.error}",
            )
            return refused
        row = await self._store.rewrite_unsent(
            row.client_order_id,
            qty=qty,
            limit_price=broker_limit(run.plan.legs, run.plan.direction, priced.price),
            quote_mid=priced.mid,
            at_max_slippage=priced.clamped,
        )
        return await self._submit_and_work(run, intent, row)

    async def _submit_and_work(
        self, run: _Run, intent: IntentRecord, row: BrokerOrderRecord
    ) -> _Outcome:
        sent = await self._submit(run, row)
        if isinstance(sent, _Finish):
            return sent
        run.log.info(
            "order_submitted",
            client_order_id=row.client_order_id,
            broker_order_id=sent.id,
            step=row.step,
            qty=row.qty,
            limit=str(row.limit_price),
            mid=None if row.quote_mid is None else str(row.quote_mid),
            status=sent.status.value,
            filled_qty=str(sent.filled_qty),
        )
        row = await self._observe(run, row, sent)
        return await self._work(run, row, sent)

    async def _work(self, run: _Run, row: BrokerOrderRecord, order: Order) -> _Outcome:
        """Poll an open order until it is final or its wait is over (then cancel it)."""
        settings = self._settings()
        wait = settings.first_wait_seconds if row.step == 0 else settings.reprice_wait_seconds
        started = row.submitted_at or order.submitted_at
        deadline = started + timedelta(seconds=wait)
        while order.status.is_open:
            now = self._clock.now()
            if now >= deadline:
                return await self._cancel(run, row, order)
            await self._clock.sleep(
                min(settings.poll_interval_seconds, (deadline - now).total_seconds())
            )
            try:
                order = await self._broker.get_order(order.id)
            except _TEMPORARY as exc:
                run.log.warning(
                    "order_poll_failed", client_order_id=row.client_order_id, error=str(exc)
                )
                continue
            except NotFound:
                return _Finish(
                    "unknown",
                    f"the broker no longer knows order {order.id} ({row.client_order_id})",
                )
            row = await self._observe(run, row, order)
        if order.status is OrderStatus.REJECTED:
            run.log.warning(
                "order_rejected",
                client_order_id=row.client_order_id,
                reason=order.reject_reason,
                filled_qty=str(order.filled_qty),
            )
        return _NEXT

    async def _cancel(self, run: _Run, row: BrokerOrderRecord, order: Order) -> _Outcome:
        """Cancel an order for re-pricing and wait until the broker says it is final."""
        for attempt in range(BROKER_ATTEMPTS):
            try:
                await self._broker.cancel_order(order.id)
                break
            except OrderRejected:
                break  # no longer cancelable: it filled or expired meanwhile; the re-read says
            except NotFound:
                return _Finish(
                    "unknown",
                    f"the broker no longer knows order {order.id} ({row.client_order_id})",
                )
            except _TEMPORARY as exc:
                run.log.warning(
                    "order_cancel_failed",
                    client_order_id=row.client_order_id,
                    attempt=attempt + 1,
                    error=str(exc),
                )
                await self._backoff(attempt)
        else:
            return _Finish("unknown", f"could not cancel {row.client_order_id}: it may still work")
        poll = self._settings().poll_interval_seconds
        for _ in range(CANCEL_CONFIRM_POLLS):
            # Fills can land during the cancel, and a real broker cancels asynchronously.
            try:
                order = await self._broker.get_order(order.id)
            except _TEMPORARY:
                await self._clock.sleep(poll)
                continue
            row = await self._observe(run, row, order)
            if not order.status.is_open:
                if order.status is OrderStatus.CANCELED:
                    run.log.info(
                        "order_canceled_for_reprice",
                        client_order_id=row.client_order_id,
                        step=row.step,
                        qty=row.qty,
                        limit=str(row.limit_price),
                        filled_qty=row.filled_qty,
                    )
                return _NEXT
            await self._clock.sleep(poll)
        return _Finish("unknown", f"{row.client_order_id} is still open after a cancel")

    async def _submit(self, run: _Run, row: BrokerOrderRecord) -> Order | _Finish:
        """Send the row's order; on a lost or failed submit, resolve by client id, then resend."""
        request = self._request(run.plan, row)
        cid = row.client_order_id
        error = "no attempt"
        for attempt in range(BROKER_ATTEMPTS):
            try:
                return await self._broker.submit_order(request)
            except DuplicateClientOrderId as exc:
                found = await self._lookup(run, cid)
                if isinstance(found, Order):
                    run.log.info(
                        "order_outcome_resolved",
                        client_order_id=cid,
                        found=True,
                        via="duplicate",
                        status=found.status.value,
                    )
                    return found
                error = f"duplicate client order id, but the lookup found nothing: {exc.reason}"
            except OrderRejected as exc:
                await self._store.mark_order(
                    cid, BrokerOrderStatus.REJECTED, reject_reason=exc.reason
                )
                run.log.warning(
                    "order_rejected",
                    client_order_id=cid,
                    step=row.step,
                    qty=row.qty,
                    limit=str(row.limit_price),
                    reason=exc.reason,
                )
                return _Finish("rejected", f"{cid}: {exc.reason}")
            except _TEMPORARY as exc:
                error = f"{type(exc).__name__}: {exc}"
                run.log.warning(
                    "order_submit_failed", client_order_id=cid, attempt=attempt + 1, error=error
                )
                # It may have arrived: ask before sending again (resending the same id is
                # safe too, the broker would refuse it as a duplicate).
                found = await self._lookup(run, cid)
                if isinstance(found, Order):
                    run.log.info(
                        "order_outcome_resolved",
                        client_order_id=cid,
                        found=True,
                        status=found.status.value,
                    )
                    return found
            if attempt < BROKER_ATTEMPTS - 1:
                await self._backoff(attempt)
        await self._store.mark_order(cid, BrokerOrderStatus.UNKNOWN)
        run.log.error("order_outcome_unknown", client_order_id=cid, error=error)
        return _Finish(
            "unknown", f"submit of {cid} unresolved after {BROKER_ATTEMPTS} attempts: {error}"
        )

    async def _lookup(self, run: _Run, client_order_id: str) -> Order | _Unresolved | None:
        for attempt in range(BROKER_ATTEMPTS):
            try:
                return await self._broker.get_order_by_client_id(client_order_id)
            except _TEMPORARY as exc:
                run.log.warning(
                    "order_lookup_failed",
                    client_order_id=client_order_id,
                    attempt=attempt + 1,
                    error=str(exc),
                )
                await self._backoff(attempt)
        return _UNRESOLVED

    async def _price(
        self, run: _Run, intent: IntentRecord, step: int, settings: OrderSettings
    ) -> StepPrice | _Finish:
        plan = run.plan
        symbols = [leg.symbol for leg in plan.legs]
        # Age is judged at the moment we asked: how old the data was when it reached us,
        # not how long we took afterwards (which an accelerated clock magnifies).
        asked_at = self._clock.now()
        quotes = await self._with_retries(
            run, "option_quotes", lambda: self._broker.get_option_quotes(symbols)
        )
        try:
            touches = checked_touches(plan.legs, quotes, asked_at, self._max_quote_age)
            return price_step(
                plan.legs,
                plan.direction,
                touches,
                intent.reference_mid,
                step,
                improvement_pct=settings.initial_improvement_pct,
                step_pct=settings.reprice_step_pct,
                max_slippage_pct=(
                    plan.max_slippage_pct
                    if plan.max_slippage_pct is not None
                    else settings.max_slippage_pct
                ),
                penny_pilot=self._penny_pilot,
                price_limit=plan.price_limit,
            )
        except NoValidQuote as exc:
            run.log.warning("order_no_valid_quote", step=step, symbol=exc.symbol, why=exc.why)
            return _Finish("failed", str(exc))
        except Unpriceable as exc:
            run.log.warning("order_unpriceable", step=step, error=str(exc))
            return _Finish("failed", f"cannot price: {exc}")

    async def _check(self, run: _Run, qty: int, price: Decimal) -> _Finish | None:
        if self._pretrade is None:
            return None
        try:
            await self._pretrade.check(run.plan, qty, price)
        except PreTradeRejected as exc:
            run.log.warning("order_pretrade_rejected", qty=qty, limit=str(price), reason=exc.reason)
            return _Finish("failed", f"pre-trade check: {exc.reason}")
        return None

    async def _observe(self, run: _Run, row: BrokerOrderRecord, order: Order) -> BrokerOrderRecord:
        """Store the broker's view of an order and book its new fills (handler included)."""
        try:
            row, event = await self._store.apply_broker_order(
                row.client_order_id, order, run.on_fill
            )
        except Exception as exc:
            raise _BookingFailed(exc, order) from exc
        if event is not None:
            run.log.info(
                "order_filled" if row.filled_qty >= row.qty else "order_partially_filled",
                client_order_id=row.client_order_id,
                step=row.step,
                qty=row.qty,
                limit=str(row.limit_price),
                fill_qty=event.delta_qty,
                fill_price=str(event.price),
                fill_cost=str(event.cost),
                order_filled_qty=row.filled_qty,
                intent_filled_qty=event.intent.filled_qty,
                target_qty=event.intent.target_qty,
            )
        return row

    async def _abandon(self, run: _Run, failure: _BookingFailed) -> None:
        """A fill could not be booked: stop the order (best effort) and flag the intent."""
        run.log.error(
            "order_fill_booking_failed",
            client_order_id=failure.order.client_order_id,
            error=f"{type(failure.original).__name__}: {failure.original}",
        )
        if failure.order.status.is_open:
            try:
                await self._broker.cancel_order(failure.order.id)
            except Exception as exc:  # best effort: reconciliation takes it from here
                run.log.warning(
                    "order_cancel_failed",
                    client_order_id=failure.order.client_order_id,
                    error=str(exc),
                )
        try:
            await self._store.set_intent_status(
                run.intent_id,
                IntentStatus.UNKNOWN,
                error=f"fill of {failure.order.client_order_id} not booked: "
                f"{type(failure.original).__name__}: {failure.original}",
            )
        except Exception as exc:  # the database may be what failed; the intent stays in flight
            run.log.warning("order_intent_flag_failed", error=str(exc))

    async def _finish(self, run: _Run, finish: _Finish) -> IntentRecord:
        intent = await self._store.get_intent_by_id(run.intent_id)
        filled = intent.filled_qty
        if finish.kind == "unknown":
            status = IntentStatus.UNKNOWN
        elif filled >= intent.target_qty:
            status = IntentStatus.FILLED
        elif filled > 0:
            status = IntentStatus.PARTIAL
        elif finish.kind == "done":
            status = IntentStatus.UNFILLED
        else:
            status = IntentStatus(finish.kind)
        intent = await self._store.set_intent_status(intent.id, status, error=finish.error)
        emit = run.log.warning if status is IntentStatus.UNKNOWN else run.log.info
        emit(
            "order_intent_finished",
            status=intent.status.value,
            filled_qty=intent.filled_qty,
            target_qty=intent.target_qty,
            avg_price=None if intent.avg_fill_price is None else str(intent.avg_fill_price),
            cost=str(intent.cost),
            error=finish.error,
        )
        return intent

    # -- helpers ---------------------------------------------------------------

    async def _result(self, intent: IntentRecord) -> ExecutionResult:
        orders = await self._store.orders_of(intent.id)
        return ExecutionResult(
            intent_key=intent.intent_key,
            status=intent.status,
            filled_qty=intent.filled_qty,
            avg_price=intent.avg_fill_price,
            cost=intent.cost,
            orders=[o.client_order_id for o in orders],
            error=intent.last_error,
        )

    @staticmethod
    def _request(plan: ExecutionPlan, row: BrokerOrderRecord) -> OrderRequest:
        if len(plan.legs) == 1:
            leg = plan.legs[0]
            return OrderRequest(
                client_order_id=row.client_order_id,
                qty=Decimal(row.qty),
                type=OrderType.LIMIT,
                time_in_force=TimeInForce.DAY,
                limit_price=row.limit_price,
                symbol=leg.symbol,
                side=leg.side,
                position_intent=leg.position_intent,
            )
        return OrderRequest(
            client_order_id=row.client_order_id,
            qty=Decimal(row.qty),
            type=OrderType.LIMIT,
            time_in_force=TimeInForce.DAY,
            limit_price=row.limit_price,
            legs=plan.legs,
        )

    async def _with_retries(self, run: _Run, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """A read-only broker call, retried on temporary failures; the last one propagates."""
        for attempt in range(BROKER_ATTEMPTS):
            try:
                return await call()
            except _TEMPORARY as exc:
                if attempt == BROKER_ATTEMPTS - 1:
                    raise
                run.log.warning(f"broker_{what}_failed", attempt=attempt + 1, error=str(exc))
                await self._backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _backoff(self, attempt: int) -> None:
        await self._clock.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])
