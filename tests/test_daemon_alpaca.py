"""The daemon end to end with broker.kind = "alpaca", talking HTTP to the local Alpaca server.

The server runs the simulated broker and market in-process on 127.0.0.1; the
daemon uses the real alpaca-py client through our adapter. A hedge evaluation
runs as the scheduler would run it, and the hedge it buys is at the broker.
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from alchemiser.clock import NEW_YORK, ManualClock
from alchemiser.daemon import Daemon
from alchemiser.jobs import JOBS
from alchemiser.scheduler import JobRunner
from alchemiser.settings import load_settings
from alchemiser.sim.alpaca_server import AlpacaSimServer, FaultConfig
from alchemiser.sim_runtime import SimRuntime
from alchemiser.store import migrate
from alchemiser.store.engine import create_engine, session_factory
from alchemiser.store.models import SimOrder
from alchemiser.trading_calendar import nyse_calendar
from tests.helpers import run_on_manual_clock, wait_for

KEY = "PKDAEMONE2EKEY01"
SECRET = "daemon-e2e-secret-value"
SESSION = datetime(2026, 1, 7, 15, 30, tzinfo=NEW_YORK)


@pytest.mark.parametrize("faults", [None, "orders"], ids=["clean", "faults_on_orders"])
async def test_the_daemon_hedges_through_the_alpaca_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: str | None
) -> None:
    monkeypatch.chdir(tmp_path)
    clock = ManualClock(SESSION)
    # The far side: the simulated exchange behind Alpaca's REST API, on its own database.
    server_engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'server.db'}")
    await migrate.upgrade(server_engine)
    server_settings = load_settings(None, env={}).settings
    sim = await SimRuntime.create(
        server_settings, session_factory(server_engine), nyse_calendar(), clock
    )
    server = AlpacaSimServer(sim.broker, sim.market, clock, key=KEY, secret=SECRET)
    url = await server.start("127.0.0.1", 0)
    if faults:
        # 20 % of order submissions answered 429 or 5xx, 20 % accepted with the reply lost.
        server.faults = FaultConfig(
            rate_limited_p=0.1,
            server_error_p=0.1,
            lose_response_p=0.2,
            seed=2,
            only=("POST /v2/orders",),
        )
    config = tmp_path / "alchemiser.toml"
    config.write_text(
        'mode = "paper"\n[broker]\nkind = "alpaca"\n'
        '[schedule]\nenabled = false\n[logging]\nformat = "json"\n'
        # Fewer status polls per order: the manual clock makes them instant, and the
        # adapter's rate limiter (180 requests a minute, real time) would slow the test.
        "[hedging.orders]\npoll_interval_seconds = 60\n"
    )
    env = {"ALPACA__KEY": KEY, "ALPACA__SECRET": SECRET, "ALPACA__ENDPOINT": url}
    buf = io.StringIO()
    daemon = Daemon(
        load_settings(config, env=env), env=env, clock=clock, log_stream=buf, handle_signals=False
    )
    task = asyncio.create_task(daemon.run())
    try:
        await wait_for(lambda: "daemon_started" in buf.getvalue() or task.done(), limit=30)
        assert not task.done(), buf.getvalue()[-2000:]
        assert daemon.services is not None
        runner = JobRunner(daemon.services)
        evaluation = next(j for j in JOBS if j.name == "hedge_evaluation")
        assert await run_on_manual_clock(clock, runner.run(evaluation), limit=120) == "done"
        hedges = await daemon.services.hedging.store.active()
        assert len(hedges) == 1, buf.getvalue()[-6000:]
        [hedge] = hedges
        # The hedge the daemon recorded is the position the broker holds.
        held = {p.symbol: p.qty for p in await sim.broker.get_positions()}
        assert held.get(hedge.long_symbol) == hedge.contracts
        mtd, _ = await daemon.services.hedging.store.spend(clock.now())
        assert mtd == hedge.premium_paid > 0
        nav = (await sim.broker.get_account()).equity
        assert mtd <= nav * Decimal("0.0035")  # no cap exceeded
        # Exactly one broker order per client order id, whatever was lost or refused.
        async with session_factory(server_engine)() as s:
            rows = (
                await s.execute(
                    select(SimOrder.client_order_id, func.count()).group_by(
                        SimOrder.client_order_id
                    )
                )
            ).all()
        assert rows and all(count == 1 for _cid, count in rows), rows
        if faults:
            stats = server.stats
            assert stats.injected_429 + stats.injected_5xx + stats.lost_responses > 0, stats
    finally:
        daemon.request_stop("test over")
        code = await asyncio.wait_for(task, 30)
        await server.stop()
        await server_engine.dispose()
    assert code == 0
    out = buf.getvalue()
    assert "broker_selected" in out and '"kind": "alpaca"' in out
    assert SECRET not in out and KEY not in out
