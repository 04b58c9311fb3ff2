"""Our domain objects as the JSON bodies Alpaca's REST API sends (what alpaca-py parses).

The shapes follow Alpaca's trading API (``/v2``: money and quantities as
strings) and market-data API (``/v2/stocks``, ``/v1beta1/options``: numbers,
with the one-letter keys of quotes and trades). Ids Alpaca makes up (asset
ids, the account's uuid, leg order ids) are uuid5s of what they name, so the
same object always gets the same id. Pure functions: no clock, no I/O.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from alchemiser.clock import NEW_YORK
from alchemiser.domain.options import OccSymbolError, OptionContract, OptionRight, parse_occ
from alchemiser.domain.trading import (
    Account,
    Activity,
    ActivityType,
    AssetClass,
    ContractInfo,
    OptionSnapshot,
    Order,
    OrderClass,
    OrderLeg,
    OrderStatus,
    Position,
    StockQuote,
)

__all__ = [
    "account_json",
    "activity_json",
    "asset_id",
    "clock_json",
    "contract_json",
    "error_json",
    "latest_trade_json",
    "option_quote_json",
    "option_snapshot_json",
    "order_json",
    "position_json",
    "quote_json",
    "stock_snapshot_json",
]

# Namespace of the ids we derive (assets, accounts, leg orders).
_NAMESPACE = uuid.UUID("0b6c7a0e-3c52-4f6e-8a8f-7d1c2b9e4a31")
# Exchange codes of the data API: "V" IEX for stocks, "C" Cboe for options.
STOCK_EXCHANGE = "V"
OPTION_EXCHANGE = "C"
ETF_LISTINGS = frozenset({"SPY", "IWM", "DIA", "GLD", "TLT", "XLF", "XLE", "XLK"})


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "\x00".join(parts)))


def asset_id(symbol: str) -> str:
    """The stable asset id of a ticker or OCC symbol."""
    return _uuid("asset", symbol)


def account_uuid(account_id: str) -> str:
    return _uuid("account", account_id)


def _money(value: Decimal | None) -> str | None:
    """A Decimal as Alpaca writes money: plain digits, no exponent, no trailing zeros."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _num(value: Decimal) -> float:
    return float(value)


def _ts(at: datetime) -> str:
    """RFC 3339 in UTC with a Z, as Alpaca's trading API writes times."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _is_option(symbol: str) -> bool:
    return _contract(symbol) is not None


def _contract(symbol: str) -> OptionContract | None:
    if len(symbol) <= 6:
        return None
    try:
        return parse_occ(symbol)
    except OccSymbolError:
        return None


def error_json(code: int, message: str) -> dict[str, Any]:
    """Alpaca's error body."""
    return {"code": code, "message": message}


# -- trading API -----------------------------------------------------------------


def account_json(account: Account, *, created_at: datetime) -> dict[str, Any]:
    return {
        "id": account_uuid(account.account_id),
        "account_number": account.account_id,
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": "USD",
        "buying_power": _money(account.buying_power),
        "regt_buying_power": _money(account.buying_power),
        "non_marginable_buying_power": _money(account.options_buying_power),
        "options_buying_power": _money(account.options_buying_power),
        "cash": _money(account.cash),
        "accrued_fees": "0",
        "portfolio_value": _money(account.equity),
        "equity": _money(account.equity),
        "last_equity": _money(account.equity),
        "long_market_value": _money(account.long_market_value),
        "short_market_value": _money(account.short_market_value),
        "maintenance_margin": _money(account.maintenance_margin),
        "last_maintenance_margin": _money(account.maintenance_margin),
        "sma": "0",
        "multiplier": "2",
        "shorting_enabled": True,
        "pattern_day_trader": False,
        "trading_blocked": account.trading_blocked,
        "transfers_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "created_at": _ts(created_at),
        "options_approved_level": account.options_approved_level,
        "options_trading_level": account.options_approved_level,
    }


def position_json(position: Position) -> dict[str, Any]:
    option = position.asset_class is AssetClass.OPTION
    symbol = position.symbol
    unrealized = position.market_value - position.cost_basis
    return {
        "asset_id": asset_id(symbol),
        "symbol": symbol,
        "exchange": "" if option else _exchange(symbol),
        "asset_class": position.asset_class.value,
        "asset_marginable": not option,
        "avg_entry_price": _money(position.avg_entry_price),
        "qty": _money(position.qty),
        "qty_available": _money(position.qty),
        "side": "long" if position.qty > 0 else "short",
        "market_value": _money(position.market_value),
        "cost_basis": _money(position.cost_basis),
        "unrealized_pl": _money(unrealized),
        "unrealized_plpc": _money(
            unrealized / abs(position.cost_basis) if position.cost_basis else Decimal(0)
        ),
        "unrealized_intraday_pl": _money(unrealized),
        "unrealized_intraday_plpc": "0",
        "current_price": _money(position.current_price),
        "lastday_price": _money(position.current_price),
        "change_today": "0",
    }


