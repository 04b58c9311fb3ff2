"""How much protection to buy: skip conditions, budget and caps, payoff-first sizing, the floor.

Order of the rules (the first that applies decides the skip reason):

1. Skip conditions, operator and data first, then the book: ``hedging_disabled``,
   ``kill_switch``, ``market_closed``, ``stale_data``, ``missing_data``,
   ``nav_below_minimum``, ``no_equity_positions``, ``exposure_below_minimum``,
   ``max_active_hedges``, ``annual_cap_reached``, ``monthly_cap_reached``,
   ``no_suitable_contract``. (No equity positions comes before low exposure,
   which it would otherwise always hide.)
2. Budget = min(tier rate x NAV x exposure multiplier, monthly cap - month to
   date, annual cap - year to date, per-position cap), each rounded down to
   the cent. Whatever the inputs, the premium decided never exceeds it, so
   MTD + new <= monthly cap, YTD + new <= annual cap and one position <=
   per-position cap, however often this runs (the caller books each
   decision's premium into MTD/YTD before the next call).
3. Payoff first: the fewest whole contracts that lift the book's scenario
   payoff (existing hedges + new) to the template's target, which is the
   *low end* of the payoff band (6 % NAV for tail_first; after the rich-IV
   cut, 4.5 %). The band's upper end is reported, not aimed at. Contracts
   affordable = floor(budget / premium per contract). Buy the smaller.
4. Protection floor (6 % NAV at -20 %): projected book payoff at the floor
   scenario is reported with its shortfall. When even the whole budget could
   not reach the floor, the fallback applies: ``clip_and_report`` (buy what
   was decided, report), ``switch_template`` (buy nothing now and tell the
   caller to retry with smoothing; on smoothing there is nothing cheaper, so
   it clips and reports), ``skip`` (buy nothing). A floor missed only because
   the rich-IV cut lowered the target, or with nothing to buy (target met),
   is reported, not a fallback.

When sizing buys nothing, ``skip_reason`` says why: ``payoff_target_met``,
``budget_below_one_contract``, ``switch_template`` or
``protection_floor_unreachable``. ``SKIP_REASONS`` lists every reason.

The candidate's premium per contract must be the most the order may pay
(the selection's ``max_limit_price`` x 100): the executor never pays more,
which is what keeps the caps invariants.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal, TypedDict

from alchemiser.hedging.exposure import ExposureReport
from alchemiser.hedging.vol_regime import VolRegime
from alchemiser.settings.hedging import Caps, HedgingSettings, ShortfallFallback, TemplateName

__all__ = [
    "SKIP_REASONS",
    "BudgetLimits",
    "Candidate",
    "EffectiveTemplate",
    "SizingDecision",
    "SizingInputs",
    "budget_limits",
    "effective_template",
    "floor_scenario",
    "size_hedge",
    "skip_reason",
]

_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)

# Every skip_reason a decision can carry (stable strings: logs, events and the audit trail).
SKIP_REASONS = (
    "hedging_disabled",
    "kill_switch",
    "market_closed",
    "stale_data",
    "missing_data",
    "nav_below_minimum",
    "no_equity_positions",
    "exposure_below_minimum",
    "max_active_hedges",
    "annual_cap_reached",
    "monthly_cap_reached",
    "no_suitable_contract",
    "payoff_target_met",
    "budget_below_one_contract",
    "switch_template",
    "protection_floor_unreachable",
)

Structure = Literal["put", "put_spread"]
AnnualBand = Literal["below", "within", "above"]


@dataclass(frozen=True, slots=True)
class EffectiveTemplate:
    """A template's targets for today's regime (rich-IV adjustments applied to puts only)."""

    name: TemplateName
    structure: Structure
    target_abs_delta: Decimal  # the (long) put
    short_abs_delta: Decimal | None  # the short put of a spread
    target_dte: int
    min_strike_pct_of_spot: Decimal
    max_strike_pct_of_spot: Decimal
    scenario_move_pct: Decimal
    scenario_vol_shift_points: Decimal
    payoff_min_pct: Decimal  # % of NAV at the scenario: the sizing target
    payoff_max_pct: Decimal
    monthly_budget_pct: Decimal | None  # this tier's rate (% NAV / month); None without a regime
    rich_adjusted: bool


def effective_template(
    settings: HedgingSettings, regime: VolRegime | None, template: TemplateName | None = None
) -> EffectiveTemplate:
    """The template's targets after the rich-IV rule (index > rich_above, outright puts only).

    Rich: |delta| - abs_delta_shift (0.15 -> 0.10), DTE + extra_dte (90 -> 120),
    payoff band x (1 - payoff_cut_pct/100) (6-10 % -> 4.5-7.5 %). Spreads are
    never adjusted: moving the long leg would distort the spread's width.
    """
    name = template or settings.template
    rate = None
    if name == "tail_first":
        tail = settings.templates.tail_first
        if regime is not None:
            rate = getattr(tail.monthly_budget_pct, regime.tier)
        rich = regime is not None and regime.rich
        rich_iv = settings.rich_iv
        cut = (_HUNDRED - rich_iv.payoff_cut_pct) / _HUNDRED if rich else Decimal(1)
        return EffectiveTemplate(
            name=name,
            structure="put",
            target_abs_delta=tail.target_abs_delta - (rich_iv.abs_delta_shift if rich else 0),
            short_abs_delta=None,
            target_dte=tail.target_dte + (rich_iv.extra_dte if rich else 0),
            min_strike_pct_of_spot=tail.min_strike_pct_of_spot,
            max_strike_pct_of_spot=tail.max_strike_pct_of_spot,
            scenario_move_pct=tail.scenario_move_pct,
            scenario_vol_shift_points=tail.scenario_vol_shift_points,
            payoff_min_pct=tail.payoff_min_pct * cut,
            payoff_max_pct=tail.payoff_max_pct * cut,
            monthly_budget_pct=rate,
            rich_adjusted=rich,
        )
    spread = settings.templates.smoothing
    if regime is not None:
        rate = getattr(spread.monthly_budget_pct, regime.tier)
    return EffectiveTemplate(
        name=name,
        structure="put_spread",
        target_abs_delta=spread.long_abs_delta,
        short_abs_delta=spread.short_abs_delta,
        target_dte=spread.target_dte,
        min_strike_pct_of_spot=spread.min_strike_pct_of_spot,
        max_strike_pct_of_spot=spread.max_strike_pct_of_spot,
        scenario_move_pct=spread.scenario_move_pct,
        scenario_vol_shift_points=spread.scenario_vol_shift_points,
        payoff_min_pct=spread.payoff_min_pct,
        payoff_max_pct=spread.payoff_max_pct,
        monthly_budget_pct=rate,
        rich_adjusted=False,
    )


def floor_scenario(settings: HedgingSettings) -> tuple[Decimal, Decimal]:
    """(move %, vol shift points) at which the protection floor is measured.

    The move is ``caps.protection_floor_move_pct`` (-20 %); the vol shift is the
    tail_first template's (its scenario is the floor's own -20 %), whatever
    template is being sized.
    """
    return (
        settings.caps.protection_floor_move_pct,
        settings.templates.tail_first.scenario_vol_shift_points,
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """The contract (or spread) the selection proposes, per contract, in dollars."""

    premium_per_contract: Decimal  # the most one contract may cost (max limit price x 100)
    payoff_per_contract: Decimal  # scenario payoff at the template scenario, net of premium
    # Payoff at the floor scenario; None when it is the template scenario (tail_first).
    floor_payoff_per_contract: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SizingInputs:
    """What the evaluator fetched; every field explicit so nothing defaults into a trade."""

    nav: Decimal
    exposure: ExposureReport
    regime: VolRegime | None  # None: no volatility index (missing data)
    month_to_date_spend: Decimal
    year_to_date_spend: Decimal
    active_hedges: int
    existing_payoff: Decimal  # payoff of the active hedges at the template scenario, dollars
    market_open: bool
    data_ok: bool  # quotes fresh and complete
    hedging_enabled: bool  # runtime switch (settings.enabled is checked as well)
    kill_switch_tripped: bool
    candidate: Candidate | None
    # Existing payoff at the floor scenario; None when it is the template scenario.
    existing_floor_payoff: Decimal | None = None
    template: TemplateName | None = None  # None: settings.template


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """The four limits on today's premium, in dollars (rounded down to the cent)."""

    tier_budget: Decimal
    monthly_remaining: Decimal
    annual_remaining: Decimal
    per_position_cap: Decimal

    @property
    def budget(self) -> Decimal:
        return min(
            self.tier_budget, self.monthly_remaining, self.annual_remaining, self.per_position_cap
        )

    @property
    def binding(self) -> str:
        """The limit that sets the budget (the first in hierarchy order on a tie)."""
        for name, value in (
            ("tier_budget", self.tier_budget),
            ("monthly_cap", self.monthly_remaining),
            ("annual_cap", self.annual_remaining),
            ("per_position_cap", self.per_position_cap),
        ):
            if value == self.budget:
                return name
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class SizingDecision:
    """What to buy (contracts may be 0) and every figure behind it, for the audit trail."""

    template: TemplateName
    contracts: int
    premium: Decimal  # contracts x premium per contract: what this decision may spend
    skip_reason: str | None
    multiplier: Decimal
    tier: str | None
    rich: bool
    rich_adjusted: bool
    limits: BudgetLimits | None
    budget: Decimal | None
    binding_constraint: str | None
    target_payoff: Decimal | None  # dollars at the template scenario
    band_max_payoff: Decimal | None
    existing_payoff: Decimal
    contracts_for_target: int | None
    contracts_affordable: int | None
    affordable_payoff: Decimal | None  # new payoff the whole budget would buy
    projected_payoff: Decimal | None  # existing + decided, template scenario
    floor: Decimal | None  # protection floor, dollars
    projected_floor_payoff: Decimal | None
    shortfall: Decimal | None  # floor - projected floor payoff, >= 0
    floor_met: bool | None
    fallback_applied: ShortfallFallback | None
    switch_template_to: TemplateName | None
    year_to_date_pct_after: Decimal | None  # YTD spend incl. this decision, % NAV
    annual_band: AnnualBand | None  # YTD after vs the 2-5 % target band


