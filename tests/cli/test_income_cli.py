"""`alchemiser income ...` and `alchemiser approvals ...` through click's CliRunner.

A migrated SQLite file per test (copied from module templates); approvals are seeded through
the real ``IncomeStore`` and answered by the verbs; the screen runs on the simulated broker
opened from the wheel scenario (``make_services`` at a chosen instant, as the daemon would).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import zlib
from collections.abc import Coroutine, Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
from click.testing import CliRunner, Result

from alchemiser.cli.main import cli
from alchemiser.clock import NEW_YORK, ManualClock, RealClock
from alchemiser.store import migrate
from alchemiser.store.engine import create_engine, session_factory
from alchemiser.store.income import (
    APPROVAL_EXPIRED,
    APPROVED,
    PENDING,
    REJECTED,
    ApprovalView,
    IncomeStore,
    NewIncomePosition,
    position_id_for,
)
from tests.helpers import make_services

T = TypeVar("T")

ACCOUNT = "default"
SESSION = date(2026, 1, 2)  # sim.start_date's session: the CLI's clock before any sim runs
SCREEN_TIME = datetime.combine(SESSION, time(10, 30), NEW_YORK)
SCENARIO = Path(__file__).resolve().parents[2] / "config" / "sim_scenario_wheel.toml"
WATCH = ["KO", "PG", "JPM", "XOM", "NVDA"]
PUT = "KO260220P00062500"


def arun(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty cwd without alchemiser settings in the environment, and a wheel config."""
    root = tmp_path_factory.mktemp("income_cli")
    watch = ", ".join(f'"{s}"' for s in WATCH)
    (root / "alchemiser.toml").write_text(
        f'[sim]\nstart_date = {SESSION.isoformat()}\nscenario = "{SCENARIO}"\n\n'
        f'[income]\napproval = "manual"\nwatch_list = [{watch}]\n'
    )
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            upper = name.upper()
            if upper.startswith(("ALCHEMISER", "ALPACA__")) or upper == "DATABASE_URL":
                mp.delenv(name)
        mp.chdir(root)
        yield root


def invoke(workspace: Path, db: Path, *args: str) -> Result:
    """``alchemiser --config <wheel config> ARGS`` in-process; logging restored after."""
    saved_structlog = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        return CliRunner().invoke(
            cli,
            ["--config", str(workspace / "alchemiser.toml"), *args],
            env={"DATABASE_URL": url_of(db)},
            catch_exceptions=False,
        )
    finally:
        structlog.configure(**saved_structlog)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


async def _migrate(path: Path) -> None:
    engine = create_engine(url_of(path))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def _open_sim(path: Path, workspace: Path, at: datetime) -> None:
    engine = create_engine(url_of(path))
    try:
        await make_services(engine, ManualClock(at), workspace / "alchemiser.toml")
    finally:
        await engine.dispose()


async def _with_store(path: Path, at: datetime, work: Any) -> Any:
    engine = create_engine(url_of(path))
    try:
        return await work(IncomeStore(session_factory(engine), ManualClock(at), ACCOUNT))
    finally:
        await engine.dispose()


def with_store(path: Path, work: Any, at: datetime = SCREEN_TIME) -> Any:
    return arun(_with_store(path, at, work))


def approvals(path: Path) -> dict[int, ApprovalView]:
    views = with_store(path, lambda store: store.approvals(None), at=datetime.now(NEW_YORK))
    return {a.id: a for a in views}


async def _seed_approval(store: IncomeStore, symbol: str, expires_at: datetime) -> ApprovalView:
    return await store.add_approval(
        candidate_id=zlib.crc32(symbol.encode()),
        kind="cash_secured_put",
        underlying=symbol[:2],
        symbol=symbol,
        contracts=3,
        min_credit=Decimal("0.86"),
        score=Decimal("7.9"),
        rationale="Selling the KO put yields 10 % a year; earnings well after expiry.",
        intent_key=f"income-open:{SESSION.isoformat()}:{symbol}",
        expires_at=expires_at,
    )


def seed_approval(path: Path, symbol: str = PUT, expires_at: datetime | None = None) -> int:
    close = datetime.combine(SESSION, time(16, 0), NEW_YORK)
    view = with_store(path, lambda s: _seed_approval(s, symbol, expires_at or close))
    return int(view.id)