def _exchange(symbol: str) -> str:
    return "ARCA" if symbol in ETF_LISTINGS else "NASDAQ"


def _order_times(order: Order) -> dict[str, str | None]:
    final_at = _ts(order.updated_at)
    return {
        "created_at": _ts(order.submitted_at),
        "updated_at": _ts(order.updated_at),
        "submitted_at": _ts(order.submitted_at),
        "filled_at": final_at if order.status is OrderStatus.FILLED else None,
        "expired_at": final_at if order.status is OrderStatus.EXPIRED else None,
        "canceled_at": final_at if order.status is OrderStatus.CANCELED else None,
        "failed_at": final_at if order.status is OrderStatus.REJECTED else None,
    }


def _leg_json(order: Order, index: int, leg: OrderLeg) -> dict[str, Any]:
    ratio = Decimal(leg.ratio_qty)
    leg_id = _uuid("leg", order.id, str(index))
    return {
        "id": leg_id,
        "client_order_id": leg_id,
        **_order_times(order),
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": asset_id(leg.symbol),
        "symbol": leg.symbol,
        "asset_class": AssetClass.OPTION.value,
        "notional": None,
        "qty": _money(order.qty * ratio),
        "filled_qty": _money(order.filled_qty * ratio),
        "filled_avg_price": None,
        "order_class": OrderClass.MLEG.value,
        "order_type": "",
        "type": "",
        "side": leg.side.value,
        "position_intent": leg.position_intent.value if leg.position_intent else None,
        "time_in_force": "day",
        "limit_price": None,
        "stop_price": None,
        "status": order.status.value,
        "extended_hours": False,
        "legs": None,
        "ratio_qty": str(leg.ratio_qty),
    }


def order_json(order: Order, *, expires_at: datetime | None = None) -> dict[str, Any]:
    """An order as ``/v2/orders`` returns it; a multi-leg order carries its legs nested."""
    mleg = order.order_class is OrderClass.MLEG
    symbol = None if mleg else order.symbol
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        **_order_times(order),
        "expires_at": _ts(expires_at) if expires_at else None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        # Alpaca leaves these empty at the top of a multi-leg order.
        "asset_id": asset_id(symbol) if symbol else "",
        "symbol": symbol or "",
        "asset_class": (
            ""
            if symbol is None
            else (AssetClass.OPTION if _is_option(symbol) else AssetClass.EQUITY).value
        ),
        "notional": None,
        "qty": _money(order.qty),
        "filled_qty": _money(order.filled_qty),
        "filled_avg_price": _money(order.filled_avg_price),
        "order_class": order.order_class.value,
        "order_type": order.type.value,
        "type": order.type.value,
        "side": "" if mleg or order.side is None else order.side.value,
        "position_intent": None,
        "time_in_force": "day",
        "limit_price": _money(order.limit_price),
        "stop_price": None,
        "status": order.status.value,
        "extended_hours": False,
        "legs": [_leg_json(order, n, leg) for n, leg in enumerate(order.legs)] if mleg else None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "ratio_qty": None,
    }


def _contract_name(contract: OptionContract) -> str:
    right = "Call" if contract.right is OptionRight.CALL else "Put"
    return f"{contract.root} {contract.expiry:%b %d %Y} {_money(contract.strike)} {right}"


def contract_json(info: ContractInfo, *, on: date) -> dict[str, Any]:
    """A ``/v2/options/contracts`` item; ``on`` dates the open interest and close price."""
    c = info.contract
    return {
        "id": asset_id(info.symbol),
        "symbol": info.symbol,
        "name": _contract_name(c),
        "status": "active",
        "tradable": info.tradable,
        "expiration_date": c.expiry.isoformat(),
        "root_symbol": c.root,
        "underlying_symbol": info.underlying,
        "underlying_asset_id": asset_id(info.underlying),
        "type": "call" if c.right is OptionRight.CALL else "put",
        "style": info.extra.get("style", "american"),
        "strike_price": _money(c.strike),
        "multiplier": str(info.multiplier),
        "size": str(info.multiplier),
        "open_interest": None if info.open_interest is None else str(info.open_interest),
        "open_interest_date": on.isoformat() if info.open_interest is not None else None,
        "close_price": _money(info.close_price),
        "close_price_date": on.isoformat() if info.close_price is not None else None,
        "deliverables": [
            {
                "type": "equity",
                "symbol": info.underlying,
                "asset_id": asset_id(info.underlying),
                "amount": str(info.multiplier),
                "allocation_percentage": "100",
                "settlement_type": "T+1",
                "settlement_method": "CCC",
                "delayed_settlement": False,
            }
        ],
    }


