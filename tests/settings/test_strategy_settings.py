"""Validation of the hedging, income and risk sections through the real loader.

Each rule gets a failing TOML example: the loader must refuse it with a
ConfigError naming the dotted path and saying what is wrong.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import annotated_types
import pytest
from pydantic import BaseModel

from alchemiser.settings import ConfigError, ConfigProblem, LoadedSettings, load_settings
from alchemiser.settings.core import (
    BrokerSettings,
    LoggingSettings,
    QueueSettings,
    ScheduleSettings,
    SimSettings,
    WebSettings,
)
from alchemiser.settings.hedging import HedgingSettings
from alchemiser.settings.income import CREDIT_RATINGS, CreditRating, IncomeSettings
from alchemiser.settings.risk import RiskSettings

SECTIONS: dict[str, type[BaseModel]] = {
    "hedging": HedgingSettings,
    "income": IncomeSettings,
    "risk": RiskSettings,
}
# The daemon's own sections that carry numeric bounds: swept with the same rule below.
CORE_SECTIONS: dict[str, type[BaseModel]] = {
    "broker": BrokerSettings,
    "queue": QueueSettings,
    "schedule": ScheduleSettings,
    "logging": LoggingSettings,
    "web": WebSettings,
    "sim": SimSettings,
}


def load_toml(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> LoadedSettings:
    path = tmp_path / "alchemiser.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_settings(path, env=env or {})


def problems_of(
    tmp_path: Path, text: str, env: dict[str, str] | None = None
) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_toml(tmp_path, text, env)
    return info.value.problems


def assert_problem(problems: list[ConfigProblem], path: str, fragment: str) -> None:
    listed = "\n".join(str(p) for p in problems)
    assert any(p.path == path and fragment in p.message for p in problems), (
        f"no problem at {path!r} containing {fragment!r}; got:\n{listed}"
    )


# --- single-field rules: types, bounds, choices, formats -----------------------------------

FIELD_CASES = [
    # hedging
    ("[hedging]\ntemplate = 'collar'", "hedging.template", "'tail_first' or 'smoothing'"),
    ("[hedging]\nenabled = 'maybe'", "hedging.enabled", "valid boolean"),
    ("[hedging.caps]\nmonthly_pct = 0", "hedging.caps.monthly_pct", "greater than 0"),
    ("[hedging.caps]\nmonthly_pct = nan", "hedging.caps.monthly_pct", "finite number"),
    ("[hedging.caps]\nannual_pct = 101", "hedging.caps.annual_pct", "less than or equal to 100"),
    ("[hedging.caps]\nper_position_pct = -1", "hedging.caps.per_position_pct", "greater than 0"),
    (
        "[hedging.caps]\nprotection_floor_move_pct = 20",
        "hedging.caps.protection_floor_move_pct",
        "less than 0",
    ),
    (
        "[hedging.caps]\nshortfall_fallback = 'panic'",
        "hedging.caps.shortfall_fallback",
        "'clip_and_report', 'switch_template' or 'skip'",
    ),
    ("[hedging.caps]\nmonthly = 0.3", "hedging.caps.monthly", "unknown setting"),
    ("[hedging.vol_tiers]\nlow_below = 0", "hedging.vol_tiers.low_below", "greater than 0"),
    (
        "[hedging.templates.tail_first]\ntarget_abs_delta = 1",
        "hedging.templates.tail_first.target_abs_delta",
        "less than 1",
    ),
    (
        "[hedging.templates.tail_first]\ntarget_abs_delta = -0.15",
        "hedging.templates.tail_first.target_abs_delta",
        "greater than 0",
    ),
    (
        "[hedging.templates.tail_first]\ntarget_dte = 90.5",
        "hedging.templates.tail_first.target_dte",
        "valid integer",
    ),
    (
        "[hedging.templates.tail_first]\nmax_strike_pct_of_spot = 105",
        "hedging.templates.tail_first.max_strike_pct_of_spot",
        "less than or equal to 100",
    ),
    (
        "[hedging.templates.smoothing]\nscenario_move_pct = -100",
        "hedging.templates.smoothing.scenario_move_pct",
        "greater than -100",
    ),
    (
        "[hedging.templates.smoothing.monthly_budget_pct]\nlow = -0.1",
        "hedging.templates.smoothing.monthly_budget_pct.low",
        "greater than or equal to 0",
    ),
    ("[hedging.rich_iv]\npayoff_cut_pct = 100", "hedging.rich_iv.payoff_cut_pct", "less than 100"),
    ("[hedging.vol_index]\nvixy_scale = 0", "hedging.vol_index.vixy_scale", "greater than 0"),
    ("[hedging.vol_index]\nvixy_scale = 'ten'", "hedging.vol_index.vixy_scale", "decimal"),
    (
        "[hedging.vol_index]\nchain_underlying = 'spy'",
        "hedging.vol_index.chain_underlying",
        "not a ticker symbol",
    ),
    ("[hedging.skip]\nmin_nav = -1", "hedging.skip.min_nav", "greater than or equal to 0"),
    (
        "[hedging.skip]\nmax_active_hedges = 0",
        "hedging.skip.max_active_hedges",
        "greater than or equal to 1",
    ),
    (
        "[hedging.underlying.sector_etfs]\nTechnology = ['qqq']",
        "hedging.underlying.sector_etfs.Technology.0",
        "not a ticker symbol",
    ),
    (
        "[hedging.underlying]\nstatic_betas = { SPY = 1.0, QQQ = 0, IWM = 1.2 }",
        "hedging.underlying.static_betas",
        "betas must be above 0 and at most 10: QQQ = 0",
    ),
    (
        "[hedging.underlying]\npreferred_min_ratio = 1.2",
        "hedging.underlying.preferred_min_ratio",
        "less than or equal to 1",
    ),
    ("[hedging.liquidity]\nmin_mid = 0", "hedging.liquidity.min_mid", "greater than 0"),
    ("[hedging.liquidity]\nmax_spread = 0", "hedging.liquidity.max_spread", "greater than 0"),
    (
        "[hedging.tenor]\nprefer_longer_above_iv_percentile = 101",
        "hedging.tenor.prefer_longer_above_iv_percentile",
        "less than or equal to 100",
    ),
    (
        "[hedging.orders]\npoll_interval_seconds = 0",
        "hedging.orders.poll_interval_seconds",
        "greater than 0",
    ),
    (
        "[hedging.orders]\nlegging_retries = 11",
        "hedging.orders.legging_retries",
        "less than or equal to 10",
    ),
    (
        "[hedging.kill_switch]\nfailed_cycles = 0",
        "hedging.kill_switch.failed_cycles",
        "greater than or equal to 1",
    ),
    # income
    ("[income]\napproval = 'yolo'", "income.approval", "'auto' or 'manual'"),
    ("[income]\nwatch_list = ['aapl']", "income.watch_list.0", "not a ticker symbol"),
    (
        "[income]\nwatch_list = ['AAPL', 'MSFT', 'AAPL']",
        "income.watch_list",
        "lists AAPL more than once",
    ),
    ("[income]\nwatch_list = 'AAPL'", "income.watch_list", "valid list"),
    ("[income]\nreference_data_path = ''", "income.reference_data_path", "at least 1 character"),
    ("[income.covered_call]\nmin_delta = -0.2", "income.covered_call.min_delta", "greater than 0"),
    (
        "[income.covered_call]\nmax_iv_percentile = 120",
        "income.covered_call.max_iv_percentile",
        "less than or equal to 100",
    ),
    (
        "[income.cash_secured_put]\nmax_delta = 0.2",
        "income.cash_secured_put.max_delta",
        "less than 0",
    ),
    (
        "[income.cash_secured_put]\ncash_cover_pct = 50",
        "income.cash_secured_put.cash_cover_pct",
        "greater than or equal to 100",
    ),
    (
        "[income.cash_secured_put]\nmin_credit_rating = 'BBB+++'",
        "income.cash_secured_put.min_credit_rating",
        "'BBB+'",
    ),
    ("[income.decision]\nmin_score = 11", "income.decision.min_score", "less than or equal to 10"),
    (
        "[income.management]\nstop_loss_credit_multiple = 1",
        "income.management.stop_loss_credit_multiple",
        "greater than 1",
    ),
    (
        "[income.management]\ntake_profit_pct = 0",
        "income.management.take_profit_pct",
        "greater than 0",
    ),
    (
        "[income.management]\nnear_expiry_action = 'hope'",
        "income.management.near_expiry_action",
        "'roll' or 'close'",
    ),
    (
        "[income.orders]\nmax_slippage_pct = 60",
        "income.orders.max_slippage_pct",
        "less than or equal to 50",
    ),
    # risk
    ("[risk]\nmax_trade_pct = 0", "risk.max_trade_pct", "greater than 0"),
    ("[risk]\nvar_confidence = 1", "risk.var_confidence", "less than 1"),
    ("[risk]\nvar_confidence = 95", "risk.var_confidence", "less than 1"),
    ("[risk]\nenabled = false", "risk.enabled", "unknown setting"),
    (
        "[risk.alerts]\nescalate_warning_after_minutes = -5",
        "risk.alerts.escalate_warning_after_minutes",
        "greater than or equal to 0",
    ),
    (
        "[risk.alerts]\ndaily_loss_limit_pct = 0",
        "risk.alerts.daily_loss_limit_pct",
        "greater than 0",
    ),
    (
        "[[risk.stress_scenarios]]\nname = 'Index Down'\nindex_move_pct = -10",
        "risk.stress_scenarios.0.name",
        "should match pattern",
    ),
    (
        "[[risk.stress_scenarios]]\nindex_move_pct = -10",
        "risk.stress_scenarios.0.name",
        "Field required",
    ),
    (
        "[[risk.stress_scenarios]]\nname = 'wipeout'\nindex_move_pct = -100",
        "risk.stress_scenarios.0.index_move_pct",
        "greater than -100",
    ),
    (
        "[[risk.stress_scenarios]]\nname = 'ok'\nindex_move_pct = -10\n"
        "[[risk.stress_scenarios]]\nname = 'bad'\nvol_shift_pct = -100",
        "risk.stress_scenarios.1.vol_shift_pct",
        "greater than -100",
    ),
]


@pytest.mark.parametrize(
    ("toml", "path", "fragment"), FIELD_CASES, ids=[c[1] + ":" + c[2] for c in FIELD_CASES]
)
def test_field_rule_is_enforced(tmp_path: Path, toml: str, path: str, fragment: str) -> None:
    assert_problem(problems_of(tmp_path, toml), path, fragment)


# --- cross-field rules --------------------------------------------------------------------

CROSS_CASES = [
    # hedging.vol_tiers
    (
        "[hedging.vol_tiers]\nlow_below = 30",
        "hedging.vol_tiers",
        "thresholds must increase: low_below (30) must be below high_above (28) "
        "and high_above below rich_above (35)",
    ),
    (
        "[hedging.vol_tiers]\nrich_above = 25",
        "hedging.vol_tiers",
        "high_above below rich_above (25)",
    ),
    (
        "[hedging.vol_tiers]\nhigh_above = 18",
        "hedging.vol_tiers",
        "low_below (18) must be below high_above (18)",
    ),
    # hedging.exposure_multiplier
    (
        "[hedging.exposure_multiplier]\nmaximum = 0.9",
        "hedging.exposure_multiplier",
        "maximum (0.9) must not be below base (1)",
    ),
    # hedging.caps
    (
        "[hedging.caps]\nmonthly_pct = 5",
        "hedging.caps",
        "monthly_pct (5) must not be above annual_pct (4)",
    ),
    (
        "[hedging.caps]\nper_position_pct = 4.5",
        "hedging.caps",
        "per_position_pct (4.5) must not be above annual_pct (4)",
    ),
    (
        "[hedging.caps]\ntarget_band_min_pct = 6",
        "hedging.caps",
        "target_band_min_pct (6) must not be above target_band_max_pct (5)",
    ),
    # hedging.templates.*
    (
        "[hedging.templates.tail_first.monthly_budget_pct]\nmid = 0.9",
        "hedging.templates.tail_first.monthly_budget_pct",
        "need low >= mid >= high, got low 0.8, mid 0.9, high 0.3",
    ),
    (
        "[hedging.templates.smoothing.monthly_budget_pct]\nhigh = 0.3",
        "hedging.templates.smoothing.monthly_budget_pct",
        "low >= mid >= high",
    ),
    (
        "[hedging.templates.tail_first]\nroll_below_dte = 90",
        "hedging.templates.tail_first",
        "roll_below_dte (90) must be below target_dte (90)",
    ),
    (
        "[hedging.templates.tail_first]\ncritical_dte = 45",
        "hedging.templates.tail_first",
        "critical_dte (45) must be below roll_below_dte (45)",
    ),
    (
        "[hedging.templates.tail_first]\nmin_strike_pct_of_spot = 95",
        "hedging.templates.tail_first",
        "strike range is empty: min_strike_pct_of_spot (95) must be below max_strike_pct_of_spot (95)",
    ),
    (
        "[hedging.templates.tail_first]\npayoff_min_pct = 11",
        "hedging.templates.tail_first",
        "payoff_min_pct (11) must not be above payoff_max_pct (10)",
    ),
    (
        "[hedging.templates.smoothing]\nshort_abs_delta = 0.30",
        "hedging.templates.smoothing",
        "long_abs_delta (0.3) must be above short_abs_delta (0.3)",
    ),
    (
        "[hedging.templates.smoothing]\nroll_long_abs_delta_above = 0.25",
        "hedging.templates.smoothing",
        "roll_long_abs_delta_above (0.25) must be above long_abs_delta (0.3)",
    ),
    (
        "[hedging.templates.smoothing]\nroll_short_abs_delta_above = 0.1",
        "hedging.templates.smoothing",
        "roll_short_abs_delta_above (0.1) must be above short_abs_delta (0.1)",
    ),
    (
        "[hedging.templates.smoothing]\nroll_every_days_held = 60",
        "hedging.templates.smoothing",
        "roll_every_days_held (60) must be below target_dte (60)",
    ),
    (
        "[hedging.templates.smoothing]\nmax_strike_pct_of_spot = 70",
        "hedging.templates.smoothing",
        "strike range is empty",
    ),
    (
        "[hedging.templates.smoothing]\npayoff_min_pct = 5",
        "hedging.templates.smoothing",
        "payoff_min_pct (5) must not be above payoff_max_pct (4)",
    ),
    # hedging.iv_percentile / underlying
    (
        "[hedging.iv_percentile]\nmin_observations = 300",
        "hedging.iv_percentile",
        "min_observations (300) must not be above window_sessions (252)",
    ),
    (
        "[hedging.underlying.sector_etfs]\nTechnology = ['QQQ', 'QQQ']",
        "hedging.underlying.sector_etfs",
        "sector 'Technology' lists an ETF twice",
    ),
    (
        "[hedging.underlying.sector_etfs]\nTechnology = []",
        "hedging.underlying.sector_etfs",
        "sector 'Technology' has no ETF",
    ),
    (
        "[hedging.underlying]\nstatic_betas = { SPY = 1.0 }",
        "hedging.underlying",
        "static_betas has no beta for IWM, QQQ",
    ),
    (
        "[hedging.underlying]\npreferred = 'DIA'",
        "hedging.underlying",
        "static_betas has no beta for DIA",
    ),
    (
        "[hedging.underlying]\nrolling_beta_min_observations = 300",
        "hedging.underlying",
        "rolling_beta_min_observations (300) must not be above rolling_beta_window_sessions (252)",
    ),
    # hedging.liquidity / tenor / scoring / orders
    (
        "[hedging.liquidity]\nmin_dte = 200",
        "hedging.liquidity",
        "min_dte (200) must not be above max_dte (180)",
    ),
    (
        "[hedging.tenor]\nlow_vol_min_dte = 100",
        "hedging.tenor",
        "low_vol_min_dte (100) must not be above low_vol_max_dte (90)",
    ),
    (
        "[hedging.tenor]\nrich_max_dte = 100",
        "hedging.tenor",
        "rich_min_dte (120) must not be above rich_max_dte (100)",
    ),
    (
        "[hedging.scoring]\nconvexity_weight = 0.6",
        "hedging.scoring",
        "the score weights must add up to 1: convexity_weight (0.6) + payoff_weight (0.5) = 1.1",
    ),
    (
        "[hedging.scoring]\nfallback_spread_weight = 0.1",
        "hedging.scoring",
        "the fallback score weights must add up to 1",
    ),
    (
        "[hedging.orders]\nfirst_wait_seconds = 1",
        "hedging.orders",
        "poll_interval_seconds (2.0) must not be above first_wait_seconds (1)",
    ),
    # hedging (across sub-sections)
    (
        "[hedging.rich_iv]\nabs_delta_shift = 0.15",
        "hedging",
        "hedging.templates.tail_first.target_abs_delta (0.15) minus hedging.rich_iv.abs_delta_shift (0.15) must stay above 0",
    ),
    (
        "[hedging.templates.tail_first]\ntarget_dte = 200",
        "hedging",
        "hedging.templates.tail_first.target_dte (200) is outside the tradable range",
    ),
    (
        "[hedging.rich_iv]\nextra_dte = 100",
        "hedging",
        "hedging.templates.tail_first.target_dte + hedging.rich_iv.extra_dte (190) is outside",
    ),
    (
        "[hedging.liquidity]\nmin_dte = 70",
        "hedging",
        "hedging.templates.smoothing.target_dte (60) is outside the tradable range "
        "hedging.liquidity.min_dte..max_dte (70..180)",
    ),
    (
        "[hedging.liquidity]\nmax_dte = 150",
        "hedging",
        "hedging.tenor.rich_max_dte (180) is outside",
    ),
    # income
    (
        "[income.covered_call]\nmin_delta = 0.4",
        "income.covered_call",
        "min_delta (0.4) must not be above max_delta (0.35)",
    ),
    (
        "[income.covered_call]\nmin_iv_percentile = 70",
        "income.covered_call",
        "min_iv_percentile (70) must not be above max_iv_percentile (60)",
    ),
    (
        "[income.covered_call]\nmin_dte = 100",
        "income.covered_call",
        "min_dte (100) must not be above max_dte (90)",
    ),
    (
        "[income.cash_secured_put]\nmin_delta = -0.1",
        "income.cash_secured_put",
        "min_delta (-0.1) must not be above max_delta (-0.15)",
    ),
    (
        "[income.cash_secured_put]\nmax_dte = 20",
        "income.cash_secured_put",
        "min_dte (30) must not be above max_dte (20)",
    ),
    (
        "[income.decision]\nquant_weight = 0.8",
        "income.decision",
        "the decision weights must add up to 1: quant_weight (0.8) + advisor_weight (0.2) "
        "+ portfolio_fit_weight (0.1) = 1.1",
    ),
    (
        "[income.management]\nroll_or_close_at_dte = 30",
        "income",
        "income.management.roll_or_close_at_dte (30) must be below income.covered_call.min_dte (30)",
    ),
    (
        "[income.cash_secured_put]\nmin_dte = 5",
        "income",
        "must be below income.cash_secured_put.min_dte (5)",
    ),
    # risk
    (
        "[risk]\nmin_history_sessions = 300",
        "risk",
        "min_history_sessions (300) must not be above history_sessions (252)",
    ),
    (
        "[[risk.stress_scenarios]]\nname = 'crash'\nindex_move_pct = -20\n"
        "[[risk.stress_scenarios]]\nname = 'crash'\nindex_move_pct = -30",
        "risk.stress_scenarios",
        "scenario names must be unique: crash used more than once",
    ),
    (
        "[[risk.stress_scenarios]]\nname = 'nothing'",
        "risk.stress_scenarios.0",
        "stress scenario 'nothing' changes nothing",
    ),
]


@pytest.mark.parametrize(
    ("toml", "path", "fragment"), CROSS_CASES, ids=[c[1] + ":" + c[2][:40] for c in CROSS_CASES]
)
def test_cross_field_rule_is_enforced(tmp_path: Path, toml: str, path: str, fragment: str) -> None:
    problems = problems_of(tmp_path, toml)
    assert_problem(problems, path, fragment)
    assert all(p.source == str(tmp_path / "alchemiser.toml") for p in problems)


# --- every numeric bound of the three sections, swept -------------------------------------


def _bounded_fields(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, bound, annotation) for every ge/gt/le/lt on a plain field, recursively."""
    for name, field in model.model_fields.items():
        dotted = f"{prefix}.{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _bounded_fields(annotation, dotted)
            continue
        for bound in field.metadata:
            if isinstance(
                bound,
                annotated_types.Gt | annotated_types.Ge | annotated_types.Lt | annotated_types.Le,
            ):
                yield dotted, bound, annotation