def _pct_of(nav: Decimal, pct: Decimal) -> Decimal:
    return nav * pct / _HUNDRED


def _cents_down(value: Decimal) -> Decimal:
    return max(Decimal(0), value).quantize(_CENT, rounding=ROUND_FLOOR)


def budget_limits(
    nav: Decimal,
    tier_rate_pct: Decimal,
    multiplier: Decimal,
    month_to_date: Decimal,
    year_to_date: Decimal,
    caps: Caps,
) -> BudgetLimits:
    """Tier target and what each hard cap still allows (never negative)."""
    return BudgetLimits(
        tier_budget=_cents_down(_pct_of(nav, tier_rate_pct) * multiplier),
        monthly_remaining=_cents_down(_pct_of(nav, caps.monthly_pct) - month_to_date),
        annual_remaining=_cents_down(_pct_of(nav, caps.annual_pct) - year_to_date),
        per_position_cap=_cents_down(_pct_of(nav, caps.per_position_pct)),
    )


def _check(inputs: SizingInputs) -> None:
    """Programming errors, not market conditions: refuse loudly rather than size on them."""
    problems = []
    money = {
        "nav": inputs.nav,
        "month_to_date_spend": inputs.month_to_date_spend,
        "year_to_date_spend": inputs.year_to_date_spend,
        "existing_payoff": inputs.existing_payoff,
    }
    if inputs.existing_floor_payoff is not None:
        money["existing_floor_payoff"] = inputs.existing_floor_payoff
    problems += [f"{k} must be finite, got {v}" for k, v in money.items() if not v.is_finite()]
    if inputs.month_to_date_spend < 0 or inputs.year_to_date_spend < 0:
        problems.append("spend to date cannot be negative")
    if inputs.active_hedges < 0:
        problems.append("active_hedges cannot be negative")
    if inputs.exposure.nav != inputs.nav:
        problems.append(f"exposure report NAV {inputs.exposure.nav} is not the NAV {inputs.nav}")
    cand = inputs.candidate
    if cand is not None:
        if not (cand.premium_per_contract.is_finite() and cand.premium_per_contract > 0):
            problems.append(
                f"candidate premium per contract must be positive, got {cand.premium_per_contract}"
            )
        payoffs = [cand.payoff_per_contract, cand.floor_payoff_per_contract]
        if any(p is not None and not p.is_finite() for p in payoffs):
            problems.append("candidate payoffs must be finite")
    if problems:
        raise ValueError("; ".join(problems))


