"""Quant parts and their calibration, the rules advisor, portfolio fit and the weighted decision."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alchemiser.income.candidates import Candidate, SymbolFacts
from alchemiser.income.rules import passed, screen
from alchemiser.income.scoring import (
    QUANT_PARTS,
    Advice,
    Advisor,
    QuantScore,
    RulesAdvisor,
    decide,
    delta_fit_part,
    earnings_part,
    iv_percentile_part,
    open_interest_part,
    portfolio_fit_score,
    quant_score,
    spread_part,
    yield_part,
)
from alchemiser.settings.income import CoveredCallScreen, Decision, IncomeSettings
from alchemiser.settings.risk import RiskSettings
from tests.income import AS_OF, candidate, facts

INCOME = IncomeSettings()
RISK = RiskSettings()
DECISION = INCOME.decision
EXPIRY = AS_OF + timedelta(days=73)
EIGHT = Decimal(8)


def edge_call() -> tuple[Candidate, SymbolFacts]:
    """A call that just passes every screen at its edges: yield 2.01 %, delta 0.35, IV 60th."""
    c = candidate(
        "covered_call", strike=100, bid="0.382", ask="0.422", delta=0.35, open_interest=101
    )
    return c, facts(iv_percentile="60", cost_basis="100")


def edge_put() -> tuple[Candidate, SymbolFacts]:
    """A put at the edges: yield 3.17 %, delta -0.35, OI 101, earnings a day past the buffer."""
    c = candidate(
        "cash_secured_put", strike=95, bid="0.582", ask="0.622", delta=-0.35, open_interest=101
    )
    earnings = EXPIRY + timedelta(days=INCOME.cash_secured_put.earnings_buffer_days + 1)
    return c, facts(iv_percentile=None, next_earnings=earnings)


def good_call() -> tuple[Candidate, SymbolFacts]:
    """Yield 2× threshold, delta 0.25, IV 40th percentile, spread 2.5 %, OI 1000, no earnings."""
    c = candidate(
        "covered_call", strike=106, bid="0.79", ask="0.81", delta=0.25, open_interest=1000
    )
    return c, facts(iv_percentile="40", cost_basis="95")


def good_put() -> tuple[Candidate, SymbolFacts]:
    """Yield > 2× threshold, delta -0.25, IV 10th percentile (any known), OI 1200."""
    c = candidate(
        "cash_secured_put", strike=94, bid="1.19", ask="1.22", delta=-0.25, open_interest=1200
    )
    return c, facts(iv_percentile="10")


CASES = {"edge_call": edge_call, "edge_put": edge_put, "good_call": good_call, "good_put": good_put}


@pytest.mark.parametrize("name", list(CASES))
def test_calibration_cases_pass_the_screens(name: str) -> None:
    c, f = CASES[name]()
    results = screen(c, f, INCOME, RISK)
    assert passed(results), results


@pytest.mark.parametrize("name", ["edge_call", "edge_put"])
def test_a_candidate_at_the_edges_scores_about_five(name: str) -> None:
    c, f = CASES[name]()
    q = quant_score(c, f, INCOME)
    assert Decimal(5) <= q.total <= Decimal(6), q
    assert tuple(q.parts) == QUANT_PARTS
    decision = decide(q.total, EIGHT, EIGHT, DECISION)
    assert not decision.execute


@pytest.mark.parametrize("name", ["good_call", "good_put"])
async def test_a_good_candidate_scores_eight_and_clears_the_threshold(name: str) -> None:
    c, f = CASES[name]()
    q = quant_score(c, f, INCOME)
    assert q.total >= 8, q
    assert decide(q.total, EIGHT, EIGHT, DECISION).execute
    advice = await RulesAdvisor(INCOME).advise(c, f, q)
    assert advice.score >= 8, advice
    assert decide(q.total, advice.score, EIGHT, DECISION).execute


def test_total_is_the_mean_of_the_parts() -> None:
    c, f = good_call()
    q = quant_score(c, f, INCOME)
    assert q.total == (sum(q.parts.values(), Decimal(0)) / len(q.parts)).quantize(Decimal("0.01"))
    assert q.parts["yield"] == Decimal("10.00") and q.parts["delta_fit"] == Decimal("10.00")
    assert q.parts["liquidity"] == Decimal("10.00")


def test_unknown_iv_percentile_scores_five_and_unknown_earnings_eight() -> None:
    c, _ = good_call()
    q = quant_score(c, facts(iv_percentile=None, next_earnings=None), INCOME)
    assert q.parts["iv_percentile"] == Decimal(5)
    assert q.parts["earnings_distance"] == Decimal(8)
    stale = quant_score(c, facts(next_earnings=AS_OF - timedelta(days=3)), INCOME)
    assert stale.parts["earnings_distance"] == Decimal(8)


def test_yield_part_anchor_points() -> None:
    t = Decimal(2)
    assert yield_part(Decimal(0), t) == 0
    assert yield_part(Decimal(1), t) == Decimal("2.50")
    assert yield_part(t, t) == 5
    assert yield_part(Decimal(3), t) == Decimal("7.50")
    assert yield_part(Decimal(4), t) == 10
    assert yield_part(Decimal(40), t) == 10


def test_yield_part_reads_the_threshold_from_settings() -> None:
    c, f = good_call()  # 4 % yield: 2× the default 2 % threshold
    higher = INCOME.model_copy(
        update={
            "covered_call": CoveredCallScreen(
                **INCOME.covered_call.model_dump() | {"annual_yield_above_pct": Decimal(4)}
            )
        }
    )
    assert quant_score(c, f, INCOME).parts["yield"] == 10
    assert quant_score(c, f, higher).parts["yield"] == 5


def test_delta_fit_anchor_points() -> None:
    lo, hi = Decimal("0.15"), Decimal("0.35")
    assert delta_fit_part(0.25, lo, hi) == 10
    assert delta_fit_part(0.15, lo, hi) == 5 == delta_fit_part(0.35, lo, hi)
    assert delta_fit_part(0.45, lo, hi) == 0
    assert delta_fit_part(-0.25, Decimal("-0.35"), Decimal("-0.15")) == 10
    assert delta_fit_part(None, lo, hi) == 0


def test_iv_percentile_anchor_points() -> None:
    lo, hi = Decimal(20), Decimal(60)
    call = "covered_call"
    assert iv_percentile_part(Decimal(50), call, lo, hi) == 10
    assert iv_percentile_part(Decimal(20), call, lo, hi) == 5
    assert iv_percentile_part(Decimal(60), call, lo, hi) == 5
    assert iv_percentile_part(Decimal(40), call, lo, hi) == Decimal("8.33")
    assert iv_percentile_part(Decimal(100), call, lo, hi) == 0
    assert iv_percentile_part(Decimal(0), call, lo, hi) == Decimal("2.50")
    put = "cash_secured_put"
    assert iv_percentile_part(Decimal(0), put, lo, hi) == 6
    assert iv_percentile_part(Decimal(100), put, lo, hi) == 10
    assert iv_percentile_part(None, put, lo, hi) == 5


def test_liquidity_anchor_points() -> None:
    assert spread_part(Decimal(3)) == 10
    assert spread_part(Decimal("11.5")) == 5
    assert spread_part(Decimal(20)) == 0
    assert open_interest_part(100, 100) == 5
    assert open_interest_part(50, 100) == Decimal("2.50")
    assert open_interest_part(1000, 100) == 10
    assert open_interest_part(None, 100) == 0
    assert Decimal(7) < open_interest_part(316, 100) < Decimal(8)


def test_earnings_distance_anchor_points() -> None:
    buffer = 14
    assert earnings_part(EXPIRY, AS_OF, EXPIRY, buffer) == 0
    assert earnings_part(AS_OF, AS_OF, EXPIRY, buffer) == 0
    assert earnings_part(EXPIRY + timedelta(days=7), AS_OF, EXPIRY, buffer) == Decimal("2.50")
    assert earnings_part(EXPIRY + timedelta(days=14), AS_OF, EXPIRY, buffer) == 5
    assert earnings_part(EXPIRY + timedelta(days=14 + 45), AS_OF, EXPIRY, buffer) == 10
    assert earnings_part(EXPIRY + timedelta(days=400), AS_OF, EXPIRY, buffer) == 10
    assert earnings_part(None, AS_OF, EXPIRY, buffer) == 8


decimals = st.decimals(min_value=-1000, max_value=1000, allow_nan=False, places=3)


@given(
    y=decimals,
    delta=st.one_of(st.none(), st.floats(-1, 1)),
    pct=st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=2)),
    spread=st.decimals(min_value=0, max_value=300, places=2),
    oi=st.one_of(st.none(), st.integers(0, 10**6)),
    days=st.one_of(st.none(), st.integers(-400, 400)),
    kind=st.sampled_from(["covered_call", "cash_secured_put"]),
)
def test_every_part_stays_within_zero_and_ten(
    y: Decimal,
    delta: float | None,
    pct: Decimal | None,
    spread: Decimal,
    oi: int | None,
    days: int | None,
    kind: str,
) -> None:
    earnings = None if days is None else EXPIRY + timedelta(days=days)
    for part in (
        yield_part(y, Decimal(2)),
        delta_fit_part(delta, Decimal("0.15"), Decimal("0.35")),
        iv_percentile_part(pct, kind, Decimal(20), Decimal(60)),
        spread_part(spread),
        open_interest_part(oi, 100),
        earnings_part(earnings, AS_OF, EXPIRY, 14),
    ):
        assert 0 <= part <= 10


@given(a=decimals, b=decimals)
def test_yield_part_is_monotone(a: Decimal, b: Decimal) -> None:
    lo, hi = sorted((a, b))
    assert yield_part(lo, Decimal(3)) <= yield_part(hi, Decimal(3))


@given(a=st.integers(0, 10**6), b=st.integers(0, 10**6))
def test_open_interest_part_is_monotone(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert open_interest_part(lo, 100) <= open_interest_part(hi, 100)


# ---------------------------------------------------------------------------- advisor


async def test_rules_advisor_is_deterministic_and_names_the_yield() -> None:
    c, f = good_call()
    q = quant_score(c, f, INCOME)
    advisor: Advisor = RulesAdvisor(INCOME)
    first = await advisor.advise(c, f, q)
    again = await advisor.advise(c, f, q)
    assert first == again
    assert isinstance(first, Advice)
    assert "4.00 % a year" in first.rationale
    assert "the 2 % threshold" in first.rationale
    assert "delta 0.25" in first.rationale and "40th percentile" in first.rationale
    assert "cost basis 95.00" in first.rationale
    assert 1 <= first.rationale.count(". ") + 1 <= 3


async def test_rules_advisor_marks_down_what_a_person_would_worry_about() -> None:
    c, f = good_put()
    q = quant_score(c, f, INCOME)
    advisor = RulesAdvisor(INCOME)
    calm = await advisor.advise(c, f, q)
    earnings_inside = facts(iv_percentile="10", next_earnings=EXPIRY - timedelta(days=3))
    worried = await advisor.advise(c, earnings_inside, q)
    assert worried.score < calm.score
    assert f"earnings on {EXPIRY - timedelta(days=3)} fall before expiry" in worried.rationale
    call, cf = good_call()
    below_basis = await advisor.advise(call, facts(cost_basis="110"), q)
    assert below_basis.score < (await advisor.advise(call, cf, q)).score
    assert "below the cost basis 110.00" in below_basis.rationale


async def test_rules_advisor_reads_live_settings_through_a_callable() -> None:
    c, f = good_call()
    q = quant_score(c, f, INCOME)
    current = {"income": INCOME}
    advisor = RulesAdvisor(lambda: current["income"])
    before = await advisor.advise(c, f, q)
    current["income"] = INCOME.model_copy(
        update={
            "covered_call": CoveredCallScreen(
                **INCOME.covered_call.model_dump() | {"annual_yield_above_pct": Decimal(5)}
            )
        }
    )
    after = await advisor.advise(c, f, q)
    assert "the 2 % threshold" in before.rationale
    assert "not above the 5 % threshold" in after.rationale
    assert after.score < before.score


@given(
    delta=st.one_of(st.none(), st.floats(-1, 1)),
    pct=st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=1)),
    basis=st.one_of(st.none(), st.decimals(min_value=1, max_value=300, places=2)),
    days=st.one_of(st.none(), st.integers(-100, 200)),
    kind=st.sampled_from(["covered_call", "cash_secured_put"]),
)
def test_advice_stays_within_zero_and_ten(
    delta: float | None, pct: Decimal | None, basis: Decimal | None, days: int | None, kind: str
) -> None:
    c = candidate(kind, delta=delta)  # type: ignore[arg-type]
    earnings = None if days is None else AS_OF + timedelta(days=days)
    f = facts(iv_percentile=pct, cost_basis=basis, next_earnings=earnings)
    advice = RulesAdvisor(INCOME).advise_now(c, f, INCOME)
    assert 0 <= advice.score <= 10
    assert "a year" in advice.rationale


# ---------------------------------------------------------------------------- fit and decision


def test_portfolio_fit_score() -> None:
    assert portfolio_fit_score({}) == 10
    assert portfolio_fit_score({"delta": Decimal("0.2"), "sector": Decimal("0.5")}) == 5
    assert portfolio_fit_score({"vega": Decimal("1.3")}) == 0
    assert portfolio_fit_score({"vega": Decimal("-0.5")}) == 10
    assert portfolio_fit_score({"positions": Decimal("0.123")}) == Decimal("8.77")


def test_decide_applies_the_weights() -> None:
    w = DECISION
    assert decide(Decimal(10), Decimal(0), Decimal(0), w).total == w.quant_weight * 10
    assert decide(Decimal(0), Decimal(10), Decimal(0), w).total == w.advisor_weight * 10
    assert decide(Decimal(0), Decimal(0), Decimal(10), w).total == w.portfolio_fit_weight * 10
    assert decide(Decimal(10), Decimal(0), Decimal(0), w).total == Decimal("7.00")  # 0.7 default


def test_decide_executes_at_the_threshold_not_below() -> None:
    m = DECISION.min_score
    assert m == Decimal("7.5")
    at = decide(m, m, m, DECISION)
    assert at.total == m and at.execute
    under = decide(m - Decimal("0.01"), m, m, DECISION)  # 7.493 → 7.49
    assert under.total == Decimal("7.49") and not under.execute
    rounded_up = decide(m, m, m - Decimal("0.05"), DECISION)  # 7.495 → 7.50, half up
    assert rounded_up.total == m and rounded_up.execute
    d = decide(Decimal(9), Decimal(8), Decimal(7), DECISION)
    assert (d.quant, d.advisor, d.fit) == (Decimal(9), Decimal(8), Decimal(7))


def test_decide_reads_custom_weights_and_threshold() -> None:
    quant_only = Decision(
        quant_weight=Decimal(1),
        advisor_weight=Decimal(0),
        portfolio_fit_weight=Decimal(0),
        min_score=Decimal(6),
    )
    assert decide(Decimal(6), Decimal(0), Decimal(0), quant_only).execute
    assert not decide(Decimal("5.99"), Decimal(10), Decimal(10), quant_only).execute


def test_quant_score_type() -> None:
    c, f = edge_call()
    q = quant_score(c, f, INCOME)
    assert isinstance(q, QuantScore)
    assert all(Decimal(0) <= v <= Decimal(10) for v in q.parts.values())
