"""Alerts with escalation: levels, persisted alerts, notifiers and the service.

Wiring (daemon)::

    store = AlertStore(sessions, clock, account)
    notifiers = build_notifiers(notifier_config_from_env())
    service = AlertService(store, notifiers, clock, lambda: live.settings.risk.alerts,
                           TradingStateStore(sessions, clock, account))
    # every minute: await service.tick(); on shutdown: await service.aclose()
"""

from alchemiser.alerts.model import AlertLevel, AlertState, Escalation, next_escalation
from alchemiser.alerts.notifiers import (
    AlertMessage,
    LogNotifier,
    Notifier,
    NotifierError,
    SmtpNotifier,
    WebhookNotifier,
)

__all__ = [
    "AlertLevel",
    "AlertMessage",
    "AlertState",
    "Escalation",
    "LogNotifier",
    "Notifier",
    "NotifierError",
    "SmtpNotifier",
    "WebhookNotifier",
    "next_escalation",
]
