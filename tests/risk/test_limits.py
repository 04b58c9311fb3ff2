"""Limit usage of a held book: the pre-trade rules measured on the book as it stands."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from alchemiser.domain.options import OptionRight
from alchemiser.risk.book import RiskPosition
from alchemiser.risk.greeks import book_greeks
from alchemiser.risk.limits import LimitUsage, limit_usage
from alchemiser.settings.risk import RiskSettings

D = Decimal
AS_OF = date(2026, 1, 6)
SECTORS = {"KO": "Consumer Staples", "AAPL": "Technology"}


def _book() -> list[RiskPosition]:
    put = RiskPosition(
        "KO260220P00060000", "option", -2, "income", "KO", 66.0,
        strike=60.0, expiry=date(2026, 2, 20), right=OptionRight.PUT, iv=0.2,
    )  # fmt: skip
    return [
        RiskPosition("AAPL", "equity", 100, "equity", "AAPL", 250.0),
        RiskPosition("KO", "equity", 100, "equity", "KO", 66.0),
        put,
    ]


NAV = D(100_000)


def _usage(risk: RiskSettings, nav: Decimal = NAV) -> dict[str, LimitUsage]:
    book = _book()
    greeks = book_greeks(book, as_of=AS_OF, rate=0.04, betas={"AAPL": 1.2, "KO": 0.5})
    return {u.key: u for u in limit_usage(book, greeks, nav, risk, SECTORS.__getitem__)}


def test_sector_counts_equity_and_cash_secured_puts_and_alerts_only_income_sectors() -> None:
    u = _usage(RiskSettings(max_sector_pct=D(20)))
    staples, tech = u["sector:Consumer Staples"], u["sector:Technology"]
    # 100 KO shares at 66 + 2 puts × 100 × 60 strike = 18,600 of a 20,000 cap.
    assert staples.value == D("18600.00") and staples.limit == D("20000.00")
    assert staples.usage_pct == D("93.00") and staples.breach is None and staples.alerted
    # AAPL alone: 25,000 > 20,000, over, but the equity book is reported, not alerted.
    assert tech.breach is not None and not tech.alerted
    assert "sector limit: Technology 25,000.00" in tech.breach.message


def test_position_count_is_at_the_limit_not_over_it() -> None:
    at = _usage(RiskSettings(max_income_positions=1))["income_positions"]
    assert at.usage_pct == D(100) and at.breach is None
    over = _usage(RiskSettings(max_income_positions=0))["income_positions"]
    assert over.breach is not None and over.usage_pct == D("Infinity")


def test_income_greeks_use_the_pretrade_measures() -> None:
    u = _usage(RiskSettings())
    delta = u["net_delta"]
    # Two short puts: positive delta; equities are not income and do not count.
    assert D(0) < delta.value < D("0.05") and delta.breach is None
    tight = _usage(RiskSettings(max_abs_net_delta=delta.value / 2))["net_delta"]
    assert tight.breach is not None and tight.usage_pct == D(200)
    assert "net delta limit" in tight.breach.message
