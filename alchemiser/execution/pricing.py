"""Limit prices of the order life cycle: pure functions, no I/O.

Prices here are per unit (per share of one option, or per unit of a spread's
ratio) and in the *direction's terms*: for a debit what we pay, for a credit
what we receive, both positive. ``broker_limit`` turns such a price into what
the broker takes (a multi-leg credit is a negative net limit).

Step ``k`` of an order (0 = the first limit) is priced from the current net
mid ``m``::

    debit:  m × (1 − improvement + k × step)     never above  min(m, m0) × (1 + slippage)
    credit: m × (1 + improvement − k × step)     never below  max(m, m0) × (1 − slippage)

where ``m0`` is the intent's reference mid (the mid when it was first priced):
slippage is bounded against the arrival price *and* the market now, so a
market running away is not chased and a market coming our way is not paid
above. A step that reaches the bound is clamped to it and is the last step.
The result is rounded to a legal increment toward our side (a debit down, a
credit up): we never pay more, nor receive less, than computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Literal

from alchemiser.domain.options import OccSymbolError, parse_occ
from alchemiser.domain.ticks import option_tick
from alchemiser.domain.trading import OptionSnapshot, OrderLeg, Side

Direction = Literal["debit", "credit"]

MLEG_TICK = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal(0)


class NoValidQuote(Exception):
    """A leg has no quote we would trade on: nothing is sent (fail closed)."""

    def __init__(self, symbol: str, why: str) -> None:
        super().__init__(f"no valid quote for {symbol}: {why}")
        self.symbol = symbol
        self.why = why


class Unpriceable(Exception):
    """The quotes are valid but give no usable limit (wrong-signed net, rounds to zero)."""


@dataclass(frozen=True, slots=True)
class Touch:
    symbol: str
    bid: Decimal
    ask: Decimal

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class StepPrice:
    """The limit of one step: direction's terms, rounded; and whether it hit the bound."""

    price: Decimal
    mid: Decimal  # the net mid (direction's terms) it was computed from
    clamped: bool


def checked_touches(
    legs: Sequence[OrderLeg],
    quotes: Mapping[str, OptionSnapshot],
    now: datetime,
    max_age_seconds: float | None,
) -> list[Touch]:
    """Each leg's bid/ask, or NoValidQuote: missing, NaN, zero or negative bid or ask,
    crossed, or older than ``max_age_seconds``."""
    touches = []
    for leg in legs:
        snap = quotes.get(leg.symbol)
        if snap is None:
            raise NoValidQuote(leg.symbol, "no quote")
        bid, ask = snap.bid, snap.ask
        try:
            finite = isinstance(bid, Decimal) and isinstance(ask, Decimal)
            finite = finite and bid.is_finite() and ask.is_finite()
        except (AttributeError, InvalidOperation):
            finite = False
        if not finite:
            raise NoValidQuote(leg.symbol, f"bid {bid} / ask {ask} is not a number")
        if ask <= 0:
            raise NoValidQuote(leg.symbol, f"ask {ask} is not positive")
        if bid <= 0:
            # A zero bid makes the mid meaningless (half the ask): not a market to price from.
            raise NoValidQuote(leg.symbol, f"bid {bid} is not positive")
        if bid > ask:
            raise NoValidQuote(leg.symbol, f"crossed: bid {bid} > ask {ask}")
        if max_age_seconds is not None:
            age = (now - snap.timestamp).total_seconds()
            if age > max_age_seconds:
                raise NoValidQuote(
                    leg.symbol, f"stale: quoted {age:.0f} s ago (limit {max_age_seconds:g} s)"
                )
        touches.append(Touch(leg.symbol, bid, ask))
    return touches


def net_mid(legs: Sequence[OrderLeg], touches: Sequence[Touch]) -> Decimal:
    """Σ buy mids × ratio − Σ sell mids × ratio: positive is a debit."""
    total = ZERO
    for leg, touch in zip(legs, touches, strict=True):
        sign = 1 if leg.side is Side.BUY else -1
        total += sign * leg.ratio_qty * touch.mid
    return total


def direction_mid(direction: Direction, net: Decimal) -> Decimal:
    """The net mid in the direction's terms (positive when quotes agree with the direction)."""
    return net if direction == "debit" else -net


