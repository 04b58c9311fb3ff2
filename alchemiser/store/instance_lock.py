"""One daemon per account: a PostgreSQL advisory lock, or an OS file lock beside the SQLite file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import filelock
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class InstanceLock(Protocol):
    description: str

    async def acquire(self) -> bool:
        """Take the lock without waiting; False if another process holds it."""

    async def still_held(self) -> bool:
        """Whether the lock is still ours (a dropped PostgreSQL connection loses it)."""

    async def release(self) -> None: ...


class FileInstanceLock:
    """An flock on ``<database>.lock``: the OS frees it if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"lock file {path}"
        self._lock = filelock.FileLock(str(path), timeout=0)

    async def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        return True

    async def still_held(self) -> bool:
        return self._lock.is_locked

    async def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()


class AdvisoryInstanceLock:
    """A session-level ``pg_advisory_lock`` held on a dedicated connection."""

    def __init__(self, engine: AsyncEngine, account: str) -> None:
        self._engine = engine
        self.key = advisory_key(account)
        self.description = f"PostgreSQL advisory lock {self.key} (account {account!r})"
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        conn = await self._engine.connect()
        got = (
            await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
        ).scalar()
        await conn.commit()
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            # A session-level advisory lock lives exactly as long as its session.
            await self._conn.execute(text("SELECT 1"))
            await self._conn.commit()
            return True
        except Exception:  # the connection is gone, and the lock with it
            return False

    async def release(self) -> None:
        if self._conn is None:
            return
        try:
            await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            await self._conn.commit()
        finally:
            await self._conn.close()
            self._conn = None


def advisory_key(account: str) -> int:
    """A stable signed 64-bit key for the account (PostgreSQL's bigint range)."""
    digest = hashlib.sha256(f"alchemiser:{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def instance_lock_for(engine: AsyncEngine, url: str, account: str) -> InstanceLock:
    if engine.dialect.name == "postgresql":
        return AdvisoryInstanceLock(engine, account)
    database = make_url(url).database or "alchemiser.db"
    return FileInstanceLock(Path(database).with_name(Path(database).name + ".lock"))
