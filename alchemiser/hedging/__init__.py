"""Tail hedging rules as pure functions: exposure, vol regime, payoff, sizing, selection, rolls.

No I/O, no clock reads, no database, no broker: the hedging services fetch
the data (positions, chains, spend to date, the time) and call these.
"""

from alchemiser.hedging.exposure import (
    EtfExposure,
    ExposureReport,
    PositionExposure,
    compute_exposure,
    exposure_multiplier,
)
from alchemiser.hedging.payoff import (
    HedgeHolding,
    HedgeLeg,
    hedge_book_payoff,
    scenario_moves,
    scenario_payoff,
    scenario_value,
)
from alchemiser.hedging.rolls import RollCheck, check_roll, is_expired, roll_reason
from alchemiser.hedging.selection import (
    NoSuitableContract,
    SelectedLeg,
    Selection,
    select_put,
    select_spread,
)
from alchemiser.hedging.sizing import (
    BudgetLimits,
    Candidate,
    EffectiveTemplate,
    SizingDecision,
    SizingInputs,
    effective_template,
    floor_scenario,
    size_hedge,
)
from alchemiser.hedging.vol_regime import (
    VolRegime,
    VolRegimeError,
    atm_iv,
    classify,
    current_regime,
    iv_percentile,
    regime_from_chain,
    regime_from_vixy,
)

__all__ = [
    "BudgetLimits",
    "Candidate",
    "EffectiveTemplate",
    "EtfExposure",
    "ExposureReport",
    "HedgeHolding",
    "HedgeLeg",
    "NoSuitableContract",
    "PositionExposure",
    "RollCheck",
    "SelectedLeg",
    "Selection",
    "SizingDecision",
    "SizingInputs",
    "VolRegime",
    "VolRegimeError",
    "atm_iv",
    "check_roll",
    "classify",
    "compute_exposure",
    "current_regime",
    "effective_template",
    "exposure_multiplier",
    "floor_scenario",
    "hedge_book_payoff",
    "is_expired",
    "iv_percentile",
    "regime_from_chain",
    "regime_from_vixy",
    "roll_reason",
    "scenario_moves",
    "scenario_payoff",
    "scenario_value",
    "select_put",
    "select_spread",
    "size_hedge",
]
