"""How an income order's fills are booked: one factory, used by the trader and reconciliation.

Everything a fill needs is on the intent (``related_ids``), so a fill that
landed while the daemon was down is booked by reconciliation exactly as the
trader would have booked it, with the same fill reference (booked once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from alchemiser.domain.options import parse_occ
from alchemiser.domain.trading import OrderLeg
from alchemiser.store.income import IncomeStore, NewIncomePosition
from alchemiser.store.orders import FillEvent, FillHandler, IntentRecord

OPEN_PURPOSES = frozenset({"open", "roll_open"})
CLOSE_PURPOSES = frozenset({"close", "roll_close"})


def fill_ref(fill: FillEvent) -> str:
    return f"{fill.client_order_id}@{fill.intent.filled_qty}"


def _decimal(text: str | None) -> Decimal | None:
    return None if not text else Decimal(text)


class IntentLike(Protocol):
    """What the handler reads: an intent record, or the execution plan it is made from."""

    @property
    def intent_key(self) -> str: ...
    @property
    def purpose(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def legs(self) -> tuple[OrderLeg, ...]: ...
    @property
    def related_ids(self) -> Mapping[str, Any]: ...


def new_position(intent: IntentLike) -> NewIncomePosition:
    """The position an opening income intent creates (built from the intent alone)."""
    ids = intent.related_ids
    contract = parse_occ(intent.legs[0].symbol)
    candidate = ids.get("candidate_id")
    return NewIncomePosition(
        id=str(ids["position_id"]),
        kind=str(
            ids.get("kind") or ("covered_call" if contract.right.is_call else "cash_secured_put")
        ),
        underlying=contract.root,
        symbol=intent.legs[0].symbol,
        strike=contract.strike,
        expiry=contract.expiry,
        open_intent_key=intent.intent_key,
        entry_iv=_decimal(ids.get("entry_iv")),
        wheel_id=ids.get("wheel_id") or None,
        rolled_from=ids.get("rolled_from") or None,
        candidate_id=int(candidate) if candidate else None,
    )


def income_fill_handler(store: IncomeStore, intent: IntentLike) -> FillHandler | None:
    """The handler that books ``intent``'s fills on the income position (None: not ours)."""
    ids = intent.related_ids
    if not ids.get("position_id"):
        return None
    if intent.purpose in OPEN_PURPOSES and intent.direction == "credit":
        new = new_position(intent)

        async def on_open(session: AsyncSession, fill: FillEvent) -> None:
            await store.add_opening_fill(session, new, fill.delta_qty, -fill.cost, fill_ref(fill))

        return on_open
    if intent.purpose in CLOSE_PURPOSES and intent.direction == "debit":
        position_id = str(ids["position_id"])
        reason = str(ids.get("reason") or "closed")

        async def on_close(session: AsyncSession, fill: FillEvent) -> None:
            await store.add_closing_fill(
                session, position_id, fill.delta_qty, fill.cost, reason, fill_ref(fill)
            )

        return on_close
    return None


def income_fill_handlers(
    store: IncomeStore,
) -> dict[str, Callable[[IntentRecord], FillHandler | None]]:
    """``{"income": factory}`` for the reconciler's fill handler map."""
    return {"income": lambda intent: income_fill_handler(store, intent)}
