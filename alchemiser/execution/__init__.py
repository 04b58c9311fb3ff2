"""The order life cycle shared by hedging and income ("fill until done").

Strategies build an :class:`ExecutionPlan` and hand it to one
:class:`OrderExecutor`; see :mod:`alchemiser.execution.engine` for the rules.
"""

from __future__ import annotations

from alchemiser.execution.engine import (
    STRATEGIES,
    ExecutionPlan,
    ExecutionResult,
    OrderExecutor,
    PreTradeCheck,
    PreTradeRejected,
)
from alchemiser.store.orders import FillEvent, FillHandler, IntentStatus

__all__ = [
    "STRATEGIES",
    "ExecutionPlan",
    "ExecutionResult",
    "FillEvent",
    "FillHandler",
    "IntentStatus",
    "OrderExecutor",
    "PreTradeCheck",
    "PreTradeRejected",
]
