"""Risk measures as pure, vectorised functions: dollar greeks, VaR/ES, stress tests.

No I/O and no clock reads: callers pass the book, the valuation date, the rate
(continuous, 0.04 = 4 %; ``RiskSettings.risk_free_rate_pct`` / 100) and history.
Floats inside, money as Decimal in the results.
"""

from alchemiser.risk.book import (
    BookArrays,
    RiskPosition,
    Strategy,
    book_arrays,
    build_book,
    revalue,
)
from alchemiser.risk.greeks import (
    BookGreeks,
    GreekTotals,
    PositionGreeks,
    betas_from_reference,
    book_greeks,
)
from alchemiser.risk.stress import ScenarioResult, StressReport, stress_test
from alchemiser.risk.var import (
    HistoricalVar,
    ParametricVar,
    delta_gamma_var,
    historical_var,
    log_returns,
    scenario_pnl,
    var_es,
)

__all__ = [
    "BookArrays",
    "BookGreeks",
    "GreekTotals",
    "HistoricalVar",
    "ParametricVar",
    "PositionGreeks",
    "RiskPosition",
    "ScenarioResult",
    "Strategy",
    "StressReport",
    "betas_from_reference",
    "book_arrays",
    "book_greeks",
    "build_book",
    "delta_gamma_var",
    "historical_var",
    "log_returns",
    "revalue",
    "scenario_pnl",
    "stress_test",
    "var_es",
]
