"""Contract selection: gates at their boundaries, tenor by regime, scoring, spreads, the sim market."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from alchemiser.domain.options import OptionRight
from alchemiser.domain.pricing import bsm_price
from alchemiser.domain.trading import OptionSnapshot
from alchemiser.hedging.exposure import compute_exposure
from alchemiser.hedging.payoff import HedgeHolding, hedge_book_payoff, years_to_expiry
from alchemiser.hedging.selection import (
    GATES,
    NoSuitableContract,
    Selection,
    select_put,
    select_spread,
)
from alchemiser.hedging.sizing import SizingInputs, size_hedge
from alchemiser.hedging.vol_regime import classify, regime_from_chain
from alchemiser.market.reference import TomlReferenceData
from alchemiser.settings.hedging import HedgingSettings
from alchemiser.sim import SimMarket
from tests.hedging.helpers import NOW, RATE, SHIPPED_REFERENCE, chain, ny, put, settings, stock

D = Decimal
S = settings()
MID, LOW, RICH = classify(D(20), S), classify(D(12), S), classify(D(40), S)
SPOT = D(500)


def pick(
    snaps: list[OptionSnapshot], s: HedgingSettings = S, regime: Any = MID, pct: Any = None
) -> Selection | NoSuitableContract:
    return select_put(snaps, SPOT, NOW, RATE, regime, pct, s, underlying="QQQ")


def selected(result: Selection | NoSuitableContract) -> Selection:
    assert isinstance(result, Selection), result
    return result


def good(**kw: Any) -> OptionSnapshot:
    """A 92-DTE 450 put that passes every gate (quote overridable)."""
    base: dict[str, Any] = {"bid": "3.95", "ask": "4.05"}
    base.update(kw)
    strike = base.pop("strike", "450")
    dte = base.pop("dte", 92)
    return put(strike, dte, **base)


# -- gates one by one ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gate", "passing", "failing"),
    [
        ("open_interest", {"open_interest": 1000}, {"open_interest": 999}),
        ("open_interest", {"open_interest": 1000}, {"open_interest": None}),
        ("volume", {"volume": 100}, {"volume": 99}),
        ("volume", {"volume": 100}, {"volume": None}),
        ("spread_pct", {"bid": "0.975", "ask": "1.025"}, {"bid": "0.97", "ask": "1.03"}),
        ("spread_abs", {"bid": "3.95", "ask": "4.05"}, {"bid": "3.945", "ask": "4.055"}),
        ("min_mid", {"bid": "0.05", "ask": "0.05"}, {"bid": "0.049", "ask": "0.049"}),
        ("missing_quote", {"bid": "0.05", "ask": "0.05"}, {"bid": "0", "ask": "0.05"}),
        ("missing_quote", {"bid": "4", "ask": "4"}, {"bid": "NaN", "ask": "4"}),
        ("crossed", {"bid": "4.00", "ask": "4.00"}, {"bid": "4.01", "ask": "4.00"}),
        (
            "stale_quote",
            {"timestamp": NOW - timedelta(seconds=300)},
            {"timestamp": NOW - timedelta(seconds=301)},
        ),
        ("tenor_window", {"dte": 75}, {"dte": 74}),
        ("tenor_window", {"dte": 105}, {"dte": 106}),
        ("strike_range", {"strike": "375", "bid": "0.99", "ask": "1.01"}, {"strike": "374.5"}),
        ("strike_range", {"strike": "475"}, {"strike": "475.5"}),
        ("not_put", {}, {"right": OptionRight.CALL}),
        ("other_underlying", {}, {"root": "SPY"}),
        ("no_implied_vol", {"iv": False}, {"iv": False, "bid": "460", "ask": "460"}),
    ],
)
def test_each_gate_at_its_boundary(
    gate: str, passing: dict[str, Any], failing: dict[str, Any]
) -> None:
    # Every other gate passes (a locked quote at $0.05 passes the spread gates with a zero spread).
    ok = pick([good(**passing)])
    assert isinstance(ok, Selection) and ok.counts_by_gate[gate] == 0
    bad = pick([good(**failing)])
    assert isinstance(bad, NoSuitableContract)
    assert bad.counts_by_gate[gate] == 1 and sum(bad.counts_by_gate.values()) == 1
    assert gate in bad.reason and bad.considered == 1


@pytest.mark.parametrize(("dte", "gate_count"), [(13, 1), (14, 0), (180, 0), (181, 1)])
def test_dte_gate_is_14_to_180_inclusive(dte: int, gate_count: int) -> None:
    wide = settings(tenor={"dte_window_days": 365})  # the tenor window then spans the whole gate
    result = pick([good(dte=dte, bid="1.00", ask="1.02")], wide)
    assert result.counts_by_gate["dte_range"] == gate_count
    assert isinstance(result, Selection) == (gate_count == 0)


def test_liquidity_gates_read_their_settings() -> None:
    loose = settings(liquidity={"min_open_interest": 10, "max_spread": "1"})
    assert isinstance(pick([good(open_interest=10, bid="3.9", ask="4.1")], loose), Selection)
    assert isinstance(pick([good(open_interest=10, bid="3.9", ask="4.1")]), NoSuitableContract)


def test_payoff_multiple_filter_requires_three_times_net_of_premium() -> None:
    # A 95 %-strike put in 60 % volatility costs ~$44: at -20 % / +10 vol it is worth ~$92: 1.1x.
    pricey = put("475", 92, vol=0.6, bid="44.37", ask="44.41")
    result = pick([pricey])
    assert isinstance(result, NoSuitableContract) and result.counts_by_gate["payoff_multiple"] == 1
    relaxed = selected(pick([pricey], settings(scoring={"min_payoff_multiple": "1"})))
    years = years_to_expiry(pricey.contract.expiry, NOW)
    shocked = float(bsm_price(400.0, 475.0, years, RATE, 0.0, 0.7, False))
    # The most the order may pay: min(ask 44.41, mid 44.39 x 1.02 = 45.28).
    assert relaxed.max_limit_price == D("44.41") and relaxed.premium_per_contract == D("4441.00")
    assert float(relaxed.scenario_value_per_contract) == pytest.approx(shocked * 100, abs=0.01)
    assert relaxed.payoff_per_contract == relaxed.scenario_value_per_contract - D("4441.00")
    assert float(relaxed.payoff_multiple) == pytest.approx((shocked * 100 - 4441) / 4441, abs=1e-5)
    assert D(1) <= relaxed.payoff_multiple < D(3)


def test_max_limit_is_mid_plus_slippage_capped_at_the_ask() -> None:
    wide = selected(pick([good(bid="3.95", ask="4.05")]))
    assert (wide.mid, wide.natural, wide.max_limit_price) == (D("4.00"), D("4.05"), D("4.05"))
    # Mid 10.15 x 1.025 (hedging.orders.max_slippage_pct) = 10.404, rounded up to 10.41:
    # below the 10.50 ask, so it is the limit.
    loose = settings(liquidity={"max_spread": "1", "max_spread_pct_of_mid": "10"})
    tight = selected(pick([good(bid="9.80", ask="10.50")], loose))
    assert tight.max_limit_price == D("10.41") and tight.premium_per_contract == D("1041.00")


def test_nothing_passing_gives_counts_that_add_up_and_no_price() -> None:
    snaps = [
        put("300", 92),
        good(open_interest=5),
        put("450", 92, right=OptionRight.CALL),
        good(dte=300),
    ]
    result = pick(snaps)
    assert isinstance(result, NoSuitableContract)
    assert sum(result.counts_by_gate.values()) == result.considered == 4
    assert set(result.counts_by_gate) == set(GATES)
    assert pick([]).reason == "no QQQ put passed the gates (empty chain)"  # type: ignore[union-attr]


# -- tenor, delta and scoring --------------------------------------------------------------------


def test_mid_regime_picks_about_15_delta_near_90_days() -> None:
    best = selected(pick(chain(step=1)))
    assert best.dte in (78, 92) and abs(abs(best.greeks.delta) - 0.15) < 0.01
    assert best.scoring == "convexity_payoff" and best.legs[0].greeks_source == "feed"
    assert best.payoff_multiple >= 3 and best.counts_by_gate["tenor_window"] > 0


def test_low_vol_tenor_is_60_to_90_days() -> None:
    best = selected(pick(chain(step=1), regime=LOW))
    assert 60 <= best.dte <= 90 and best.dte == 78
    assert abs(abs(best.greeks.delta) - 0.15) < 0.01


def test_rich_vol_goes_further_out_and_longer() -> None:
    snaps = chain(step=1)
    calm, rich = selected(pick(snaps)), selected(pick(snaps, regime=RICH))
    assert 120 <= rich.dte <= 180 and abs(abs(rich.greeks.delta) - 0.10) < 0.01
    assert rich.dte > calm.dte and abs(rich.greeks.delta) < abs(calm.greeks.delta)
    assert "rich IV" in rich.why


def test_high_iv_percentile_prefers_longer_expiries() -> None:
    snaps = chain((76, 83, 90, 97, 104), step=1)
    normal = selected(pick(snaps, pct=D(70)))
    longer = selected(pick(snaps, pct=D("70.01")))
    assert longer.dte > normal.dte and longer.dte >= 97
    assert selected(pick(snaps, pct=None)).dte == normal.dte


def test_fallback_scoring_when_greeks_are_missing() -> None:
    best = selected(pick(chain(step=1, greeks=False)))
    assert best.scoring == "fallback" and best.legs[0].greeks_source == "model"
    assert abs(abs(best.greeks.delta) - 0.15) < 0.01 and best.dte in (78, 92)
    # Without an IV either: implied from the mid.
    no_iv = selected(pick(chain(step=1, greeks=False, iv=False)))
    assert abs(no_iv.legs[0].iv - 0.20) < 0.01 and no_iv.scoring == "fallback"


def test_score_combines_convexity_and_payoff_multiple_normalised() -> None:
    best = selected(pick(chain(step=1)))
    assert D(0) < best.score <= D(1)
    assert S.scoring.convexity_weight + S.scoring.payoff_weight == 1


def test_selection_feeds_the_sizer_and_the_book() -> None:
    best = selected(pick(chain(step=1)))
    cand = best.candidate()
    assert cand.premium_per_contract == best.max_limit_price * 100
    assert cand.floor_payoff_per_contract == best.payoff_per_contract  # tail: same scenario
    legs = best.hedge_legs(3)
    assert legs[0].contracts == 3 and legs[0].contract == best.legs[0].contract
    holding = HedgeHolding("h1", "tail_first", "QQQ", legs, NOW)
    book = hedge_book_payoff([holding], {"QQQ": SPOT}, NOW, RATE, D(-20), D(10))
    assert abs(book - 3 * (best.scenario_value_per_contract - best.mid * 100)) < D(5)


def test_select_put_is_for_outright_puts_only() -> None:
    with pytest.raises(ValueError, match="outright puts"):
        select_put([], SPOT, NOW, RATE, MID, None, S, "smoothing")
    with pytest.raises(ValueError, match="spot"):
        select_put([], D(0), NOW, RATE, MID, None, S)


# -- spreads ---------------------------------------------------------------------------------------


def spread(snaps: list[OptionSnapshot], regime: Any = MID) -> Selection | NoSuitableContract:
    return select_spread(snaps, SPOT, NOW, RATE, regime, None, S, underlying="QQQ")


def test_spread_legs_are_distinct_same_expiry_long_above_short_with_a_debit() -> None:
    # 24 % flat vol: the 0.30-delta put sits above the 95 % strike cap, so the long leg is the
    # nearest below it (0.26); the spread pays 3.1x at -20 %, just past the 3x filter.
    sel = selected(spread(chain((50, 64, 78), step=1, vol=0.24)))
    long, short = sel.legs
    assert (long.side, short.side) == (1, -1)
    assert long.contract != short.contract and long.contract.expiry == short.contract.expiry
    assert long.contract.strike > short.contract.strike
    assert sel.width == long.contract.strike - short.contract.strike and sel.width > 0
    assert sel.dte == 64 and sel.structure == "put_spread" and sel.scoring == "spread"
    assert long.contract.strike == 475 and abs(abs(long.greeks.delta) - 0.30) < 0.05
    assert abs(abs(short.greeks.delta) - 0.10) < 0.01
    assert sel.mid == long.snapshot.mid - short.snapshot.mid > 0
    assert sel.natural == long.snapshot.ask - short.snapshot.bid >= sel.mid
    assert sel.premium_per_contract == sel.max_limit_price * 100 <= sel.natural * 100
    assert sel.payoff_per_contract == sel.scenario_value_per_contract - sel.premium_per_contract
    assert sel.scenario_value_per_contract <= sel.width * 100
    # The floor scenario (-20 %) pays more than the template's (-10 %), and at least 3x there.
    assert sel.floor_payoff_per_contract >= sel.payoff_per_contract
    assert sel.floor_payoff_per_contract >= 3 * sel.premium_per_contract
    assert sel.greeks.delta == pytest.approx(long.greeks.delta - short.greeks.delta)
    legs = sel.hedge_legs(2)
    assert [leg.contracts for leg in legs] == [2, -2]


def test_spreads_ignore_the_rich_iv_rules() -> None:
    snaps = chain((50, 64, 78, 120, 150), step=1, vol=0.24)
    assert selected(spread(snaps, RICH)).legs == selected(spread(snaps, MID)).legs


def test_spread_without_a_lower_strike_or_debit_is_refused() -> None:
    lonely = spread([put("470", 64, vol=0.3)])
    assert isinstance(lonely, NoSuitableContract) and lonely.counts_by_gate["no_short_leg"] == 1
    upside_down = [
        put("470", 64, vol=0.3, bid="2.00", ask="2.04"),
        put("420", 64, vol=0.3, bid="3.00", ask="3.04"),
    ]
    inverted = spread(upside_down)
    assert isinstance(inverted, NoSuitableContract)
    assert inverted.counts_by_gate["non_positive_debit"] == 1
    demanding = select_spread(
        chain((50, 64), step=1, vol=0.3),
        SPOT,
        NOW,
        RATE,
        MID,
        None,
        settings(scoring={"min_payoff_multiple": "100"}),
        underlying="QQQ",
    )
    assert isinstance(demanding, NoSuitableContract)
    assert demanding.counts_by_gate["spread_payoff_multiple"] == 2  # one pair per expiry
    assert demanding.counts_by_gate["payoff_multiple"] == 0  # legs are not filtered alone
    with pytest.raises(ValueError, match="put spreads"):
        select_spread([], SPOT, NOW, RATE, MID, None, S, "tail_first")


# -- the synthetic market ------------------------------------------------------------------------


def sim_pick(
    market: SimMarket, day: date, s: HedgingSettings = S
) -> tuple[Any, Selection | NoSuitableContract, Decimal]:
    at = ny(day)
    regime = regime_from_chain(market.chain("SPY", at), at, market.rate(at), s)
    spot = D(repr(market.spot("QQQ", at))).quantize(D("0.01"))
    qqq = market.chain("QQQ", at)
    return (
        regime,
        select_put(qqq, spot, at, market.rate(at), regime, None, s, div_yield=0.006),
        spot,
    )


def test_calm_day_on_the_sim_market_buys_a_15_delta_put_near_90_days(
    calm_market: SimMarket,
) -> None:
    regime, result, spot = sim_pick(calm_market, date(2020, 1, 2))
    assert regime.tier == "low" and not regime.rich
    best = selected(result)
    assert 60 <= best.dte <= 90
    assert abs(abs(best.greeks.delta) - 0.15) < 0.02
    assert D("0.75") <= best.legs[0].contract.strike / spot <= D("0.95")
    assert best.payoff_multiple >= 3 and best.max_limit_price <= best.natural
    # End to end: size it for a $150k book at about 2x.
    data = TomlReferenceData.load(SHIPPED_REFERENCE)
    book = [
        stock("AAPL", "90000"),
        stock("MSFT", "80000"),
        stock("NVDA", "50000"),
        stock("JPM", "40000"),
    ]
    report = compute_exposure(book, data, S, D(150000))
    assert report.underlying == "QQQ"
    decision = size_hedge(
        SizingInputs(
            nav=D(150000),
            exposure=report,
            regime=regime,
            month_to_date_spend=D(0),
            year_to_date_spend=D(0),
            active_hedges=0,
            existing_payoff=D(0),
            market_open=True,
            data_ok=True,
            hedging_enabled=True,
            kill_switch_tripped=False,
            candidate=best.candidate(),
        ),
        S,
    )
    assert decision.contracts >= 1 and decision.premium <= D(525)  # 0.35 % of $150k
    assert decision.binding_constraint in ("monthly_cap", "payoff_target")


def test_rich_day_on_the_sim_market_goes_further_out_and_longer(
    calm_market: SimMarket, rich_market: SimMarket
) -> None:
    _, calm_result, calm_spot = sim_pick(calm_market, date(2020, 1, 2))
    regime, rich_result, rich_spot = sim_pick(rich_market, date(2020, 11, 17))
    assert regime.rich, regime
    calm, rich = selected(calm_result), selected(rich_result)
    assert rich.dte >= 120 and rich.dte > calm.dte
    assert abs(rich.greeks.delta) < abs(calm.greeks.delta)
    assert rich.legs[0].contract.strike / rich_spot < calm.legs[0].contract.strike / calm_spot
    assert rich.payoff_multiple >= 3


def test_deep_rich_day_finds_nothing_and_says_why(crash_market: SimMarket) -> None:
    """At an index near 40 no QQQ put in 120-180 days is both tight (<= $0.10 wide) and a 3x
    payoff: the rules buy nothing rather than overpay, and say which gates removed what."""
    regime, result, _ = sim_pick(crash_market, date(2020, 3, 3))
    assert regime.rich
    assert isinstance(result, NoSuitableContract)
    counts = result.counts_by_gate
    assert counts["spread_abs"] > 0 and counts["payoff_multiple"] > 0
    assert sum(counts.values()) == result.considered


def test_switch_template_retry_with_a_sim_spread(calm_market: SimMarket) -> None:
    """The evaluator's retry path: tail_first cannot reach the floor, smoothing is sized instead."""
    day = date(2020, 1, 2)
    at = ny(day)
    switch = settings(caps={"shortfall_fallback": "switch_template"})
    regime, result, spot = sim_pick(calm_market, day, switch)
    put_sel = selected(result)
    report = compute_exposure(
        [stock("AAPL", "150000"), stock("MSFT", "150000")],
        TomlReferenceData.load(SHIPPED_REFERENCE),
        switch,
        D(150000),
    )
    base = SizingInputs(
        nav=D(150000),
        exposure=report,
        regime=regime,
        month_to_date_spend=D(0),
        year_to_date_spend=D(0),
        active_hedges=0,
        existing_payoff=D(0),
        market_open=True,
        data_ok=True,
        hedging_enabled=True,
        kill_switch_tripped=False,
        candidate=put_sel.candidate(),
    )
    first = size_hedge(base, switch)
    assert first.switch_template_to == "smoothing" and first.contracts == 0
    spread_sel = selected(
        select_spread(calm_market.chain("QQQ", at), spot, at, 0.04, regime, None, switch)
    )
    assert spread_sel.legs[0].contract != spread_sel.legs[1].contract and spread_sel.mid > 0
    retry = size_hedge(
        dataclasses.replace(
            base,
            template="smoothing",
            existing_floor_payoff=D(0),
            candidate=spread_sel.candidate(),
        ),
        switch,
    )
    assert retry.template == "smoothing" and retry.switch_template_to is None
    assert retry.contracts >= 1 and retry.premium <= D(525)
    assert retry.shortfall is not None and retry.shortfall > 0  # reported, honestly