@pytest.fixture(scope="module")
def migrated(workspace: Path) -> Path:
    path = workspace / "migrated.db"
    arun(_migrate(path))
    return path


@pytest.fixture(scope="module")
def sim_open(workspace: Path, migrated: Path) -> Path:
    """The wheel scenario's sim account, opened at the screen's time on the first session."""
    path = workspace / "sim_open.db"
    shutil.copy(migrated, path)
    arun(_open_sim(path, workspace, SCREEN_TIME))
    return path


@pytest.fixture
def db(migrated: Path, tmp_path: Path) -> Path:
    path = tmp_path / "alchemiser.db"
    shutil.copy(migrated, path)
    return path


# -- approvals ------------------------------------------------------------------------------


def test_approving_an_unknown_approval_exits_1(workspace: Path, db: Path) -> None:
    result = invoke(workspace, db, "approvals", "approve", "999")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "no approval 999" in result.stderr
    result = invoke(workspace, db, "approvals", "reject", "999", "--note", "no")
    assert result.exit_code == 1 and "no approval 999" in result.stderr


def test_an_empty_queue_says_so(workspace: Path, db: Path) -> None:
    assert ok(invoke(workspace, db, "approvals", "list")).strip() == "no approval waiting"
    assert ok(invoke(workspace, db, "approvals", "list", "--all")).strip() == "no approval"


@pytest.mark.parametrize("args", [("approve", "0"), ("approve", "x"), ("reject",), ("list", "1")])
def test_bad_approval_arguments_exit_2(workspace: Path, db: Path, args: tuple[str, ...]) -> None:
    assert invoke(workspace, db, "approvals", *args).exit_code == 2


def test_a_pending_approval_is_listed_approved_once_and_audited(workspace: Path, db: Path) -> None:
    approval_id = seed_approval(db)
    listed = ok(invoke(workspace, db, "approvals", "list"))
    row = next(line for line in listed.splitlines() if PUT in line)
    assert row.split()[0] == str(approval_id) and PENDING in row and "0.86" in row

    out = ok(invoke(workspace, db, "approvals", "approve", str(approval_id)))
    assert f"approval {approval_id} APPROVED" in out and PUT in out and "0.86" in out
    assert approvals(db)[approval_id].state == APPROVED
    assert ok(invoke(workspace, db, "approvals", "list")).strip() == "no approval waiting"
    assert APPROVED in ok(invoke(workspace, db, "approvals", "list", "--all"))

    again = invoke(workspace, db, "approvals", "reject", str(approval_id))
    assert again.exit_code == 1 and f"approval {approval_id} is APPROVED" in again.stderr
    assert approvals(db)[approval_id].state == APPROVED

    async def audit_actions(store: IncomeStore) -> list[str]:
        from alchemiser.store.audit import AuditLog

        log = AuditLog(store._sessions, RealClock(), ACCOUNT)
        return [e.action for e in await log.entries()]

    assert "INCOME_APPROVAL_APPROVED" in with_store(db, audit_actions)


def test_a_rejection_keeps_its_note(workspace: Path, db: Path) -> None:
    approval_id = seed_approval(db)
    out = ok(invoke(workspace, db, "approvals", "reject", str(approval_id), "--note", "earnings"))
    assert f"approval {approval_id} REJECTED" in out and PUT in out
    view = approvals(db)[approval_id]
    assert (view.state, view.note) == (REJECTED, "earnings")


def test_an_approval_past_its_close_is_refused_and_expired(workspace: Path, db: Path) -> None:
    yesterday_close = datetime.combine(date(2025, 12, 31), time(16, 0), NEW_YORK)
    approval_id = seed_approval(db, expires_at=yesterday_close)
    result = invoke(workspace, db, "approvals", "approve", str(approval_id))
    assert result.exit_code == 1
    assert f"approval {approval_id} expired at" in result.stderr
    assert "nothing was traded" in result.stderr
    assert approvals(db)[approval_id].state == APPROVAL_EXPIRED
    # The list expires what is due before showing the queue.
    other = seed_approval(db, symbol="PG260220P00140000", expires_at=yesterday_close)
    assert ok(invoke(workspace, db, "approvals", "list")).strip() == "no approval waiting"
    assert approvals(db)[other].state == APPROVAL_EXPIRED