def activity_json(activity: Activity, *, account_id: str) -> dict[str, Any]:
    """An account activity: a fill as a trade activity, anything else as a non-trade one.

    A fill's ``qty`` is unsigned with a ``side`` (as Alpaca); the option events
    keep the signed change of the position. Both carry a full timestamp.
    """
    base: dict[str, Any] = {
        "id": activity.id,
        "account_id": account_uuid(account_id),
        "activity_type": activity.activity_type.value,
    }
    if activity.activity_type is ActivityType.FILL:
        qty = abs(activity.qty)
        return {
            **base,
            "transaction_time": _ts(activity.occurred_at),
            "type": "fill",
            "price": _money(activity.price or Decimal(0)),
            "qty": _money(qty),
            "side": (
                activity.side.value if activity.side else ("buy" if activity.qty > 0 else "sell")
            ),
            "symbol": activity.symbol,
            "leaves_qty": "0",
            "order_id": activity.order_id,
            "cum_qty": _money(qty),
            "order_status": "filled",
        }
    descriptions = {
        ActivityType.OPASN: "Option Assignment",
        ActivityType.OPEXC: "Option Exercise",
        ActivityType.OPEXP: "Option Expiry",
        ActivityType.OPTRD: "Option Trade",
        ActivityType.FEE: "Regulatory and exchange fees",
    }
    body = {
        **base,
        "date": activity.occurred_at.astimezone(NEW_YORK).date().isoformat(),
        "created_at": _ts(activity.occurred_at),
        "net_amount": _money(activity.net_amount or Decimal(0)),
        "description": descriptions.get(activity.activity_type, activity.activity_type.value),
        "status": "executed",
        "symbol": activity.symbol,
        "qty": _money(activity.qty),
        "price": _money(activity.price),
    }
    if activity.order_id is not None:
        body["order_id"] = activity.order_id
    return body


def clock_json(
    now: datetime, *, is_open: bool, next_open: datetime, next_close: datetime
) -> dict[str, Any]:
    """``/v2/clock``: times in New York with their offset, as Alpaca writes them."""
    return {
        "timestamp": now.astimezone(NEW_YORK).isoformat(),
        "is_open": is_open,
        "next_open": next_open.astimezone(NEW_YORK).isoformat(),
        "next_close": next_close.astimezone(NEW_YORK).isoformat(),
    }


# -- market data API ---------------------------------------------------------------


def quote_json(
    bid: Decimal, ask: Decimal, bid_size: int, ask_size: int, at: datetime, exchange: str
) -> dict[str, Any]:
    return {
        "t": _ts(at),
        "bx": exchange,
        "bp": _num(bid),
        "bs": bid_size,
        "ax": exchange,
        "ap": _num(ask),
        "as": ask_size,
        "c": ["R"],
    }


def option_quote_json(snap: OptionSnapshot) -> dict[str, Any]:
    return quote_json(
        snap.bid, snap.ask, snap.bid_size, snap.ask_size, snap.timestamp, OPTION_EXCHANGE
    )


def option_snapshot_json(snap: OptionSnapshot) -> dict[str, Any]:
    """An option snapshot (chain or by symbol): latest quote, IV and greeks."""
    body: dict[str, Any] = {"latestQuote": option_quote_json(snap)}
    if snap.last is not None:
        body["latestTrade"] = {
            "t": _ts(snap.timestamp),
            "x": OPTION_EXCHANGE,
            "p": _num(snap.last),
            "s": 1,
            "c": "I",
        }
    if snap.volume is not None:
        # The day's bar so far: what Alpaca's snapshot carries as dailyBar (volume "v").
        mid = (snap.bid + snap.ask) / 2
        body["dailyBar"] = {
            "t": _ts(snap.timestamp),
            "o": _num(mid),
            "h": _num(mid),
            "l": _num(mid),
            "c": _num(mid),
            "v": snap.volume,
            "n": snap.volume,
            "vw": _num(mid),
        }
    if snap.implied_volatility is not None:
        body["impliedVolatility"] = snap.implied_volatility
    if snap.greeks is not None:
        g = snap.greeks
        body["greeks"] = {
            "delta": g.delta,
            "gamma": g.gamma,
            "rho": g.rho,
            "theta": g.theta,
            "vega": g.vega,
        }
    return body


def latest_trade_json(quote: StockQuote, trade_id: int) -> dict[str, Any]:
    return {
        "t": _ts(quote.timestamp),
        "x": STOCK_EXCHANGE,
        "p": _num(quote.last),
        "s": 100,
        "c": ["@"],
        "i": trade_id,
        "z": "C",
    }


def stock_snapshot_json(quote: StockQuote, trade_id: int) -> dict[str, Any]:
    """A stock snapshot: latest trade and quote (bars are left out)."""
    return {
        "latestTrade": latest_trade_json(quote, trade_id),
        "latestQuote": {
            **quote_json(
                quote.bid,
                quote.ask,
                quote.bid_size,
                quote.ask_size,
                quote.timestamp,
                STOCK_EXCHANGE,
            ),
            "z": "C",
        },
    }