def _violating(bound: Any, annotation: Any) -> tuple[str, str]:
    """A TOML literal just outside the bound, and the words pydantic uses for it."""
    step = 1 if annotation is int else Decimal("0.001")
    if isinstance(bound, annotated_types.Gt):
        return str(bound.gt), f"greater than {bound.gt}"
    if isinstance(bound, annotated_types.Ge):
        return str(bound.ge - step), f"greater than or equal to {bound.ge}"
    if isinstance(bound, annotated_types.Lt):
        return str(bound.lt), f"less than {bound.lt}"
    return str(bound.le + step), f"less than or equal to {bound.le}"


ALL_SECTIONS = {**SECTIONS, **CORE_SECTIONS}
BOUNDS = [item for name, model in ALL_SECTIONS.items() for item in _bounded_fields(model, name)]


def test_the_sweep_sees_the_bounds() -> None:
    assert len(BOUNDS) > 160
    assert {b[0].split(".")[0] for b in BOUNDS} == set(ALL_SECTIONS)


@pytest.mark.parametrize(
    ("path", "bound", "annotation"), BOUNDS, ids=[f"{b[0]}:{b[1]!r}" for b in BOUNDS]
)
def test_every_bound_rejects_the_value_just_outside(
    tmp_path: Path, path: str, bound: Any, annotation: Any
) -> None:
    table, _, key = path.rpartition(".")
    literal, words = _violating(bound, annotation)
    assert_problem(problems_of(tmp_path, f"[{table}]\n{key} = {literal}\n"), path, words)


