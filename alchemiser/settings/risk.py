"""Settings of the risk section: pre-trade limits, VaR, stress scenarios and alert escalation.

Limits of PARAMETERS.md apply to the income book; ``*_pct`` is in percent
units of NAV. There is deliberately no ``enabled`` switch: pre-trade limits
always apply, and loosening one is an explicit edit of that limit.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, field_validator, model_validator

from alchemiser.settings.base import Section, fail_if, fmt


class StressScenario(Section):
    """One instantaneous shock; fields left out are 0 (unchanged)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_]*$")
    index_move_pct: Decimal = Field(default=Decimal("0"), gt=-100, le=100)
    vol_shift_points: Decimal = Field(default=Decimal("0"), ge=-100, le=200)
    vol_shift_pct: Decimal = Field(default=Decimal("0"), gt=-100, le=1000)
    rate_shift_points: Decimal = Field(default=Decimal("0"), ge=-20, le=20)
    single_name_gap_pct: Decimal = Field(default=Decimal("0"), gt=-100, le=100)

    @model_validator(mode="after")
    def _moves_something(self) -> StressScenario:
        shocks = (
            self.index_move_pct,
            self.vol_shift_points,
            self.vol_shift_pct,
            self.rate_shift_points,
            self.single_name_gap_pct,
        )
        if not any(shocks):
            raise ValueError(
                f"stress scenario {self.name!r} changes nothing: set at least one of "
                "index_move_pct, vol_shift_points, vol_shift_pct, rate_shift_points, single_name_gap_pct"
            )
        return self


def _default_stress_scenarios() -> list[StressScenario]:
    return [
        StressScenario(
            name="index_down_10", index_move_pct=Decimal(-10), vol_shift_points=Decimal(10)
        ),
        StressScenario(
            name="index_down_20", index_move_pct=Decimal(-20), vol_shift_points=Decimal(20)
        ),
        StressScenario(
            name="index_down_30", index_move_pct=Decimal(-30), vol_shift_points=Decimal(30)
        ),
        StressScenario(name="vol_crush", vol_shift_pct=Decimal(-30)),
        StressScenario(name="rates_up_1", rate_shift_points=Decimal(1)),
        StressScenario(name="rates_down_1", rate_shift_points=Decimal(-1)),
        StressScenario(name="single_name_gap", single_name_gap_pct=Decimal(-25)),
    ]


class Alerts(Section):
    """Alert levels INFO < WARNING < CRITICAL < EMERGENCY and how unanswered alerts escalate."""

    approach_pct_of_limit: Decimal = Field(default=Decimal("80"), gt=0, lt=100)
    # Minutes an unacknowledged alert waits before moving up one level; 0 = never.
    escalate_info_after_minutes: int = Field(default=0, ge=0, le=10080)
    escalate_warning_after_minutes: int = Field(default=10, ge=0, le=10080)
    escalate_critical_after_minutes: int = Field(default=5, ge=0, le=10080)
    daily_loss_limit_pct: Decimal = Field(default=Decimal("5"), gt=0, le=100)


class RiskSettings(Section):
    """Limits checked before every income order, plus the measures the risk jobs report."""

    max_trade_pct: Decimal = Field(default=Decimal("5"), gt=0, le=100)
    # Continuously compounded risk-free rate every option valuation uses, in percent.
    risk_free_rate_pct: Decimal = Field(default=Decimal("4"), ge=-5, le=25)
    max_income_positions: int = Field(default=10, ge=0, le=1000)
    max_abs_net_delta: Decimal = Field(default=Decimal("0.20"), ge=0, le=10)
    max_abs_net_gamma: Decimal = Field(default=Decimal("0.05"), ge=0, le=10)
    max_vega_pct: Decimal = Field(default=Decimal("2"), ge=0, le=100)
    max_sector_pct: Decimal = Field(default=Decimal("25"), gt=0, le=100)
    var_confidence: Decimal = Field(default=Decimal("0.95"), ge=Decimal("0.5"), lt=1)
    history_sessions: int = Field(default=252, ge=20, le=5040)
    min_history_sessions: int = Field(default=126, ge=10, le=5040)
    stress_scenarios: list[StressScenario] = Field(default_factory=_default_stress_scenarios)
    # Sub-sections last: `config show` renders plain keys before sub-tables.
    alerts: Alerts = Field(default_factory=Alerts)

    @field_validator("stress_scenarios")
    @classmethod
    def _unique_names(cls, value: list[StressScenario]) -> list[StressScenario]:
        names = [s.name for s in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"scenario names must be unique: {', '.join(twice)} used more than once"
            )
        return value

    @model_validator(mode="after")
    def _history(self) -> RiskSettings:
        problems = []
        if self.min_history_sessions > self.history_sessions:
            problems.append(
                f"min_history_sessions ({self.min_history_sessions}) must not be above "
                f"history_sessions ({self.history_sessions}): VaR could never be computed"
            )
        fail_if(problems)
        return self

    def warnings(self) -> list[str]:
        """Allowed but questionable combinations, for the log at load and reload."""
        found = []
        if self.max_trade_pct > self.max_sector_pct:
            found.append(
                f"risk.max_trade_pct ({fmt(self.max_trade_pct)} %) is above risk.max_sector_pct "
                f"({fmt(self.max_sector_pct)} %): the sector limit will bind first"
            )
        if not self.stress_scenarios:
            found.append("risk.stress_scenarios is empty: stress tests will report nothing")
        return found
