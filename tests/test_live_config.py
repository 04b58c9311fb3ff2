"""Live config edits: a valid edit swaps in, an invalid one is rejected, restart-only keys wait."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from alchemiser.daemon import Daemon
from alchemiser.logs import configure_logging
from alchemiser.settings import LiveSettings, load_settings
from alchemiser.settings.core import LoggingSettings
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import create_engine, session_factory
from tests.helpers import wait_for


@pytest.fixture
def log_lines() -> io.StringIO:
    buf = io.StringIO()
    configure_logging(LoggingSettings(format="json"), buf)
    return buf


def events(buf: io.StringIO, name: str) -> list[dict[str, Any]]:
    found = []
    for line in buf.getvalue().splitlines():
        record = json.loads(line)
        if record["event"] == name:
            found.append(record)
    return found


def live_from(path: Path, env: dict[str, str] | None = None) -> LiveSettings:
    env = {} if env is None else env
    loaded = load_settings(path, env)
    return LiveSettings(loaded.settings, loaded.path, env)


def test_valid_edit_is_swapped_in_with_the_changed_keys_logged(
    tmp_path: Path, log_lines: io.StringIO
) -> None:
    path = tmp_path / "a.toml"
    path.write_text("[schedule]\nmisfire_grace_seconds = 600\n")
    live = live_from(path)
    before = live.current
    seen: list[tuple[int, int]] = []
    live.on_change(
        lambda old, new: seen.append(
            (old.schedule.misfire_grace_seconds, new.schedule.misfire_grace_seconds)
        )
    )

    path.write_text("[schedule]\nmisfire_grace_seconds = 120\n")
    outcome = live.reload()

    assert outcome.applied
    assert live.schedule.misfire_grace_seconds == 120  # attribute access reads the new settings
    assert before.schedule.misfire_grace_seconds == 600  # the old snapshot is untouched
    assert seen == [(600, 120)]
    [record] = events(log_lines, "config_reloaded")
    assert record["changed_keys"] == ["schedule.misfire_grace_seconds"]
    assert record["changes"] == ["schedule.misfire_grace_seconds: 600 -> 120"]


def test_invalid_edit_is_rejected_with_every_error_and_old_settings_stay(
    tmp_path: Path, log_lines: io.StringIO
) -> None:
    path = tmp_path / "a.toml"
    path.write_text("[schedule]\nmisfire_grace_seconds = 600\n")
    live = live_from(path)
    before = live.current

    path.write_text(
        '[schedule]\nmisfire_grace_seconds = -5\nhedge_evaluation = "noon"\n[nonsense]\nx = 1\n'
    )
    outcome = live.reload()

    assert not outcome.applied
    assert live.current is before
    [record] = events(log_lines, "config_rejected")
    text = "\n".join(record["errors"])
    assert "schedule.misfire_grace_seconds" in text
    assert "schedule.hedge_evaluation" in text and "noon" in text
    assert "nonsense" in text
    assert len(record["errors"]) == 3

    path.write_text("this is [ not toml")
    assert not live.reload().applied
    assert live.current is before
    assert "not valid TOML" in events(log_lines, "config_rejected")[-1]["errors"][0]


def test_restart_only_keys_are_logged_and_keep_their_running_value(
    tmp_path: Path, log_lines: io.StringIO
) -> None:
    path = tmp_path / "a.toml"
    path.write_text(
        '[database]\nurl = "sqlite+aiosqlite:///one.db"\n[schedule]\nmisfire_grace_seconds = 600\n'
    )
    live = live_from(path)

    path.write_text(
        '[database]\nurl = "sqlite+aiosqlite:///two.db"\n[schedule]\nmisfire_grace_seconds = 300\n'
    )
    outcome = live.reload()

    assert outcome.applied and [c.key for c in outcome.restart_required] == ["database.url"]
    assert live.database.url.get_secret_value() == "sqlite+aiosqlite:///one.db"
    assert live.schedule.misfire_grace_seconds == 300
    [record] = events(log_lines, "config_restart_required")
    assert record["keys"] == ["database.url"]
    assert events(log_lines, "config_reloaded")[0]["changed_keys"] == [
        "schedule.misfire_grace_seconds"
    ]


def test_changed_secrets_are_never_logged(tmp_path: Path, log_lines: io.StringIO) -> None:
    path = tmp_path / "a.toml"
    path.write_text("")
    env = {
        "ALPACA__KEY": "AKOLDSECRET111",
        "DATABASE_URL": "postgresql+asyncpg://u:oldpass999@h/db",
    }
    live = live_from(path, env)
    env["ALPACA__KEY"] = "AKNEWSECRET222"
    env["DATABASE_URL"] = "postgresql+asyncpg://u:newpass999@h/db"

    outcome = live.reload()

    assert {c.key for c in outcome.restart_required} == {"broker.key", "database.url"}
    out = log_lines.getvalue()
    for secret in ("AKOLDSECRET111", "AKNEWSECRET222", "oldpass999", "newpass999"):
        assert secret not in out
    assert "broker.key" in out


async def test_running_daemon_picks_up_a_valid_edit_and_keeps_old_settings_on_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "alchemiser.toml"
    path.write_text(
        '[logging]\nformat = "json"\nheartbeat_seconds = 0.2\n'
        "[schedule]\nmisfire_grace_seconds = 600\n"
    )
    buf = io.StringIO()
    daemon = Daemon(
        load_settings(path, env={}),
        env={},
        log_stream=buf,
        handle_signals=False,
        config_poll_seconds=0.05,
    )
    task = asyncio.create_task(daemon.run())
    try:
        await wait_for(lambda: "daemon_started" in buf.getvalue(), what="daemon_started")
        assert daemon.services is not None
        live = daemon.services.settings  # what every service holds
        assert live is daemon.live

        path.write_text(
            '[logging]\nformat = "json"\nheartbeat_seconds = 0.2\n'
            "[schedule]\nmisfire_grace_seconds = 90\n"
        )
        await wait_for(lambda: live.schedule.misfire_grace_seconds == 90, what="reload")
        assert "config_reloaded" in buf.getvalue()

        path.write_text(
            '[logging]\nformat = "json"\nheartbeat_seconds = 0.2\n'
            "[schedule]\nmisfire_grace_seconds = 0\n"
        )
        await wait_for(lambda: "config_rejected" in buf.getvalue(), what="rejection")
        assert live.schedule.misfire_grace_seconds == 90
        await wait_for(
            lambda: buf.getvalue().count('"heartbeat"') >= 2, what="heartbeats after rejection"
        )
        assert not task.done()
    finally:
        daemon.request_stop("test over")
        code = await asyncio.wait_for(task, 30)
    assert code == 0
    assert "daemon_stopped" in buf.getvalue()

    # The audit history keeps the daemon's life and the config change.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'alchemiser.db'}")
    try:
        entries = await AuditLog(session_factory(engine), daemon.clock, "default").entries()
    finally:
        await engine.dispose()
    actions = [e.action for e in reversed(entries)]
    # Start-up reconciles with the broker before the scheduler starts.
    assert actions == ["DAEMON_STARTED", "RECONCILED", "CONFIG_RELOADED", "DAEMON_STOPPED"]
    reloaded = next(e for e in entries if e.action == "CONFIG_RELOADED")
    assert reloaded.details["changes"] == ["schedule.misfire_grace_seconds: 600 -> 90"]
    stopped = next(e for e in entries if e.action == "DAEMON_STOPPED")
    assert stopped.details == {"reason": "test over", "exit_code": 0}
