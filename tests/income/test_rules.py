"""Every screening rule passes and fails at its boundary; sizing; Candidate derivations."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from alchemiser.domain.options import OptionRight
from alchemiser.income.candidates import Candidate, Kind, contracts_for
from alchemiser.income.rules import (
    CASH_SECURED_PUT_RULES,
    COVERED_CALL_RULES,
    RuleResult,
    csp_put_call_ratio,
    passed,
    screen,
)
from alchemiser.settings.income import (
    CashSecuredPutScreen,
    CoveredCallScreen,
    IncomeSettings,
)
from alchemiser.settings.risk import RiskSettings
from tests.income import AS_OF, candidate, facts, snapshot

INCOME = IncomeSettings()
RISK = RiskSettings()
CC = INCOME.covered_call
CSP = INCOME.cash_secured_put


def rule(name: str, results: list[RuleResult]) -> RuleResult:
    found = [r for r in results if r.rule == name]
    assert len(found) == 1, results
    return found[0]


def run_rule(kind: Kind, name: str, kw: dict[str, Any]) -> RuleResult:
    """Screen one candidate: ``c_*`` keywords go to the quote, ``income``/``risk`` to the
    screen, the rest to the facts; return the rule called ``name``."""
    income = kw.pop("income", INCOME)
    risk = kw.pop("risk", RISK)
    quote = {k[2:]: v for k, v in kw.items() if k.startswith("c_")}
    about = {k: v for k, v in kw.items() if not k.startswith("c_")}
    return rule(name, screen(candidate(kind, **quote), facts(**about), income, risk))


def cc_rule(name: str, **kw: Any) -> RuleResult:
    return run_rule("covered_call", name, kw)


def csp_rule(name: str, **kw: Any) -> RuleResult:
    return run_rule("cash_secured_put", name, kw)


def with_cc(**update: object) -> IncomeSettings:
    return INCOME.model_copy(update={"covered_call": CoveredCallScreen(**CC.model_dump() | update)})


def with_csp(**update: object) -> IncomeSettings:
    return INCOME.model_copy(
        update={"cash_secured_put": CashSecuredPutScreen(**CSP.model_dump() | update)}
    )


# ---------------------------------------------------------------------------- candidate


def test_candidate_derives_dte_mid_yield_spread_and_greeks() -> None:
    c = candidate("cash_secured_put", strike=100, dte=73, bid="0.98", ask="1.02")
    assert c.dte == 73
    assert c.mid == Decimal("1.00")
    # 1.00 / 100 strike × 365 / 73 × 100 = 5 %
    assert c.annual_yield_pct == Decimal("5.00")
    assert c.spread_pct == Decimal("4.00")
    assert c.delta == -0.25 and c.iv == 0.30
    assert c.underlying == "XYZ" and c.strike == Decimal(100)
    assert c.expiry == AS_OF + timedelta(days=73)
    assert c.symbol == "XYZ260416P00100000"


def test_call_yield_is_on_spot_and_put_yield_on_strike() -> None:
    call = candidate("covered_call", spot=200, strike=100, dte=73, bid="1.00")
    put = candidate("cash_secured_put", spot=200, strike=100, dte=73, bid="1.00")
    assert call.annual_yield_pct == Decimal("2.50")
    assert put.annual_yield_pct == Decimal("5.00")


def test_candidate_without_usable_greeks_or_days() -> None:
    c = candidate("covered_call", delta=float("nan"), iv=float("nan"), dte=0)
    assert c.delta is None and c.iv is None
    assert c.annual_yield_pct == 0
    assert candidate("covered_call", delta=None, iv=0.0).iv is None


def test_screen_refuses_a_put_as_a_covered_call() -> None:
    put_quote = snapshot(OptionRight.PUT)
    with pytest.raises(ValueError, match="must be a call"):
        screen(Candidate.of("covered_call", put_quote, Decimal(100), AS_OF), facts(), INCOME, RISK)


# ---------------------------------------------------------------------------- all rules


def test_defaults_pass_every_rule_in_order() -> None:
    cc = screen(candidate("covered_call"), facts(), INCOME, RISK)
    csp = screen(candidate("cash_secured_put"), facts(), INCOME, RISK)
    assert tuple(r.rule for r in cc) == COVERED_CALL_RULES
    assert tuple(r.rule for r in csp) == CASH_SECURED_PUT_RULES
    assert passed(cc) and passed(csp), (cc, csp)
    assert COVERED_CALL_RULES == (
        "eligibility",
        "open_interest",
        "annual_yield",
        "delta",
        "iv_percentile",
        "dte",
        "loss_guard",
    )
    assert CASH_SECURED_PUT_RULES == (
        "eligibility",
        "open_interest",
        "annual_yield",
        "delta",
        "dte",
        "put_call_ratio",
        "earnings",
        "credit_rating",
        "sector_share",
    )


def test_every_rule_is_evaluated_when_all_fail() -> None:
    bad_call = candidate("covered_call", strike=50, dte=5, bid="0.01", delta=None, open_interest=0)
    bad_facts = facts(
        shares_free=0,
        iv_percentile=None,
        cost_basis=None,
        put_call_ratio=None,
        rating=None,
        next_earnings=AS_OF,
        cash_free=0,
        csp_capacity=0,
    )
    results = screen(bad_call, bad_facts, INCOME, RISK)
    assert [r.rule for r in results] == list(COVERED_CALL_RULES)
    assert not any(r.passed for r in results)
    bad_put = candidate("cash_secured_put", dte=5, bid="0.01", delta=None, open_interest=None)
    results = screen(bad_put, bad_facts, INCOME, RISK)
    assert [r.rule for r in results] == list(CASH_SECURED_PUT_RULES)
    assert not any(r.passed for r in results)
    assert not passed([])


def test_rule_result_as_json() -> None:
    r = RuleResult("delta", True, "0.27", "0.15–0.35")
    assert r.as_json() == {"rule": "delta", "passed": True, "value": "0.27", "limit": "0.15–0.35"}


# ---------------------------------------------------------------------------- sizing


def nav_for_one(notional: Decimal | int) -> Decimal:
    """The NAV at which ``notional`` is exactly the per-trade limit."""
    return Decimal(notional) * 100 / RISK.max_trade_pct


@pytest.mark.parametrize(
    ("shares", "limit_contracts", "expected"),
    [(99, 100, 0), (100, 100, 1), (350, 100, 3), (1000, 4, 4), (1000, Decimal("3.9999"), 3)],
)
def test_contracts_for_calls(shares: int, limit_contracts: Decimal | int, expected: int) -> None:
    c = candidate("covered_call", spot=100)  # one contract covers 10,000 of shares
    nav = nav_for_one(10_000) * limit_contracts  # the per-trade limit allows limit_contracts
    assert contracts_for(c, facts(shares_free=shares, nav=nav), INCOME, RISK) == expected


def test_contracts_for_puts_uses_cash_cover_and_trade_size() -> None:
    c = candidate("cash_secured_put", strike=100)  # 10,000 per contract
    per_trade_nav = nav_for_one(10_000)  # the NAV at which one contract is the limit
    big = Decimal(10**9)
    assert contracts_for(c, facts(cash_free=30_000, nav=big), INCOME, RISK) == 3
    assert contracts_for(c, facts(cash_free="29999.99", nav=big), INCOME, RISK) == 2
    assert contracts_for(c, facts(cash_free=big, nav=per_trade_nav * 3), INCOME, RISK) == 3
    assert contracts_for(c, facts(cash_free=big, nav=per_trade_nav * 3 - 1), INCOME, RISK) == 2
    assert contracts_for(c, facts(cash_free=-5_000, nav=big), INCOME, RISK) == 0
    double_cover = with_csp(cash_cover_pct=Decimal(200))
    assert contracts_for(c, facts(cash_free=30_000, nav=big), double_cover, RISK) == 1


def test_contracts_for_never_negative() -> None:
    c = candidate("covered_call")
    assert contracts_for(c, facts(shares_free=-300, nav=-1), INCOME, RISK) == 0


# ---------------------------------------------------------------------------- covered calls


def test_cc_eligibility_shares_boundary() -> None:
    ok = cc_rule("eligibility", shares_free=100)
    short = cc_rule("eligibility", shares_free=99)
    assert ok.passed and not short.passed
    assert ok.value.startswith("1 contract(s): 100 free shares cover 1")
    assert short.value.startswith("0 contract(s): 99 free shares cover 0")
    assert ok.limit.startswith("≥ 1 contract (100 free shares each")


def test_cc_eligibility_trade_size_boundary() -> None:
    at = cc_rule("eligibility", nav=nav_for_one(10_000))  # spot 100 × 100 shares
    under = cc_rule("eligibility", nav=nav_for_one(10_000) - Decimal("0.01"))
    assert at.passed and not under.passed
    assert "allows 0" in under.value and "allows 1" in at.value


def test_cc_open_interest_boundary() -> None:
    above = CC.open_interest_above
    assert cc_rule("open_interest", c_open_interest=above + 1).passed
    at = cc_rule("open_interest", c_open_interest=above)
    assert not at.passed and at.value == str(above) and at.limit == f"> {above}"
    unknown = cc_rule("open_interest", c_open_interest=None)
    assert not unknown.passed and unknown.value == "unknown"


def yield_quote(threshold: Decimal, plus: Decimal) -> dict[str, object]:
    """Quote fields giving a yield of threshold + plus: spot/strike 100, dte 73 → yield = 5 × mid."""
    mid = (threshold + plus) / 5
    return {"c_strike": 100, "c_dte": 73, "c_bid": mid}


def test_cc_annual_yield_boundary() -> None:
    t = CC.annual_yield_above_pct
    at = cc_rule("annual_yield", **yield_quote(t, Decimal(0)))
    above = cc_rule("annual_yield", **yield_quote(t, Decimal("0.01")))
    assert not at.passed and above.passed
    assert at.value == f"{t:.2f} %" and at.limit == "> 2 %"
    assert above.value == f"{t + Decimal('0.01'):.2f} %"


@pytest.mark.parametrize(
    ("delta", "ok", "shown"),
    [
        (0.15, True, "0.15"),
        (0.1499, False, "0.1499"),
        (0.35, True, "0.35"),
        (0.3501, False, "0.3501"),
        (0.27, True, "0.27"),
        (None, False, "unknown"),
    ],
)
def test_cc_delta_boundary(delta: float | None, ok: bool, shown: str) -> None:
    assert float(CC.min_delta) == 0.15 and float(CC.max_delta) == 0.35  # the cases assume defaults
    r = cc_rule("delta", c_delta=delta)
    assert (r.passed, r.value, r.limit) == (ok, shown, "0.15–0.35")


def test_cc_delta_reads_the_settings() -> None:
    narrow = with_cc(min_delta=Decimal("0.2"), max_delta=Decimal("0.3"))
    r = cc_rule("delta", income=narrow, c_delta=0.15)
    assert not r.passed and r.limit == "0.2–0.3"


@pytest.mark.parametrize(
    ("pct", "ok"),
    [("20", True), ("19.99", False), ("60", True), ("60.01", False), ("45.5", True)],
)
def test_cc_iv_percentile_boundary(pct: str, ok: bool) -> None:
    assert (CC.min_iv_percentile, CC.max_iv_percentile) == (Decimal(20), Decimal(60))
    r = cc_rule("iv_percentile", iv_percentile=pct)
    assert (r.passed, r.value, r.limit) == (ok, pct, "20–60")


def test_cc_iv_percentile_unknown_fails() -> None:
    r = cc_rule("iv_percentile", iv_percentile=None)
    assert not r.passed
    assert r.value == "unknown (not enough daily IV history yet)"


@pytest.mark.parametrize("screen_", ["covered_call", "cash_secured_put"])
def test_dte_boundaries(screen_: str) -> None:
    s = CC if screen_ == "covered_call" else CSP
    check = cc_rule if screen_ == "covered_call" else csp_rule
    for dte, ok in (
        (s.min_dte, True),
        (s.min_dte - 1, False),
        (s.max_dte, True),
        (s.max_dte + 1, False),
    ):
        r = check("dte", c_dte=dte)
        assert (r.passed, r.value, r.limit) == (ok, str(dte), f"{s.min_dte}–{s.max_dte}"), dte


def test_cc_loss_guard_strike_at_cost_basis() -> None:
    at = cc_rule("loss_guard", c_strike=100, cost_basis="100")
    below = cc_rule("loss_guard", c_strike=100, cost_basis="100.01")
    assert at.passed and not below.passed
    assert at.value == "strike 100" and at.limit == "strike ≥ cost basis 100"
    assert below.limit == "strike ≥ cost basis 100.01"


def test_cc_loss_guard_allowed_below_basis_caps_the_assignment_loss() -> None:
    allowed = with_cc(allow_below_cost_basis=True)
    limit = CC.max_assignment_loss_pct  # spot 100: loss % = basis − strike − mid
    # strike 100, mid 1: basis 100 + 1 + limit makes the loss exactly the limit → fails (strict)
    at = cc_rule("loss_guard", income=allowed, c_strike=100, c_bid="1", cost_basis=101 + limit)
    under = cc_rule(
        "loss_guard",
        income=allowed,
        c_strike=100,
        c_bid="1",
        cost_basis=101 + limit - Decimal("0.01"),
    )
    assert not at.passed and under.passed
    assert "= 5.00 % of position value" in at.value
    assert "= 4.99 % of position value" in under.value
    assert at.limit.endswith("or assignment loss < 5 % of position value")


def test_cc_loss_guard_unknown_basis_needs_strike_at_or_above_spot() -> None:
    at = cc_rule("loss_guard", c_strike=100, cost_basis=None)  # spot 100
    below = cc_rule("loss_guard", c_strike="99.5", cost_basis=None)
    assert at.passed and not below.passed
    assert below.value == "strike 99.5, cost basis unknown" and below.limit == "strike ≥ spot 100"


# ---------------------------------------------------------------------------- cash-secured puts


def test_csp_eligibility_cash_boundary() -> None:
    need = Decimal(100) * 100 * CSP.cash_cover_pct / 100
    ok = csp_rule("eligibility", cash_free=need)
    short = csp_rule("eligibility", cash_free=need - Decimal("0.01"))
    assert ok.passed and not short.passed
    assert short.value.startswith("0 contract(s): free cash 9,999.99 covers 0")
    assert ok.limit.startswith("≥ 1 contract (10,000.00 cash each = 100 % of strike × 100")


def test_csp_eligibility_trade_size_boundary() -> None:
    assert csp_rule("eligibility", nav=nav_for_one(10_000)).passed
    assert not csp_rule("eligibility", nav=nav_for_one(10_000) - Decimal("0.01")).passed


def test_csp_open_interest_boundary() -> None:
    above = CSP.open_interest_above
    assert csp_rule("open_interest", c_open_interest=above + 1).passed
    assert not csp_rule("open_interest", c_open_interest=above).passed


def test_csp_annual_yield_boundary() -> None:
    t = CSP.annual_yield_above_pct
    at = csp_rule("annual_yield", **yield_quote(t, Decimal(0)))
    above = csp_rule("annual_yield", **yield_quote(t, Decimal("0.01")))
    assert not at.passed and above.passed
    assert (at.value, at.limit) == ("3.00 %", "> 3 %")


@pytest.mark.parametrize(
    ("delta", "ok", "shown"),
    [
        (-0.35, True, "-0.35"),
        (-0.3501, False, "-0.3501"),
        (-0.15, True, "-0.15"),
        (-0.1499, False, "-0.1499"),
        (0.25, False, "0.25"),
        (None, False, "unknown"),
    ],
)
def test_csp_delta_boundary(delta: float | None, ok: bool, shown: str) -> None:
    r = csp_rule("delta", c_delta=delta)
    assert (r.passed, r.value, r.limit) == (ok, shown, "-0.35 to -0.15")


def test_csp_put_call_ratio_below_sector_average() -> None:
    below = csp_rule("put_call_ratio", put_call_ratio="0.99", sector_put_call_average="1")
    equal = csp_rule("put_call_ratio", put_call_ratio="1", sector_put_call_average="1")
    assert below.passed and not equal.passed
    assert (below.value, below.limit) == ("0.99", "< Technology average 1.00")
    unknown = csp_rule("put_call_ratio", put_call_ratio=None)
    assert not unknown.passed and unknown.value == "unknown"
    no_average = csp_rule("put_call_ratio", sector_put_call_average=None)
    assert not no_average.passed and no_average.limit == "< Technology average (unknown)"


def test_csp_put_call_ratio_not_required() -> None:
    off = with_csp(require_put_call_below_sector_average=False)
    r = csp_rule("put_call_ratio", income=off, put_call_ratio="3", sector_put_call_average="1")
    assert r.passed and r.limit == "not required" and r.value == "3.00"
    assert csp_rule("put_call_ratio", income=off, put_call_ratio=None).passed


def test_csp_earnings_window_is_inclusive() -> None:
    expiry = AS_OF + timedelta(days=73)
    end = expiry + timedelta(days=CSP.earnings_buffer_days)
    cases = [
        (AS_OF - timedelta(days=1), True),
        (AS_OF, False),
        (expiry, False),
        (end, False),
        (end + timedelta(days=1), True),
    ]
    for day, ok in cases:
        r = csp_rule("earnings", next_earnings=day)
        assert (r.passed, r.value) == (ok, day.isoformat()), day
    assert r.limit == f"none from {AS_OF} to {end} (expiry + 14 days)"
    unknown = csp_rule("earnings", next_earnings=None)
    assert unknown.passed and unknown.value == "none known"


def test_csp_earnings_buffer_is_read_from_settings() -> None:
    expiry = AS_OF + timedelta(days=73)
    no_buffer = with_csp(earnings_buffer_days=0)
    assert csp_rule("earnings", income=no_buffer, next_earnings=expiry + timedelta(days=1)).passed
    assert not csp_rule("earnings", next_earnings=expiry + timedelta(days=1)).passed


@pytest.mark.parametrize(
    ("rating", "ok", "shown"),
    [
        ("AAA", True, "AAA"),
        ("BBB+", True, "BBB+"),
        ("BBB", False, "BBB"),
        (None, False, "unrated"),
        ("XYZ", False, "XYZ (not on the S&P scale)"),
    ],
)
def test_csp_credit_rating_boundary(rating: str | None, ok: bool, shown: str) -> None:
    assert CSP.min_credit_rating == "BBB+"
    r = csp_rule("credit_rating", rating=rating)
    assert (r.passed, r.value, r.limit) == (ok, shown, "BBB+ or better")


def test_csp_credit_rating_reads_the_settings() -> None:
    strict = with_csp(min_credit_rating="AA")
    assert not csp_rule("credit_rating", income=strict, rating="AA-").passed
    assert csp_rule("credit_rating", income=strict, rating="AA").passed


def test_csp_sector_share_boundary() -> None:
    # capacity 100,000; one contract of strike 100 = 10,000; limit 20 % = 20,000
    base = {"csp_capacity": 100_000, "cash_free": 10_000, "nav": 10**7}
    assert CSP.max_sector_share_pct == 20
    at = csp_rule("sector_share", sector_csp_notional=10_000, **base)
    over = csp_rule("sector_share", sector_csp_notional=10_005, **base)  # 20.005 % → 20.01 %
    assert at.passed and not over.passed
    assert at.value == "Technology 20,000.00 after 1 contract(s) = 20.00 %"
    assert over.value == "Technology 20,005.00 after 1 contract(s) = 20.01 %"
    assert at.limit == "≤ 20 % of cash securing puts 100,000.00"


def test_csp_sector_share_counts_every_contract_of_the_trade() -> None:
    two = {"csp_capacity": 100_000, "cash_free": 20_000, "nav": 10**7}
    assert csp_rule("sector_share", **two).passed  # 2 × 10,000 = 20 %
    three = {"csp_capacity": 100_000, "cash_free": 30_000, "nav": 10**7}
    r = csp_rule("sector_share", **three)
    assert not r.passed and "after 3 contract(s) = 30.00 %" in r.value


def test_csp_sector_share_without_capacity_or_sector() -> None:
    none = csp_rule("sector_share", csp_capacity=0)
    assert not none.passed and "no cash to secure puts" in none.value
    unknown = csp_rule("sector_share", sector=None, csp_capacity=10**6, cash_free=10_000)
    assert unknown.passed and unknown.value.startswith("unknown sector (XYZ)")


def test_put_call_ratio_passes_when_no_other_name_of_the_sector_compares() -> None:
    from dataclasses import replace

    put = candidate("cash_secured_put")
    alone = replace(facts(put_call_ratio="1.50", sector_put_call_average="1.50"), sector_peers=0)
    result = csp_put_call_ratio(put, alone, IncomeSettings(), RiskSettings())
    assert result.passed
    assert "no other" in result.limit
    with_peers = replace(alone, sector_peers=1)
    assert not csp_put_call_ratio(put, with_peers, IncomeSettings(), RiskSettings()).passed