def skip_reason(
    inputs: SizingInputs, settings: HedgingSettings, limits: BudgetLimits | None
) -> str | None:
    """The first skip condition that holds (module docstring for the order), else None."""
    skip = settings.skip
    if not (settings.enabled and inputs.hedging_enabled):
        return "hedging_disabled"
    if inputs.kill_switch_tripped:
        return "kill_switch"
    if not inputs.market_open:
        return "market_closed"
    if not inputs.data_ok:
        return "stale_data"
    if inputs.regime is None:
        return "missing_data"
    if inputs.nav < skip.min_nav or limits is None:  # no limits only when NAV <= 0
        return "nav_below_minimum"
    if inputs.exposure.equity_position_count == 0:
        return "no_equity_positions"
    if inputs.exposure.leverage < skip.min_exposure_ratio:
        return "exposure_below_minimum"
    if inputs.active_hedges >= skip.max_active_hedges:
        return "max_active_hedges"
    if limits.annual_remaining <= 0:
        return "annual_cap_reached"
    if limits.monthly_remaining <= 0:
        return "monthly_cap_reached"
    if inputs.candidate is None:
        return "no_suitable_contract"
    return None


def _whole(value: Decimal, rounding: str) -> int:
    return int(value.to_integral_value(rounding=rounding))