# --- precedence, warnings, valid edits ----------------------------------------------------


def test_env_override_beats_the_file_and_keeps_sibling_file_values(tmp_path: Path) -> None:
    loaded = load_toml(
        tmp_path,
        """
        [hedging.caps]
        monthly_pct = 0.30
        annual_pct = 3.5
        """,
        env={"ALCHEMISER__HEDGING__CAPS__MONTHLY_PCT": "0.25"},
    )
    caps = loaded.settings.hedging.caps
    assert caps.monthly_pct == Decimal("0.25")  # environment wins
    assert caps.annual_pct == Decimal("3.5")  # the file's other key in that table survives
    assert caps.per_position_pct == Decimal("2")  # untouched key keeps its default


def test_env_override_of_nested_lists_maps_and_unset_values(tmp_path: Path) -> None:
    loaded = load_toml(
        tmp_path,
        "[hedging.vol_index]\nvixy_scale = 9.5\n",
        env={
            "ALCHEMISER__HEDGING__VOL_INDEX__VIXY_SCALE": "",  # empty = not set = fallback off
            "ALCHEMISER__INCOME__WATCH_LIST": '["AAPL", "MSFT"]',
            "ALCHEMISER__HEDGING__TEMPLATES__TAIL_FIRST__MONTHLY_BUDGET_PCT__LOW": "0.9",
            "ALCHEMISER__RISK__STRESS_SCENARIOS": '[{"name": "crash", "index_move_pct": "-40"}]',
        },
    )
    s = loaded.settings
    assert s.hedging.vol_index.vixy_scale is None
    assert s.income.watch_list == ["AAPL", "MSFT"]
    assert s.hedging.templates.tail_first.monthly_budget_pct.low == Decimal("0.9")
    assert s.hedging.templates.tail_first.monthly_budget_pct.mid == Decimal("0.50")
    assert [(x.name, x.index_move_pct) for x in s.risk.stress_scenarios] == [
        ("crash", Decimal(-40))
    ]


