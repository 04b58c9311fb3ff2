"""`alchemiser hedge ...` through click's CliRunner on a migrated SQLite file, real sim broker.

State is seeded through the real services: the sim account is opened by
``SimRuntime`` (via ``make_services``) at a chosen instant, evaluations come
from the ``hedge evaluate`` verb itself and are executed by the real
``HedgeExecutor.drain``. One synthetic market serves the whole module and
the migrated / seeded databases are built once and copied per test.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
from click.testing import CliRunner, Result

from alchemiser import sim_runtime
from alchemiser.cli.hedge_cmd import KILL_SWITCH_DISABLED, KILL_SWITCH_ENABLED, hedge_group
from alchemiser.clock import NEW_YORK, ManualClock, RealClock
from alchemiser.exit_codes import ExitCode
from alchemiser.hedging.context import EXECUTION_QUEUE, PLAN_QUEUE, ROLL_QUEUE
from alchemiser.hedging.sizing import SKIP_REASONS
from alchemiser.sim.market import SimMarket
from alchemiser.store import migrate
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import create_engine, session_factory
from alchemiser.store.hedges import HedgeStore, HedgeView
from alchemiser.store.queue import DurableQueue, JobInfo
from alchemiser.store.sim_state import SimBrokerStore
from tests.helpers import make_services, run_on_manual_clock

T = TypeVar("T")

ACCOUNT = "default"
SESSION = date(2026, 1, 2)  # sim.start_date's session
OPEN = datetime.combine(SESSION, time(9, 30), NEW_YORK)
EVALUATION_TIME = datetime.combine(SESSION, time(15, 30), NEW_YORK)
AFTER_CLOSE = datetime.combine(SESSION, time(17, 0), NEW_YORK)
VERBS = ("status", "evaluate", "roll-check", "history", "disable", "enable", "plan")

_markets: dict[tuple[Any, ...], SimMarket] = {}
_RealSimMarket = SimMarket


def _shared_market(**kwargs: Any) -> SimMarket:
    """One synthetic market per (seed, start) for the module: it is deterministic, state lives in the db."""
    key = (kwargs.get("seed"), kwargs.get("start"), id(kwargs.get("calendar")))
    if key not in _markets:
        _markets[key] = _RealSimMarket(**kwargs)
    return _markets[key]


def arun(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty cwd without alchemiser settings in the environment, and one shared sim market."""
    root = tmp_path_factory.mktemp("hedge_cli")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            upper = name.upper()
            if upper.startswith(("ALCHEMISER", "ALPACA__")) or upper == "DATABASE_URL":
                mp.delenv(name)
        mp.chdir(root)
        mp.setattr(sim_runtime, "SimMarket", _shared_market)
        yield root


def invoke(db: Path, *args: str, env: Mapping[str, str] | None = None) -> Result:
    """``alchemiser hedge ARGS`` in-process; the logging the verb configured is undone after."""
    saved_structlog = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        return CliRunner().invoke(
            hedge_group,
            list(args),
            env={"DATABASE_URL": url_of(db), **(env or {})},
            catch_exceptions=False,
        )
    finally:
        structlog.configure(**saved_structlog)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def line_with(text: str, needle: str) -> str:
    found = [line for line in text.splitlines() if needle in line]
    assert found, f"no line mentions {needle!r} in:\n{text}"
    return found[0]


async def _migrate(path: Path) -> None:
    engine = create_engine(url_of(path))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def _open_sim(path: Path, at: datetime) -> None:
    """Open the sim account (seeded from the scenario) with the simulation standing at ``at``."""
    engine = create_engine(url_of(path))
    try:
        await make_services(engine, ManualClock(at))
    finally:
        await engine.dispose()


async def _execute(path: Path) -> int:
    """What the daemon does next: drain the execution queue from the stored sim time on."""
    engine = create_engine(url_of(path))
    try:
        stored = await SimBrokerStore(session_factory(engine)).get_account(ACCOUNT)
        assert stored is not None
        clock = ManualClock(stored.processed_until)
        services = await make_services(engine, clock)
        return await run_on_manual_clock(
            clock, services.hedge_executor.drain("test-worker", EXECUTION_QUEUE)
        )
    finally:
        await engine.dispose()


