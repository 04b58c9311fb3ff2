"""Shared fixtures: a real SQLite file and a real PostgreSQL database per test.

PostgreSQL comes from ALCHEMISER_TEST_DATABASE_URL (default: the local server
on 127.0.0.1:5432). If it cannot be reached the PostgreSQL variants skip with
the reason, except under CI (env CI set), where they fail.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.store import migrate
from alchemiser.store.engine import create_engine

T = TypeVar("T")

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pg_admin_url() -> str:
    return os.environ.get("ALCHEMISER_TEST_DATABASE_URL", DEFAULT_PG_URL)


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


class PostgresServer:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.template: str | None = None

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(_asyncpg_dsn(self.admin_url), timeout=5)

    async def create(self, template: str | None = None) -> str:
        name = f"alch_t_{uuid.uuid4().hex[:12]}"
        conn = await self._admin()
        try:
            clause = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{name}"{clause}')
        finally:
            await conn.close()
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    async def drop(self, url: str) -> None:
        name = make_url(url).database
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def _pg_unavailable_reason() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(pg_admin_url()), timeout=5)
        await conn.close()

    try:
        run_in_thread(probe)
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        return f"PostgreSQL at {make_url(pg_admin_url()).render_as_string()} unreachable: {exc!r}"
    return None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    reason = _pg_unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires PostgreSQL: {reason}")
        pytest.skip(f"SKIPPING POSTGRESQL TESTS: {reason}")
    server = PostgresServer(pg_admin_url())
    # A migrated template makes each test's fresh database a cheap file copy.
    template_url = run_in_thread(server.create)

    async def migrate_template() -> None:
        engine = create_engine(template_url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    run_in_thread(migrate_template)
    server.template = make_url(template_url).database
    yield server
    run_in_thread(lambda: server.drop(template_url))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        request.getfixturevalue("pg_server")  # skip (or fail under CI) before any async work
    return str(request.param)


def run_in_thread(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro_fn()).result()


@pytest.fixture
async def empty_db_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A database with no tables at all, on the parametrised backend."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'alchemiser.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    url = await server.create()
    yield url
    await server.drop(url)


@pytest.fixture
async def db_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A database migrated to head, on the parametrised backend."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'alchemiser.db'}"
        engine = create_engine(url)
        await migrate.upgrade(engine)
        await engine.dispose()
        yield url
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    url = await server.create(template=server.template)
    yield url
    await server.drop(url)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()
