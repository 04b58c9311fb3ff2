"""`alchemiser alerts list|ack` against a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from alchemiser.alerts.model import AlertLevel, AlertState
from alchemiser.cli.alerts_cmd import alerts_group
from alchemiser.store.audit import AuditLog
from tests.alerts.conftest import ACCOUNT, Harness


@pytest.fixture(autouse=True)
def _no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


async def invoke(db_url: str, *args: str) -> Result:
    env = {"DATABASE_URL": db_url, "ALCHEMISER_CONFIG": "", "ALCHEMISER__BROKER__ACCOUNT": ACCOUNT}
    return await asyncio.to_thread(CliRunner().invoke, alerts_group, list(args), env=env)


async def test_list_and_ack(h: Harness, db_url: str) -> None:
    svc = h.service()
    old = await svc.raise_alert("old", AlertLevel.INFO, "old news")
    await svc.resolve(old.id)
    loss = await svc.raise_alert("daily-loss", AlertLevel.CRITICAL, "daily loss 4.2 %")

    result = await invoke(db_url, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["ID", "LEVEL", "STATE", "OPENED", "KEY"]
    assert lines[1].split()[:3] == [str(loss.id), "CRITICAL", "OPEN"]
    assert "daily loss 4.2 %" in lines[1] and "old news" not in result.output
    assert lines[-1] == "unacknowledged: 1"

    result = await invoke(db_url, "list", "--all")
    assert result.exit_code == 0 and "old news" in result.output and "RESOLVED" in result.output

    result = await invoke(db_url, "ack", str(loss.id), "--by", "alice")
    assert result.exit_code == 0, result.output
    assert f"alert {loss.id} acknowledged" in result.output
    after = await h.store.get(loss.id)
    assert after is not None and after.state is AlertState.ACKNOWLEDGED
    assert after.acknowledged_by == "alice"
    (entry,) = await AuditLog(h.sessions, h.clock, ACCOUNT).entries("ALERT_ACKNOWLEDGED")
    assert entry.related_ids == {"alert_id": loss.id} and entry.details["by"] == "alice"

    result = await invoke(db_url, "ack", str(loss.id))
    assert result.exit_code == 0 and "already acknowledged by alice" in result.output

    result = await invoke(db_url, "ack", "424242")
    assert result.exit_code == 1 and "no alert 424242" in result.output


async def test_list_when_empty(db_url: str) -> None:
    result = await invoke(db_url, "list")
    assert result.exit_code == 0 and result.output.strip() == "no open alerts"
