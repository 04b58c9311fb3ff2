"""Settings of the hedging section: templates, premium caps, contract selection and execution.

Every default is the value of PARAMETERS.md. Units follow one convention:
``*_pct`` is a percentage in percent units (0.35 means 0.35 %; "of NAV" unless
the name or comment says of what), ``*_abs_delta`` is an unsigned option delta,
money is ``Decimal`` dollars, counts and days are ``int``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from alchemiser.settings.base import (
    Section,
    Symbol,
    empty_is_none,
    fail_if,
    fmt,
    range_problem,
    weights_problem,
)
from alchemiser.settings.orders import OrderSettings

# ---------------------------------------------------------------------------
# Volatility regime and budget
# ---------------------------------------------------------------------------


class VolTiers(Section):
    """Tiers on the 30-day volatility index: low < low_below <= mid <= high_above < high."""

    low_below: Decimal = Field(default=Decimal("18"), gt=0, le=200)
    high_above: Decimal = Field(default=Decimal("28"), gt=0, le=200)
    rich_above: Decimal = Field(default=Decimal("35"), gt=0, le=200)

    @model_validator(mode="after")
    def _increasing(self) -> VolTiers:
        if not (self.low_below < self.high_above < self.rich_above):
            raise ValueError(
                "volatility-index thresholds must increase: "
                f"low_below ({fmt(self.low_below)}) must be below high_above ({fmt(self.high_above)}) "
                f"and high_above below rich_above ({fmt(self.rich_above)})"
            )
        return self


class ExposureMultiplier(Section):
    """m = min(base + slope x max(0, L - start_leverage), maximum); L = beta-adjusted exposure / NAV."""

    base: Decimal = Field(default=Decimal("1.0"), gt=0, le=5)
    slope: Decimal = Field(default=Decimal("0.5"), ge=0, le=5)
    start_leverage: Decimal = Field(default=Decimal("1.0"), ge=0, le=10)
    maximum: Decimal = Field(default=Decimal("1.5"), gt=0, le=5)

    @model_validator(mode="after")
    def _max_at_least_base(self) -> ExposureMultiplier:
        if self.maximum < self.base:
            raise ValueError(
                f"maximum ({fmt(self.maximum)}) must not be below base ({fmt(self.base)}): "
                "the multiplier could never reach its own base"
            )
        return self


ShortfallFallback = Literal["clip_and_report", "switch_template", "skip"]


class Caps(Section):
    """Hard premium caps (invariants) and the protection floor."""

    monthly_pct: Decimal = Field(default=Decimal("0.35"), gt=0, le=100)
    annual_pct: Decimal = Field(default=Decimal("4"), gt=0, le=100)
    per_position_pct: Decimal = Field(default=Decimal("2"), gt=0, le=100)
    # Reported, not enforced: yearly spend is compared with this band.
    target_band_min_pct: Decimal = Field(default=Decimal("2"), ge=0, le=100)
    target_band_max_pct: Decimal = Field(default=Decimal("5"), gt=0, le=100)
    protection_floor_pct: Decimal = Field(default=Decimal("6"), ge=0, le=100)
    protection_floor_move_pct: Decimal = Field(default=Decimal("-20"), gt=-100, lt=0)
    shortfall_fallback: ShortfallFallback = "clip_and_report"

    @model_validator(mode="after")
    def _ordered(self) -> Caps:
        problems = []
        if self.monthly_pct > self.annual_pct:
            problems.append(
                f"monthly_pct ({fmt(self.monthly_pct)}) must not be above annual_pct ({fmt(self.annual_pct)})"
            )
        if self.per_position_pct > self.annual_pct:
            problems.append(
                f"per_position_pct ({fmt(self.per_position_pct)}) must not be above "
                f"annual_pct ({fmt(self.annual_pct)})"
            )
        problems.append(
            range_problem(
                "target_band_min_pct",
                self.target_band_min_pct,
                "target_band_max_pct",
                self.target_band_max_pct,
            )
        )
        fail_if(problems)
        return self

    def warnings(self) -> list[str]:
        found = []
        yearly = self.monthly_pct * 12
        if yearly > self.annual_pct:
            found.append(
                f"hedging.caps: monthly cap × 12 ({fmt(yearly)} %) is above the annual cap "
                f"({fmt(self.annual_pct)} %): the annual cap will bind first"
            )
        if self.annual_pct < self.target_band_min_pct:
            found.append(
                f"hedging.caps: the annual cap ({fmt(self.annual_pct)} %) is below the target band's "
                f"minimum ({fmt(self.target_band_min_pct)} %): yearly spend will always report as under target"
            )
        if self.annual_pct > self.target_band_max_pct:
            found.append(
                f"hedging.caps: the annual cap ({fmt(self.annual_pct)} %) is above the target band's "
                f"maximum ({fmt(self.target_band_max_pct)} %): spend may run past the band"
            )
        return found


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------


class TierBudget(Section):
    """Monthly premium target per volatility tier, % of NAV (before the multiplier and caps)."""

    low: Decimal = Field(default=Decimal("0"), ge=0, le=100)
    mid: Decimal = Field(default=Decimal("0"), ge=0, le=100)
    high: Decimal = Field(default=Decimal("0"), ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> TierBudget:
        # Buy more protection when it is cheap: the budget may only fall as volatility rises.
        if not (self.low >= self.mid >= self.high):
            raise ValueError(
                "tier budgets must not rise with volatility: need low >= mid >= high, got "
                f"low {fmt(self.low)}, mid {fmt(self.mid)}, high {fmt(self.high)}"
            )
        return self


class TailFirstBudget(TierBudget):
    low: Decimal = Field(default=Decimal("0.80"), ge=0, le=100)
    mid: Decimal = Field(default=Decimal("0.50"), ge=0, le=100)
    high: Decimal = Field(default=Decimal("0.30"), ge=0, le=100)


class SmoothingBudget(TierBudget):
    low: Decimal = Field(default=Decimal("0.40"), ge=0, le=100)
    mid: Decimal = Field(default=Decimal("0.25"), ge=0, le=100)
    high: Decimal = Field(default=Decimal("0.15"), ge=0, le=100)


def _template_problems(
    min_strike: Decimal, max_strike: Decimal, payoff_min: Decimal, payoff_max: Decimal
) -> list[str]:
    """Checks both templates share: a non-empty strike range and an ordered payoff band."""
    problems = []
    if min_strike >= max_strike:
        problems.append(
            f"strike range is empty: min_strike_pct_of_spot ({fmt(min_strike)}) must be below "
            f"max_strike_pct_of_spot ({fmt(max_strike)})"
        )
    problems.append(range_problem("payoff_min_pct", payoff_min, "payoff_max_pct", payoff_max))
    return problems


class TailFirstTemplate(Section):
    """Default template: one long out-of-the-money put."""

    target_abs_delta: Decimal = Field(default=Decimal("0.15"), gt=0, lt=1)
    target_dte: int = Field(default=90, ge=1, le=1095)
    roll_below_dte: int = Field(default=45, ge=1, le=1095)
    critical_dte: int = Field(default=14, ge=0, le=1095)
    min_strike_pct_of_spot: Decimal = Field(default=Decimal("75"), gt=0, le=100)
    max_strike_pct_of_spot: Decimal = Field(default=Decimal("95"), gt=0, le=100)
    scenario_move_pct: Decimal = Field(default=Decimal("-20"), gt=-100, lt=0)
    scenario_vol_shift_points: Decimal = Field(default=Decimal("10"), ge=0, le=200)
    payoff_min_pct: Decimal = Field(default=Decimal("6"), ge=0, le=100)
    payoff_max_pct: Decimal = Field(default=Decimal("10"), ge=0, le=100)
    monthly_budget_pct: TailFirstBudget = Field(default_factory=TailFirstBudget)

    @model_validator(mode="after")
    def _consistent(self) -> TailFirstTemplate:
        problems = _template_problems(
            self.min_strike_pct_of_spot,
            self.max_strike_pct_of_spot,
            self.payoff_min_pct,
            self.payoff_max_pct,
        )
        if self.roll_below_dte >= self.target_dte:
            problems.append(
                f"roll_below_dte ({self.roll_below_dte}) must be below target_dte ({self.target_dte}): "
                "a new hedge would be due for a roll the day it is bought"
            )
        if self.critical_dte >= self.roll_below_dte:
            problems.append(
                f"critical_dte ({self.critical_dte}) must be below roll_below_dte ({self.roll_below_dte})"
            )
        fail_if(problems)
        return self


class SmoothingTemplate(Section):
    """Put spread: long the higher-delta put, short the lower-delta put, same expiry."""

    long_abs_delta: Decimal = Field(default=Decimal("0.30"), gt=0, lt=1)
    short_abs_delta: Decimal = Field(default=Decimal("0.10"), gt=0, lt=1)
    target_dte: int = Field(default=60, ge=1, le=1095)
    roll_every_days_held: int = Field(default=21, ge=1, le=1095)
    roll_value_below_pct_of_width: Decimal = Field(default=Decimal("30"), ge=0, lt=100)
    roll_long_abs_delta_above: Decimal = Field(default=Decimal("0.50"), gt=0, lt=1)
    roll_short_abs_delta_above: Decimal = Field(default=Decimal("0.20"), gt=0, lt=1)
    min_strike_pct_of_spot: Decimal = Field(default=Decimal("75"), gt=0, le=100)
    max_strike_pct_of_spot: Decimal = Field(default=Decimal("95"), gt=0, le=100)
    scenario_move_pct: Decimal = Field(default=Decimal("-10"), gt=-100, lt=0)
    scenario_vol_shift_points: Decimal = Field(default=Decimal("5"), ge=0, le=200)
    payoff_min_pct: Decimal = Field(default=Decimal("2"), ge=0, le=100)
    payoff_max_pct: Decimal = Field(default=Decimal("4"), ge=0, le=100)
    monthly_budget_pct: SmoothingBudget = Field(default_factory=SmoothingBudget)

    @model_validator(mode="after")
    def _consistent(self) -> SmoothingTemplate:
        problems = _template_problems(
            self.min_strike_pct_of_spot,
            self.max_strike_pct_of_spot,
            self.payoff_min_pct,
            self.payoff_max_pct,
        )
        if self.long_abs_delta <= self.short_abs_delta:
            problems.append(
                f"long_abs_delta ({fmt(self.long_abs_delta)}) must be above short_abs_delta "
                f"({fmt(self.short_abs_delta)}): the long put is the one nearer the money"
            )
        if self.roll_long_abs_delta_above <= self.long_abs_delta:
            problems.append(
                f"roll_long_abs_delta_above ({fmt(self.roll_long_abs_delta_above)}) must be above "
                f"long_abs_delta ({fmt(self.long_abs_delta)}): a new spread would roll at once"
            )
        if self.roll_short_abs_delta_above <= self.short_abs_delta:
            problems.append(
                f"roll_short_abs_delta_above ({fmt(self.roll_short_abs_delta_above)}) must be above "
                f"short_abs_delta ({fmt(self.short_abs_delta)}): a new spread would roll at once"
            )
        if self.roll_every_days_held >= self.target_dte:
            problems.append(
                f"roll_every_days_held ({self.roll_every_days_held}) must be below target_dte "
                f"({self.target_dte}): the spread would expire before its scheduled roll"
            )
        fail_if(problems)
        return self


class Templates(Section):
    tail_first: TailFirstTemplate = Field(default_factory=TailFirstTemplate)
    smoothing: SmoothingTemplate = Field(default_factory=SmoothingTemplate)


TemplateName = Literal["tail_first", "smoothing"]


class RichIv(Section):
    """Adjustments when the volatility index is above vol_tiers.rich_above (outright puts only)."""

    abs_delta_shift: Decimal = Field(default=Decimal("0.05"), ge=0, lt=1)
    extra_dte: int = Field(default=30, ge=0, le=365)
    payoff_cut_pct: Decimal = Field(default=Decimal("25"), ge=0, lt=100)


# ---------------------------------------------------------------------------
# Market inputs
# ---------------------------------------------------------------------------


class VolIndex(Section):
    """Where the 30-day volatility index comes from (Alpaca has no VIX quote)."""

    chain_underlying: Symbol = "SPY"
    horizon_days: int = Field(default=30, ge=7, le=365)
    # None (written "" in the file) switches the VIXY fallback off.
    vixy_scale: Annotated[
        Annotated[Decimal, Field(gt=0, le=1000)] | None, BeforeValidator(empty_is_none)
    ] = None


class IvPercentile(Section):
    """Daily ATM implied volatility per underlying, ranked over a trailing window."""

    window_sessions: int = Field(default=252, ge=20, le=2520)
    min_observations: int = Field(default=126, ge=1, le=2520)

    @model_validator(mode="after")
    def _enough_window(self) -> IvPercentile:
        if self.min_observations > self.window_sessions:
            raise ValueError(
                f"min_observations ({self.min_observations}) must not be above "
                f"window_sessions ({self.window_sessions}): the percentile could never be computed"
            )
        return self


class Skip(Section):
    """Conditions under which an evaluation buys nothing (each recorded as skip_reason)."""

    min_nav: Decimal = Field(default=Decimal("10000"), ge=0)
    min_exposure_ratio: Decimal = Field(default=Decimal("0.5"), ge=0, le=20)
    max_active_hedges: int = Field(default=3, ge=1, le=100)


def _default_sector_etfs() -> dict[str, list[str]]:
    return {
        "Technology": ["QQQ", "SPY"],
        "Consumer Discretionary": ["QQQ", "SPY"],
        "Communication Services": ["QQQ", "SPY"],
        "Healthcare": ["SPY", "IWM"],
        "Financials": ["SPY", "IWM"],
        "Industrials": ["SPY", "IWM"],
        "Materials": ["SPY", "IWM"],
        "Consumer Staples": ["SPY"],
        "Energy": ["SPY"],
        "Utilities": ["SPY"],
        "Real Estate": ["IWM", "SPY"],
    }


def _default_static_betas() -> dict[str, Decimal]:
    return {"SPY": Decimal("1.00"), "QQQ": Decimal("1.15"), "IWM": Decimal("1.20")}


class Underlying(Section):
    """Which ETF hedges the book: sector map, the QQQ preference and betas."""

    # Sector -> hedge ETFs, first choice first, then fallbacks in order.
    sector_etfs: dict[Annotated[str, Field(min_length=1)], list[Symbol]] = Field(
        default_factory=_default_sector_etfs
    )
    unknown_sector_etf: Symbol = "SPY"
    preferred: Symbol = "QQQ"
    preferred_min_ratio: Decimal = Field(default=Decimal("0.8"), ge=0, le=1)
    static_betas: dict[Symbol, Decimal] = Field(default_factory=_default_static_betas)
    rolling_beta_window_sessions: int = Field(default=252, ge=20, le=2520)
    rolling_beta_min_observations: int = Field(default=126, ge=1, le=2520)

    @field_validator("sector_etfs")
    @classmethod
    def _sector_lists(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        problems = []
        for sector, etfs in value.items():
            if not etfs:
                problems.append(f"sector {sector!r} has no ETF: give at least one")
            elif len(set(etfs)) != len(etfs):
                problems.append(f"sector {sector!r} lists an ETF twice: {etfs}")
        fail_if(problems)
        return value

    @field_validator("static_betas")
    @classmethod
    def _positive_betas(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = {k: v for k, v in value.items() if not (0 < v <= 10)}
        if bad:
            listed = ", ".join(f"{k} = {fmt(v)}" for k, v in bad.items())
            raise ValueError(f"betas must be above 0 and at most 10: {listed}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Underlying:
        problems = []
        used = {etf for etfs in self.sector_etfs.values() for etf in etfs}
        used |= {self.unknown_sector_etf, self.preferred}
        missing = sorted(used - self.static_betas.keys())
        if missing:
            problems.append(
                f"static_betas has no beta for {', '.join(missing)} (used by sector_etfs, "
                f"unknown_sector_etf or preferred); it has {', '.join(sorted(self.static_betas))}"
            )
        if self.rolling_beta_min_observations > self.rolling_beta_window_sessions:
            problems.append(
                f"rolling_beta_min_observations ({self.rolling_beta_min_observations}) must not be "
                f"above rolling_beta_window_sessions ({self.rolling_beta_window_sessions})"
            )
        fail_if(problems)
        return self


# ---------------------------------------------------------------------------
# Contract selection and execution
# ---------------------------------------------------------------------------


class Liquidity(Section):
    """Gates every candidate contract must pass; data that fails them is never traded."""

    min_open_interest: int = Field(default=1000, ge=0)
    min_volume: int = Field(default=100, ge=0)
    max_spread_pct_of_mid: Decimal = Field(default=Decimal("5"), gt=0, le=100)
    max_spread: Decimal = Field(default=Decimal("0.10"), gt=0)
    min_mid: Decimal = Field(default=Decimal("0.05"), gt=0)
    min_dte: int = Field(default=14, ge=1, le=1095)
    max_dte: int = Field(default=180, ge=1, le=1095)
    max_quote_age_seconds: int = Field(default=300, ge=1, le=86400)

    @model_validator(mode="after")
    def _dte_range(self) -> Liquidity:
        fail_if([range_problem("min_dte", self.min_dte, "max_dte", self.max_dte)])
        return self


class Tenor(Section):
    """Which expiries to look at, by volatility regime."""

    low_vol_min_dte: int = Field(default=60, ge=1, le=1095)
    low_vol_max_dte: int = Field(default=90, ge=1, le=1095)
    low_vol_ladder: bool = False
    rich_min_dte: int = Field(default=120, ge=1, le=1095)
    rich_max_dte: int = Field(default=180, ge=1, le=1095)
    dte_window_days: int = Field(default=15, ge=0, le=365)
    prefer_longer_above_iv_percentile: Decimal = Field(default=Decimal("70"), ge=0, le=100)

    @model_validator(mode="after")
    def _ranges(self) -> Tenor:
        fail_if(
            [
                range_problem(
                    "low_vol_min_dte", self.low_vol_min_dte, "low_vol_max_dte", self.low_vol_max_dte
                ),
                range_problem("rich_min_dte", self.rich_min_dte, "rich_max_dte", self.rich_max_dte),
            ]
        )
        return self


class Scoring(Section):
    """How candidates that passed the gates are ranked."""

    min_payoff_multiple: Decimal = Field(default=Decimal("3"), ge=0, le=1000)
    convexity_weight: Decimal = Field(default=Decimal("0.5"), ge=0, le=1)
    payoff_weight: Decimal = Field(default=Decimal("0.5"), ge=0, le=1)
    fallback_delta_weight: Decimal = Field(default=Decimal("0.5"), ge=0, le=1)
    fallback_dte_weight: Decimal = Field(default=Decimal("0.3"), ge=0, le=1)
    fallback_spread_weight: Decimal = Field(default=Decimal("0.2"), ge=0, le=1)

    @model_validator(mode="after")
    def _weights(self) -> Scoring:
        fail_if(
            [
                weights_problem(
                    "the score weights",
                    {
                        "convexity_weight": self.convexity_weight,
                        "payoff_weight": self.payoff_weight,
                    },
                ),
                weights_problem(
                    "the fallback score weights",
                    {
                        "fallback_delta_weight": self.fallback_delta_weight,
                        "fallback_dte_weight": self.fallback_dte_weight,
                        "fallback_spread_weight": self.fallback_spread_weight,
                    },
                ),
            ]
        )
        return self


class HedgeOrders(OrderSettings):
    """Order pricing plus the spread-specific rules."""

    # Half the widest spread the liquidity gate admits (5 % of mid): the ask of every
    # admitted contract is reachable, and never more than that is paid.
    max_slippage_pct: Decimal = Field(default=Decimal("2.5"), ge=0, le=50)
    # From mid - 2 % in steps of 1 %, the fifth re-price reaches that bound.
    max_reprice_steps: int = Field(default=5, ge=0, le=50)
    # Selling a hedge to roll or close it may go this % of mid below mid: near expiry the
    # spread of a cheap put is wide, and getting out reduces risk.
    close_max_slippage_pct: Decimal = Field(default=Decimal("25"), ge=0, le=100)
    multi_leg: bool = True
    legging_retries: int = Field(default=3, ge=0, le=10)
    legging_backoff_seconds: float = Field(default=1.0, gt=0, le=60)


class KillSwitch(Section):
    """Automatic trip of the hedging kill switch after repeated failed cycles."""

    failed_cycles: int = Field(default=3, ge=1, le=100)
    window_hours: int = Field(default=24, ge=1, le=720)


# ---------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------


class HedgingSettings(Section):
    """Tail hedging: what to buy, how much, and how to buy it."""

    # The config kill switch: false stops new hedges (evaluations are recorded as skipped).
    enabled: bool = True
    template: TemplateName = "tail_first"
    vol_tiers: VolTiers = Field(default_factory=VolTiers)
    exposure_multiplier: ExposureMultiplier = Field(default_factory=ExposureMultiplier)
    caps: Caps = Field(default_factory=Caps)
    templates: Templates = Field(default_factory=Templates)
    rich_iv: RichIv = Field(default_factory=RichIv)
    vol_index: VolIndex = Field(default_factory=VolIndex)
    iv_percentile: IvPercentile = Field(default_factory=IvPercentile)
    skip: Skip = Field(default_factory=Skip)
    underlying: Underlying = Field(default_factory=Underlying)
    liquidity: Liquidity = Field(default_factory=Liquidity)
    tenor: Tenor = Field(default_factory=Tenor)
    scoring: Scoring = Field(default_factory=Scoring)
    orders: HedgeOrders = Field(default_factory=HedgeOrders)
    kill_switch: KillSwitch = Field(default_factory=KillSwitch)

    @model_validator(mode="after")
    def _sections_agree(self) -> HedgingSettings:
        problems = []
        tail = self.templates.tail_first
        if tail.target_abs_delta - self.rich_iv.abs_delta_shift <= 0:
            problems.append(
                f"hedging.templates.tail_first.target_abs_delta ({fmt(tail.target_abs_delta)}) minus "
                f"hedging.rich_iv.abs_delta_shift ({fmt(self.rich_iv.abs_delta_shift)}) must stay above 0"
            )
        # A DTE the liquidity gate rejects can never be bought: every evaluation would come up empty.
        lo, hi = self.liquidity.min_dte, self.liquidity.max_dte
        wanted = {
            "hedging.templates.tail_first.target_dte": tail.target_dte,
            "hedging.templates.tail_first.target_dte + hedging.rich_iv.extra_dte": tail.target_dte
            + self.rich_iv.extra_dte,
            "hedging.templates.smoothing.target_dte": self.templates.smoothing.target_dte,
            "hedging.tenor.low_vol_min_dte": self.tenor.low_vol_min_dte,
            "hedging.tenor.low_vol_max_dte": self.tenor.low_vol_max_dte,
            "hedging.tenor.rich_min_dte": self.tenor.rich_min_dte,
            "hedging.tenor.rich_max_dte": self.tenor.rich_max_dte,
        }
        for name, dte in wanted.items():
            if not lo <= dte <= hi:
                problems.append(
                    f"{name} ({dte}) is outside the tradable range hedging.liquidity.min_dte.."
                    f"max_dte ({lo}..{hi}): no contract could ever be selected"
                )
        fail_if(problems)
        return self

    def warnings(self) -> list[str]:
        """Allowed but questionable combinations, for the log at load and reload."""
        found = self.caps.warnings()
        active: TailFirstTemplate | SmoothingTemplate = getattr(self.templates, self.template)
        # Only comparable when the template is sized at the floor's own scenario move.
        if (
            active.scenario_move_pct == self.caps.protection_floor_move_pct
            and active.payoff_max_pct < self.caps.protection_floor_pct
        ):
            found.append(
                f"hedging.templates.{self.template}.payoff_max_pct ({fmt(active.payoff_max_pct)} %) "
                f"is below hedging.caps.protection_floor_pct ({fmt(self.caps.protection_floor_pct)} %): "
                "the active template is never sized to meet the floor"
            )
        return found
