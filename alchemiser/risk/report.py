"""The book's risk as the broker holds it now: greeks and stress, ready to print or store."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from alchemiser.broker.base import Broker
from alchemiser.clock import NEW_YORK, Clock
from alchemiser.hedging.book import leg_symbols
from alchemiser.market.reference import ReferenceData
from alchemiser.risk.book import RiskPosition, Strategy, build_book
from alchemiser.risk.greeks import BookGreeks, book_greeks
from alchemiser.risk.stress import StressReport, stress_test
from alchemiser.settings.risk import RiskSettings
from alchemiser.store.hedges import HedgeStore


@dataclass(frozen=True)
class RiskReport:
    nav: Decimal
    positions: list[RiskPosition]
    greeks: BookGreeks
    stress: StressReport


async def current_risk(
    broker: Broker,
    hedges: HedgeStore,
    reference: ReferenceData,
    settings: RiskSettings,
    clock: Clock,
) -> RiskReport:
    """Greeks and stress of the whole book; our hedges tagged "hedge", other options "income"."""
    positions = await broker.get_positions()
    account = await broker.get_account()
    options = [p.symbol for p in positions if p.is_option]
    tags: dict[str, Strategy] = {s: "hedge" for s in leg_symbols(await hedges.active())}
    underlyings = {p.symbol for p in positions if not p.is_option}
    option_quotes = await broker.get_option_quotes(options) if options else {}
    underlyings |= {q.contract.root for q in option_quotes.values()}
    stock_quotes = await broker.get_stock_quotes(sorted(underlyings))
    book = build_book(
        positions, stock_quotes, option_quotes, tags, default_option_strategy="income"
    )
    rate = float(settings.risk_free_rate_pct) / 100
    as_of = clock.now().astimezone(NEW_YORK).date()
    greeks = book_greeks(book, as_of=as_of, rate=rate, betas=reference)
    stress = stress_test(
        book, settings.stress_scenarios, as_of=as_of, rate=rate, betas=reference, nav=account.equity
    )
    return RiskReport(account.equity, book, greeks, stress)
