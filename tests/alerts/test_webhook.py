"""The webhook notifier against a real local HTTP server: 500 then 200, retried, never blocking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from alchemiser.alerts.config import AlertConfigError, build_notifiers, notifier_config_from_env
from alchemiser.alerts.model import AlertLevel
from alchemiser.alerts.notifiers import AlertMessage, NotifierError, SmtpNotifier, WebhookNotifier
from tests.alerts.conftest import START, Harness

TOKEN = "T000-secret-token-B111"


class Hook:
    """Answers the first ``fail`` requests with 500, the rest with 200; may hold the first."""

    def __init__(self, fail: int = 1) -> None:
        self.fail = fail
        self.bodies: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.first_arrived = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        if len(self.bodies) == 1:
            self.first_arrived.set()
            await self.release.wait()
        if len(self.bodies) <= self.fail:
            return web.Response(status=500, text="oops")
        return web.Response(status=200, text="ok")


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook()
    app = web.Application()
    app.router.add_post(f"/hooks/{TOKEN}", h.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    h.url = f"http://127.0.0.1:{port}/hooks/{TOKEN}"
    yield h
    h.release.set()
    await runner.cleanup()


async def test_failing_webhook_is_retried_and_does_not_block(h: Harness, hook: Hook) -> None:
    svc = h.service([WebhookNotifier(hook.url, timeout_seconds=5)], retry_base_seconds=30)

    # The server holds the first request: raise_alert must return anyway.
    alert = await asyncio.wait_for(
        svc.raise_alert("recon-failed", AlertLevel.CRITICAL, "reconciliation failed"), 2
    )
    await asyncio.wait_for(hook.first_arrived.wait(), 5)
    assert alert.id > 0 and len(hook.bodies) == 1
    hook.release.set()
    await svc.drain()

    (row,) = await h.store.notifications(alert.id)
    assert row["state"] == "PENDING" and row["attempts"] == 1
    assert "HTTP 500" in row["last_error"] and TOKEN not in row["last_error"]

    await h.clock.advance(29)
    await svc.tick()
    await svc.drain()
    assert len(hook.bodies) == 1  # not before the backoff

    await h.clock.advance(1)
    await svc.tick()
    await svc.drain()
    assert len(hook.bodies) == 2
    (row,) = await h.store.notifications(alert.id)
    assert row["state"] == "SENT" and row["attempts"] == 2
    body = hook.bodies[1]
    assert body["alert"]["level"] == "CRITICAL" and body["alert"]["id"] == alert.id
    assert "reconciliation failed" in body["text"] and body["content"]


async def test_a_pending_retry_survives_a_restart(h: Harness, hook: Hook) -> None:
    hook.release.set()
    first = h.service([WebhookNotifier(hook.url)])
    alert = await first.raise_alert("k", AlertLevel.WARNING, "t")
    await first.drain()
    await first.aclose()
    assert len(hook.bodies) == 1

    second = h.service([WebhookNotifier(hook.url)])  # a new process: same database
    await h.clock.advance(30)
    await second.tick()
    await second.drain()
    (row,) = await h.store.notifications(alert.id)
    assert row["state"] == "SENT" and len(hook.bodies) == 2


async def test_unreachable_webhook_error_hides_the_token() -> None:
    notifier = WebhookNotifier(f"http://127.0.0.1:9/hooks/{TOKEN}", timeout_seconds=2)
    msg = _message()
    try:
        with pytest.raises(NotifierError) as info:
            await notifier.send(msg)
    finally:
        await notifier.aclose()
    assert TOKEN not in str(info.value) and "127.0.0.1" in str(info.value)
    assert TOKEN not in repr(notifier)


def _message() -> AlertMessage:
    return AlertMessage(7, "acct", "k", AlertLevel.EMERGENCY, "loss", "opened", START, START)


def test_config_from_env() -> None:
    assert build_notifiers(notifier_config_from_env({})) == []
    env = {
        "ALCHEMISER_ALERT_WEBHOOK_URL": f"https://hooks.example.com/services/{TOKEN}",
        "ALCHEMISER_ALERT_SMTP_HOST": "smtp.example.com",
        "ALCHEMISER_ALERT_SMTP_SENDER": "bot@example.com",
        "ALCHEMISER_ALERT_SMTP_RECIPIENTS": "a@example.com, b@example.com",
        "ALCHEMISER_ALERT_SMTP_PASSWORD": "hunter2-password",
    }
    config = notifier_config_from_env(env)
    assert TOKEN not in repr(config) and "hunter2" not in repr(config)
    webhook, smtp = build_notifiers(config)
    assert isinstance(webhook, WebhookNotifier) and webhook.host == "hooks.example.com"
    assert isinstance(smtp, SmtpNotifier) and smtp.recipients == ["a@example.com", "b@example.com"]
    assert smtp.port == 587 and smtp.starttls

    with pytest.raises(AlertConfigError, match="SMTP_SENDER"):
        notifier_config_from_env({"ALCHEMISER_ALERT_SMTP_HOST": "smtp.example.com"})
    with pytest.raises(AlertConfigError, match="WEBHOOK_URL"):
        notifier_config_from_env({"ALCHEMISER_ALERT_WEBHOOK_URL": "not a url"})


async def test_smtp_notifier_sends_through_smtplib(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    class FakeSmtp:
        def __init__(self, host: str, port: int, timeout: float) -> None:
            sent.append(("connect", host, port))

        def __enter__(self) -> FakeSmtp:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def starttls(self, context: Any) -> None:
            sent.append("starttls")

        def login(self, user: str, password: str) -> None:
            sent.append(("login", user, password))

        def send_message(self, message: Any) -> None:
            sent.append(message)

    monkeypatch.setattr("alchemiser.alerts.notifiers.smtplib.SMTP", FakeSmtp)
    notifier = SmtpNotifier("smtp.example.com", 587, "bot@x", ["ops@x"], "bot", "pw-secret")
    msg = _message()
    await notifier.send(msg)
    assert sent[:3] == [
        ("connect", "smtp.example.com", 587),
        "starttls",
        ("login", "bot", "pw-secret"),
    ]
    assert "[alchemiser EMERGENCY]" in sent[3]["Subject"] and sent[3]["To"] == "ops@x"
    assert "pw-secret" not in repr(notifier)
