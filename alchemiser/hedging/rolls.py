"""When a hedge must be rolled, with stable reasons for the audit trail.

Outright put (tail_first), by days to expiry (New York calendar days):
``critical_dte`` when DTE < critical_dte (14), else ``dte_threshold`` when
DTE < roll_below_dte (45). DTE 45 holds; 44 rolls; 13 is critical.

Put spread (smoothing), checked in this order, the first that holds wins:
``spread_value`` (net mid < 30 % of the width), ``long_delta`` (long |delta|
> 0.50), ``short_delta`` (short |delta| > 0.20), ``cadence`` (held >= 21 days,
counted in New York calendar days since it was opened). Every comparison is
strict except the cadence (21 days held rolls).

Market-dependent checks need the legs' quotes; a leg without a usable quote
(or greeks) skips that check, and ``check_roll`` lists what was missing so
the roll job can log it instead of silently holding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from alchemiser.domain.trading import OptionSnapshot
from alchemiser.domain.vol_index import NEW_YORK
from alchemiser.hedging.payoff import EXPIRY_CLOSE, HedgeHolding
from alchemiser.settings.hedging import HedgingSettings

__all__ = [
    "ROLL_REASONS",
    "RollCheck",
    "check_roll",
    "days_held",
    "days_to_expiry",
    "is_expired",
    "roll_reason",
]

ROLL_REASONS = (
    "critical_dte",
    "dte_threshold",
    "spread_value",
    "long_delta",
    "short_delta",
    "cadence",
)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class RollCheck:
    """Every roll reason that holds (first = the one reported) and the data that was missing."""

    reasons: tuple[str, ...]
    missing: tuple[str, ...]  # e.g. "quote QQQ...P00400000", "greeks QQQ...P00380000"
    dte: int
    days_held: int

    @property
    def reason(self) -> str | None:
        return self.reasons[0] if self.reasons else None


def days_to_expiry(holding: HedgeHolding, now: datetime) -> int:
    """Calendar days from today (New York) to the earliest leg's expiry."""
    return (holding.expiry - now.astimezone(NEW_YORK).date()).days


def days_held(holding: HedgeHolding, now: datetime) -> int:
    """Calendar days (New York) since the hedge was opened."""
    return (now.astimezone(NEW_YORK).date() - holding.opened_at.astimezone(NEW_YORK).date()).days


def is_expired(holding: HedgeHolding, now: datetime) -> bool:
    """True from the earliest leg's expiry close (16:00 New York on the expiry date) onwards."""
    close = datetime.combine(holding.expiry, EXPIRY_CLOSE, NEW_YORK)
    return now >= close


def _usable(snap: OptionSnapshot | None) -> bool:
    return (
        snap is not None
        and snap.bid.is_finite()
        and snap.ask.is_finite()
        and Decimal(0) <= snap.bid <= snap.ask
        and snap.ask > 0
    )


def _abs_delta(snap: OptionSnapshot | None) -> Decimal | None:
    if snap is None or snap.greeks is None or not math.isfinite(snap.greeks.delta):
        return None
    return abs(Decimal(repr(float(snap.greeks.delta))))


def check_roll(
    holding: HedgeHolding,
    now: datetime,
    quotes: Mapping[str, OptionSnapshot],
    settings: HedgingSettings,
) -> RollCheck:
    """All roll reasons that hold for ``holding`` at ``now`` (see the module docstring)."""
    dte = days_to_expiry(holding, now)
    held = days_held(holding, now)
    reasons: list[str] = []
    missing: list[str] = []
    if holding.template == "tail_first":
        tail = settings.templates.tail_first
        if dte < tail.critical_dte:
            reasons.append("critical_dte")
        elif dte < tail.roll_below_dte:
            reasons.append("dte_threshold")
        return RollCheck(tuple(reasons), (), dte, held)

    spread = settings.templates.smoothing
    long, short = holding.long_leg, holding.short_leg
    assert short is not None  # HedgeHolding guarantees a short leg on a smoothing hedge
    long_q, short_q = quotes.get(long.symbol), quotes.get(short.symbol)
    for leg, snap in ((long, long_q), (short, short_q)):
        if not _usable(snap):
            missing.append(f"quote {leg.symbol}")
    if long_q is not None and short_q is not None and _usable(long_q) and _usable(short_q):
        value = long_q.mid - short_q.mid
        width = abs(long.strike - short.strike)
        if value * _HUNDRED < spread.roll_value_below_pct_of_width * width:
            reasons.append("spread_value")
    long_delta, short_delta = _abs_delta(long_q), _abs_delta(short_q)
    if long_delta is None:
        missing.append(f"greeks {long.symbol}")
    elif long_delta > spread.roll_long_abs_delta_above:
        reasons.append("long_delta")
    if short_delta is None:
        missing.append(f"greeks {short.symbol}")
    elif short_delta > spread.roll_short_abs_delta_above:
        reasons.append("short_delta")
    if held >= spread.roll_every_days_held:
        reasons.append("cadence")
    return RollCheck(tuple(reasons), tuple(missing), dte, held)


def roll_reason(
    holding: HedgeHolding,
    now: datetime,
    quotes: Mapping[str, OptionSnapshot],
    settings: HedgingSettings,
) -> str | None:
    """The roll reason to report for ``holding`` (the first that holds), or None to keep it."""
    return check_roll(holding, now, quotes, settings).reason
