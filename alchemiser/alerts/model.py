"""Alert levels and the escalation rule (pure: no I/O, no clock reads).

An unacknowledged alert moves up one level after the minutes configured for
its current level (``risk.alerts.escalate_<level>_after_minutes``; 0 = never),
counted from when it reached that level: its last escalation, else when it
was opened. EMERGENCY is the top and never escalates further.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

__all__ = [
    "AlertLevel",
    "AlertState",
    "Escalation",
    "EscalationMinutes",
    "next_escalation",
]


class AlertLevel(StrEnum):
    """How serious an alert is, by increasing severity."""

    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    EMERGENCY = "EMERGENCY"

    @property
    def severity(self) -> int:
        return _ORDER.index(self)

    def next(self) -> AlertLevel | None:
        """The level above, or None at EMERGENCY."""
        i = self.severity + 1
        return _ORDER[i] if i < len(_ORDER) else None


_ORDER = (AlertLevel.INFO, AlertLevel.WARNING, AlertLevel.CRITICAL, AlertLevel.EMERGENCY)


class AlertState(StrEnum):
    OPEN = "OPEN"  # unacknowledged: escalates
    ACKNOWLEDGED = "ACKNOWLEDGED"  # a person has it: no more escalation
    RESOLVED = "RESOLVED"  # over; the same key may open a new alert


class EscalationMinutes(Protocol):
    """The fields of ``RiskSettings.alerts`` the rule reads (``settings.risk.Alerts``)."""

    @property
    def escalate_info_after_minutes(self) -> int: ...
    @property
    def escalate_warning_after_minutes(self) -> int: ...
    @property
    def escalate_critical_after_minutes(self) -> int: ...


@dataclass(frozen=True)
class Escalation:
    level: AlertLevel  # the level the alert moves to
    at: datetime  # when it is due


def minutes_for(level: AlertLevel, minutes: EscalationMinutes) -> int:
    """Minutes an unacknowledged alert stays at ``level``; 0 means it stays there."""
    if level is AlertLevel.INFO:
        return minutes.escalate_info_after_minutes
    if level is AlertLevel.WARNING:
        return minutes.escalate_warning_after_minutes
    if level is AlertLevel.CRITICAL:
        return minutes.escalate_critical_after_minutes
    return 0


def next_escalation(
    level: AlertLevel,
    opened_at: datetime,
    last_escalated_at: datetime | None,
    minutes: EscalationMinutes,
) -> Escalation | None:
    """The next level of an unacknowledged alert and when it is due; None if it stays put."""
    up = level.next()
    wait = minutes_for(level, minutes)
    if up is None or wait <= 0:
        return None
    since = last_escalated_at if last_escalated_at is not None else opened_at
    return Escalation(up, since + timedelta(minutes=wait))