def test_a_bad_env_override_is_named_by_its_variable(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "", env={"ALCHEMISER__HEDGING__CAPS__MONTHLY_PCT": "4.5"})
    assert_problem(problems, "hedging.caps", "monthly_pct (4.5) must not be above annual_pct (4)")
    assert problems[0].source.startswith("ALCHEMISER__HEDGING__CAPS")


def test_monthly_times_twelve_warning_fires_by_default_and_goes_when_fixed(tmp_path: Path) -> None:
    default = load_toml(tmp_path, "")
    assert (
        "hedging.caps: monthly cap × 12 (4.2 %) is above the annual cap (4 %): "
        "the annual cap will bind first"
    ) in default.warnings
    fixed = load_toml(tmp_path, "[hedging.caps]\nmonthly_pct = 0.30\n")
    assert not any("monthly cap × 12" in w for w in fixed.warnings)


WARNING_CASES = [
    (
        "[hedging.caps]\nannual_pct = 1.5\nmonthly_pct = 0.1\nper_position_pct = 1",
        "below the target band's minimum (2 %)",
    ),
    ("[hedging.caps]\nannual_pct = 6", "above the target band's maximum (5 %)"),
    (
        "[hedging.templates.tail_first]\npayoff_min_pct = 3\npayoff_max_pct = 5",
        "hedging.templates.tail_first.payoff_max_pct (5 %) is below hedging.caps.protection_floor_pct (6 %)",
    ),
    (
        "[income.covered_call]\nallow_below_cost_basis = true",
        "may sell shares at a loss (up to 5 %",
    ),
    ("[risk]\nmax_trade_pct = 30", "risk.max_trade_pct (30 %) is above risk.max_sector_pct (25 %)"),
    ("[risk]\nstress_scenarios = []", "risk.stress_scenarios is empty"),
    ("", "income.watch_list is empty"),
]


