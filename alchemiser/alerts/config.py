"""Notifier settings from the environment only (a webhook URL or SMTP password is a secret).

=====================================  ==============================================
ALCHEMISER_ALERT_WEBHOOK_URL           JSON POST target (Slack, Discord, ntfy…); secret
ALCHEMISER_ALERT_WEBHOOK_TIMEOUT       seconds per attempt (default 10)
ALCHEMISER_ALERT_SMTP_HOST             SMTP server; email is off unless set
ALCHEMISER_ALERT_SMTP_PORT             default 587 (465 with SMTP_SSL)
ALCHEMISER_ALERT_SMTP_SENDER           From address (required with SMTP_HOST)
ALCHEMISER_ALERT_SMTP_RECIPIENTS       comma-separated To addresses (required)
ALCHEMISER_ALERT_SMTP_USERNAME         login, if the server needs one
ALCHEMISER_ALERT_SMTP_PASSWORD         its password; secret
ALCHEMISER_ALERT_SMTP_STARTTLS         true/false (default true)
ALCHEMISER_ALERT_SMTP_SSL              true/false: implicit TLS (default false)
=====================================  ==============================================

Secrets are registered with the log redaction as they are read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from alchemiser.alerts.notifiers import Notifier, SmtpNotifier, WebhookNotifier
from alchemiser.logs import register_secret

__all__ = ["AlertConfigError", "NotifierConfig", "build_notifiers", "notifier_config_from_env"]

PREFIX = "ALCHEMISER_ALERT_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class AlertConfigError(ValueError):
    """A notifier environment variable is malformed (the message names it, never its value)."""


@dataclass(frozen=True)
class NotifierConfig:
    webhook_url: SecretStr | None = None
    webhook_timeout_seconds: float = 10.0
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_sender: str | None = None
    smtp_recipients: tuple[str, ...] = ()
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(PREFIX + name, "").strip()
    return value or None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _get(env, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise AlertConfigError(f"{PREFIX}{name} must be true or false, got {value!r}")


def _number(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    value = _get(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise AlertConfigError(f"{PREFIX}{name} must be a number, got {value!r}") from None
    if not lo <= number <= hi:
        raise AlertConfigError(f"{PREFIX}{name} must be between {lo:g} and {hi:g}, got {value}")
    return number


def _register_url(url: str) -> None:
    """Mask the parts of a webhook URL that carry tokens: password, path, query.

    Pieces shorter than 8 characters are not masked (they would blank common words).
    """
    register_secret(url)  # its password, if any
    parts = urlsplit(url)
    for piece in (parts.path.strip("/"), parts.query):
        if len(piece) >= 8:
            register_secret(piece)


def notifier_config_from_env(env: Mapping[str, str] | None = None) -> NotifierConfig:
    env = os.environ if env is None else env
    url = _get(env, "WEBHOOK_URL")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AlertConfigError(f"{PREFIX}WEBHOOK_URL must be an http(s) URL with a host")
        _register_url(url)
    password = _get(env, "SMTP_PASSWORD")
    register_secret(password)
    host = _get(env, "SMTP_HOST")
    ssl_on = _bool(env, "SMTP_SSL", False)
    recipients = tuple(
        r.strip() for r in (_get(env, "SMTP_RECIPIENTS") or "").split(",") if r.strip()
    )
    sender = _get(env, "SMTP_SENDER")
    if host is not None and (sender is None or not recipients):
        raise AlertConfigError(
            f"{PREFIX}SMTP_HOST is set: {PREFIX}SMTP_SENDER and {PREFIX}SMTP_RECIPIENTS are required"
        )
    return NotifierConfig(
        webhook_url=SecretStr(url) if url else None,
        webhook_timeout_seconds=_number(env, "WEBHOOK_TIMEOUT", 10.0, 0.5, 300),
        smtp_host=host,
        smtp_port=int(_number(env, "SMTP_PORT", 465 if ssl_on else 587, 1, 65535)),
        smtp_sender=sender,
        smtp_recipients=recipients,
        smtp_username=_get(env, "SMTP_USERNAME"),
        smtp_password=SecretStr(password) if password else None,
        smtp_starttls=_bool(env, "SMTP_STARTTLS", not ssl_on),
        smtp_ssl=ssl_on,
    )


def build_notifiers(config: NotifierConfig) -> list[Notifier]:
    """The remote notifiers configured (the log is always on, inside the service)."""
    notifiers: list[Notifier] = []
    if config.webhook_url is not None:
        notifiers.append(
            WebhookNotifier(config.webhook_url, timeout_seconds=config.webhook_timeout_seconds)
        )
    if config.smtp_host is not None and config.smtp_sender is not None:
        notifiers.append(
            SmtpNotifier(
                config.smtp_host,
                config.smtp_port,
                config.smtp_sender,
                config.smtp_recipients,
                username=config.smtp_username,
                password=config.smtp_password,
                starttls=config.smtp_starttls,
                implicit_tls=config.smtp_ssl,
            )
        )
    return notifiers
