"""Builders for the hedging tests: settings, positions, option quotes priced by our kernel."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from alchemiser.clock import NEW_YORK
from alchemiser.domain.options import OptionContract, OptionRight
from alchemiser.domain.pricing import bsm_greeks
from alchemiser.domain.trading import AssetClass, Greeks, OptionSnapshot, Position
from alchemiser.hedging.payoff import years_to_expiry
from alchemiser.settings.hedging import HedgingSettings

SHIPPED_REFERENCE = Path(__file__).resolve().parents[2] / "config" / "reference_data.toml"
NOW = datetime(2026, 3, 2, 15, 30, tzinfo=NEW_YORK)  # a Monday, evaluation time
TODAY = NOW.date()
RATE = 0.04


def settings(**updates: Any) -> HedgingSettings:
    """Default settings with nested overrides, validated like a config file.

    ``settings(caps={"monthly_pct": "3"})`` merges into the defaults.
    """
    data = HedgingSettings().model_dump()
    for key, value in updates.items():
        _merge(data, key, value)
    return HedgingSettings.model_validate(data)


def _merge(data: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict) and isinstance(data.get(key), dict):
        for k, v in value.items():
            _merge(data[key], k, v)
    else:
        data[key] = value


def stock(symbol: str, market_value: str | Decimal, price: str = "100") -> Position:
    """An equity position worth ``market_value`` (negative: short)."""
    mv = Decimal(market_value)
    px = Decimal(price)
    return Position(
        symbol=symbol,
        asset_class=AssetClass.EQUITY,
        qty=mv / px,
        avg_entry_price=px,
        current_price=px,
        market_value=mv,
        cost_basis=mv,
    )


def option_position(symbol: str, contracts: int, price: str = "5") -> Position:
    px = Decimal(price)
    return Position(
        symbol=symbol,
        asset_class=AssetClass.OPTION,
        qty=Decimal(contracts),
        avg_entry_price=px,
        current_price=px,
        market_value=px * 100 * contracts,
        cost_basis=px * 100 * contracts,
        multiplier=100,
    )


def put(
    strike: str | Decimal,
    dte: int,
    *,
    root: str = "QQQ",
    spot: float = 500.0,
    vol: float = 0.20,
    half_spread: str | None = "0.02",
    bid: str | None = None,
    ask: str | None = None,
    open_interest: int | None = 5000,
    volume: int | None = 500,
    greeks: bool = True,
    iv: bool = True,
    timestamp: datetime = NOW,
    right: OptionRight = OptionRight.PUT,
    now: datetime = NOW,
) -> OptionSnapshot:
    """A quote of one option: mid at the model price (rounded to the cent), greeks from the model."""
    contract = OptionContract(root, TODAY + timedelta(days=dte), right, Decimal(strike))
    years = years_to_expiry(contract.expiry, now)
    g = bsm_greeks(spot, float(contract.strike), years, RATE, 0.0, vol, right.is_call)
    mid = Decimal(repr(float(g.price))).quantize(Decimal("0.01"))
    if bid is None or ask is None:
        hs = Decimal(half_spread or "0")
        bid_d, ask_d = mid - hs, mid + hs
    else:
        bid_d, ask_d = Decimal(bid), Decimal(ask)
    return OptionSnapshot(
        contract=contract,
        bid=bid_d,
        ask=ask_d,
        bid_size=10,
        ask_size=10,
        timestamp=timestamp,
        implied_volatility=vol if iv else None,
        greeks=Greeks(
            delta=float(g.delta),
            gamma=float(g.gamma),
            theta=float(g.theta),
            vega=float(g.vega),
            rho=float(g.rho),
        )
        if greeks
        else None,
        open_interest=open_interest,
        volume=volume,
        underlying_price=Decimal(repr(spot)),
    )


def chain(
    dtes: tuple[int, ...] = (60, 78, 92, 106, 120, 150),
    *,
    spot: float = 500.0,
    vol: float = 0.20,
    step: int = 5,
    **kwargs: Any,
) -> list[OptionSnapshot]:
    """Puts from 75 % to 95 % of spot every ``step`` dollars, for each DTE."""
    low, high = int(spot * 0.75), int(spot * 0.95)
    return [
        put(str(k), d, spot=spot, vol=vol, **kwargs)
        for d in dtes
        for k in range(low - low % step + step, high + 1, step)
    ]


def ny(d: date, hour: int = 15, minute: int = 30) -> datetime:
    return datetime.combine(d, time(hour, minute), NEW_YORK)
