"""Small test utilities shared by several test modules (no fakes of our own code)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.alerts.service import AlertService
from alchemiser.clock import Clock, SimClock
from alchemiser.daemon import Services
from alchemiser.settings import LiveSettings, load_settings
from alchemiser.sim_runtime import SimRuntime
from alchemiser.store.alerts import AlertStore
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import session_factory
from alchemiser.store.job_runs import JobRuns
from alchemiser.store.queue import DurableQueue
from alchemiser.store.reconcile_state import TradingStateStore
from alchemiser.trading_calendar import nyse_calendar
from alchemiser.wiring import build_hedging, build_income

T = TypeVar("T")


async def make_services(
    engine: AsyncEngine, clock: Clock, config: Path | None = None, account: str = "default"
) -> Services:
    """The daemon's real services on a test database (what Daemon._wire builds), sim broker."""
    sessions = session_factory(engine)
    loaded = load_settings(config, env={})
    live = LiveSettings(loaded.settings, loaded.path, env={})
    sim = await SimRuntime.create(loaded.settings, sessions, nyse_calendar(), clock)
    queue = DurableQueue(sessions, clock, lambda: live.queue)
    audit = AuditLog(sessions, clock, account)
    hedging, hedge_executor = build_hedging(
        live, sim.broker, sessions, clock, nyse_calendar(), queue, audit
    )
    income = build_income(
        live, sim.broker, sessions, clock, nyse_calendar(), audit, hedging.reference
    )
    alerts = AlertService(
        AlertStore(sessions, clock, account),
        [],
        clock,
        lambda: live.current.risk.alerts,
        TradingStateStore(sessions, clock, account),
    )
    return Services(
        alerts=alerts,
        settings=live,
        clock=clock,
        calendar=nyse_calendar(),
        engine=engine,
        sessions=sessions,
        queue=queue,
        audit=audit,
        job_runs=JobRuns(sessions, account),
        instance_id=uuid.uuid4().hex,
        broker=sim.broker,
        hedging=hedging,
        hedge_executor=hedge_executor,
        income=income,
    )


async def wait_for(
    predicate: Callable[[], bool], limit: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` on the event loop until true; fail after ``limit`` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        await asyncio.sleep(0.01)


async def run_on_manual_clock(
    clock: SimClock, work: Coroutine[Any, Any, T], *, limit: float = 30.0, max_sleeps: int = 10_000
) -> T:
    """Run ``work`` to completion on a manual clock: whenever it sleeps on the clock (and
    nothing else runs), jump time straight to the next sleep deadline.

    Deterministic: time moves only while the work waits on the clock, never while it
    does I/O. Fails after ``limit`` real seconds or ``max_sleeps`` jumps.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    task = asyncio.ensure_future(work)
    try:
        for _ in range(max_sleeps):
            while not task.done() and clock.pending_sleepers == 0:
                if loop.time() > deadline:
                    raise AssertionError(f"timed out after {limit}s (clock at {clock.now()})")
                await asyncio.sleep(0.001)
            if task.done():
                return task.result()
            when = clock.next_deadline()
            assert when is not None
            await clock.advance_to(when)
        raise AssertionError(f"still running after {max_sleeps} clock jumps")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
