"""The alert service: raise, acknowledge, resolve, escalate, notify.

* :meth:`AlertService.raise_alert` persists the alert (deduplicated by key while
  unresolved), logs it, queues one delivery per remote notifier in the outbox
  and returns; delivery runs in a background task, so a slow or failing
  webhook never holds up the caller (trading).
* :meth:`AlertService.tick` (call it every minute or so) escalates unacknowledged
  alerts that are due and retries failed deliveries with exponential backoff.
  It never raises.
* An alert at EMERGENCY, raised so or escalated there, puts the account in
  ``REDUCING`` in the same transaction: only risk-reducing orders until a person
  runs ``alchemiser trading resume``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from alchemiser.alerts.model import AlertLevel, EscalationMinutes, next_escalation
from alchemiser.alerts.notifiers import AlertMessage, LogNotifier, Notifier
from alchemiser.clock import Clock
from alchemiser.store.alerts import AlertStore, AlertView, NotificationView
from alchemiser.store.reconcile_state import TradingMode

__all__ = ["AlertService", "TradingStateEscalator"]

log = structlog.get_logger("alchemiser.alerts")

# Catch-up bound: an alert climbs at most this many levels in one tick (there are only 3).
_MAX_STEPS = 3


class TradingStateEscalator(Protocol):
    """What the service needs of ``TradingStateStore``."""

    async def escalate(
        self, mode: TradingMode, reason: str, by: str, *, session: AsyncSession | None = None
    ) -> Any: ...


def _message(alert: AlertView, event: str, level: AlertLevel, at: datetime) -> AlertMessage:
    return AlertMessage(
        alert_id=alert.id,
        account=alert.account,
        key=alert.key,
        level=level,
        title=alert.title,
        event=event,
        opened_at=alert.opened_at,
        at=at,
        details=alert.details,
    )


class AlertService:
    """Alerts of one account; ``settings_provider()`` gives the live ``risk.alerts`` section."""

    def __init__(
        self,
        store: AlertStore,
        notifiers: Sequence[Notifier],
        clock: Clock,
        settings_provider: Callable[[], EscalationMinutes],
        trading_state: TradingStateEscalator,
        *,
        retry_base_seconds: float = 30.0,
        retry_max_seconds: float = 3600.0,
        max_attempts: int = 12,
    ) -> None:
        self._store = store
        self._log = LogNotifier()
        remote = [n for n in notifiers if not isinstance(n, LogNotifier)]
        names = [n.name for n in remote]
        if len(set(names)) != len(names):
            raise ValueError(f"notifier names must be unique, got {names}")
        self._notifiers: dict[str, Notifier] = {n.name: n for n in remote}
        self._clock = clock
        self._settings = settings_provider
        self._trading = trading_state
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._max_attempts = max_attempts
        self._delivery: asyncio.Task[None] | None = None
        self._again = False

    @property
    def store(self) -> AlertStore:
        return self._store

    # -- raising and answering -------------------------------------------------------

    async def raise_alert(
        self,
        key: str,
        level: AlertLevel,
        title: str,
        details: Mapping[str, Any] | None = None,
    ) -> AlertView:
        """Open (or find) the alert for ``key``; notifications go out in the background."""
        level = AlertLevel(level)
        async with self._store.transaction() as s:
            result = await self._store.open(
                key, level, title, details or {}, list(self._notifiers), session=s
            )
            if (result.created or result.raised_level) and level is AlertLevel.EMERGENCY:
                await self._reduce(result.alert, s)
        if result.created or result.raised_level:
            event = "opened" if result.created else "escalated"
            self._log.emit(_message(result.alert, event, level, self._clock.now()))
            self._kick()
        return result.alert

    async def ack(self, alert_id: int, by: str) -> AlertView | None:
        """Acknowledge: the alert stops escalating. None if there is no such alert."""
        before, after = await self._store.acknowledge(alert_id, by)
        if before is not None and after is not None and before.state != after.state:
            log.info("alert_acknowledged", alert_id=alert_id, by=by, level=after.level.value)
        return after

    async def resolve(self, alert_id: int) -> AlertView | None:
        after = await self._store.resolve(alert_id)
        if after is not None:
            log.info("alert_resolved", alert_id=alert_id, alert_key=after.key)
        return after

    async def _reduce(self, alert: AlertView, s: AsyncSession) -> None:
        reason = f"EMERGENCY alert {alert.id} ({alert.key}): {alert.title}"
        await self._trading.escalate(TradingMode.REDUCING, reason, "alerts", session=s)
        log.critical(
            "trading_reducing",
            alert_id=alert.id,
            alert_key=alert.key,
            hint="only risk-reducing orders until `alchemiser trading resume`",
        )

    # -- the periodic work -----------------------------------------------------------

    async def tick(self) -> None:
        """Escalate due alerts and deliver due notifications; logs failures, never raises."""
        try:
            await self._escalate_due()
        except Exception:
            log.exception("alert_escalation_failed")
        self._kick()

    async def _escalate_due(self) -> None:
        now = self._clock.now()
        minutes = self._settings()
        for alert in await self._store.unacknowledged():
            current = alert
            for _ in range(_MAX_STEPS):
                step = next_escalation(
                    current.level, current.opened_at, current.last_escalated_at, minutes
                )
                if step is None or step.at > now:
                    break
                async with self._store.transaction() as s:
                    moved = await self._store.escalate(
                        current.id,
                        current.level,
                        step.level,
                        step.at,
                        list(self._notifiers),
                        session=s,
                    )
                    if moved is not None and step.level is AlertLevel.EMERGENCY:
                        await self._reduce(moved, s)
                if moved is None:
                    break  # acknowledged or resolved meanwhile
                self._log.emit(_message(moved, "escalated", step.level, step.at))
                current = moved

    # -- delivery --------------------------------------------------------------------

    def _kick(self) -> None:
        """Start delivering due notifications in the background (or again after the current run)."""
        if not self._notifiers:
            return
        if self._delivery is not None and not self._delivery.done():
            self._again = True
            return
        self._delivery = asyncio.get_running_loop().create_task(
            self._deliver_loop(), name="alert-delivery"
        )

    async def drain(self) -> None:
        """Wait for the background delivery run in progress, if any (tests, shutdown)."""
        while self._delivery is not None and not self._delivery.done():
            await asyncio.shield(self._delivery)

    async def _deliver_loop(self) -> None:
        try:
            while True:
                self._again = False
                await self._deliver_due()
                if not self._again:
                    return
        except Exception:
            log.exception("alert_delivery_failed")

    async def _deliver_due(self) -> None:
        due = await self._store.due_notifications(self._clock.now())
        by_notifier: dict[str, list[NotificationView]] = {}
        for item in due:
            by_notifier.setdefault(item.notifier, []).append(item)
        await asyncio.gather(*(self._deliver(name, items) for name, items in by_notifier.items()))

    async def _deliver(self, name: str, items: list[NotificationView]) -> None:
        notifier = self._notifiers.get(name)
        for item in items:
            if notifier is None:
                await self._store.mark_failed(item.id, f"notifier {name!r} is not configured", None)
                continue
            try:
                await notifier.send(
                    _message(item.alert, item.event, item.level, item.next_attempt_at)
                )
            except Exception as exc:
                await self._failed(item, exc)
            else:
                await self._store.mark_sent(item.id, self._clock.now())
                log.info("alert_notified", alert_id=item.alert.id, notifier=name)

    async def _failed(self, item: NotificationView, exc: Exception) -> None:
        attempts = item.attempts + 1
        error = str(exc) or type(exc).__name__
        if attempts >= self._max_attempts:
            await self._store.mark_failed(item.id, error, None)
            log.error(
                "alert_notification_gave_up",
                alert_id=item.alert.id,
                notifier=item.notifier,
                attempts=attempts,
                error=error,
            )
            return
        delay = min(self._retry_base * 2 ** (attempts - 1), self._retry_max)
        retry_at = self._clock.now() + timedelta(seconds=delay)
        await self._store.mark_failed(item.id, error, retry_at)
        log.warning(
            "alert_notification_failed",
            alert_id=item.alert.id,
            notifier=item.notifier,
            attempts=attempts,
            retry_at=retry_at.isoformat(),
            error=error,
        )

    async def aclose(self) -> None:
        """Stop background delivery (pending rows stay in the outbox) and close notifiers."""
        if self._delivery is not None and not self._delivery.done():
            self._delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery
        for notifier in self._notifiers.values():
            try:
                await notifier.aclose()
            except Exception:
                log.exception("alert_notifier_close_failed", notifier=notifier.name)