def _annual_band(pct: Decimal, caps: Caps) -> AnnualBand:
    if pct < caps.target_band_min_pct:
        return "below"
    if pct > caps.target_band_max_pct:
        return "above"
    return "within"


class _Shared(TypedDict):
    """The decision fields known before (or without) sizing."""

    template: TemplateName
    multiplier: Decimal
    tier: str | None
    rich: bool
    rich_adjusted: bool
    limits: BudgetLimits | None
    budget: Decimal | None
    existing_payoff: Decimal
    floor: Decimal | None


def _floor_inputs(
    inputs: SizingInputs, template: EffectiveTemplate, settings: HedgingSettings
) -> tuple[Decimal, Decimal | None] | None:
    """(existing book payoff, new payoff per contract) at the floor scenario, or None if unknown.

    When the template is sized at the floor's own move (tail_first) the
    template figures serve; otherwise the caller must pass them.
    """
    same = template.scenario_move_pct == floor_scenario(settings)[0]
    existing = inputs.existing_floor_payoff
    if existing is None:
        if not same:
            return None
        existing = inputs.existing_payoff
    cand = inputs.candidate
    per: Decimal | None = None
    if cand is not None:
        per = cand.floor_payoff_per_contract
        if per is None and same:
            per = cand.payoff_per_contract
    return existing, per


