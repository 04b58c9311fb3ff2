"""The ``Broker`` protocol every strategy talks to, and the errors it raises.

Errors are sorted by what the caller should do: ``OrderRejected`` is final
(fix the order or give up), ``BrokerUnavailable`` is temporary (retry later),
``OrderOutcomeUnknown`` means a submit may or may not have reached the broker
and must be resolved with ``get_order_by_client_id``, never by sending again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from alchemiser.domain.options import OptionRight
from alchemiser.domain.trading import (
    Account,
    Activity,
    ActivityType,
    ContractInfo,
    OptionSnapshot,
    Order,
    OrderRequest,
    Position,
    StockQuote,
)


class BrokerError(Exception):
    """Base of every broker failure."""


class OrderRejected(BrokerError):
    """The broker refused the order and will refuse it again as it is (403, 422)."""

    def __init__(self, reason: str, client_order_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.client_order_id = client_order_id


class DuplicateClientOrderId(OrderRejected):
    """An order with this client order id exists already: look it up instead."""


class BrokerUnavailable(BrokerError):
    """A temporary failure (429, 5xx, timeout, connection): retry with backoff."""


class OrderOutcomeUnknown(BrokerError):
    """A submit whose result was lost; resolve it by client order id."""

    def __init__(self, client_order_id: str, cause: str) -> None:
        super().__init__(f"outcome of order {client_order_id} unknown: {cause}")
        self.client_order_id = client_order_id


class NotFound(BrokerError):
    """No such order, position or symbol."""


@runtime_checkable
class Broker(Protocol):
    """An account at a broker: what it holds, its orders, and the market data it serves."""

    async def get_account(self) -> Account: ...

    async def get_positions(self) -> list[Position]: ...

    async def get_option_contracts(
        self,
        underlying: str,
        expiry_from: date,
        expiry_to: date,
        right: OptionRight | None = None,
        strike_from: Decimal | None = None,
        strike_to: Decimal | None = None,
    ) -> list[ContractInfo]: ...

    async def get_option_chain(
        self, underlying: str, expiry_from: date | None = None, expiry_to: date | None = None
    ) -> list[OptionSnapshot]: ...

    async def get_option_quotes(self, symbols: Sequence[str]) -> dict[str, OptionSnapshot]: ...

    async def get_stock_quotes(self, symbols: Sequence[str]) -> dict[str, StockQuote]: ...

    async def submit_order(self, request: OrderRequest) -> Order: ...

    async def get_order(self, order_id: str) -> Order: ...

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    async def list_open_orders(self) -> list[Order]: ...

    async def cancel_order(self, order_id: str) -> None: ...

    async def close_position(self, symbol: str, qty: Decimal | None = None) -> Order: ...

    async def get_activities(
        self, since: datetime, types: Sequence[ActivityType] | None = None
    ) -> list[Activity]: ...

    async def is_market_open(self) -> bool: ...
