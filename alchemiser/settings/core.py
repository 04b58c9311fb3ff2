"""Settings sections of the daemon's own machinery: broker, database, schedule, logging, web, sim."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from alchemiser.settings.base import Section

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/alchemiser.db"


class BrokerSettings(Section):
    kind: Literal["sim", "alpaca"] = "sim"
    # Label of the account this daemon trades; keys the single-instance lock and audit rows.
    account: str = Field(default="default", min_length=1, max_length=64)
    # Credentials come only from the environment (ALPACA__KEY, ALPACA__SECRET, ALPACA__ENDPOINT).
    key: SecretStr | None = None
    secret: SecretStr | None = None
    endpoint: SecretStr | None = None
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class DatabaseSettings(Section):
    url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    auto_migrate: bool = True
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        scheme = urlsplit(url).scheme
        if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError(
                f"unsupported database URL scheme {scheme or '(none)'!r}: use "
                "'sqlite+aiosqlite:///path.db' or 'postgresql+asyncpg://user@host/db'"
            )
        return value


class QueueSettings(Section):
    # Seconds a claimed job stays invisible to other workers before it may be claimed again.
    visibility_timeout_seconds: int = Field(default=900, ge=30, le=12 * 3600)
    # Attempts before a job moves to the dead-letter queue.
    max_attempts: int = Field(default=3, ge=1, le=20)
    # Days unfinished work may wait before it is dead-lettered (and done jobs are deleted).
    retention_days: int = Field(default=4, ge=1, le=14)


# "HH:MM" (wall time, America/New_York) or "open+30m" / "close-30m" relative to
# that session's open or close, so close-relative jobs follow early closes.
SCHEDULE_SPEC = re.compile(
    r"^(?:(?P<hh>[01]\d|2[0-3]):(?P<mm>[0-5]\d)|(?P<anchor>open|close)(?P<off>[+-]\d{1,3})m)$"
)


class ScheduleSettings(Section):
    enabled: bool = True
    # Seconds a job may start late (daemon busy or restarted) and still run.
    misfire_grace_seconds: int = Field(default=600, ge=1, le=6 * 3600)
    # Seconds a running job gets to finish when the daemon is asked to stop.
    shutdown_grace_seconds: int = Field(default=60, ge=0, le=3600)
    daily_summary: str = "close+5m"
    hedge_evaluation: str = "close-30m"
    hedge_roll_check: str = "close-15m"
    income_screen: str = "open+60m"
    income_manage: str = "close-45m"
    iv_capture: str = "close-5m"
    eod_reconcile: str = "close+15m"
    queue_maintenance: str = "close+30m"
    risk_eod: str = "close+10m"
    weekly_review: str = "close+40m"
    risk_snapshot_minutes: int = Field(default=5, ge=1, le=390)

    @field_validator(
        "daily_summary",
        "hedge_evaluation",
        "hedge_roll_check",
        "income_screen",
        "income_manage",
        "iv_capture",
        "eod_reconcile",
        "queue_maintenance",
        "risk_eod",
        "weekly_review",
    )
    @classmethod
    def _valid_spec(cls, value: str) -> str:
        if not SCHEDULE_SPEC.match(value):
            raise ValueError(
                f"{value!r} is not a schedule: use 'HH:MM' (New York time) or "
                "'open+Nm' / 'close-Nm' (minutes from that session's open or close)"
            )
        return value


# Libraries whose INFO lines repeat what our own events already say.
QUIET_LIBRARIES: dict[str, LogLevel] = {
    "alembic": "WARNING",
    "apscheduler": "WARNING",
    "aiosqlite": "WARNING",
}


class LoggingSettings(Section):
    level: LogLevel = "INFO"
    # Per-logger levels, e.g. { "apscheduler" = "WARNING", "alchemiser.hedging" = "DEBUG" }.
    levels: dict[str, LogLevel] = Field(default_factory=lambda: dict(QUIET_LIBRARIES))
    format: Literal["auto", "json", "console"] = "auto"
    heartbeat_seconds: float = Field(default=60.0, gt=0, le=3600)


class WebSettings(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class SimSettings(Section):
    seed: int = 20260101
    # Simulated seconds per real second (1 = real time). 3600 runs a session in 6.5 s.
    speed: float = Field(default=3600.0, gt=0, le=10_000_000)
    # Jump over nights, weekends and holidays (stopping at every scheduled job on the way).
    skip_closed_hours: bool = True
    start_date: date = date(2026, 1, 2)
    # The opening account and book; "" means the shipped config/sim_scenario.toml.
    scenario: str = ""
    # Simulated minutes between broker passes that match orders and settle the close.
    sync_minutes: int = Field(default=5, ge=1, le=390)
