"""The daily ATM implied volatility of each hedge ETF, kept for IV percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

import structlog

from alchemiser.broker.base import BrokerError
from alchemiser.hedging.book import spots
from alchemiser.hedging.context import VOL_INDEX_UNDERLYING, HedgingContext
from alchemiser.hedging.vol_regime import VolRegimeError, atm_iv, regime_from_chain

log = structlog.stdlib.get_logger("alchemiser.hedging")

HEDGE_ETFS = ("SPY", "QQQ", "IWM")
# The ATM IV recorded is the 30-day one (interpolated between expiries).
ATM_DAYS = 30


async def capture_iv(
    ctx: HedgingContext, session_date: date, extra: Sequence[str] = ()
) -> dict[str, Decimal]:
    """Record each ETF's 30-day ATM IV (and the vol index with SPY's); skip what is missing.

    ``extra``: more underlyings (the income universe), kept for their IV percentiles.
    """
    now = ctx.clock.now()
    recorded: dict[str, Decimal] = {}
    symbols = list(dict.fromkeys([*HEDGE_ETFS, *extra]))
    try:
        prices = await spots(ctx.broker, symbols)
    except BrokerError as exc:
        log.warning("iv_capture_failed", error=str(exc))
        return recorded
    for symbol in symbols:
        if symbol not in prices:
            continue
        chain = await ctx.broker.get_option_chain(
            symbol, now.date(), now.date() + timedelta(days=ATM_DAYS * 2)
        )
        value = atm_iv(chain, prices[symbol], ATM_DAYS, now)
        if value is None:
            log.info("iv_capture_no_atm_iv", symbol=symbol)
            continue
        index: Decimal | None = None
        if symbol == VOL_INDEX_UNDERLYING:
            try:
                index = regime_from_chain(chain, now, ctx.rate, ctx.hedging).index
            except VolRegimeError:
                index = None
        await ctx.iv_history.record(symbol, session_date, value, index)
        recorded[symbol] = value
    log.info("iv_captured", values={k: str(v) for k, v in recorded.items()})
    return recorded
