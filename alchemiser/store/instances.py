"""Daemon instances: start, heartbeat and stop records that `alchemiser status` reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alchemiser.store.models import DaemonInstance


@dataclass(frozen=True)
class InstanceView:
    id: str
    host: str
    pid: int
    version: str
    mode: str
    started_at: datetime
    last_beat_at: datetime
    stopped_at: datetime | None
    state: str


class Instances:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], account: str) -> None:
        self._sessions = sessions
        self._account = account

    async def started(
        self, instance_id: str, host: str, pid: int, version: str, mode: str, now: datetime
    ) -> None:
        async with self._sessions.begin() as session:
            # A previous instance that died without stopping is marked as such.
            await session.execute(
                update(DaemonInstance)
                .where(DaemonInstance.account == self._account, DaemonInstance.state == "running")
                .values(state="died")
            )
            session.add(
                DaemonInstance(
                    id=instance_id,
                    account=self._account,
                    host=host,
                    pid=pid,
                    version=version,
                    mode=mode,
                    started_at=now,
                    last_beat_at=now,
                    state="running",
                )
            )

    async def beat(self, instance_id: str, now: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(DaemonInstance)
                .where(DaemonInstance.id == instance_id)
                .values(last_beat_at=now)
            )

    async def stopped(self, instance_id: str, now: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(DaemonInstance)
                .where(DaemonInstance.id == instance_id)
                .values(state="stopped", stopped_at=now, last_beat_at=now)
            )

    async def latest(self) -> InstanceView | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(DaemonInstance)
                .where(DaemonInstance.account == self._account)
                .order_by(DaemonInstance.started_at.desc())
                .limit(1)
            )
            if row is None:
                return None
            return InstanceView(
                id=row.id,
                host=row.host,
                pid=row.pid,
                version=row.version,
                mode=row.mode,
                started_at=row.started_at,
                last_beat_at=row.last_beat_at,
                stopped_at=row.stopped_at,
                state=row.state,
            )