def size_hedge(inputs: SizingInputs, settings: HedgingSettings) -> SizingDecision:
    """Decide how many contracts of the candidate to buy today (module docstring for the rules)."""
    _check(inputs)
    name: TemplateName = inputs.template or settings.template
    template = effective_template(settings, inputs.regime, name)
    nav = inputs.nav
    caps = settings.caps
    limits = None
    if template.monthly_budget_pct is not None and nav > 0:
        limits = budget_limits(
            nav,
            template.monthly_budget_pct,
            inputs.exposure.multiplier,
            inputs.month_to_date_spend,
            inputs.year_to_date_spend,
            caps,
        )
    floor = _pct_of(nav, caps.protection_floor_pct).quantize(_CENT) if nav > 0 else None
    shared: _Shared = {
        "template": name,
        "multiplier": inputs.exposure.multiplier,
        "tier": inputs.regime.tier if inputs.regime is not None else None,
        "rich": inputs.regime is not None and inputs.regime.rich,
        "rich_adjusted": template.rich_adjusted,
        "limits": limits,
        "budget": limits.budget if limits is not None else None,
        "existing_payoff": inputs.existing_payoff,
        "floor": floor,
    }
    floor_inputs = _floor_inputs(inputs, template, settings)
    reason = skip_reason(inputs, settings, limits)
    if reason is not None:
        return _skipped(reason, shared, floor_inputs)
    assert limits is not None and inputs.candidate is not None and floor is not None
    cand = inputs.candidate
    existing_floor, per_floor = floor_inputs if floor_inputs is not None else (None, None)
    if existing_floor is None or per_floor is None:
        raise ValueError(
            f"the {name} scenario ({template.scenario_move_pct} %) is not the floor's "
            f"({floor_scenario(settings)[0]} %): pass existing_floor_payoff and "
            "the candidate's floor_payoff_per_contract"
        )

    # Payoff first: the fewest contracts that reach the target, within what the budget affords.
    target = _pct_of(nav, template.payoff_min_pct)
    per = cand.payoff_per_contract
    if inputs.existing_payoff >= target:
        for_target = 0
    elif per <= 0:
        return _skipped("no_suitable_contract", shared, floor_inputs)  # pays nothing in a crash
    else:
        for_target = _whole((target - inputs.existing_payoff) / per, ROUND_CEILING)
    budget = limits.budget
    affordable = _whole(budget / cand.premium_per_contract, ROUND_FLOOR)
    while affordable > 0 and affordable * cand.premium_per_contract > budget:
        affordable -= 1  # guards the invariant against rounding in the division
    contracts = min(for_target, affordable)
    binding = "payoff_target" if for_target <= affordable else limits.binding

    # The floor: a fallback only for a purchase that even the whole budget could not lift to it.
    fallback: ShortfallFallback | None = None
    switch_to: TemplateName | None = None
    reason = None
    reachable = existing_floor + affordable * per_floor >= floor
    if for_target > 0 and not reachable:
        fallback = caps.shortfall_fallback
        if fallback == "switch_template" and name == "smoothing":
            fallback = "clip_and_report"  # nothing cheaper to switch to
        if fallback == "switch_template":
            contracts, switch_to, reason = 0, "smoothing", "switch_template"
        elif fallback == "skip":
            contracts, reason = 0, "protection_floor_unreachable"
    if contracts == 0 and reason is None:
        reason = "payoff_target_met" if for_target == 0 else "budget_below_one_contract"

    premium = contracts * cand.premium_per_contract
    projected_floor = existing_floor + contracts * per_floor
    ytd_after = _HUNDRED * (inputs.year_to_date_spend + premium) / nav
    return SizingDecision(
        **shared,
        contracts=contracts,
        premium=premium,
        skip_reason=reason,
        binding_constraint=binding,
        target_payoff=target.quantize(_CENT),
        band_max_payoff=_pct_of(nav, template.payoff_max_pct).quantize(_CENT),
        contracts_for_target=for_target,
        contracts_affordable=affordable,
        affordable_payoff=affordable * per,
        projected_payoff=inputs.existing_payoff + contracts * per,
        projected_floor_payoff=projected_floor,
        shortfall=max(Decimal(0), floor - projected_floor),
        floor_met=projected_floor >= floor,
        fallback_applied=fallback,
        switch_template_to=switch_to,
        year_to_date_pct_after=ytd_after.quantize(Decimal("0.0001")),
        annual_band=_annual_band(ytd_after, caps),
    )


def _skipped(
    reason: str, shared: _Shared, floor_inputs: tuple[Decimal, Decimal | None] | None
) -> SizingDecision:
    """Nothing bought; the existing book's floor shortfall is still reported when known."""
    floor = shared["floor"]
    existing = floor_inputs[0] if floor_inputs is not None else None
    shortfall: Decimal | None = None
    floor_met: bool | None = None
    if floor is not None and existing is not None:
        shortfall, floor_met = max(Decimal(0), floor - existing), existing >= floor
    return SizingDecision(
        **shared,
        contracts=0,
        premium=Decimal(0),
        skip_reason=reason,
        binding_constraint=None,
        target_payoff=None,
        band_max_payoff=None,
        contracts_for_target=None,
        contracts_affordable=None,
        affordable_payoff=None,
        projected_payoff=None,
        projected_floor_payoff=existing,
        shortfall=shortfall,
        floor_met=floor_met,
        fallback_applied=None,
        switch_template_to=None,
        year_to_date_pct_after=None,
        annual_band=None,
    )
