"""The screens of PARAMETERS.md as named rules, each reporting pass/fail with the value measured.

``screen`` runs every rule of the candidate's kind, in the order of
``COVERED_CALL_RULES`` or ``CASH_SECURED_PUT_RULES``, without stopping at the
first failure, so a screen run can count what each rule removed. Each
``RuleResult`` carries the measured ``value`` and the ``limit`` as text a
person reads ("0.27" against "0.15–0.35"). Numbers are compared as shown:
a delta is rounded to 4 decimals; a yield, IV percentile, put-call ratio,
sector share and assignment-loss percent to 2 (half up), before the comparison.

Readings of PARAMETERS.md made here:

* unknown means fail, except where stated: an unknown open interest, delta,
  IV percentile (fewer than ``risk.min_history_sessions`` sessions of IV
  history), put-call ratio, sector average or credit rating fails; an unknown
  next earnings date passes (nothing is known to fall in the window); a call
  without a known cost basis passes the loss guard only with strike ≥ spot.
* loss guard (calls): with ``allow_below_cost_basis`` the assignment loss
  (cost basis − strike − premium) × shares must stay below
  ``max_assignment_loss_pct`` % of the position value (spot × the same shares),
  so it is measured per share: (cost basis − strike − mid) / spot × 100.
* earnings (puts): no next earnings date within [as of, expiry +
  ``earnings_buffer_days``], both ends inclusive.
* sector share (puts): the table says "≤ 20 % of cash-secured-put notional
  per sector". Against the current put notional the first put of any sector
  would always be 100 %, so we read it as a share of the capacity that secures
  puts, i.e. the account's cash (``SymbolFacts.csp_capacity``): open put
  notional in the sector + this trade's notional ≤ ``max_sector_share_pct`` %
  of it. This trade's notional is strike × 100 × ``contracts_for`` (at least
  one contract, so the rule still measures when eligibility fails). An unknown
  sector is a bucket of the symbol alone, as in the risk pre-trade check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from alchemiser.income.candidates import (
    SHARES_PER_CONTRACT,
    Candidate,
    SymbolFacts,
    contracts_by_cash,
    contracts_by_shares,
    contracts_by_size,
    contracts_for,
)
from alchemiser.settings.income import CREDIT_RATINGS, IncomeSettings
from alchemiser.settings.risk import RiskSettings

__all__ = [
    "CASH_SECURED_PUT_RULES",
    "COVERED_CALL_RULES",
    "RuleResult",
    "passed",
    "rules_for",
    "screen",
]

_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")
_DELTA_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's verdict: its name, pass/fail, the measured value and the bound, as text."""

    rule: str
    passed: bool
    value: str
    limit: str

    def as_json(self) -> dict[str, object]:
        return {"rule": self.rule, "passed": self.passed, "value": self.value, "limit": self.limit}


def passed(results: Sequence[RuleResult]) -> bool:
    """True when every rule passed (and there was at least one)."""
    return bool(results) and all(r.passed for r in results)


# ---------------------------------------------------------------------------- formatting


def _num(value: Decimal) -> str:
    """A number without exponent or trailing zeros: 2, 0.15, 1234.5."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _pct(value: Decimal) -> str:
    return f"{value:.2f} %"


def _band(low: Decimal, high: Decimal) -> str:
    """An inclusive range: "0.15–0.35", or "-0.35 to -0.15" when a minus sign would confuse."""
    if low < 0 or high < 0:
        return f"{_num(low)} to {_num(high)}"
    return f"{_num(low)}–{_num(high)}"


def _round(value: Decimal, places: Decimal) -> Decimal:
    return value.quantize(places, rounding=ROUND_HALF_UP)


def _delta(candidate: Candidate) -> Decimal | None:
    """The quote's delta as an exact Decimal of its shortest repr, rounded to 4 decimals."""
    if candidate.delta is None:
        return None
    return _round(Decimal(repr(candidate.delta)), _DELTA_PLACES)


# ---------------------------------------------------------------------------- shared rules


