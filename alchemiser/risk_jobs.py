"""The risk engine's scheduled work, wired from the daemon's services: the monitor behind the
intraday snapshot loop, the end-of-day VaR/ES/stress job and the weekly review job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alchemiser.risk.eod import end_of_day
from alchemiser.risk.monitor import RiskMonitor
from alchemiser.risk.weekly import weekly_review
from alchemiser.store.risk import PriceHistoryStore, RiskStore

if TYPE_CHECKING:
    from alchemiser.daemon import Services
    from alchemiser.scheduler import JobContext

__all__ = ["risk_eod", "risk_monitor", "weekly_review_job"]


def risk_monitor(services: Services) -> RiskMonitor:
    """The account's risk monitor (limits read live from the settings at every pass)."""
    settings = services.settings
    return RiskMonitor(
        services.broker,
        services.hedging.store,
        services.hedging.reference,
        RiskStore(services.sessions, services.hedging.account),
        services.alerts,
        lambda: settings.current.risk,
        services.clock,
        services.calendar,
    )


async def risk_eod(ctx: JobContext) -> None:
    """After the close: record closes, store the day's VaR/ES, stress and "eod" snapshot."""
    services = ctx.services
    settings = services.settings
    await end_of_day(
        risk_monitor(services),
        services.broker,
        PriceHistoryStore(services.sessions),
        lambda: settings.current.risk,
        services.clock,
        services.calendar,
        ctx.session_date,
    )


async def weekly_review_job(ctx: JobContext) -> None:
    """On the week's last session: store and log the weekly risk review."""
    services = ctx.services
    account = await services.broker.get_account()
    await weekly_review(
        RiskStore(services.sessions, services.hedging.account),
        services.hedging.store,
        services.alerts.store,
        services.calendar,
        services.clock,
        ctx.session_date,
        account.equity,
    )
