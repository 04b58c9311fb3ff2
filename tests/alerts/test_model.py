from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alchemiser.alerts.model import AlertLevel, Escalation, next_escalation
from alchemiser.settings.risk import Alerts

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
MINUTES = Alerts(
    escalate_info_after_minutes=30,
    escalate_warning_after_minutes=10,
    escalate_critical_after_minutes=5,
)


@pytest.mark.parametrize(
    ("level", "up", "wait"),
    [
        (AlertLevel.INFO, AlertLevel.WARNING, 30),
        (AlertLevel.WARNING, AlertLevel.CRITICAL, 10),
        (AlertLevel.CRITICAL, AlertLevel.EMERGENCY, 5),
    ],
)
def test_each_level_waits_its_minutes_from_opening(
    level: AlertLevel, up: AlertLevel, wait: int
) -> None:
    assert next_escalation(level, T0, None, MINUTES) == Escalation(up, T0 + timedelta(minutes=wait))


def test_counted_from_the_last_escalation() -> None:
    last = T0 + timedelta(minutes=10)
    assert next_escalation(AlertLevel.CRITICAL, T0, last, MINUTES) == Escalation(
        AlertLevel.EMERGENCY, last + timedelta(minutes=5)
    )


def test_emergency_is_the_top_and_zero_means_never() -> None:
    assert next_escalation(AlertLevel.EMERGENCY, T0, None, MINUTES) is None
    assert next_escalation(AlertLevel.INFO, T0, None, Alerts()) is None  # default: info stays


def test_levels_are_ordered() -> None:
    assert [lv.severity for lv in AlertLevel] == [0, 1, 2, 3]
    assert AlertLevel.CRITICAL.next() is AlertLevel.EMERGENCY
    assert AlertLevel.EMERGENCY.next() is None