async def _read(path: Path, what: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    engine = create_engine(url_of(path))
    try:
        return await what(session_factory(engine))
    finally:
        await engine.dispose()


def evaluations(path: Path) -> list[dict[str, Any]]:
    return arun(_read(path, lambda s: HedgeStore(s, RealClock(), ACCOUNT).evaluations()))


def hedges(path: Path) -> list[HedgeView]:
    return arun(_read(path, lambda s: HedgeStore(s, RealClock(), ACCOUNT).history()))


def jobs(path: Path, queue: str) -> list[JobInfo]:
    return arun(_read(path, lambda s: DurableQueue(s, RealClock()).list(queue=queue)))


def sim_time(path: Path) -> datetime | None:
    stored = arun(_read(path, lambda s: SimBrokerStore(s).get_account(ACCOUNT)))
    return stored.processed_until if stored else None


@pytest.fixture(scope="module")
def migrated(workspace: Path) -> Path:
    path = workspace / "migrated.db"
    arun(_migrate(path))
    return path


@pytest.fixture(scope="module")
def at_evaluation_time(workspace: Path, migrated: Path) -> Path:
    """The sim account opened at 15:30 on the first session: the evaluation finds a put to buy."""
    path = workspace / "at_1530.db"
    shutil.copy(migrated, path)
    arun(_open_sim(path, EVALUATION_TIME))
    return path


@pytest.fixture(scope="module")
def with_hedge(workspace: Path, at_evaluation_time: Path) -> Path:
    """`hedge evaluate` recorded and enqueued a put; the executor bought it."""
    path = workspace / "with_hedge.db"
    shutil.copy(at_evaluation_time, path)
    out = ok(invoke(path, "evaluate"))
    assert "enqueued on hedge_execution" in out, out
    assert arun(_execute(path)) == 1
    bought = hedges(path)
    assert len(bought) == 1 and bought[0].contracts > 0, bought
    return path


def copy_of(template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "alchemiser.db"
    shutil.copy(template, path)
    return path


# -- help and usage ------------------------------------------------------------------------


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(workspace: Path, verb: str) -> None:
    result = CliRunner().invoke(hedge_group, [verb, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout and verb in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("history", "--limit", "0"),
        ("history", "--limit", "many"),
        ("disable",),
        ("disable", "--reason", "   "),
        ("plan",),
        ("plan", "bad id!"),
        ("evaluate", "--plan-id", ""),
        ("evaluate", "--dry"),
        ("status", "extra"),
        ("no-such-verb",),
    ],
)
def test_bad_arguments_exit_2(
    workspace: Path, migrated: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    db = copy_of(migrated, tmp_path)
    result = invoke(db, *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert evaluations(db) == [] and jobs(db, PLAN_QUEUE) == []


def test_alpaca_without_credentials_is_a_config_error(
    workspace: Path, migrated: Path, tmp_path: Path
) -> None:
    db = copy_of(migrated, tmp_path)
    result = invoke(db, "status", env={"ALCHEMISER__BROKER__KIND": "alpaca"})
    assert result.exit_code == ExitCode.CONFIG
    assert "ALPACA__KEY" in result.stderr


def test_an_unmigrated_database_is_a_database_error(workspace: Path, tmp_path: Path) -> None:
    result = invoke(tmp_path / "empty.db", "status")
    assert result.exit_code == ExitCode.DATABASE
    assert "alchemiser db upgrade" in result.stderr


# -- status --------------------------------------------------------------------------------


def test_status_on_an_empty_book(workspace: Path, migrated: Path, tmp_path: Path) -> None:
    db = copy_of(migrated, tmp_path)
    out = ok(invoke(db, "status"))
    assert "active hedges: none" in out
    assert "simulated time" in line_with(out, "hedge book at 2026-01-02 09:30")
    nav = line_with(out, "NAV:").split()[-1]
    assert nav == "150000.00"
    month = line_with(out, "month to date:")
    assert "0.00 of 525.00 monthly cap (0.00 % of 0.35 % NAV)" in month
    year = line_with(out, "year to date:")
    assert "0.00 of 6000.00 annual cap (0.00 % of 4.00 % NAV)" in year
    assert "is below the band" in line_with(out, "target band 2-5 % NAV")
    for move in ("-10", "-20", "-30"):
        assert line_with(out, f"  {move} %:").strip() == f"{move} %: 0.00 (0.00 % NAV)"
    floor = line_with(out, "protection floor:")
    assert "NOT MET, shortfall 9000.00 (6.00 % NAV)" in floor
    assert "no evaluation recorded yet" in out
    assert "persisted switch: enabled (never changed)" in out
    assert "config hedging.enabled: true" in out
    # Reading the book opened the sim account but did not move simulated time.
    assert sim_time(db) == OPEN
    ok(invoke(db, "status"))
    assert sim_time(db) == OPEN


def test_status_with_a_hedge(workspace: Path, with_hedge: Path, tmp_path: Path) -> None:
    db = copy_of(with_hedge, tmp_path)
    before = sim_time(db)
    assert before is not None
    (hedge,) = hedges(db)
    out = ok(invoke(db, "status"))
    assert "active hedges: 1" in out
    row = line_with(out, hedge.id).split()
    dte = (hedge.expiry - before.astimezone(NEW_YORK).date()).days
    assert row[:8] == [
        hedge.id,
        hedge.underlying,
        "tail_first",
        hedge.long_symbol,
        hedge.expiry.isoformat(),
        str(dte),
        str(hedge.contracts),
        f"{hedge.premium_paid:.2f}",
    ]
    assert float(row[8]) > 0  # current value from the quotes
    paid = f"{hedge.premium_paid:.2f}"
    assert line_with(out, "month to date:").split()[3] == paid
    assert line_with(out, "year to date:").split()[3] == paid
    payoff = {m: float(line_with(out, f"  {m} %:").split()[2]) for m in ("-10", "-20", "-30")}
    assert 0 < payoff["-10"] < payoff["-20"] < payoff["-30"]
    floor = line_with(out, "protection floor:")
    assert "NOT MET, shortfall" in floor  # one month's budget cannot buy 6 % NAV at -20 %
    assert "binding constraint: monthly_cap" in out
    assert "skip reason: none (it bought)" in out
    assert sim_time(db) == before


# -- evaluate ------------------------------------------------------------------------------


def test_evaluate_dry_run_explains_and_records_nothing(
    workspace: Path, at_evaluation_time: Path, tmp_path: Path
) -> None:
    db = copy_of(at_evaluation_time, tmp_path)
    out = ok(invoke(db, "evaluate", "--dry-run"))
    assert "hedge evaluation for session 2026-01-02 at 2026-01-02 15:30" in out
    assert "binding constraint: monthly_cap" in line_with(out, "budget 525.00")
    assert "target payoff: 9000.00 (6.00 % NAV)" in out
    assert "affordable payoff:" in out
    assert "shortfall" in line_with(out, "protection floor 9000.00")
    assert "selection: QQQ" in out
    assert "recommendation: buy 1 QQQ" in out
    assert "skip reason: none" in out
    assert "dry run: nothing recorded or enqueued" in out
    assert evaluations(db) == []
    assert jobs(db, EXECUTION_QUEUE) == []
    assert sim_time(db) == EVALUATION_TIME


def test_evaluate_records_and_enqueues_once_a_session(
    workspace: Path, at_evaluation_time: Path, tmp_path: Path
) -> None:
    db = copy_of(at_evaluation_time, tmp_path)
    first = ok(invoke(db, "evaluate"))
    assert "recorded; enqueued on hedge_execution for the daemon to execute" in first
    (stored,) = evaluations(db)
    assert stored["session_date"] == SESSION and stored["skip_reason"] is None
    assert len(jobs(db, EXECUTION_QUEUE)) == 1

    second = ok(invoke(db, "evaluate"))
    assert "already evaluated for session 2026-01-02 (plan -)" in second
    assert "recommendation: buy 1 QQQ" in second  # the recorded one, shown again
    assert len(evaluations(db)) == 1 and len(jobs(db, EXECUTION_QUEUE)) == 1

    # Another plan the same day is its own evaluation (the executor dedupes per plan too).
    third = ok(invoke(db, "evaluate", "--plan-id", "plan-7"))
    assert "recorded;" in third
    assert [e["plan_id"] for e in evaluations(db)] == ["plan-7", None]
    assert hedges(db) == []  # the CLI never trades: the daemon executes


def test_evaluate_refuses_to_record_while_the_market_is_closed(
    workspace: Path, migrated: Path, tmp_path: Path
) -> None:
    db = copy_of(migrated, tmp_path)
    arun(_open_sim(db, AFTER_CLOSE))
    result = invoke(db, "evaluate")
    assert result.exit_code == ExitCode.ERROR
    assert "market is closed" in result.stderr and "--dry-run" in result.stderr
    out = ok(invoke(db, "evaluate", "--dry-run"))
    assert "skip reason: market_closed" in out
    assert evaluations(db) == []


# -- the kill switch -----------------------------------------------------------------------


def test_disable_and_enable_flip_the_persisted_switch(
    workspace: Path, migrated: Path, tmp_path: Path
) -> None:
    db = copy_of(migrated, tmp_path)
    out = ok(invoke(db, "disable", "--reason", "vendor outage"))
    assert "hedging disabled by user: vendor outage" in out

    status = ok(invoke(db, "status"))
    switch = line_with(status, "persisted switch:")
    assert "DISABLED by user at 2026-01-02 09:30" in switch and "vendor outage" in switch
    assert "new hedges: STOPPED" in status

    evaluated = ok(invoke(db, "evaluate"))
    assert "skip reason: hedging_disabled" in evaluated
    assert "hedging_disabled" in SKIP_REASONS
    (stored,) = evaluations(db)
    assert stored["skip_reason"] == "hedging_disabled"
    assert jobs(db, EXECUTION_QUEUE) == []

    again = ok(invoke(db, "disable", "--reason", "still out"))
    assert "already disabled" in again
    assert "hedging enabled by user" in ok(invoke(db, "enable"))
    status = ok(invoke(db, "status"))
    assert "persisted switch: enabled by user" in status and "new hedges: allowed" in status

    audit = arun(_read(db, lambda s: AuditLog(s, RealClock(), ACCOUNT).entries()))
    actions = [e.action for e in audit if e.action.startswith("KILL_SWITCH")]
    assert actions == [KILL_SWITCH_ENABLED, KILL_SWITCH_DISABLED, KILL_SWITCH_DISABLED]
    disabled = next(e for e in audit if e.action == KILL_SWITCH_DISABLED)
    assert disabled.details["reason"] == "still out" and disabled.details["changed_by"] == "user"


def test_enable_warns_when_the_config_switch_is_off(
    workspace: Path, migrated: Path, tmp_path: Path
) -> None:
    db = copy_of(migrated, tmp_path)
    out = ok(invoke(db, "enable", env={"ALCHEMISER__HEDGING__ENABLED": "false"}))
    assert "config hedging.enabled is false" in out


# -- roll-check, history, plan ---------------------------------------------------------------


def test_roll_check_lists_what_would_roll_and_enqueues_nothing(
    workspace: Path, with_hedge: Path, tmp_path: Path
) -> None:
    db = copy_of(with_hedge, tmp_path)
    (hedge,) = hedges(db)
    out = ok(invoke(db, "roll-check"))
    assert "no hedge needs rolling (1 active hedge(s) checked)" in out

    # A roll threshold above the hedge's DTE makes it due.
    env = {"ALCHEMISER__HEDGING__TEMPLATES__TAIL_FIRST__ROLL_BELOW_DTE": "85"}
    out = ok(invoke(db, "roll-check", env=env))
    assert "1 of 1 active hedge(s) would roll now:" in out
    row = line_with(out, hedge.id)
    assert "dte_threshold:" in row and "below the roll threshold 85" in row
    assert jobs(db, ROLL_QUEUE) == []
    assert hedges(db)[0].roll_state == "HOLDING"


def test_history_lists_hedges_and_evaluations(
    workspace: Path, with_hedge: Path, migrated: Path, tmp_path: Path
) -> None:
    db = copy_of(with_hedge, tmp_path)
    (hedge,) = hedges(db)
    out = ok(invoke(db, "history"))
    row = line_with(out, hedge.id)
    assert "ACTIVE" in row and f"{hedge.premium_paid:.2f}" in row and row.rstrip().endswith("open")
    evaluation = line_with(out, "2026-01-02  -")
    assert f"decided 1 {hedge.long_symbol}, bought: {hedge.id} ACTIVE" in evaluation

    (tmp_path / "empty").mkdir()
    empty = copy_of(migrated, tmp_path / "empty")
    out = ok(invoke(empty, "history", "--limit", "5"))
    assert out.count("  none") == 2


def test_plan_enqueues_a_rebalance_once(workspace: Path, migrated: Path, tmp_path: Path) -> None:
    db = copy_of(migrated, tmp_path)
    first = ok(invoke(db, "plan", "rebal-2026-01-02"))
    (job,) = jobs(db, PLAN_QUEUE)
    assert f"queued as job {job.id} on {PLAN_QUEUE}" in first
    assert job.dedupe_key == f"rebalance-planned:{ACCOUNT}:rebal-2026-01-02"
    assert job.payload == {
        "event_type": "RebalancePlanned",
        "plan_id": "rebal-2026-01-02",
        "session_date": "2026-01-02",
    }
    second = ok(invoke(db, "plan", "rebal-2026-01-02"))
    assert f"already queued (job {job.id})" in second
    assert len(jobs(db, PLAN_QUEUE)) == 1