# -- income positions and history ---------------------------------------------------------------


def test_positions_and_history_of_an_empty_book(workspace: Path, db: Path) -> None:
    out = ok(invoke(workspace, db, "income", "positions"))
    assert "no open income position" in out and "no wheel holding shares" in out
    lines = ok(invoke(workspace, db, "income", "history")).splitlines()
    assert lines[0].startswith("positions (newest first, at most 20): premium 0.00")
    assert "realised option P&L 0.00" in lines[0]
    assert "wheel cycles:" in lines and "events (newest first, at most 20):" in lines
    assert lines.count("  none") == 2


async def _book_a_put(store: IncomeStore) -> None:
    key = f"income-open:{SESSION.isoformat()}:{PUT}"
    new = NewIncomePosition(
        id=position_id_for(key),
        kind="cash_secured_put",
        underlying="KO",
        symbol=PUT,
        strike=Decimal("62.5"),
        expiry=date(2026, 2, 20),
        open_intent_key=key,
    )
    async with store._sessions.begin() as s:
        await store.add_opening_fill(s, new, 2, Decimal("180.00"), "fill-1")
    async with store._sessions.begin() as s:
        await store.add_closing_fill(s, new.id, 2, Decimal("60.50"), "take_profit", "fill-2")


def test_history_shows_closed_positions_with_realised_pnl(workspace: Path, db: Path) -> None:
    with_store(db, _book_a_put)
    out = ok(invoke(workspace, db, "income", "history", "--limit", "5"))
    first = out.splitlines()[0]
    assert "at most 5" in first and "premium 180.00" in first
    assert "realised option P&L 119.50" in first and "CLOSED 1" in first
    row = next(line for line in out.splitlines() if PUT in line and "CLOSED" in line)
    assert "take_profit" in row and "119.50" in row and "60.50" in row
    assert "TAKE_PROFIT" in out and "OPENED" in out
    assert "no open income position" in ok(invoke(workspace, db, "income", "positions"))


# -- the screen ------------------------------------------------------------------------------------


def test_screen_explain_prints_the_universe_and_each_contracts_verdict(
    workspace: Path, sim_open: Path, tmp_path: Path
) -> None:
    db = tmp_path / "screen.db"
    shutil.copy(sim_open, db)
    out = ok(invoke(workspace, db, "income", "screen", "--explain", "ko"))
    lines = out.splitlines()
    assert lines[0] == f"income screen for {SESSION.isoformat()}"
    puts = next(line for line in lines if "cash_secured_put universe:" in line)
    assert all(name in puts for name in WATCH)
    assert any("covered_call universe:" in line and "KO" in line for line in lines)
    assert any(line.strip().startswith("quotes:") for line in lines)
    assert any("removed by rule:" in line for line in lines)
    verdicts = [line for line in lines if line.startswith("KO") and ": " in line]
    assert verdicts, out
    assert all(line.endswith("passes every rule") or "rejected: " in line for line in verdicts), (
        verdicts
    )
    assert any("rejected: " in line and "(needs " in line for line in verdicts)
    # Every KO contract in the scored table passed every rule, by its own verdict line.
    passing = {line.split()[0] for line in verdicts if line.endswith("passes every rule")}
    scored = {line.split()[0] for line in lines if line.startswith("KO") and ": " not in line}
    assert scored <= passing, (scored, passing)
    assert {line.split()[1].rstrip(":") for line in verdicts} <= {
        "covered_call",
        "cash_secured_put",
    }
    # Nothing recorded, nothing traded.
    assert with_store(db, lambda store: store.runs()) == []
    assert with_store(db, lambda store: store.approvals(None)) == []


def test_screen_explain_of_a_name_outside_the_universe_says_so(
    workspace: Path, sim_open: Path, tmp_path: Path
) -> None:
    db = tmp_path / "screen.db"
    shutil.copy(sim_open, db)
    out = ok(invoke(workspace, db, "income", "screen", "--explain", "ZZZZ"))
    assert "ZZZZ: not in the universe, or no valid quote (see above)" in out
