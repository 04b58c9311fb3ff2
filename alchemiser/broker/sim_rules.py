"""Broker rules as pure functions over Decimal: ticks, options levels, Reg-T-like margin.

The simulated broker applies them before accepting an order and when it values
the account; the Alpaca adapter and the risk engine can reuse them to predict
what the broker will say (a rejected order costs a round trip and a retry).

Nothing here reads a clock, a database or a market: callers pass marks and
positions in.

Margin model (Reg-T-like; documented in the README):

- equity (NAV) = cash + Σ signed market values (short positions count negative);
- stock: initial requirement 50 % of |market value| (Reg T), maintenance 25 %
  of a long, 30 % of a short (FINRA 4210);
- options are valued by their *worst outcome*: the requirement of an option
  group is its market value minus its worst payoff at expiry, i.e. what could
  still be lost from here:

  * long option, unpaired: its market value (paid in full, no loan value);
  * covered call (100 shares per contract): 0 beyond the shares' own margin;
  * vertical/diagonal spread (level 3; long expires no earlier than short):
    (long mark − short mark + width) × 100, at least 0 — the max loss;
  * short put, unpaired: (strike − mark) × 100 — cash-secured: cash plus the
    premium received must cover the strike;
  * short call, unpaired (naked, which Alpaca does not allow and the sim
    rejects on entry): CBOE naked margin, (max(20 % × S − OTM, 10 % × S) + mark) × 100;

- excess equity = equity − initial requirement − what open orders reserve;
  buying power = 2 × excess (stock needs 50 % initial margin), options buying
  power = 1 × excess (options are paid in full). A 2.0x long stock book on
  $150k equity needs exactly $150k initial margin, so it fits with no excess.
- an order is accepted when the account after it (and after the open orders
  that reserve buying power) keeps excess ≥ 0, or when it does not lower the
  excess (risk-reducing orders stay possible during a margin deficit).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import IntEnum

from alchemiser.domain.options import OptionContract, OptionRight

__all__ = [
    "EXERCISE_THRESHOLD",
    "MLEG_TICK",
    "OPTION_MULTIPLIER",
    "STOCK_INITIAL_MARGIN",
    "STOCK_MAINTENANCE_LONG",
    "STOCK_MAINTENANCE_SHORT",
    "Holding",
    "LegChange",
    "MarginSummary",
    "OptionsLevel",
    "PositionUpdate",
    "RuleViolation",
    "apply_trade",
    "check_buying_power",
    "check_options_level",
    "check_price_increment",
    "contract_fee",
    "early_assignment_candidate",
    "expires_in_the_money",
    "intrinsic_value",
    "is_on_tick",
    "margin_summary",
    "required_options_level",
    "stock_tick",
]

ZERO = Decimal(0)
CENT = Decimal("0.01")
NICKEL = Decimal("0.05")
DIME = Decimal("0.10")
SUB_PENNY = Decimal("0.0001")

OPTION_MULTIPLIER = 100

# Complex (multi-leg) orders may be priced in $0.01 increments whatever the legs
# (Cboe Rule 5.4(b)/5.33): the net price is checked against this tick only.
MLEG_TICK = CENT

# Reg T initial margin and FINRA 4210 maintenance for equities.
STOCK_INITIAL_MARGIN = Decimal("0.50")
STOCK_MAINTENANCE_LONG = Decimal("0.25")
STOCK_MAINTENANCE_SHORT = Decimal("0.30")
# CBOE naked option margin: 20 % of the underlying less the OTM amount, at least 10 %.
NAKED_BASE = Decimal("0.20")
NAKED_MIN = Decimal("0.10")

# OCC exercise by exception: an expiring option in the money by at least $0.01 is
# exercised automatically (and the matching short assigned).
EXERCISE_THRESHOLD = CENT


class RuleViolation(ValueError):
    """An order breaks a broker rule; ``rule`` names it, the message gives the values."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message


# -- price increments -----------------------------------------------------------


