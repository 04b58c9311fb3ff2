"""Alerts and their notification outbox.

An alert row is opened once per ``key`` while unresolved (``open_key`` is the
key until resolution, then NULL, under a unique constraint), so raising the
same problem again finds the existing alert. Each alert event (opened,
escalated) writes one outbox row per remote notifier in the same transaction;
the service delivers PENDING rows whose ``next_attempt_at`` has come and marks
them SENT, or reschedules them, or FAILED after the last attempt. Because the
outbox is in the database, a retry survives a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.alerts.model import AlertLevel, AlertState
from alchemiser.clock import Clock
from alchemiser.store.audit import in_transaction, to_json_safe
from alchemiser.store.engine import dialect_insert
from alchemiser.store.models import Alert, AlertNotification
from alchemiser.store.types import clip_text

__all__ = [
    "AlertStore",
    "AlertView",
    "NotificationState",
    "NotificationView",
]

KEY_MAX = 128
TITLE_MAX = 255
BY_MAX = 64
ERROR_MAX = 2000


class NotificationState:
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


@dataclass(frozen=True)
class AlertView:
    id: int
    account: str
    key: str
    level: AlertLevel
    initial_level: AlertLevel
    state: AlertState
    title: str
    details: dict[str, Any]
    opened_at: datetime
    last_escalated_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None


@dataclass(frozen=True)
class NotificationView:
    id: int
    alert: AlertView
    notifier: str
    event: str
    level: AlertLevel
    attempts: int
    next_attempt_at: datetime


def _view(row: Alert) -> AlertView:
    return AlertView(
        id=row.id,
        account=row.account,
        key=row.key,
        level=AlertLevel(row.level),
        initial_level=AlertLevel(row.initial_level),
        state=AlertState(row.state),
        title=row.title,
        details=dict(row.details or {}),
        opened_at=row.opened_at,
        last_escalated_at=row.last_escalated_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
    )


def _locking(s: AsyncSession, stmt: Any) -> Any:
    if s.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return stmt.execution_options(populate_existing=True)


@dataclass(frozen=True)
class OpenResult:
    alert: AlertView
    created: bool  # a new alert row
    raised_level: bool  # an existing alert moved up to the level asked for


class AlertStore:
    """The alerts of one account."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, account: str
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.account = account

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as s, s.begin():
            yield s

    # -- alerts ----------------------------------------------------------------------

    async def open(
        self,
        key: str,
        level: AlertLevel,
        title: str,
        details: Mapping[str, Any],
        notifiers: Sequence[str],
        *,
        session: AsyncSession | None = None,
    ) -> OpenResult:
        """Open an alert for ``key``, or return the unresolved one (raised to ``level`` if higher).

        Outbox rows are written for a new alert and for a raised level.
        """
        if not key or len(key) > KEY_MAX:
            raise ValueError(f"an alert key must be 1..{KEY_MAX} characters, got {key!r:.40}")
        now = self._clock.now()
        async with in_transaction(self._sessions, session) as s:
            new_id = (
                await s.execute(
                    dialect_insert(s)(Alert)
                    .values(
                        account=self.account,
                        key=key,
                        open_key=key,
                        level=level.value,
                        initial_level=level.value,
                        state=AlertState.OPEN.value,
                        title=clip_text(title, TITLE_MAX),
                        details=to_json_safe(dict(details)),
                        opened_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=[Alert.account, Alert.open_key])
                    .returning(Alert.id)
                )
            ).scalar_one_or_none()
            if new_id is not None:
                row = await s.get(Alert, new_id)
                assert row is not None
                await self._outbox(s, row.id, "opened", level, notifiers, now)
                return OpenResult(_view(row), created=True, raised_level=False)
            row = (
                await s.execute(
                    _locking(
                        s,
                        select(Alert).where(Alert.account == self.account, Alert.open_key == key),
                    )
                )
            ).scalar_one()
            if level.severity <= AlertLevel(row.level).severity:
                return OpenResult(_view(row), created=False, raised_level=False)
            # A worse report of the same problem: the alert takes the new level and, being
            # worse, needs a person again even if it had been acknowledged.
            row.level = level.value
            row.state = AlertState.OPEN.value
            row.last_escalated_at = now
            row.details = to_json_safe(dict(details))
            await self._outbox(s, row.id, "escalated", level, notifiers, now)
            await s.flush()
            return OpenResult(_view(row), created=False, raised_level=True)

    async def escalate(
        self,
        alert_id: int,
        from_level: AlertLevel,
        to_level: AlertLevel,
        at: datetime,
        notifiers: Sequence[str],
        *,
        session: AsyncSession | None = None,
    ) -> AlertView | None:
        """Move an OPEN alert from ``from_level`` to ``to_level``; None if it changed meanwhile."""
        async with in_transaction(self._sessions, session) as s:
            result = await s.execute(
                update(Alert)
                .where(
                    Alert.id == alert_id,
                    Alert.account == self.account,
                    Alert.state == AlertState.OPEN.value,
                    Alert.level == from_level.value,
                )
                .values(level=to_level.value, last_escalated_at=at)
            )
            if not getattr(result, "rowcount", 0):
                return None
            await self._outbox(s, alert_id, "escalated", to_level, notifiers, self._clock.now())
            row = (
                await s.execute(_locking(s, select(Alert).where(Alert.id == alert_id)))
            ).scalar_one()
            return _view(row)

    async def acknowledge(
        self, alert_id: int, by: str, *, session: AsyncSession | None = None
    ) -> tuple[AlertView | None, AlertView | None]:
        """(before, after): after is None when the alert does not exist; no change unless OPEN."""
        async with in_transaction(self._sessions, session) as s:
            row = await self._locked(s, alert_id)
            if row is None:
                return None, None
            before = _view(row)
            if row.state == AlertState.OPEN.value:
                row.state = AlertState.ACKNOWLEDGED.value
                row.acknowledged_at = self._clock.now()
                row.acknowledged_by = clip_text(by, BY_MAX)
                await s.flush()
            return before, _view(row)

    async def resolve(
        self, alert_id: int, *, session: AsyncSession | None = None
    ) -> AlertView | None:
        """Resolve an alert (idempotent); its key is free for a new alert. None: no such alert."""
        async with in_transaction(self._sessions, session) as s:
            row = await self._locked(s, alert_id)
            if row is None:
                return None
            if row.state != AlertState.RESOLVED.value:
                row.state = AlertState.RESOLVED.value
                row.open_key = None
                row.resolved_at = self._clock.now()
                await s.flush()
            return _view(row)

    async def get(self, alert_id: int) -> AlertView | None:
        async with self._sessions() as s:
            row = await s.get(Alert, alert_id)
            return None if row is None or row.account != self.account else _view(row)

    async def alerts(self, *, include_resolved: bool = False, limit: int = 200) -> list[AlertView]:
        """Newest first; unresolved only unless ``include_resolved``."""
        stmt = select(Alert).where(Alert.account == self.account)
        if not include_resolved:
            stmt = stmt.where(Alert.state != AlertState.RESOLVED.value)
        stmt = stmt.order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(limit)
        async with self._sessions() as s:
            return [_view(r) for r in await s.scalars(stmt)]

    async def unacknowledged(self) -> list[AlertView]:
        """OPEN alerts: the ones that escalate."""
        stmt = (
            select(Alert)
            .where(Alert.account == self.account, Alert.state == AlertState.OPEN.value)
            .order_by(Alert.id)
        )
        async with self._sessions() as s:
            return [_view(r) for r in await s.scalars(stmt)]

    async def _locked(self, s: AsyncSession, alert_id: int) -> Alert | None:
        return (
            await s.execute(
                _locking(
                    s, select(Alert).where(Alert.id == alert_id, Alert.account == self.account)
                )
            )
        ).scalar_one_or_none()

    # -- outbox ----------------------------------------------------------------------

    async def _outbox(
        self,
        s: AsyncSession,
        alert_id: int,
        event: str,
        level: AlertLevel,
        notifiers: Sequence[str],
        now: datetime,
    ) -> None:
        if not notifiers:
            return
        await s.execute(
            insert(AlertNotification),
            [
                {
                    "alert_id": alert_id,
                    "notifier": name,
                    "event": event,
                    "level": level.value,
                    "state": NotificationState.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for name in notifiers
            ],
        )

    async def due_notifications(self, now: datetime, limit: int = 100) -> list[NotificationView]:
        """PENDING deliveries of this account whose time has come, oldest first."""
        stmt = (
            select(AlertNotification, Alert)
            .join(Alert, Alert.id == AlertNotification.alert_id)
            .where(
                Alert.account == self.account,
                AlertNotification.state == NotificationState.PENDING,
                AlertNotification.next_attempt_at <= now,
            )
            .order_by(AlertNotification.next_attempt_at, AlertNotification.id)
            .limit(limit)
        )
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [
            NotificationView(
                id=n.id,
                alert=_view(a),
                notifier=n.notifier,
                event=n.event,
                level=AlertLevel(n.level),
                attempts=n.attempts,
                next_attempt_at=n.next_attempt_at,
            )
            for n, a in rows
        ]

    async def mark_sent(self, notification_id: int, at: datetime) -> None:
        async with self._sessions() as s, s.begin():
            await s.execute(
                update(AlertNotification)
                .where(AlertNotification.id == notification_id)
                .values(
                    state=NotificationState.SENT,
                    attempts=AlertNotification.attempts + 1,
                    sent_at=at,
                    last_error=None,
                )
            )

    async def mark_failed(
        self, notification_id: int, error: str, retry_at: datetime | None
    ) -> None:
        """Count a failed attempt: retry at ``retry_at``, or FAILED for good when None."""
        values: dict[str, Any] = {
            "attempts": AlertNotification.attempts + 1,
            "last_error": clip_text(error, ERROR_MAX),
        }
        if retry_at is None:
            values["state"] = NotificationState.FAILED
        else:
            values["next_attempt_at"] = retry_at
        async with self._sessions() as s, s.begin():
            await s.execute(
                update(AlertNotification)
                .where(AlertNotification.id == notification_id)
                .values(**values)
            )

    async def notifications(self, alert_id: int) -> list[dict[str, Any]]:
        """Every delivery row of an alert (for tests and `alerts list` details)."""
        async with self._sessions() as s:
            rows = await s.scalars(
                select(AlertNotification)
                .where(AlertNotification.alert_id == alert_id)
                .order_by(AlertNotification.id)
            )
            return [
                {
                    "id": r.id,
                    "notifier": r.notifier,
                    "event": r.event,
                    "level": r.level,
                    "state": r.state,
                    "attempts": r.attempts,
                    "next_attempt_at": r.next_attempt_at,
                    "last_error": r.last_error,
                }
                for r in rows
            ]
