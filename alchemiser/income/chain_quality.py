"""Quote validation and put-call ratios from option chains.

``validate_quotes`` keeps the snapshots fit to screen and counts why the
others were dropped; each dropped quote counts once, under the first reason
that applies, in this order:

* ``no_bid``: bid ≤ 0 (or not a number);
* ``no_ask``: ask ≤ 0 (or not a number);
* ``crossed``: bid > ask;
* ``stale``: older than ``max_age_seconds`` at ``now``;
* ``no_iv``: implied volatility missing, NaN or ≤ 0;
* ``no_greeks``: greeks missing or delta not a finite number.

``put_call_ratio`` is put volume / call volume of one underlying's chain;
when the chain traded nothing it falls back to put / call open interest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from alchemiser.domain.options import OptionRight
from alchemiser.domain.trading import OptionSnapshot

__all__ = ["DROP_REASONS", "drop_reason", "put_call_ratio", "sector_average", "validate_quotes"]

DROP_REASONS: tuple[str, ...] = ("no_bid", "no_ask", "crossed", "stale", "no_iv", "no_greeks")
_RATIO_PLACES = Decimal("0.0001")


def drop_reason(snapshot: OptionSnapshot, now: datetime, max_age_seconds: float) -> str | None:
    """Why ``snapshot`` cannot be screened (one of DROP_REASONS), or None if it can."""
    bid, ask = snapshot.bid, snapshot.ask
    if not bid.is_finite() or bid <= 0:
        return "no_bid"
    if not ask.is_finite() or ask <= 0:
        return "no_ask"
    if bid > ask:
        return "crossed"
    if (now - snapshot.timestamp).total_seconds() > max_age_seconds:
        return "stale"
    iv = snapshot.implied_volatility
    if iv is None or not math.isfinite(iv) or iv <= 0:
        return "no_iv"
    greeks = snapshot.greeks
    if greeks is None or not math.isfinite(greeks.delta):
        return "no_greeks"
    return None


def validate_quotes(
    snapshots: Iterable[OptionSnapshot], now: datetime, max_age_seconds: float
) -> tuple[list[OptionSnapshot], Counter[str]]:
    """The usable snapshots, in input order, and how many were dropped for each reason."""
    kept: list[OptionSnapshot] = []
    dropped: Counter[str] = Counter()
    for snapshot in snapshots:
        reason = drop_reason(snapshot, now, max_age_seconds)
        if reason is None:
            kept.append(snapshot)
        else:
            dropped[reason] += 1
    return kept, dropped


def put_call_ratio(chain: Iterable[OptionSnapshot]) -> Decimal | None:
    """Put volume / call volume (4 decimals); open interest when nothing traded.

    None when neither volume nor open interest says anything, or the call side is 0.
    """
    put_volume = call_volume = put_oi = call_oi = 0
    for snapshot in chain:
        is_put = snapshot.contract.right is OptionRight.PUT
        volume = max(snapshot.volume or 0, 0)
        oi = max(snapshot.open_interest or 0, 0)
        if is_put:
            put_volume += volume
            put_oi += oi
        else:
            call_volume += volume
            call_oi += oi
    if put_volume + call_volume > 0:
        puts, calls = put_volume, call_volume
    else:
        puts, calls = put_oi, call_oi
    if calls == 0:
        return None
    return (Decimal(puts) / Decimal(calls)).quantize(_RATIO_PLACES, rounding=ROUND_HALF_UP)


def sector_average(
    ratios: Mapping[str, Decimal | None], sectors: Mapping[str, str | None]
) -> dict[str, Decimal]:
    """Mean put-call ratio per sector over the symbols whose ratio and sector are known."""
    by_sector: dict[str, list[Decimal]] = {}
    for symbol, ratio in ratios.items():
        sector = sectors.get(symbol)
        if ratio is None or sector is None:
            continue
        by_sector.setdefault(sector, []).append(ratio)
    return {
        sector: (sum(values, Decimal(0)) / len(values)).quantize(
            _RATIO_PLACES, rounding=ROUND_HALF_UP
        )
        for sector, values in by_sector.items()
    }