def stock_tick(price: Decimal) -> Decimal:
    """Reg NMS Rule 612: whole cents at $1 and above, $0.0001 below $1."""
    return CENT if price >= 1 else SUB_PENNY


def is_on_tick(price: Decimal, tick: Decimal) -> bool:
    return price % tick == 0


def check_price_increment(price: Decimal, tick: Decimal, what: str) -> None:
    """Raise RuleViolation('price_increment') unless ``price`` is a multiple of ``tick``."""
    if not is_on_tick(price, tick):
        raise RuleViolation(
            "price_increment",
            f"limit price {price} of {what} is not a multiple of the ${tick} increment",
        )


# -- options approval levels ----------------------------------------------------


class OptionsLevel(IntEnum):
    """Alpaca's options approval levels."""

    DISABLED = 0
    COVERED = 1  # covered calls, cash-secured puts (and closing any option)
    LONG = 2  # + buying calls and puts
    SPREADS = 3  # + multi-leg spreads

    @property
    def label(self) -> str:
        return _LEVEL_LABELS[self]


_LEVEL_LABELS = {
    OptionsLevel.DISABLED: "options trading disabled",
    OptionsLevel.COVERED: "covered calls and cash-secured puts",
    OptionsLevel.LONG: "long calls and puts",
    OptionsLevel.SPREADS: "spreads",
}


@dataclass(frozen=True, slots=True)
class LegChange:
    """One option leg of an order against the position it changes."""

    symbol: str
    position_before: Decimal  # contracts, signed
    delta: Decimal  # contracts, signed (+ buy, − sell)


def required_options_level(legs: Sequence[LegChange], *, multi_leg: bool) -> OptionsLevel:
    """The lowest level allowed to place these option legs (closing needs level 1)."""
    if multi_leg:
        return OptionsLevel.SPREADS
    level = OptionsLevel.COVERED
    for leg in legs:
        if leg.delta > 0 and leg.position_before + leg.delta > max(leg.position_before, ZERO):
            level = max(level, OptionsLevel.LONG)  # buys to open a long option
    return level


def check_options_level(account_level: int, legs: Sequence[LegChange], *, multi_leg: bool) -> None:
    needed = required_options_level(legs, multi_leg=multi_leg)
    if account_level < needed:
        what = "multi-leg (spread) orders" if multi_leg else _describe(legs, needed)
        raise RuleViolation(
            "options_level",
            f"{what} need options level {int(needed)} ({needed.label}); "
            f"the account is approved for level {account_level}",
        )


def _describe(legs: Sequence[LegChange], needed: OptionsLevel) -> str:
    symbols = ", ".join(leg.symbol for leg in legs)
    if needed is OptionsLevel.LONG:
        return f"buying to open {symbols}"
    return f"trading options ({symbols})"


# -- positions and fills ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    qty: Decimal
    avg_entry_price: Decimal
    realized_pnl: Decimal  # in dollars, multiplier applied


def apply_trade(
    qty: Decimal, avg_price: Decimal, delta: Decimal, price: Decimal, multiplier: int = 1
) -> PositionUpdate:
    """A position after trading ``delta`` (signed) at ``price``: average cost and realised P&L.

    Adding to a position averages the entry price; reducing it realises
    (price − entry) per unit in the position's direction and keeps the entry;
    crossing through zero closes the old side and opens the rest at ``price``.
    """
    if delta == 0:
        return PositionUpdate(qty, avg_price, ZERO)
    new_qty = qty + delta
    if qty == 0 or (qty > 0) == (delta > 0):
        avg = (abs(qty) * avg_price + abs(delta) * price) / abs(new_qty)
        return PositionUpdate(new_qty, avg, ZERO)
    closed = min(abs(qty), abs(delta))
    direction = 1 if qty > 0 else -1
    realized = (price - avg_price) * closed * direction * multiplier
    if new_qty == 0:
        return PositionUpdate(ZERO, ZERO, realized)
    if (new_qty > 0) == (qty > 0):
        return PositionUpdate(new_qty, avg_price, realized)
    return PositionUpdate(new_qty, price, realized)  # flipped side: the rest opens at price


