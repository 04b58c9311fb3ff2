"""End of day: record the session's closes, then store VaR/ES, the delta-gamma VaR, the
stress table and an "eod" snapshot of the book (whose NAV is the next day's loss reference).

Historical VaR uses the last ``risk.history_sessions`` daily returns of the book's
underlyings from the stored closes and needs ``risk.min_history_sessions`` of
them for every underlying; otherwise the day's row has no VaR and a note says why
(``alchemiser history import`` loads a user's closes so VaR works from day one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import structlog

from alchemiser.broker.base import Broker
from alchemiser.clock import Clock
from alchemiser.domain.options import parse_occ
from alchemiser.domain.trading import StockQuote
from alchemiser.risk.history import aligned_returns, session_window
from alchemiser.risk.monitor import RiskMonitor
from alchemiser.risk.report import RiskReport
from alchemiser.risk.stress import StressReport
from alchemiser.risk.var import delta_gamma_var, historical_var
from alchemiser.settings.risk import RiskSettings
from alchemiser.store.risk import EOD, DailyRiskRow, PriceHistoryStore
from alchemiser.trading_calendar import TradingCalendar

__all__ = ["INDEX_SYMBOLS", "capture_closes", "close_of", "daily_risk", "end_of_day"]

log = structlog.stdlib.get_logger("alchemiser.risk")

# Always recorded, whatever the book holds: the hedge ETFs' history is what VaR of a
# future hedge needs.
INDEX_SYMBOLS = ("SPY", "QQQ", "IWM")


def close_of(quote: StockQuote) -> Decimal | None:
    """The session's close from a quote after the close: the last trade, else the mid."""
    if quote.last > 0:
        return quote.last
    if quote.bid > 0 and quote.ask >= quote.bid:
        return quote.mid
    return None


async def capture_closes(
    broker: Broker, prices: PriceHistoryStore, session_date: date, clock: Clock
) -> dict[str, Decimal]:
    """Record today's close of the index ETFs and of every underlying the broker positions hold."""
    positions = await broker.get_positions()
    symbols = set(INDEX_SYMBOLS) | {
        parse_occ(p.symbol).root if p.is_option else p.symbol for p in positions
    }
    quotes = await broker.get_stock_quotes(sorted(symbols))
    closes = {s: c for s, q in quotes.items() if (c := close_of(q)) is not None}
    await prices.record(closes, session_date, "broker", clock.now())
    missing = sorted(symbols - set(closes))
    if missing:
        log.warning("close_missing", session_date=session_date.isoformat(), symbols=missing)
    return closes


def _stress_json(stress: StressReport) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "pnl": str(r.pnl),
            "pnl_pct_nav": None if r.pnl_pct_nav is None else str(r.pnl_pct_nav),
            "pnl_by_strategy": {k: str(v) for k, v in r.pnl_by_strategy.items()},
            "gapped_symbol": r.gapped_symbol,
        }
        for r in stress.scenarios
    ]


def daily_risk(
    report: RiskReport,
    closes: dict[str, dict[date, Decimal]],
    window: Sequence[date],
    risk: RiskSettings,
    session_date: date,
    at: datetime,
) -> DailyRiskRow:
    """The day's VaR/ES row from the book and the stored closes (pure)."""
    underlyings = sorted({p.underlying for p in report.positions})
    history = aligned_returns(closes, underlyings, window)
    rate = float(risk.risk_free_rate_pct) / 100
    var_h = es_h = var_dg = var_dn = None
    used = 0
    details: dict[str, Any] = {"sessions_per_underlying": history.per_symbol}
    if not underlyings:
        note: str | None = "no positions: nothing at risk"
        var_h = es_h = var_dg = var_dn = Decimal(0)
    else:
        note = history.shortfall(risk.min_history_sessions)
    if note is None:
        hv = historical_var(
            report.positions,
            history.returns,
            underlyings,
            as_of=session_date,
            rate=rate,
            confidence=risk.var_confidence,
        )
        pv = delta_gamma_var(
            report.positions,
            history.returns,
            underlyings,
            as_of=session_date,
            rate=rate,
            confidence=risk.var_confidence,
        )
        var_h, es_h, used = hv.var, hv.expected_shortfall, hv.scenarios
        var_dg, var_dn = pv.delta_gamma_var, pv.delta_normal_var
        details |= {
            "es_by_strategy": {k: str(v) for k, v in hv.es_by_strategy.items()},
            "pnl_std": str(pv.pnl_std),
            "pnl_skew": round(pv.pnl_skew, 4),
        }
    return DailyRiskRow(
        session_date=session_date,
        at=at,
        nav=report.nav,
        confidence=risk.var_confidence,
        var_historical=var_h,
        es_historical=es_h,
        var_delta_gamma=var_dg,
        var_delta_normal=var_dn,
        sessions_used=used,
        note=note,
        stress=_stress_json(report.stress),
        hedge_payoff_pct_nav=report.stress.hedge_payoff_pct_nav,
        details=details,
    )


async def end_of_day(
    monitor: RiskMonitor,
    broker: Broker,
    prices: PriceHistoryStore,
    settings: Callable[[], RiskSettings],
    clock: Clock,
    calendar: TradingCalendar,
    session_date: date,
) -> DailyRiskRow:
    """The end-of-day risk job: closes, "eod" snapshot, VaR/ES/stress row."""
    if clock.now() >= calendar.session_close(session_date):
        await capture_closes(broker, prices, session_date, clock)
    else:  # an intraday price stored as the close would corrupt every later VaR
        log.warning(
            "closes_not_recorded",
            reason="before the close: schedule risk_eod after the close",
            session_date=session_date.isoformat(),
        )
    risk = settings()
    snap = await monitor.take(EOD)
    window = session_window(calendar, session_date, risk.history_sessions)
    underlyings = sorted({p.underlying for p in snap.report.positions})
    closes = await prices.closes(underlyings, window[0], window[-1])
    row = daily_risk(snap.report, closes, window, risk, session_date, clock.now())
    await monitor.store.save_daily(row)
    log.info(
        "risk_eod",
        session_date=session_date.isoformat(),
        nav=str(row.nav),
        var=None if row.var_historical is None else str(row.var_historical),
        expected_shortfall=None if row.es_historical is None else str(row.es_historical),
        var_delta_gamma=None if row.var_delta_gamma is None else str(row.var_delta_gamma),
        sessions_used=row.sessions_used,
        note=row.note,
        hedge_payoff_pct_nav=None
        if row.hedge_payoff_pct_nav is None
        else str(row.hedge_payoff_pct_nav),
    )
    return row