@pytest.mark.parametrize(
    ("toml", "fragment"), WARNING_CASES, ids=[c[1][:40] for c in WARNING_CASES]
)
def test_questionable_but_allowed_combinations_warn(
    tmp_path: Path, toml: str, fragment: str
) -> None:
    loaded = load_toml(tmp_path, toml)  # loads: a warning is not an error
    assert any(fragment in w for w in loaded.warnings), loaded.warnings


def test_no_spurious_warnings_for_a_tidy_config(tmp_path: Path) -> None:
    loaded = load_toml(
        tmp_path,
        """
        [hedging.caps]
        monthly_pct = 0.33
        [income]
        watch_list = ["AAPL"]
        """,
    )
    assert loaded.warnings == []


def test_floor_warning_ignores_a_template_sized_at_another_scenario(tmp_path: Path) -> None:
    # Smoothing pays 2-4 % at -10 %; that says nothing about the floor at -20 %.
    loaded = load_toml(tmp_path, "[hedging]\ntemplate = 'smoothing'\n")
    assert not any("protection_floor_pct" in w for w in loaded.warnings)


def test_a_valid_edit_loads_with_its_values(tmp_path: Path) -> None:
    loaded = load_toml(
        tmp_path,
        """
        [hedging]
        template = "smoothing"
        [hedging.caps]
        monthly_pct = 0.30
        shortfall_fallback = "skip"
        [hedging.vol_index]
        vixy_scale = 9.5
        [hedging.underlying]
        static_betas = { SPY = 1.0, QQQ = 1.2, IWM = 1.25, DIA = 0.95 }
        [hedging.underlying.sector_etfs]
        "Technology" = ["QQQ"]
        "Industrials" = ["DIA", "SPY"]
        [income]
        approval = "auto"
        watch_list = ["AAPL", "BRK.B"]
        [income.cash_secured_put]
        min_credit_rating = "A-"
        [[risk.stress_scenarios]]
        name = "black_monday"
        index_move_pct = -22
        vol_shift_points = 60
        """,
    )
    s = loaded.settings
    assert s.hedging.template == "smoothing"
    assert s.hedging.caps.monthly_pct == Decimal("0.30")
    assert s.hedging.caps.shortfall_fallback == "skip"
    assert s.hedging.vol_index.vixy_scale == Decimal("9.5")
    assert s.hedging.underlying.sector_etfs == {
        "Technology": ["QQQ"],
        "Industrials": ["DIA", "SPY"],
    }
    assert s.income.approval == "auto"
    assert s.income.watch_list == ["AAPL", "BRK.B"]
    assert s.income.cash_secured_put.min_credit_rating == "A-"
    assert [x.name for x in s.risk.stress_scenarios] == ["black_monday"]
    assert s.risk.stress_scenarios[0].rate_shift_points == 0
    assert loaded.warnings == []


def test_sections_are_frozen(tmp_path: Path) -> None:
    caps = load_toml(tmp_path, "").settings.hedging.caps
    with pytest.raises(ValueError, match="frozen"):
        caps.monthly_pct = Decimal("1")  # type: ignore[misc]


def test_credit_rating_choices_match_the_ordered_scale() -> None:
    # The Literal (what the loader accepts) and the tuple (what the screen compares) must agree.
    assert get_args(CreditRating) == CREDIT_RATINGS
    assert CREDIT_RATINGS.index("BBB+") < CREDIT_RATINGS.index("BBB")
