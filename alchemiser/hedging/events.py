"""The hedging events, with the field names of seed 000 exactly.

Money and ratios are serialised as strings (Decimal text), counts as integers.
Events go on the durable queue and into the audit history; a field added here
beyond the seed's (for example the selected option symbol) is an addition,
never a rename.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

HEDGE_EVALUATION_COMPLETED = "HedgeEvaluationCompleted"
HEDGE_EXECUTED = "HedgeExecuted"
ALL_HEDGES_COMPLETED = "AllHedgesCompleted"
HEDGE_ROLL_TRIGGERED = "HedgeRollTriggered"
REBALANCE_PLANNED = "RebalancePlanned"


def money(value: Decimal) -> str:
    """Cents, as text: '750.00'."""
    return str(value.quantize(Decimal("0.01")))


def ratio(value: Decimal) -> str:
    """A ratio as plain decimal text without exponent: '0.005'."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


@dataclass(frozen=True)
class Recommendation:
    underlying_symbol: str
    target_delta: Decimal
    target_dte: int
    premium_budget: Decimal
    contracts_estimated: int
    hedge_template: str
    # Additions to the seed's fields: what the evaluator selected, so the executor
    # buys exactly what was decided (re-selecting later could pick something else).
    option_symbol: str | None = None
    short_option_symbol: str | None = None
    estimated_premium: Decimal | None = None
    # The most one unit may cost (per share): the price the decision was sized at.
    max_limit_price: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "underlying_symbol": self.underlying_symbol,
            "target_delta": ratio(self.target_delta),
            "target_dte": self.target_dte,
            "premium_budget": money(self.premium_budget),
            "contracts_estimated": self.contracts_estimated,
            "hedge_template": self.hedge_template,
        }
        if self.option_symbol is not None:
            data["option_symbol"] = self.option_symbol
        if self.short_option_symbol is not None:
            data["short_option_symbol"] = self.short_option_symbol
        if self.estimated_premium is not None:
            data["estimated_premium"] = money(self.estimated_premium)
        if self.max_limit_price is not None:
            data["max_limit_price"] = money(self.max_limit_price)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recommendation:
        def opt_money(key: str) -> Decimal | None:
            raw = data.get(key)
            return Decimal(raw) if raw is not None else None

        return cls(
            underlying_symbol=str(data["underlying_symbol"]),
            target_delta=Decimal(data["target_delta"]),
            target_dte=int(data["target_dte"]),
            premium_budget=Decimal(data["premium_budget"]),
            contracts_estimated=int(data["contracts_estimated"]),
            hedge_template=str(data["hedge_template"]),
            option_symbol=data.get("option_symbol"),
            short_option_symbol=data.get("short_option_symbol"),
            estimated_premium=opt_money("estimated_premium"),
            max_limit_price=opt_money("max_limit_price"),
        )


def hedge_evaluation_completed(
    *,
    correlation_id: str,
    plan_id: str | None,
    portfolio_nav: Decimal,
    recommendations: Sequence[Recommendation],
    vix_tier: str | None,
    exposure_multiplier: Decimal,
    skip_reason: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    total = sum((r.premium_budget for r in recommendations), Decimal(0))
    event: dict[str, Any] = {
        "event_type": HEDGE_EVALUATION_COMPLETED,
        "correlation_id": correlation_id,
        "plan_id": plan_id,
        "portfolio_nav": money(portfolio_nav),
        "recommendations": [r.to_json() for r in recommendations],
        "total_premium_budget": money(total),
        "budget_nav_pct": ratio(total / portfolio_nav) if portfolio_nav > 0 else "0",
        "vix_tier": vix_tier,
        "exposure_multiplier": ratio(exposure_multiplier),
        "skip_reason": skip_reason,
    }
    if extra:
        event.update({k: v for k, v in extra.items() if k not in event})
    return event


def hedge_executed(
    *,
    correlation_id: str,
    hedge_id: str | None,
    plan_id: str | None,
    order_id: str | None,
    option_symbol: str,
    underlying_symbol: str,
    quantity: int,
    filled_price: Decimal | None,
    total_premium: Decimal,
    nav: Decimal,
    success: bool,
    error_message: str | None,
) -> dict[str, Any]:
    return {
        "event_type": HEDGE_EXECUTED,
        "correlation_id": correlation_id,
        "hedge_id": hedge_id,
        "plan_id": plan_id,
        "order_id": order_id,
        "option_symbol": option_symbol,
        "underlying_symbol": underlying_symbol,
        "quantity": quantity,
        "filled_price": money(filled_price) if filled_price is not None else None,
        "total_premium": money(total_premium),
        "nav_percentage": ratio(total_premium / nav) if nav > 0 else "0",
        "success": success,
        "error_message": error_message,
    }


def all_hedges_completed(
    *,
    correlation_id: str,
    plan_id: str | None,
    executed: Sequence[Mapping[str, Any]],
    nav: Decimal,
    hedge_positions: Sequence[Mapping[str, Any]],
    was_skipped: bool,
) -> dict[str, Any]:
    succeeded = [e for e in executed if e["success"]]
    failed = [e for e in executed if not e["success"]]
    spent = sum((Decimal(e["total_premium"]) for e in succeeded), Decimal(0))
    return {
        "event_type": ALL_HEDGES_COMPLETED,
        "correlation_id": correlation_id,
        "plan_id": plan_id,
        "total_hedges": len(executed),
        "succeeded_hedges": len(succeeded),
        "failed_hedges": len(failed),
        "total_premium_spent": money(spent),
        "total_nav_pct": ratio(spent / nav) if nav > 0 else "0",
        "hedge_positions": list(hedge_positions),
        "failed_symbols": [e["option_symbol"] for e in failed],
        "was_skipped": was_skipped,
    }


def hedge_roll_triggered(
    *,
    correlation_id: str,
    hedge_id: str,
    option_symbol: str,
    underlying_symbol: str,
    current_dte: int,
    current_contracts: int,
    roll_reason: str,
) -> dict[str, Any]:
    return {
        "event_type": HEDGE_ROLL_TRIGGERED,
        "correlation_id": correlation_id,
        "hedge_id": hedge_id,
        "option_symbol": option_symbol,
        "underlying_symbol": underlying_symbol,
        "current_dte": current_dte,
        "current_contracts": current_contracts,
        "roll_reason": roll_reason,
    }