def _open_interest(candidate: Candidate, above: int) -> RuleResult:
    oi = candidate.snapshot.open_interest
    limit = f"> {above}"
    if oi is None:
        return RuleResult("open_interest", False, "unknown", limit)
    return RuleResult("open_interest", oi > above, str(oi), limit)


def _annual_yield(candidate: Candidate, above_pct: Decimal) -> RuleResult:
    value = candidate.annual_yield_pct
    return RuleResult("annual_yield", value > above_pct, _pct(value), f"> {_num(above_pct)} %")


def _delta_rule(candidate: Candidate, low: Decimal, high: Decimal) -> RuleResult:
    limit = _band(low, high)
    delta = _delta(candidate)
    if delta is None:
        return RuleResult("delta", False, "unknown", limit)
    return RuleResult("delta", low <= delta <= high, _num(delta), limit)


def _dte(candidate: Candidate, low: int, high: int) -> RuleResult:
    return RuleResult("dte", low <= candidate.dte <= high, str(candidate.dte), f"{low}–{high}")


# ---------------------------------------------------------------------------- covered calls


def cc_eligibility(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """≥ 1 contract: 100 free (not yet covered) shares per contract, within the per-trade size."""
    n = contracts_for(candidate, facts, income, risk)
    by_shares = contracts_by_shares(facts.shares_free)
    by_size = contracts_by_size(candidate.spot, facts.nav, risk)
    value = (
        f"{n} contract(s): {facts.shares_free} free shares cover {by_shares}, "
        f"{_num(risk.max_trade_pct)} % of NAV {_money(facts.nav)} allows {by_size}"
    )
    return RuleResult(
        "eligibility",
        n >= 1,
        value,
        f"≥ 1 contract ({SHARES_PER_CONTRACT} free shares each, ≤ {_num(risk.max_trade_pct)} % "
        "of NAV per trade)",
    )


def cc_open_interest(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Open interest above the threshold; unknown fails."""
    return _open_interest(candidate, income.covered_call.open_interest_above)


def cc_annual_yield(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Annualised premium yield on the spot above the threshold."""
    return _annual_yield(candidate, income.covered_call.annual_yield_above_pct)


def cc_delta(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Delta within min_delta..max_delta, inclusive; unknown fails."""
    cc = income.covered_call
    return _delta_rule(candidate, cc.min_delta, cc.max_delta)


def cc_iv_percentile(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """IV percentile within the band, inclusive; unknown (too little history) fails."""
    cc = income.covered_call
    limit = _band(cc.min_iv_percentile, cc.max_iv_percentile)
    pct = facts.iv_percentile
    if pct is None:
        return RuleResult(
            "iv_percentile",
            False,
            # The percentile needs hedging.iv_percentile.min_observations daily values.
            "unknown (not enough daily IV history yet)",
            limit,
        )
    shown = _round(pct, _CENT)
    return RuleResult(
        "iv_percentile",
        cc.min_iv_percentile <= shown <= cc.max_iv_percentile,
        _num(shown),
        limit,
    )


def cc_dte(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Days to expiry within min_dte..max_dte, inclusive."""
    return _dte(candidate, income.covered_call.min_dte, income.covered_call.max_dte)


def cc_loss_guard(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Strike ≥ cost basis; or, if allowed, assignment loss < max % of the position value."""
    cc = income.covered_call
    strike = candidate.strike
    basis = facts.cost_basis
    if basis is None:
        return RuleResult(
            "loss_guard",
            strike >= candidate.spot,
            f"strike {_num(strike)}, cost basis unknown",
            f"strike ≥ spot {_num(candidate.spot)}",
        )
    at_basis = f"strike ≥ cost basis {_num(basis)}"
    if strike >= basis or not cc.allow_below_cost_basis:
        return RuleResult("loss_guard", strike >= basis, f"strike {_num(strike)}", at_basis)
    loss_per_share = basis - strike - candidate.mid
    if candidate.spot > 0:
        loss_pct = _round(loss_per_share / candidate.spot * _HUNDRED, _CENT)
    else:
        loss_pct = Decimal("Infinity")
    value = (
        f"strike {_num(strike)} below cost basis {_num(basis)}: assignment loss "
        f"{_money(max(loss_per_share, Decimal(0)))}/share = {_pct(max(loss_pct, Decimal(0)))} "
        "of position value"
    )
    return RuleResult(
        "loss_guard",
        loss_pct < cc.max_assignment_loss_pct,
        value,
        f"{at_basis}, or assignment loss < {_num(cc.max_assignment_loss_pct)} % of position value",
    )


# ---------------------------------------------------------------------------- cash-secured puts


def _sector_label(facts: SymbolFacts) -> str:
    return facts.info.sector or f"unknown sector ({facts.symbol})"


def csp_eligibility(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """≥ 1 contract: free cash covers strike × 100 × cash_cover_pct %, within the per-trade size."""
    n = contracts_for(candidate, facts, income, risk)
    by_cash = contracts_by_cash(candidate.strike, facts.cash_free, income)
    by_size = contracts_by_size(candidate.strike, facts.nav, risk)
    cover = income.cash_secured_put.cash_cover_pct
    per_contract = candidate.strike * SHARES_PER_CONTRACT * cover / _HUNDRED
    value = (
        f"{n} contract(s): free cash {_money(facts.cash_free)} covers {by_cash}, "
        f"{_num(risk.max_trade_pct)} % of NAV {_money(facts.nav)} allows {by_size}"
    )
    return RuleResult(
        "eligibility",
        n >= 1,
        value,
        f"≥ 1 contract ({_money(per_contract)} cash each = {_num(cover)} % of strike × 100, "
        f"≤ {_num(risk.max_trade_pct)} % of NAV per trade)",
    )


def csp_open_interest(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Open interest above the threshold; unknown fails."""
    return _open_interest(candidate, income.cash_secured_put.open_interest_above)


def csp_annual_yield(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Annualised premium yield on the strike above the threshold."""
    return _annual_yield(candidate, income.cash_secured_put.annual_yield_above_pct)


def csp_delta(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Signed delta within min_delta..max_delta (e.g. -0.35 to -0.15), inclusive; unknown fails."""
    csp = income.cash_secured_put
    return _delta_rule(candidate, csp.min_delta, csp.max_delta)


def csp_dte(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Days to expiry within min_dte..max_dte, inclusive."""
    csp = income.cash_secured_put
    return _dte(candidate, csp.min_dte, csp.max_dte)


def csp_put_call_ratio(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Put-call ratio strictly below its sector's average (both to 2 decimals); unknown fails.

    A name with no other name of its sector to compare with passes (nothing to say).
    """
    ratio = None if facts.put_call_ratio is None else _round(facts.put_call_ratio, _CENT)
    average = (
        None
        if facts.sector_put_call_average is None
        else _round(facts.sector_put_call_average, _CENT)
    )
    shown = "unknown" if ratio is None else f"{ratio:.2f}"
    if not income.cash_secured_put.require_put_call_below_sector_average:
        return RuleResult("put_call_ratio", True, shown, "not required")
    sector = _sector_label(facts)
    if facts.sector_peers == 0:
        # Alone in its sector, a name's ratio is the average: "below" could never hold, and
        # there is no sentiment to compare with, so the rule has nothing to say.
        return RuleResult("put_call_ratio", True, shown, f"no other {sector} name to compare with")
    if average is None:
        return RuleResult("put_call_ratio", False, shown, f"< {sector} average (unknown)")
    limit = f"< {sector} average {average:.2f}"
    if ratio is None:
        return RuleResult("put_call_ratio", False, shown, limit)
    return RuleResult("put_call_ratio", ratio < average, shown, limit)


def csp_earnings(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """No next earnings date within [as of, expiry + earnings_buffer_days]; unknown passes."""
    buffer = income.cash_secured_put.earnings_buffer_days
    end = candidate.expiry + timedelta(days=buffer)
    limit = f"none from {candidate.as_of.isoformat()} to {end.isoformat()} (expiry + {buffer} days)"
    earnings = facts.info.next_earnings
    if earnings is None:
        return RuleResult("earnings", True, "none known", limit)
    inside = candidate.as_of <= earnings <= end
    return RuleResult("earnings", not inside, earnings.isoformat(), limit)


def csp_credit_rating(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Credit rating at least min_credit_rating on the S&P scale; unrated fails."""
    floor = income.cash_secured_put.min_credit_rating
    limit = f"{floor} or better"
    rating = facts.info.credit_rating
    if rating is None:
        return RuleResult("credit_rating", False, "unrated", limit)
    if rating not in CREDIT_RATINGS:
        return RuleResult("credit_rating", False, f"{rating} (not on the S&P scale)", limit)
    ok = CREDIT_RATINGS.index(rating) <= CREDIT_RATINGS.index(floor)
    return RuleResult("credit_rating", ok, rating, limit)


def csp_sector_share(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> RuleResult:
    """Open put notional in the sector + this trade's ≤ max_sector_share_pct % of csp_capacity."""
    max_pct = income.cash_secured_put.max_sector_share_pct
    n = max(1, contracts_for(candidate, facts, income, risk))
    after = facts.sector_csp_notional + candidate.strike * SHARES_PER_CONTRACT * n
    sector = _sector_label(facts)
    limit = f"≤ {_num(max_pct)} % of cash securing puts {_money(facts.csp_capacity)}"
    if facts.csp_capacity <= 0:
        return RuleResult(
            "sector_share", False, f"{sector} {_money(after)} with no cash to secure puts", limit
        )
    share = _round(after / facts.csp_capacity * _HUNDRED, _CENT)
    return RuleResult(
        "sector_share",
        share <= max_pct,
        f"{sector} {_money(after)} after {n} contract(s) = {_pct(share)}",
        limit,
    )


# ---------------------------------------------------------------------------- screening

Rule = Callable[[Candidate, SymbolFacts, IncomeSettings, RiskSettings], RuleResult]

_COVERED_CALL: tuple[tuple[str, Rule], ...] = (
    ("eligibility", cc_eligibility),
    ("open_interest", cc_open_interest),
    ("annual_yield", cc_annual_yield),
    ("delta", cc_delta),
    ("iv_percentile", cc_iv_percentile),
    ("dte", cc_dte),
    ("loss_guard", cc_loss_guard),
)
_CASH_SECURED_PUT: tuple[tuple[str, Rule], ...] = (
    ("eligibility", csp_eligibility),
    ("open_interest", csp_open_interest),
    ("annual_yield", csp_annual_yield),
    ("delta", csp_delta),
    ("dte", csp_dte),
    ("put_call_ratio", csp_put_call_ratio),
    ("earnings", csp_earnings),
    ("credit_rating", csp_credit_rating),
    ("sector_share", csp_sector_share),
)

COVERED_CALL_RULES: tuple[str, ...] = tuple(name for name, _ in _COVERED_CALL)
CASH_SECURED_PUT_RULES: tuple[str, ...] = tuple(name for name, _ in _CASH_SECURED_PUT)


def rules_for(kind: str) -> tuple[str, ...]:
    """The rule names of a kind, in evaluation order."""
    if kind == "covered_call":
        return COVERED_CALL_RULES
    if kind == "cash_secured_put":
        return CASH_SECURED_PUT_RULES
    raise ValueError(f"unknown candidate kind {kind!r}")


def screen(
    candidate: Candidate, facts: SymbolFacts, income: IncomeSettings, risk: RiskSettings
) -> list[RuleResult]:
    """Every rule of the candidate's kind, in order, none skipped."""
    right = candidate.snapshot.contract.right.value
    expected = "C" if candidate.kind == "covered_call" else "P"
    if right != expected:
        raise ValueError(
            f"a {candidate.kind} candidate must be a {'call' if expected == 'C' else 'put'}, "
            f"got {candidate.symbol}"
        )
    if candidate.underlying != facts.symbol:
        raise ValueError(
            f"facts for {facts.symbol} given for a candidate on {candidate.underlying}"
        )
    rules = _COVERED_CALL if candidate.kind == "covered_call" else _CASH_SECURED_PUT
    return [rule(candidate, facts, income, risk) for _, rule in rules]
