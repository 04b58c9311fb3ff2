"""Where alerts go: the log (always), a generic JSON webhook, email over SMTP.

A notifier's ``send`` raises :class:`NotifierError` (or any exception) when the
message did not get through; the service then retries it later with backoff.
Error messages never contain the webhook URL or the SMTP password: a webhook
URL often carries a token (Slack, Discord), so only its host is ever shown.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
import structlog
from pydantic import SecretStr

from alchemiser.alerts.model import AlertLevel
from alchemiser.store.audit import to_json_safe

__all__ = [
    "AlertMessage",
    "LogNotifier",
    "Notifier",
    "NotifierError",
    "SmtpNotifier",
    "WebhookNotifier",
]

log = structlog.get_logger("alchemiser.alerts")

ERROR_MAX = 500


class NotifierError(Exception):
    """A notification did not get through (the message is safe to log)."""


@dataclass(frozen=True)
class AlertMessage:
    """One alert event as a notifier receives it."""

    alert_id: int
    account: str
    key: str
    level: AlertLevel
    title: str
    event: str  # opened | escalated
    opened_at: datetime
    at: datetime  # when the event happened
    details: dict[str, Any] = field(default_factory=dict)

    def subject(self) -> str:
        verb = "escalated: " if self.event == "escalated" else ""
        return f"[alchemiser {self.level.value}] {verb}{self.title} (alert {self.alert_id}, {self.account})"

    def text(self) -> str:
        lines = [self.subject(), f"key: {self.key}", f"opened: {self.opened_at.isoformat()}"]
        lines += [f"{k}: {v}" for k, v in self.details.items()]
        lines.append(f"acknowledge: alchemiser alerts ack {self.alert_id}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        body = {
            "id": self.alert_id,
            "account": self.account,
            "key": self.key,
            "level": self.level.value,
            "title": self.title,
            "event": self.event,
            "opened_at": self.opened_at,
            "at": self.at,
            "details": self.details,
        }
        return to_json_safe(body)  # type: ignore[no-any-return]


@runtime_checkable
class Notifier(Protocol):
    """Delivers alert messages somewhere; ``name`` identifies it in the outbox (unique)."""

    @property
    def name(self) -> str: ...

    async def send(self, message: AlertMessage) -> None:
        """Deliver or raise; it may be called again for the same message (at least once)."""
        ...

    async def aclose(self) -> None: ...


_LOG_METHOD = {
    AlertLevel.INFO: "info",
    AlertLevel.WARNING: "warning",
    AlertLevel.CRITICAL: "error",
    AlertLevel.EMERGENCY: "critical",
}


class LogNotifier:
    """Writes the alert to the structured log; cannot fail, so it is never queued."""

    name = "log"

    async def send(self, message: AlertMessage) -> None:
        self.emit(message)

    def emit(self, message: AlertMessage) -> None:
        getattr(log, _LOG_METHOD[message.level])(
            "alert_" + message.event,
            alert_id=message.alert_id,
            alert_key=message.key,
            level=message.level.value,
            title=message.title,
            details=message.details,
        )

    async def aclose(self) -> None:
        return None


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


class WebhookNotifier:
    """POSTs the alert as JSON: ``text`` (Slack, Mattermost), ``content`` (Discord),
    ``title``/``message`` (ntfy JSON publishing takes ``topic`` from the URL's
    root form) and the structured ``alert``."""

    def __init__(
        self, url: str | SecretStr, *, timeout_seconds: float = 10.0, name: str = "webhook"
    ) -> None:
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        raw = self._url.get_secret_value()
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the alert webhook URL must be an http(s) URL with a host")
        self.host = parts.hostname
        self.name = name
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"WebhookNotifier(host={self.host!r})"

    async def send(self, message: AlertMessage) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        text = message.text()
        payload = {
            "text": text,
            "content": text[:2000],  # Discord's limit
            "title": message.subject(),
            "message": text,
            "priority": {"INFO": 3, "WARNING": 3, "CRITICAL": 4, "EMERGENCY": 5}[
                message.level.value
            ],
            "alert": message.as_json(),
        }
        try:
            async with self._session.post(self._url.get_secret_value(), json=payload) as resp:
                if resp.status >= 300:
                    raise NotifierError(f"webhook {self.host} answered HTTP {resp.status}")
        except NotifierError:
            raise
        except TimeoutError:
            raise NotifierError(f"webhook {self.host} timed out") from None
        except Exception as exc:  # aiohttp's messages can carry the URL (and its token)
            raise NotifierError(f"webhook {self.host} failed: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class SmtpNotifier:
    """Sends the alert as an email through an SMTP server (blocking smtplib in a thread)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: str | SecretStr | None = None,
        starttls: bool = True,
        *,
        implicit_tls: bool = False,
        timeout_seconds: float = 20.0,
    ) -> None:
        if not recipients:
            raise ValueError("the alert email needs at least one recipient")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.username = username
        self._password = (
            password if isinstance(password, SecretStr) or password is None else SecretStr(password)
        )
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.timeout_seconds = timeout_seconds

    def __repr__(self) -> str:
        return f"SmtpNotifier(host={self.host!r}, port={self.port}, to={self.recipients!r})"

    async def send(self, message: AlertMessage) -> None:
        email = EmailMessage()
        email["Subject"] = message.subject()
        email["From"] = self.sender
        email["To"] = ", ".join(self.recipients)
        email.set_content(message.text())
        try:
            await asyncio.to_thread(self._send_blocking, email)
        except smtplib.SMTPException as exc:
            raise NotifierError(f"smtp {self.host}:{self.port}: {type(exc).__name__}") from None
        except OSError as exc:
            raise NotifierError(f"smtp {self.host}:{self.port}: {_clip(str(exc))}") from None

    def _send_blocking(self, email: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout_seconds, context=context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds)
        with smtp:
            if self.starttls and not self.implicit_tls:
                smtp.starttls(context=context)
            if self.username:
                password = self._password.get_secret_value() if self._password else ""
                smtp.login(self.username, password)
            smtp.send_message(email)

    async def aclose(self) -> None:
        return None