def contract_fee(fee_per_contract: Decimal, contracts: Decimal) -> Decimal:
    return fee_per_contract * abs(contracts)


# -- expiry and assignment -------------------------------------------------------


def intrinsic_value(right: OptionRight, strike: Decimal, spot: Decimal) -> Decimal:
    return max(spot - strike, ZERO) if right is OptionRight.CALL else max(strike - spot, ZERO)


def expires_in_the_money(right: OptionRight, strike: Decimal, close: Decimal) -> bool:
    """Exercise by exception: in the money by at least $0.01 at the closing price."""
    return intrinsic_value(right, strike, close) >= EXERCISE_THRESHOLD


def early_assignment_candidate(
    right: OptionRight,
    strike: Decimal,
    spot: Decimal,
    option_value: Decimal,
    max_time_value: Decimal,
) -> bool:
    """A short option a holder would rationally exercise early: ITM with little time value left."""
    intrinsic = intrinsic_value(right, strike, spot)
    return intrinsic > 0 and option_value - intrinsic <= max_time_value


# -- margin ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holding:
    """A position as margin sees it: signed quantity and a mark per share or per option."""

    symbol: str
    qty: Decimal
    mark: Decimal
    contract: OptionContract | None = None

    @property
    def multiplier(self) -> int:
        return OPTION_MULTIPLIER if self.contract is not None else 1

    @property
    def underlying(self) -> str:
        return self.contract.root if self.contract is not None else self.symbol

    @property
    def market_value(self) -> Decimal:
        return self.qty * self.mark * self.multiplier


@dataclass(frozen=True, slots=True)
class MarginSummary:
    equity: Decimal
    cash: Decimal
    long_market_value: Decimal
    short_market_value: Decimal  # negative or zero
    initial_requirement: Decimal
    maintenance_requirement: Decimal
    uncovered_calls: Decimal  # naked short call contracts

    @property
    def excess(self) -> Decimal:
        """Equity above the initial requirement: what new positions can use."""
        return self.equity - self.initial_requirement

    def buying_power(self, reserved: Decimal = ZERO) -> Decimal:
        """Stock buying power: excess over the 50 % initial margin."""
        return max(self.excess - reserved, ZERO) / STOCK_INITIAL_MARGIN

    def options_buying_power(self, reserved: Decimal = ZERO) -> Decimal:
        """Options are paid in full: the excess itself."""
        return max(self.excess - reserved, ZERO)


def margin_summary(
    cash: Decimal,
    holdings: Iterable[Holding],
    *,
    spreads_allowed: bool,
    underlying_prices: Mapping[str, Decimal] | None = None,
) -> MarginSummary:
    """Equity and Reg-T-like requirements of an account (see the module docstring)."""
    items = [h for h in holdings if h.qty != 0]
    prices = dict(underlying_prices or {})
    long_mv = sum((h.market_value for h in items if h.qty > 0), ZERO)
    short_mv = sum((h.market_value for h in items if h.qty < 0), ZERO)
    initial = ZERO
    maintenance = ZERO
    shares: dict[str, Decimal] = defaultdict(lambda: ZERO)
    options: dict[str, list[Holding]] = defaultdict(list)
    for h in items:
        if h.contract is None:
            mv = abs(h.market_value)
            initial += mv * STOCK_INITIAL_MARGIN
            maintenance += mv * (STOCK_MAINTENANCE_LONG if h.qty > 0 else STOCK_MAINTENANCE_SHORT)
            shares[h.symbol] += h.qty
            prices.setdefault(h.symbol, h.mark)
        else:
            options[h.underlying].append(h)
    uncovered = ZERO
    for underlying, group in options.items():
        req, naked = _option_requirement(
            group, shares[underlying], prices.get(underlying), spreads_allowed
        )
        initial += req
        maintenance += req
        uncovered += naked
    return MarginSummary(
        equity=cash + long_mv + short_mv,
        cash=cash,
        long_market_value=long_mv,
        short_market_value=short_mv,
        initial_requirement=initial,
        maintenance_requirement=maintenance,
        uncovered_calls=uncovered,
    )


