"""How limit orders are priced and chased: shared by hedge buys and income sells."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from alchemiser.settings.base import Section, fail_if, fmt


class OrderSettings(Section):
    """How a limit order is priced and chased (shared by hedge buys and income sells).

    The first limit is ``initial_improvement_pct`` of mid better than mid (a buy
    at mid x 0.98 by default; a sell at mid x 1.02). If unfilled after
    ``first_wait_seconds``, the limit moves ``reprice_step_pct`` of mid toward
    the far side every ``reprice_wait_seconds``, at most ``max_reprice_steps``
    times, and never more than ``max_slippage_pct`` of mid worse than mid. Only
    the unfilled quantity is re-priced. Time in force is always "day".
    """

    initial_improvement_pct: Decimal = Field(default=Decimal("2"), ge=0, le=50)
    poll_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    first_wait_seconds: int = Field(default=300, ge=1, le=3600)
    reprice_step_pct: Decimal = Field(default=Decimal("1"), gt=0, le=50)
    reprice_wait_seconds: int = Field(default=60, ge=1, le=3600)
    max_reprice_steps: int = Field(default=4, ge=0, le=50)
    max_slippage_pct: Decimal = Field(default=Decimal("2"), ge=0, le=50)

    @model_validator(mode="after")
    def _consistent(self) -> OrderSettings:
        problems = []
        if self.poll_interval_seconds > self.first_wait_seconds:
            problems.append(
                f"poll_interval_seconds ({fmt(self.poll_interval_seconds)}) must not be above "
                f"first_wait_seconds ({self.first_wait_seconds}): the order would never be polled"
            )
        fail_if(problems)
        return self
