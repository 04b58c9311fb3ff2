"""The audit history: one row per action the daemon (or an operator) takes.

Every decision, order, fill and operator command leaves an entry with the
account, the time (from the Clock), an action name, the ids it is about, the
correlation id of the work that caused it and a JSON map of details.

``record(..., session=s)`` writes the row inside the caller's transaction, so an
action and its audit entry commit (or roll back) together; without a session
the entry gets its own short transaction.

Details are stored as plain JSON: ``to_json_safe`` turns Decimal into its exact
string, datetimes and dates into ISO 8601, enums into their value, tuples and
sets into lists. Reading an entry back therefore gives strings for those
values, never floats (money stays exact).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.clock import Clock
from alchemiser.store.models import AuditEntry

# Width of the correlation_id column; a longer id is cut rather than losing the row.
CORRELATION_ID_MAX = 64
ACTION_MAX = 64


def to_json_safe(value: Any, *, _path: str = "$") -> Any:
    """``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    Decimal -> exact string, datetime/date/time -> ISO 8601, timedelta -> seconds
    as a string, Enum -> its value, UUID/path -> str, tuple/set -> list,
    dataclass -> dict. Non-finite floats become strings because PostgreSQL
    JSONB rejects NaN and Infinity. Anything else raises TypeError naming where
    in the structure it sits, so a bad value fails in tests, not in production.
    """
    # Enums first: a StrEnum or IntEnum is also a str or int, but we store its value.
    if isinstance(value, Enum):
        return to_json_safe(value.value, _path=_path)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(Decimal(str(value.total_seconds())))
    if isinstance(value, UUID | PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {
            _json_key(k, _path): to_json_safe(v, _path=f"{_path}.{k}") for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [to_json_safe(v, _path=f"{_path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [to_json_safe(v, _path=f"{_path}[]") for v in value]
        # Sorted when possible so the same set always serialises the same way.
        try:
            return sorted(items)
        except TypeError:
            return items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_json_safe(getattr(value, f.name), _path=f"{_path}.{f.name}")
            for f in dataclasses.fields(value)
        }
    raise TypeError(f"{_path}: {type(value).__name__} is not JSON-serialisable ({value!r:.80})")


def _json_key(key: Any, path: str) -> str:
    safe = to_json_safe(key, _path=f"{path}.<key>")
    if isinstance(safe, str):
        return safe
    if isinstance(safe, int | float | bool) or safe is None:
        return str(safe)  # json.dumps would do the same; done here so reads match writes
    raise TypeError(f"{path}: mapping key {key!r} cannot be a JSON object key")


def current_correlation_id() -> str | None:
    """The correlation id bound in structlog's contextvars, if any."""
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return None if value is None else str(value)


def clip_correlation_id(value: str | None) -> str | None:
    return None if value is None else value[:CORRELATION_ID_MAX]


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry as read back (details are plain JSON)."""

    id: int
    account: str
    at: datetime
    action: str
    related_ids: dict[str, Any]
    correlation_id: str | None
    details: dict[str, Any]


class AuditLog:
    """Writes and reads the audit history of one account."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], clock: Clock, account: str
    ) -> None:
        self._sessions = session_factory
        self._clock = clock
        self.account = account

    async def record(
        self,
        action: str,
        *,
        related_ids: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        session: AsyncSession | None = None,
    ) -> AuditRecord:
        """Write one entry; inside ``session``'s transaction when given (the caller commits)."""
        if not action or len(action) > ACTION_MAX:
            raise ValueError(f"audit action must be 1..{ACTION_MAX} characters, got {action!r}")
        values = {
            "account": self.account,
            "at": self._clock.now(),
            "action": action,
            "related_ids": to_json_safe(dict(related_ids or {})),
            "correlation_id": clip_correlation_id(correlation_id or current_correlation_id()),
            "details": to_json_safe(dict(details or {})),
        }
        async with in_transaction(self._sessions, session) as s:
            new_id = (
                await s.execute(insert(AuditEntry).values(**values).returning(AuditEntry.id))
            ).scalar_one()
        return AuditRecord(id=new_id, **values)

    async def entries(
        self,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        *,
        correlation_id: str | None = None,
    ) -> list[AuditRecord]:
        """This account's entries, newest first, optionally filtered."""
        stmt = select(AuditEntry).where(AuditEntry.account == self.account)
        if action is not None:
            stmt = stmt.where(AuditEntry.action == action)
        if since is not None:
            stmt = stmt.where(AuditEntry.at >= since)
        if correlation_id is not None:
            stmt = stmt.where(AuditEntry.correlation_id == correlation_id)
        stmt = stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
        async with self._sessions() as s, s.begin():
            rows = (await s.execute(stmt)).scalars().all()
        return [
            AuditRecord(
                id=r.id,
                account=r.account,
                at=r.at,
                action=r.action,
                related_ids=r.related_ids,
                correlation_id=r.correlation_id,
                details=r.details,
            )
            for r in rows
        ]


@asynccontextmanager
async def in_transaction(
    sessions: async_sessionmaker[AsyncSession], session: AsyncSession | None
) -> AsyncIterator[AsyncSession]:
    """The caller's session as is (its transaction, its commit), or a fresh committed one."""
    if session is not None:
        yield session
        return
    async with sessions() as s, s.begin():
        yield s