@dataclass(slots=True)
class _Long:
    holding: Holding
    available: Decimal  # contracts not yet paired with a short


def _option_requirement(
    group: list[Holding], shares: Decimal, spot: Decimal | None, spreads_allowed: bool
) -> tuple[Decimal, Decimal]:
    """Requirement of one underlying's options, and how many short calls are naked."""
    mult = OPTION_MULTIPLIER
    longs = [_Long(h, h.qty) for h in group if h.qty > 0]
    shorts = sorted(
        (h for h in group if h.qty < 0 and h.contract is not None),
        key=lambda h: (h.contract.expiry, h.contract.strike),  # type: ignore[union-attr]
    )
    # Long options are paid in full; pairing below swaps that for the pair's max loss.
    requirement = sum((lg.holding.market_value for lg in longs), ZERO)
    cover = (max(shares, ZERO) / mult).to_integral_value(rounding=ROUND_FLOOR)
    naked_calls = ZERO
    for short in shorts:
        contract = short.contract
        assert contract is not None
        remaining = -short.qty
        if contract.right is OptionRight.CALL and cover > 0:
            covered = min(remaining, cover)
            cover -= covered
            remaining -= covered
        while remaining > 0 and spreads_allowed:
            pick = _best_long(contract, longs)
            if pick is None:
                break
            units = min(remaining, pick.available)
            pick.available -= units
            remaining -= units
            long_c = pick.holding.contract
            assert long_c is not None
            width = (
                max(contract.strike - long_c.strike, ZERO)
                if contract.right is OptionRight.PUT
                else max(long_c.strike - contract.strike, ZERO)
            )
            # Max loss of the pair from here: its value minus its worst payoff (−width).
            pair = max(pick.holding.mark - short.mark + width, ZERO) * units * mult
            requirement += pair - pick.holding.mark * units * mult
        if remaining <= 0:
            continue
        if contract.right is OptionRight.PUT:
            # Cash-secured: the stock could be put to us at the strike and be worth nothing.
            requirement += (contract.strike - short.mark) * remaining * mult
        else:
            naked_calls += remaining
            s = spot if spot is not None else contract.strike
            otm = max(contract.strike - s, ZERO)
            base = max(NAKED_BASE * s - otm, NAKED_MIN * s)
            requirement += (base + short.mark) * remaining * mult
    return requirement, naked_calls


def _best_long(short: OptionContract, longs: Iterable[_Long]) -> _Long | None:
    """The long of the same right and no earlier expiry that protects the short best."""
    best: _Long | None = None
    best_key: Decimal | None = None
    for entry in longs:
        c = entry.holding.contract
        if entry.available <= 0 or c is None:
            continue
        if c.right is not short.right or c.expiry < short.expiry:
            continue
        # Calls: the lowest long strike protects best; puts: the highest.
        key = c.strike if short.right is OptionRight.CALL else -c.strike
        if best_key is None or key < best_key:
            best, best_key = entry, key
    return best


def check_buying_power(
    before: MarginSummary, after: MarginSummary, reserved: Decimal = ZERO
) -> None:
    """Reject an order that would leave excess equity (net of open orders) below zero.

    ``before`` and ``after`` value the account without and with the order;
    ``reserved`` is the excess already promised to open orders. An order that
    does not lower the excess is always allowed.
    """
    need = before.excess - after.excess
    if need <= 0:
        return
    available = before.excess - reserved
    if after.excess - reserved < 0:
        raise RuleViolation(
            "buying_power",
            f"insufficient buying power (Reg-T initial margin): the order needs "
            f"${_money(need)} of excess equity, ${_money(max(available, ZERO))} is available "
            f"(equity ${_money(before.equity)}, initial requirement "
            f"${_money(before.initial_requirement)}, reserved by open orders ${_money(reserved)}; "
            f"stock buying power ${_money(before.buying_power(reserved))})",
        )


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT)