def step_target(
    direction: Direction,
    mid: Decimal,
    reference_mid: Decimal | None,
    step: int,
    *,
    improvement_pct: Decimal,
    step_pct: Decimal,
    max_slippage_pct: Decimal,
    price_limit: Decimal | None = None,
) -> tuple[Decimal, bool]:
    """The unrounded limit of ``step`` (direction's terms) and whether a bound clamped it.

    ``price_limit`` is the caller's hard bound (the most a debit may pay, the
    least a credit may take): the price the trade was sized at.
    """
    if mid <= 0:
        raise Unpriceable(f"the net mid {mid} is not a {direction}")
    ref = mid if reference_mid is None or reference_mid <= 0 else reference_mid
    move = Decimal(step) * step_pct / HUNDRED
    if direction == "debit":
        raw = mid * (1 - improvement_pct / HUNDRED + move)
        bound = min(mid, ref) * (1 + max_slippage_pct / HUNDRED)
        if price_limit is not None:
            bound = min(bound, price_limit)
        clamped = raw >= bound
        return (bound if clamped else raw), clamped
    raw = mid * (1 + improvement_pct / HUNDRED - move)
    bound = max(mid, ref) * (1 - max_slippage_pct / HUNDRED)
    if price_limit is not None:
        bound = max(bound, price_limit)
    clamped = raw <= bound
    return (bound if clamped else raw), clamped


def round_to_tick(
    direction: Direction, price: Decimal, tick_at: Callable[[Decimal], Decimal]
) -> Decimal:
    """``price`` on the tick grid: a debit rounded down, a credit up (never worse for us)."""
    rounding = ROUND_FLOOR if direction == "debit" else ROUND_CEILING
    tick = tick_at(price)
    result = (price / tick).to_integral_value(rounding=rounding) * tick
    # Crossing the $3 break can change the increment: settle on a price legal at its own tick.
    for _ in range(3):
        tick = tick_at(result)
        again = (result / tick).to_integral_value(rounding=rounding) * tick
        if again == result:
            break
        result = again
    return result


def tick_function(
    legs: Sequence[OrderLeg], penny_pilot: Callable[[str], bool]
) -> Callable[[Decimal], Decimal]:
    """The increment at a price: $0.01 for a multi-leg net, the option tick rule otherwise."""
    if len(legs) > 1:
        return lambda _price: MLEG_TICK
    underlying = underlying_of(legs[0].symbol)
    pilot = penny_pilot(underlying)
    return lambda price: option_tick(underlying, price, penny_pilot=pilot)


def underlying_of(symbol: str) -> str:
    try:
        return parse_occ(symbol).root
    except OccSymbolError:
        return symbol  # not an option: the tick rule then applies as for a non-penny class


def price_step(
    legs: Sequence[OrderLeg],
    direction: Direction,
    touches: Sequence[Touch],
    reference_mid: Decimal | None,
    step: int,
    *,
    improvement_pct: Decimal,
    step_pct: Decimal,
    max_slippage_pct: Decimal,
    penny_pilot: Callable[[str], bool],
    price_limit: Decimal | None = None,
) -> StepPrice:
    """The rounded limit of ``step`` from the legs' quotes (Unpriceable if there is none)."""
    mid = direction_mid(direction, net_mid(legs, touches))
    target, clamped = step_target(
        direction,
        mid,
        reference_mid,
        step,
        improvement_pct=improvement_pct,
        step_pct=step_pct,
        max_slippage_pct=max_slippage_pct,
        price_limit=price_limit,
    )
    price = round_to_tick(direction, target, tick_function(legs, penny_pilot))
    if price <= 0:
        raise Unpriceable(f"the limit {target:.4f} rounds to {price}: nothing to {direction}")
    return StepPrice(price=price, mid=mid, clamped=clamped)


def broker_limit(legs: Sequence[OrderLeg], direction: Direction, price: Decimal) -> Decimal:
    """The limit the broker takes: a single leg's positive price; a multi-leg signed net."""
    if len(legs) > 1 and direction == "credit":
        return -price
    return price


def from_broker_limit(legs: Sequence[OrderLeg], direction: Direction, limit: Decimal) -> Decimal:
    """Inverse of :func:`broker_limit`."""
    if len(legs) > 1 and direction == "credit":
        return -limit
    return limit
