"""Logging: structlog events, one per line, JSON off a TTY, key=value on one.

Library logs (stdlib `logging`: SQLAlchemy, Alembic, APScheduler, asyncio) go
through the same processors, so every line has the same shape: ISO-8601 UTC
timestamp, level, logger, event name, correlation id. Secrets registered with
``register_secret`` are masked wherever they appear in a line.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO
from urllib.parse import urlsplit

import structlog
from pydantic import SecretStr

from alchemiser.settings.core import LoggingSettings

REDACTED = "**********"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_process_correlation_id = "-"


def register_secret(value: str | SecretStr | None) -> None:
    """Mask this value in every log line from now on (URLs: their password)."""
    if value is None:
        return
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    candidates = [raw]
    if "://" in raw:
        password = urlsplit(raw).password
        candidates = [password] if password else []
    with _secrets_lock:
        _secrets.update(c for c in candidates if c and len(c) >= 4)


def register_settings_secrets(settings: Any) -> None:
    broker = settings.broker
    for value in (broker.key, broker.secret, broker.endpoint, settings.database.url):
        register_secret(value)


def set_process_correlation_id(value: str) -> None:
    """Correlation id for lines logged outside any job (the daemon run's id)."""
    global _process_correlation_id
    _process_correlation_id = value


def _mask(value: Any, secrets: Iterable[str]) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask(v, secrets) for v in value)
    return value


def redact_secrets(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask(value, secrets)
    return event_dict


def add_correlation_id(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict.setdefault("correlation_id", _process_correlation_id)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_correlation_id,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.StackInfoRenderer(),
    ]


def _use_json(fmt: str, stream: TextIO) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(settings: LoggingSettings, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one handler on ``stream`` (stdout)."""
    stream = stream or sys.stdout
    shared = _shared_processors()
    if _use_json(settings.format, stream):
        renderer: Any = structlog.processors.JSONRenderer(default=str)
        # Tracebacks become text first so the redaction sees them too.
        final = [structlog.processors.format_exc_info, redact_secrets, renderer]
    else:
        colors = bool(getattr(stream, "isatty", lambda: False)())
        final = [
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.dev.ConsoleRenderer(colors=colors),
        ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    apply_levels(settings)


_configured_loggers: set[str] = set()


def apply_levels(settings: LoggingSettings) -> None:
    """Set the root and per-logger levels; loggers dropped from the config go back to inheriting."""
    logging.getLogger().setLevel(settings.level)
    for name in _configured_loggers - set(settings.levels):
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name, level in settings.levels.items():
        logging.getLogger(name).setLevel(level)
    _configured_loggers.clear()
    _configured_loggers.update(settings.levels)
