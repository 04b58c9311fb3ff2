"""Settings of the income section: covered calls and cash-secured puts (the wheel).

Defaults are the values of PARAMETERS.md. Deltas here are signed (calls
positive, puts negative); ``*_pct`` is in percent units.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from alchemiser.settings.base import Section, Symbol, fail_if, fmt, range_problem, weights_problem
from alchemiser.settings.orders import OrderSettings

# S&P long-term issuer scale, best first: the screen compares positions in CREDIT_RATINGS.
CreditRating = Literal[
    "AAA",
    "AA+",
    "AA",
    "AA-",
    "A+",
    "A",
    "A-",
    "BBB+",
    "BBB",
    "BBB-",
    "BB+",
    "BB",
    "BB-",
    "B+",
    "B",
    "B-",
    "CCC+",
    "CCC",
    "CCC-",
    "CC",
    "C",
    "D",
]
CREDIT_RATINGS: tuple[str, ...] = get_args(CreditRating)


class CoveredCallScreen(Section):
    """Rules a call must pass before it is sold against shares already owned."""

    enabled: bool = True
    open_interest_above: int = Field(default=100, ge=0)
    annual_yield_above_pct: Decimal = Field(default=Decimal("2"), ge=0, le=1000)
    min_delta: Decimal = Field(default=Decimal("0.15"), gt=0, lt=1)
    max_delta: Decimal = Field(default=Decimal("0.35"), gt=0, lt=1)
    min_iv_percentile: Decimal = Field(default=Decimal("20"), ge=0, le=100)
    max_iv_percentile: Decimal = Field(default=Decimal("60"), ge=0, le=100)
    min_dte: int = Field(default=30, ge=1, le=1095)
    max_dte: int = Field(default=90, ge=1, le=1095)
    allow_below_cost_basis: bool = False
    max_assignment_loss_pct: Decimal = Field(default=Decimal("5"), ge=0, le=100)

    @model_validator(mode="after")
    def _ranges(self) -> CoveredCallScreen:
        fail_if(
            [
                range_problem("min_delta", self.min_delta, "max_delta", self.max_delta),
                range_problem(
                    "min_iv_percentile",
                    self.min_iv_percentile,
                    "max_iv_percentile",
                    self.max_iv_percentile,
                ),
                range_problem("min_dte", self.min_dte, "max_dte", self.max_dte),
            ]
        )
        return self


class CashSecuredPutScreen(Section):
    """Rules a put must pass before it is sold on a name from the watch list."""

    enabled: bool = True
    open_interest_above: int = Field(default=100, ge=0)
    annual_yield_above_pct: Decimal = Field(default=Decimal("3"), ge=0, le=1000)
    min_delta: Decimal = Field(default=Decimal("-0.35"), gt=-1, lt=0)
    max_delta: Decimal = Field(default=Decimal("-0.15"), gt=-1, lt=0)
    min_dte: int = Field(default=30, ge=1, le=1095)
    max_dte: int = Field(default=90, ge=1, le=1095)
    # Below 100 % the put would not be cash-secured, so that is refused outright.
    cash_cover_pct: Decimal = Field(default=Decimal("100"), ge=100, le=1000)
    require_put_call_below_sector_average: bool = True
    earnings_buffer_days: int = Field(default=14, ge=0, le=365)
    min_credit_rating: CreditRating = "BBB+"
    max_sector_share_pct: Decimal = Field(default=Decimal("20"), gt=0, le=100)

    @model_validator(mode="after")
    def _ranges(self) -> CashSecuredPutScreen:
        fail_if(
            [
                range_problem("min_delta", self.min_delta, "max_delta", self.max_delta),
                range_problem("min_dte", self.min_dte, "max_dte", self.max_dte),
            ]
        )
        return self


class Decision(Section):
    """Score out of 10 = weighted sum of the three sub-scores; trade at or above min_score."""

    quant_weight: Decimal = Field(default=Decimal("0.7"), ge=0, le=1)
    advisor_weight: Decimal = Field(default=Decimal("0.2"), ge=0, le=1)
    portfolio_fit_weight: Decimal = Field(default=Decimal("0.1"), ge=0, le=1)
    min_score: Decimal = Field(default=Decimal("7.5"), ge=0, le=10)

    @model_validator(mode="after")
    def _weights(self) -> Decision:
        fail_if(
            [
                weights_problem(
                    "the decision weights",
                    {
                        "quant_weight": self.quant_weight,
                        "advisor_weight": self.advisor_weight,
                        "portfolio_fit_weight": self.portfolio_fit_weight,
                    },
                )
            ]
        )
        return self


class Management(Section):
    """When an open short option is closed or rolled."""

    take_profit_pct: Decimal = Field(default=Decimal("50"), gt=0, le=100)
    stop_loss_credit_multiple: Decimal = Field(default=Decimal("2"), gt=1, le=100)
    stop_loss_iv_rise_pct: Decimal = Field(default=Decimal("50"), gt=0, le=1000)
    roll_or_close_at_dte: int = Field(default=7, ge=0, le=365)
    near_expiry_action: Literal["roll", "close"] = "roll"
    # Roll only when the new sale takes in more than the buyback costs (else close).
    roll_credit_only: bool = True
    # An option in the money at the DTE threshold: leave it to assignment (the wheel), roll or
    # close. "let_assign" also outranks the stop loss in those last days.
    itm_near_expiry: Literal["let_assign", "roll", "close"] = "let_assign"


class IncomeOrders(OrderSettings):
    """Order pricing for income sales and buybacks."""

    # A sale starts 2 % above mid and steps 2 % of mid toward the bid, down to 5 % below mid:
    # single-stock option books are often 5–10 % of mid wide, on $0.05 ticks.
    reprice_step_pct: Decimal = Field(default=Decimal("2"), gt=0, le=50)
    max_slippage_pct: Decimal = Field(default=Decimal("5"), ge=0, le=50)
    max_reprice_steps: int = Field(default=6, ge=0, le=50)
    # Buying back to close (take profit, stop loss, roll, near expiry) reduces risk and the
    # option is often cheap with a wide spread: it may pay this % of mid above mid.
    close_max_slippage_pct: Decimal = Field(default=Decimal("25"), ge=0, le=100)


class IncomeSettings(Section):
    """Selling covered calls and cash-secured puts, screened, scored, approved and managed."""

    enabled: bool = True
    approval: Literal["auto", "manual"] = "manual"
    watch_list: list[Symbol] = Field(default_factory=list)
    reference_data_path: str = Field(default="config/reference_data.toml", min_length=1)
    covered_call: CoveredCallScreen = Field(default_factory=CoveredCallScreen)
    cash_secured_put: CashSecuredPutScreen = Field(default_factory=CashSecuredPutScreen)
    decision: Decision = Field(default_factory=Decision)
    management: Management = Field(default_factory=Management)
    orders: IncomeOrders = Field(default_factory=IncomeOrders)

    @field_validator("watch_list")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        twice = sorted({s for s in value if value.count(s) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(twice)} more than once")
        return value

    @model_validator(mode="after")
    def _sections_agree(self) -> IncomeSettings:
        problems = []
        exit_dte = self.management.roll_or_close_at_dte
        for name, screen in (
            ("covered_call", self.covered_call),
            ("cash_secured_put", self.cash_secured_put),
        ):
            if exit_dte >= screen.min_dte:
                problems.append(
                    f"income.management.roll_or_close_at_dte ({exit_dte}) must be below "
                    f"income.{name}.min_dte ({screen.min_dte}): a new position would be "
                    "closed or rolled the day it is opened"
                )
        fail_if(problems)
        return self

    def warnings(self) -> list[str]:
        """Allowed but questionable combinations, for the log at load and reload."""
        found = []
        if self.enabled and self.cash_secured_put.enabled and not self.watch_list:
            found.append(
                "income.watch_list is empty: no cash-secured puts will be written until you "
                "list the symbols you would be glad to own"
            )
        if self.covered_call.allow_below_cost_basis:
            found.append(
                "income.covered_call.allow_below_cost_basis is true: an assignment may sell shares "
                f"at a loss (up to {fmt(self.covered_call.max_assignment_loss_pct)} % of the position)"
            )
        return found
