"""`alchemiser run` as a real process: start-up, JSON logs, signals, single instance, refusals.

Each test starts ``.venv/bin/alchemiser`` in an empty temporary directory with a
clean environment, reads its stdout line by line, bounds every wait and kills
whatever is left in a ``finally``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from alchemiser.exit_codes import ExitCode
from alchemiser.store.engine import create_engine

ALCHEMISER = Path(sys.executable).with_name("alchemiser")
LINE_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
KEY_SECRET = "AKPROCSECRET987"
SECRET_SECRET = "SKPROCSECRET654"
PG_PASSWORD = "s3cretpw"


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment minus any alchemiser settings, plus fast JSON logging."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("ALCHEMISER", "ALPACA__")) and k.upper() != "DATABASE_URL"
    }
    env.update(
        ALCHEMISER__LOGGING__HEARTBEAT_SECONDS="0.5",
        ALCHEMISER__LOGGING__FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Daemon:
    """A running `alchemiser run` whose stdout lines are collected by a reader thread."""

    def __init__(self, cwd: Path, env: Mapping[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(ALCHEMISER), *args, "run"],
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._stdout_closed = threading.Event()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream: Any, is_stdout: bool) -> None:
        sink = self.lines if is_stdout else self.stderr_lines
        for line in stream:
            sink.append(line.rstrip("\n"))
        if is_stdout:
            self._stdout_closed.set()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.strip()]

    def wait_for_event(self, name: str, timeout: float = LINE_TIMEOUT) -> dict[str, Any]:
        """The first logged event called ``name``; fails after ``timeout`` seconds or at EOF."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            closed = self._stdout_closed.is_set()  # read before the lines: none can be missed
            for line in self.lines[seen:]:
                seen += 1
                if line.strip() and json.loads(line).get("event") == name:
                    return json.loads(line)
            if closed:
                pytest.fail(f"process ended before {name!r}; output:\n{self.transcript()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {name!r} event within {timeout}s; output:\n{self.transcript()}")
            time.sleep(0.05)

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=5)
        return code

    def transcript(self) -> str:
        return "\n".join(
            [*self.lines, "--- stderr ---", *self.stderr_lines, f"--- rc {self.proc.poll()}"]
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons in ``tmp_path``; all of them are killed at the end of the test."""
    started: list[Daemon] = []

    def start(env: Mapping[str, str], *args: str) -> Daemon:
        daemon = Daemon(tmp_path, env, *args)
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.kill()


def run_once(cwd: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``alchemiser ARGS`` to completion (bounded)."""
    return subprocess.run(
        [str(ALCHEMISER), *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
        check=False,
    )


def assert_log_shape(events: list[dict[str, Any]]) -> None:
    assert events, "no log lines"
    for event in events:
        assert isinstance(event.get("event"), str) and event["event"], event
        assert event.get("level"), event
        assert event.get("correlation_id"), event
        stamp = event.get("timestamp", "")
        assert stamp.endswith(("Z", "+00:00")), event


def table_names(url: str) -> set[str]:
    async def go() -> set[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(go())


# -- (a) start, heartbeat, clean stop on a signal -----------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_run_logs_json_heartbeats_and_stops_cleanly_on_signal(
    tmp_path: Path, spawn: Callable[..., Daemon], sig: signal.Signals
) -> None:
    daemon = spawn(base_env())
    started = daemon.wait_for_event("daemon_started")
    daemon.wait_for_event("heartbeat")
    assert (tmp_path / "var" / "alchemiser.db").exists()  # the default SQLite, made by itself
    assert (
        sqlite3.connect(tmp_path / "var" / "alchemiser.db")
        .execute("SELECT version_num FROM alembic_version")
        .fetchone()
    ), "the default database was migrated"

    daemon.proc.send_signal(sig)
    code = daemon.wait()
    assert code == ExitCode.OK, daemon.transcript()

    events = daemon.events()
    assert_log_shape(events)
    names = [e["event"] for e in events]
    assert names.index("daemon_started") < names.index("heartbeat") < names.index("daemon_stopped")
    assert names[-1] == "daemon_stopped", names[-5:]
    stopping = next(e for e in events if e["event"] == "daemon_stopping")
    assert stopping["reason"] == sig.name
    assert started["correlation_id"] == events[-1]["correlation_id"]
    assert next(e for e in events if e["event"] == "daemon_stopped")["exit_code"] == 0


# -- (b) one daemon per database ------------------------------------------------------------


def test_second_daemon_on_the_same_database_exits_5(
    tmp_path: Path, spawn: Callable[..., Daemon], db_url: str
) -> None:
    env = base_env(DATABASE_URL=db_url)
    first = spawn(env)
    first.wait_for_event("daemon_started")

    second = run_once(tmp_path, env, "run")
    output = second.stdout + second.stderr
    assert second.returncode == ExitCode.ALREADY_RUNNING, output
    assert "another alchemiser daemon is already running" in output
    assert first.proc.poll() is None, "the first daemon must keep running"

    status = run_once(tmp_path, env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"running (pid {first.proc.pid}" in status.stdout

    first.proc.send_signal(signal.SIGTERM)
    assert first.wait() == ExitCode.OK, first.transcript()
    after = run_once(tmp_path, env, "status")
    assert "not running (last instance stopped cleanly" in after.stdout, after.stdout


# -- (c) refuse an old schema when told not to migrate --------------------------------------


def test_run_without_auto_migrate_refuses_an_empty_database(
    tmp_path: Path, empty_db_url: str
) -> None:
    env = base_env(DATABASE_URL=empty_db_url, ALCHEMISER__DATABASE__AUTO_MIGRATE="false")
    result = run_once(tmp_path, env, "run")
    output = result.stdout + result.stderr
    assert result.returncode == ExitCode.DATABASE, output
    assert "alchemiser db upgrade" in output
    assert table_names(empty_db_url) == set()


# -- (d) invalid config stops before the database is touched --------------------------------


def test_run_with_invalid_config_exits_3_before_touching_the_database(tmp_path: Path) -> None:
    db_file = tmp_path / "untouched" / "alchemiser.db"
    config = tmp_path / "bad.toml"
    config.write_text('[schedule]\nhedge_evaluation = "25:00"\n', encoding="utf-8")
    env = base_env(DATABASE_URL=f"sqlite+aiosqlite:///{db_file}")
    result = run_once(tmp_path, env, "--config", str(config), "run")
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    assert "schedule.hedge_evaluation" in result.stderr
    assert "25:00" in result.stderr
    assert not db_file.parent.exists()
    assert not (tmp_path / "var").exists()

    # Unreachable database + bad config: the config is what is reported (exit 3, not 4).
    env = base_env(DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    result = run_once(tmp_path, env, "--config", str(config), "run")
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr


def test_run_on_an_unreachable_database_exits_4_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres:{PG_PASSWORD}@127.0.0.1:1/none"
    result = run_once(tmp_path, base_env(DATABASE_URL=url, ALPACA__KEY=KEY_SECRET), "run")
    output = result.stdout + result.stderr
    assert result.returncode == ExitCode.DATABASE, output
    assert "127.0.0.1:1/none" in output
    assert PG_PASSWORD not in output
    assert KEY_SECRET not in output


# -- (e) secrets never reach the output -----------------------------------------------------


def test_secrets_from_the_environment_never_appear_in_the_output(
    tmp_path: Path, spawn: Callable[..., Daemon], db_url: str
) -> None:
    secrets = [KEY_SECRET, SECRET_SECRET]
    url = db_url
    if make_url(db_url).get_backend_name() == "postgresql":
        # Trust authentication accepts any password, so a real one can ride along.
        url = make_url(db_url).set(password=PG_PASSWORD).render_as_string(hide_password=False)
        assert PG_PASSWORD in url
        secrets.append(PG_PASSWORD)
    env = base_env(
        DATABASE_URL=url,
        ALPACA__KEY=KEY_SECRET,
        ALPACA__SECRET=SECRET_SECRET,
        ALCHEMISER__LOGGING__LEVEL="DEBUG",
    )
    daemon = spawn(env)
    daemon.wait_for_event("daemon_started")
    daemon.wait_for_event("heartbeat")
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.wait() == ExitCode.OK, daemon.transcript()
    assert_log_shape(daemon.events())
    for line in [*daemon.lines, *daemon.stderr_lines]:
        for secret in secrets:
            assert secret not in line, f"secret leaked: {line}"


# -- beyond the basics: crash recovery and live config edits --------------------------------


def test_a_killed_daemon_frees_the_database_for_the_next_one(
    tmp_path: Path, spawn: Callable[..., Daemon], db_url: str
) -> None:
    """SIGKILL leaves no clean stop, but the lock dies with the process: a new daemon starts."""
    env = base_env(DATABASE_URL=db_url)
    crashed = spawn(env)
    crashed.wait_for_event("daemon_started")
    crashed.proc.kill()
    crashed.wait()

    status = run_once(tmp_path, env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "not running (last instance ended without a clean stop" in status.stdout

    successor = spawn(env)
    successor.wait_for_event("daemon_started")
    successor.proc.send_signal(signal.SIGTERM)
    assert successor.wait() == ExitCode.OK, successor.transcript()


def test_config_edits_apply_live_and_bad_edits_are_rejected(
    tmp_path: Path, spawn: Callable[..., Daemon]
) -> None:
    config = tmp_path / "alchemiser.toml"
    config.write_text('[schedule]\nhedge_evaluation = "15:30"\n', encoding="utf-8")
    daemon = spawn(base_env(ALCHEMISER_CONFIG=str(config)))
    daemon.wait_for_event("daemon_started")

    config.write_text('[schedule]\nhedge_evaluation = "25:00"\n', encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    rejected = daemon.wait_for_event("config_rejected")
    assert any("schedule.hedge_evaluation" in e and "25:00" in e for e in rejected["errors"])
    assert daemon.proc.poll() is None, "a bad edit must not stop the daemon"

    config.write_text('[schedule]\nhedge_evaluation = "15:35"\n', encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    reloaded = daemon.wait_for_event("config_reloaded")
    assert "schedule.hedge_evaluation" in reloaded["changed_keys"]
    assert any("15:30" in c and "15:35" in c for c in reloaded["changes"])

    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.wait() == ExitCode.OK, daemon.transcript()
    assert_log_shape(daemon.events())
