"""The hedge book as holdings with live quotes: what the evaluator, roller and status value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import structlog

from alchemiser.broker.base import Broker
from alchemiser.domain.options import parse_occ
from alchemiser.domain.trading import OptionSnapshot
from alchemiser.hedging.payoff import HedgeHolding, HedgeLeg, hedge_book_payoff
from alchemiser.store.hedges import HedgeView

log = structlog.stdlib.get_logger("alchemiser.hedging")


def leg_symbols(hedges: Sequence[HedgeView]) -> set[str]:
    symbols = {h.long_symbol for h in hedges}
    symbols |= {h.short_symbol for h in hedges if h.short_symbol}
    return symbols


def valuable(snap: OptionSnapshot | None) -> bool:
    """A quote a leg can be valued from: an implied volatility, or a two-sided market."""
    if snap is None:
        return False
    return snap.implied_volatility is not None or (snap.bid > 0 and snap.ask > 0)


def holding_of(hedge: HedgeView, quotes: Mapping[str, OptionSnapshot]) -> HedgeHolding:
    """A stored hedge as a holding, its legs marked with the quotes' IV (or mid)."""
    legs = [_leg(hedge.long_symbol, hedge.contracts, quotes)]
    if hedge.short_symbol:
        legs.append(_leg(hedge.short_symbol, -hedge.contracts, quotes))
    return HedgeHolding(
        hedge_id=hedge.id,
        template="smoothing" if hedge.template == "smoothing" else "tail_first",
        underlying=hedge.underlying,
        legs=tuple(legs),
        opened_at=hedge.entry_at,
    )


def _leg(symbol: str, contracts: int, quotes: Mapping[str, OptionSnapshot]) -> HedgeLeg:
    snap = quotes.get(symbol)
    iv = snap.implied_volatility if snap is not None else None
    mark = snap.mid if snap is not None and snap.ask > 0 else None
    return HedgeLeg(parse_occ(symbol), contracts, iv=iv, mark=mark)


async def book_quotes(broker: Broker, hedges: Sequence[HedgeView]) -> dict[str, OptionSnapshot]:
    symbols = sorted(leg_symbols(hedges))
    return await broker.get_option_quotes(symbols) if symbols else {}


async def spots(broker: Broker, symbols: Sequence[str]) -> dict[str, Decimal]:
    quotes = await broker.get_stock_quotes(sorted(set(symbols)))
    return {s: (q.mid if q.bid > 0 and q.ask > 0 else q.last) for s, q in quotes.items()}


async def book_payoff(
    broker: Broker,
    hedges: Sequence[HedgeView],
    now: datetime,
    rate: float,
    move_pct: Decimal,
    vol_shift_points: Decimal,
) -> Decimal:
    """Scenario payoff of the active hedges (repriced with the vol shock, not intrinsic)."""
    live = [h for h in hedges if h.contracts > 0 and h.expiry >= now.date()]
    if not live:
        return Decimal(0)
    quotes = await book_quotes(broker, live)
    valued = [h for h in live if all(valuable(quotes.get(s)) for s in leg_symbols([h]))]
    for hedge in live:
        if hedge not in valued:
            # No quote to value it (unlisted after its expiry close, or no market): it is
            # left out of the scenario rather than given an invented price.
            log.info("hedge_not_valued", hedge_id=hedge.id, legs=sorted(leg_symbols([hedge])))
    if not valued:
        return Decimal(0)
    holdings = [holding_of(h, quotes) for h in valued]
    prices = await spots(broker, [h.underlying for h in valued])
    return hedge_book_payoff(holdings, prices, now, rate, move_pct, vol_shift_points)
