"""`alchemiser status` (what the daemon is doing) and `alchemiser doctor` (is everything in place)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime

import click

from alchemiser.cli.common import (
    CliFailure,
    CliState,
    check_reachable,
    config_failure,
    open_database,
    pass_state,
    run,
)
from alchemiser.clock import NEW_YORK, RealClock
from alchemiser.exit_codes import ExitCode
from alchemiser.session_triggers import SessionTrigger
from alchemiser.settings import ConfigError, Settings, load_settings
from alchemiser.store import migrate
from alchemiser.store.engine import create_engine, describe_url, session_factory
from alchemiser.store.instance_lock import instance_lock_for
from alchemiser.store.instances import Instances
from alchemiser.store.job_runs import JobRuns
from alchemiser.store.queue import DurableQueue
from alchemiser.trading_calendar import nyse_calendar


def _ago(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _ny(dt: datetime) -> str:
    return dt.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M %Z")


def upcoming_jobs(settings: Settings, now: datetime) -> list[tuple[datetime, str]]:
    """Next fire time of each declared job's schedule key, from the calendar alone."""
    from alchemiser.settings.core import ScheduleSettings

    calendar = nyse_calendar()
    keys = [
        name for name, field in ScheduleSettings.model_fields.items() if field.annotation is str
    ]
    runs = []
    for key in keys:
        when = SessionTrigger(calendar, getattr(settings.schedule, key)).get_next_fire_time(
            None, now
        )
        if when is not None:
            runs.append((when, key))
    return sorted(runs)


@click.command("status")
@pass_state
def status_command(state: CliState) -> None:
    """Daemon state, schema, queue depth, next and recent job runs."""
    settings = state.settings()
    now = RealClock().now()
    account = settings.broker.account

    async def go() -> None:
        async with open_database(settings) as engine:
            url = settings.database.url.get_secret_value()
            sessions = session_factory(engine)
            lock = instance_lock_for(engine, url, account)
            free = await lock.acquire()
            if free:
                await lock.release()
            latest = await Instances(sessions, account).latest()
            if not free and latest is not None:
                click.echo(
                    f"daemon:    running (pid {latest.pid} on {latest.host}, version {latest.version}, "
                    f"since {_ny(latest.started_at)}, last heartbeat {_ago(now, latest.last_beat_at)})"
                )
            elif not free:
                click.echo(f"daemon:    running ({lock.description} is held)")
            elif latest is not None:
                ended = latest.stopped_at or latest.last_beat_at
                how = (
                    "stopped cleanly" if latest.state == "stopped" else "ended without a clean stop"
                )
                click.echo(f"daemon:    not running (last instance {how}, {_ny(ended)})")
            else:
                click.echo("daemon:    not running (never started on this database)")
            click.echo(
                f"mode:      {settings.mode}, broker {settings.broker.kind}, account {account}"
            )
            schema = await migrate.schema_state(engine)
            click.echo(f"database:  {describe_url(url)} (schema {schema.current}, up to date)")
            counts = await DurableQueue(sessions, RealClock()).counts()
            summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"
            click.echo(f"queue:     {summary}")
            click.echo("next jobs:")
            for when, name in upcoming_jobs(settings, now)[:8]:
                click.echo(f"  {_ny(when)}  {name}")
            runs = await JobRuns(sessions, account).recent(10)
            click.echo("recent job runs:" if runs else "recent job runs: none")
            for r in runs:
                line = f"  {r.session_date}  {r.job_name:<20} {r.status:<8} started {_ny(r.started_at)}"
                click.echo(line + (f"  error: {r.error}" if r.error else ""))

    run(go())


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    code: ExitCode = ExitCode.ERROR
    warn: bool = False


@click.command("doctor")
@pass_state
def doctor_command(state: CliState) -> None:
    """Check config, database and schema, broker credentials, clock and calendar."""
    checks: list[Check] = []
    try:
        loaded = load_settings(state.config_path)
    except ConfigError as exc:
        checks.append(
            Check("config", False, str(config_failure(exc).format_message()), ExitCode.CONFIG)
        )
        _report(checks)
        return
    settings = loaded.settings
    checks.append(Check("config", True, str(loaded.path or "defaults (no config file)")))
    checks += [Check("config warning", True, w, warn=True) for w in loaded.warnings]
    checks += run(_database_checks(settings))
    checks.append(_broker_check(settings))
    checks += _clock_checks()
    _report(checks)


async def _database_checks(settings: Settings) -> list[Check]:
    url = settings.database.url.get_secret_value()
    engine = create_engine(url)
    try:
        try:
            await check_reachable(engine, url)
        except CliFailure as exc:
            return [Check("database", False, exc.format_message(), ExitCode.DATABASE)]
        found = [Check("database", True, f"{describe_url(url)} reachable")]
        schema = await migrate.schema_state(engine)
        if schema.up_to_date:
            found.append(Check("schema", True, f"at {schema.current} (newest)"))
        elif settings.database.auto_migrate:
            found.append(
                Check(
                    "schema",
                    True,
                    f"at {schema.current or '(empty)'}; `run` will migrate to {schema.head}",
                    warn=True,
                )
            )
        else:
            found.append(
                Check(
                    "schema",
                    False,
                    f"at {schema.current or '(empty)'}, needs {schema.head}: run `alchemiser db upgrade`",
                    ExitCode.DATABASE,
                )
            )
        lock = instance_lock_for(engine, url, settings.broker.account)
        if await lock.acquire():
            await lock.release()
            found.append(Check("instance", True, "no daemon running for this account"))
        else:
            found.append(Check("instance", True, f"a daemon is running ({lock.description} held)"))
        return found
    finally:
        await engine.dispose()


def _broker_check(settings: Settings) -> Check:
    broker = settings.broker
    if broker.kind == "sim":
        return Check("broker", True, "simulated broker: no credentials needed")
    missing = [
        n for n, v in (("ALPACA__KEY", broker.key), ("ALPACA__SECRET", broker.secret)) if v is None
    ]
    if missing:
        return Check(
            "broker",
            False,
            f"alpaca ({settings.mode}) needs {' and '.join(missing)} in the environment",
            ExitCode.CONFIG,
        )
    return Check("broker", True, f"alpaca credentials present ({settings.mode})")


def _clock_checks() -> list[Check]:
    now = RealClock().now()
    found = []
    if now.year < 2024:
        found.append(
            Check("clock", False, f"system clock reads {now.isoformat()}: set the time (NTP)")
        )
    else:
        found.append(Check("clock", True, f"{_ny(now)} ({now.isoformat(timespec='seconds')})"))
    try:
        calendar = nyse_calendar()
        today = now.astimezone(NEW_YORK).date()
        nxt = calendar.next_session(today, inclusive=True)
        early = " (early close)" if calendar.is_early_close(nxt) else ""
        found.append(
            Check(
                "calendar",
                True,
                f"NYSE: next session {nxt} {_ny(calendar.session_open(nxt))} to "
                f"{_ny(calendar.session_close(nxt))}{early}; covered until {calendar.last_date}",
            )
        )
    except Exception as exc:  # a calendar that cannot answer is the finding
        found.append(Check("calendar", False, f"NYSE calendar unusable: {exc}"))
    return found


def _report(checks: list[Check]) -> None:
    for c in checks:
        mark = "WARN" if c.warn else ("ok" if c.ok else "FAIL")
        click.echo(f"[{mark:>4}] {c.name}: {c.detail}")
    failed = [c for c in checks if not c.ok]
    if failed:
        click.echo(f"{len(failed)} check(s) failed", err=True)
        sys.exit(int(failed[0].code))
    click.echo("all checks passed")
