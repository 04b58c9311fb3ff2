"""Escalation on a manual clock, deduplication, acknowledgement and the EMERGENCY state."""

from __future__ import annotations

from datetime import timedelta

from alchemiser.alerts.model import AlertLevel, AlertState
from alchemiser.alerts.notifiers import AlertMessage
from alchemiser.store.reconcile_state import TradingMode
from tests.alerts.conftest import START, Harness


async def _level(h: Harness, alert_id: int) -> AlertLevel:
    alert = await h.store.get(alert_id)
    assert alert is not None
    return alert.level


async def test_unacknowledged_alert_escalates_on_time(h: Harness) -> None:
    svc = h.service()
    alert = await svc.raise_alert("margin", AlertLevel.WARNING, "margin use 82 %", {"pct": 82})

    await h.clock.advance(10 * 60 - 1)
    await svc.tick()
    assert await _level(h, alert.id) is AlertLevel.WARNING

    await h.clock.advance(1)  # 10 minutes after opening
    await svc.tick()
    assert await _level(h, alert.id) is AlertLevel.CRITICAL
    assert (await h.trading.trading_state()).state is TradingMode.ACTIVE

    await h.clock.advance(5 * 60 - 1)
    await svc.tick()
    assert await _level(h, alert.id) is AlertLevel.CRITICAL

    await h.clock.advance(1)  # 5 more minutes at CRITICAL
    await svc.tick()
    after = await h.store.get(alert.id)
    assert after is not None and after.level is AlertLevel.EMERGENCY
    assert after.last_escalated_at == START + timedelta(minutes=15)
    state = await h.trading.trading_state()
    assert state.state is TradingMode.REDUCING and f"alert {alert.id}" in state.reason

    await h.clock.advance(3600)
    await svc.tick()  # the top: nothing more happens
    assert await _level(h, alert.id) is AlertLevel.EMERGENCY


async def test_a_late_tick_catches_up_on_schedule(h: Harness) -> None:
    svc = h.service()
    alert = await svc.raise_alert("k", AlertLevel.WARNING, "t")
    await h.clock.advance(3600)
    await svc.tick()
    after = await h.store.get(alert.id)
    assert after is not None and after.level is AlertLevel.EMERGENCY
    # Each step at its scheduled time, not at the late tick.
    assert after.last_escalated_at == START + timedelta(minutes=15)


async def test_settings_are_read_live_and_zero_means_never(h: Harness) -> None:
    svc = h.service()
    alert = await svc.raise_alert("k", AlertLevel.INFO, "t")
    await h.clock.advance(29 * 60)
    h.settings = h.settings.model_copy(update={"escalate_info_after_minutes": 0})
    await h.clock.advance(3600)
    await svc.tick()
    assert await _level(h, alert.id) is AlertLevel.INFO


async def test_ack_stops_escalation(h: Harness) -> None:
    svc = h.service()
    alert = await svc.raise_alert("k", AlertLevel.CRITICAL, "t")
    await h.clock.advance(60)
    acked = await svc.ack(alert.id, "ops")
    assert acked is not None and acked.state is AlertState.ACKNOWLEDGED
    assert acked.acknowledged_by == "ops" and acked.acknowledged_at == START + timedelta(minutes=1)
    await h.clock.advance(3600)
    await svc.tick()
    assert await _level(h, alert.id) is AlertLevel.CRITICAL
    assert (await h.trading.trading_state()).state is TradingMode.ACTIVE
    assert await svc.ack(999_999, "ops") is None


async def test_deduplicated_by_key_while_unresolved(h: Harness) -> None:
    svc = h.service()
    first = await svc.raise_alert("recon", AlertLevel.WARNING, "mismatch")
    again = await svc.raise_alert("recon", AlertLevel.INFO, "mismatch")
    assert again.id == first.id and again.level is AlertLevel.WARNING

    await svc.ack(first.id, "ops")
    worse = await svc.raise_alert("recon", AlertLevel.CRITICAL, "mismatch grew")
    # A worse report raises the same alert and needs a person again.
    assert worse.id == first.id
    assert worse.level is AlertLevel.CRITICAL and worse.state is AlertState.OPEN

    resolved = await svc.resolve(first.id)
    assert resolved is not None and resolved.state is AlertState.RESOLVED
    fresh = await svc.raise_alert("recon", AlertLevel.INFO, "again")
    assert fresh.id != first.id
    assert [a.id for a in await h.store.alerts()] == [fresh.id]
    assert {a.id for a in await h.store.alerts(include_resolved=True)} == {first.id, fresh.id}


async def test_emergency_puts_trading_in_reducing_until_resumed(h: Harness) -> None:
    svc = h.service()
    alert = await svc.raise_alert(
        "daily-loss", AlertLevel.EMERGENCY, "daily loss 6.1 % beyond 5 %", {"loss_pct": "6.1"}
    )
    state = await h.trading.trading_state()
    assert state.state is TradingMode.REDUCING
    assert not state.allows_opening and state.changed_by == "alerts"
    await svc.ack(alert.id, "ops")  # acknowledging does not lift it
    assert (await h.trading.trading_state()).state is TradingMode.REDUCING
    await h.trading.resume("ops")
    assert (await h.trading.trading_state()).state is TradingMode.ACTIVE


async def test_emergency_never_softens_a_halt(h: Harness) -> None:
    svc = h.service()
    await h.trading.halt("reconciliation mismatch")
    await svc.raise_alert("x", AlertLevel.EMERGENCY, "t")
    assert (await h.trading.trading_state()).state is TradingMode.HALTED


class Flaky:
    """Fails ``failures`` times, then records messages."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[AlertMessage] = []
        self.calls = 0

    async def send(self, message: AlertMessage) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("boom")
        self.sent.append(message)

    async def aclose(self) -> None:
        return None


async def test_failures_back_off_then_give_up_without_raising(h: Harness) -> None:
    h.settings = h.settings.model_copy(update={"escalate_info_after_minutes": 0})
    flaky = Flaky(failures=100)
    svc = h.service([flaky], retry_base_seconds=10, retry_max_seconds=25, max_attempts=4)
    alert = await svc.raise_alert("k", AlertLevel.INFO, "t")
    await svc.drain()
    waits = []
    for _ in range(3):
        (row,) = await h.store.notifications(alert.id)
        waits.append((row["next_attempt_at"] - h.clock.now()).total_seconds())
        await h.clock.advance(waits[-1])
        await svc.tick()
        await svc.drain()
    assert waits == [10, 20, 25]
    (row,) = await h.store.notifications(alert.id)
    assert row["state"] == "FAILED" and row["attempts"] == 4 and row["last_error"] == "boom"
    await h.clock.advance(3600)
    await svc.tick()
    await svc.drain()
    assert flaky.calls == 4


async def test_escalation_is_notified(h: Harness) -> None:
    flaky = Flaky(failures=0)
    svc = h.service([flaky])
    await svc.raise_alert("k", AlertLevel.CRITICAL, "t")
    await svc.drain()
    await h.clock.advance(5 * 60)
    await svc.tick()
    await svc.drain()
    assert [(m.event, m.level) for m in flaky.sent] == [
        ("opened", AlertLevel.CRITICAL),
        ("escalated", AlertLevel.EMERGENCY),
    ]
