"""Volatility regime: tier boundaries, the chain-derived index, the VIXY fallback, IV percentile."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest

from alchemiser.domain.trading import OptionSnapshot
from alchemiser.hedging.vol_regime import (
    VolRegimeError,
    atm_iv,
    classify,
    current_regime,
    iv_percentile,
    regime_from_chain,
    regime_from_vixy,
)
from alchemiser.sim import SimMarket
from tests.hedging.helpers import NOW, chain, ny, put, settings

S = settings()
D = Decimal


@pytest.mark.parametrize(
    ("index", "tier", "rich"),
    [
        ("0", "low", False),
        ("17.99", "low", False),
        ("18", "mid", False),
        ("28", "mid", False),
        ("28.01", "high", False),
        ("35", "high", False),
        ("35.01", "high", True),
        ("80", "high", True),
    ],
)
def test_tier_boundaries(index: str, tier: str, rich: bool) -> None:
    regime = classify(D(index), S)
    assert (regime.tier, regime.rich, regime.index, regime.source) == (
        tier,
        rich,
        D(index),
        "given",
    )


def test_tiers_read_their_settings() -> None:
    custom = settings(vol_tiers={"low_below": "15", "high_above": "25", "rich_above": "30"})
    assert classify(D("16"), custom).tier == "mid"
    assert classify(D("26"), custom).tier == "high"
    assert classify(D("31"), custom).rich


@pytest.mark.parametrize("bad", ["NaN", "-1", "Infinity"])
def test_a_bad_index_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError, match="finite"):
        classify(D(bad), S)


def spy_chain(market: SimMarket, day: date) -> list[OptionSnapshot]:
    return market.chain("SPY", ny(day))


def test_regime_from_the_sim_spy_chain_matches_the_markets_index(calm_market: SimMarket) -> None:
    day = date(2020, 1, 2)
    regime = regime_from_chain(spy_chain(calm_market, day), ny(day), 0.04, S)
    assert regime.source == "spy_chain" and regime.tier == "low"
    assert abs(float(regime.index) - calm_market.vol_index(ny(day))) < 1.0
    assert "interpolated" in regime.detail


def test_bad_quotes_are_dropped_before_the_index(calm_market: SimMarket) -> None:
    day = date(2020, 1, 2)
    at = ny(day)
    clean = spy_chain(calm_market, day)
    base = regime_from_chain(clean, at, 0.04, S)
    template = clean[len(clean) // 2]
    junk = [
        dataclasses.replace(template, bid=D("9"), ask=D("1")),  # crossed
        dataclasses.replace(template, bid=D("NaN")),
        dataclasses.replace(template, ask=D(0)),
        dataclasses.replace(template, timestamp=at - timedelta(seconds=301)),  # stale
        put("100", 30, root="QQQ"),  # another underlying
    ]
    # Duplicate rows with bad quotes would break the index if they were not dropped first.
    noisy = regime_from_chain([*clean, *junk], at, 0.04, S)
    assert noisy.index == base.index
    assert "1 crossed" in noisy.detail and "1 stale_quote" in noisy.detail
    assert "2 missing_quote" in noisy.detail and "1 other_underlying" in noisy.detail


def test_no_usable_chain_is_an_error_not_a_guess() -> None:
    with pytest.raises(VolRegimeError, match="no usable SPY option quotes"):
        regime_from_chain([], NOW, 0.04, S)
    stale = [put("500", 30, root="SPY", timestamp=NOW - timedelta(hours=1))]
    with pytest.raises(VolRegimeError, match="stale_quote"):
        regime_from_chain(stale, NOW, 0.04, S)
    # Puts only: no forward from put-call parity.
    with pytest.raises(VolRegimeError, match="SPY chain"):
        regime_from_chain(chain((30, 40), root="SPY"), NOW, 0.04, S)


def test_vixy_fallback_only_when_a_scale_is_set() -> None:
    with pytest.raises(VolRegimeError, match="vixy_scale is not set"):
        regime_from_vixy(D("20"), S)
    with pytest.raises(VolRegimeError, match="no usable"):
        current_regime([], NOW, 0.04, S, vixy_price=D("20"))
    scaled = settings(vol_index={"vixy_scale": "1.5"})
    regime = current_regime([], NOW, 0.04, scaled, vixy_price=D("20"))
    assert (regime.index, regime.tier, regime.source) == (D("30.0000"), "high", "vixy")
    assert "chain unusable" in regime.detail
    with pytest.raises(VolRegimeError, match="fallback: VIXY price must be a positive"):
        current_regime([], NOW, 0.04, scaled, vixy_price=D(0))
    with pytest.raises(VolRegimeError):
        current_regime([], NOW, 0.04, scaled, vixy_price=None)


def test_chain_wins_over_the_fallback(calm_market: SimMarket) -> None:
    day = date(2020, 1, 2)
    scaled = settings(vol_index={"vixy_scale": "100"})
    regime = current_regime(spy_chain(calm_market, day), ny(day), 0.04, scaled, D("20"))
    assert regime.source == "spy_chain"


def test_iv_percentile_needs_enough_history() -> None:
    history = [D(n) / 1000 for n in range(1, 126)]  # 125 observations: one short
    assert iv_percentile(history, D("0.5"), S) is None
    history.append(D("0.126"))
    assert iv_percentile(history, D("0.5"), S) == D("100.00")
    assert iv_percentile(history, D("0.001"), S) == D("0.00")
    # Strictly below: 0.063 has 62 observations under it (0.001 .. 0.062) out of 126.
    assert iv_percentile(history, D("0.063"), S) == (D(6200) / 126).quantize(D("0.01"))
    assert iv_percentile(history, D("NaN"), S) is None


def test_iv_percentile_uses_the_trailing_window_only() -> None:
    old = [D("0.90")] * 300
    recent = [D("0.10")] * 252
    assert iv_percentile([*old, *recent], D("0.20"), S) == D("100.00")
    short = settings(iv_percentile={"window_sessions": 20, "min_observations": 10})
    assert iv_percentile([D("0.3")] * 9, D("0.5"), short) is None
    assert iv_percentile([D("NaN")] * 5 + [D("0.3")] * 10, D("0.5"), short) == D("100.00")


def test_atm_iv_interpolates_total_variance_between_expiries() -> None:
    snaps = [
        put("495", 30, vol=0.20),
        put("505", 30, vol=0.20),
        put("495", 60, vol=0.30),
        put("505", 60, vol=0.30),
    ]
    assert atm_iv(snaps, D(500), 30, NOW) == D("0.200000")
    expected = ((0.5 * 0.04 * 30 + 0.5 * 0.09 * 60) / 45) ** 0.5
    assert float(atm_iv(snaps, D(500), 45, NOW) or 0) == pytest.approx(expected, abs=1e-6)
    assert atm_iv(snaps, D(500), 90, NOW) == D("0.300000")  # flat beyond the last expiry
    assert atm_iv(snaps, D(600), 30, NOW) is None  # spot beyond the strikes: no extrapolation
    assert atm_iv([put("500", 30, iv=False)], D(500), 30, NOW) is None


def test_atm_iv_on_the_sim_chain(calm_market: SimMarket) -> None:
    day = date(2020, 1, 2)
    at = ny(day)
    snaps = calm_market.chain("QQQ", at)
    spot = D(repr(calm_market.spot("QQQ", at)))
    value = atm_iv(snaps, spot, 30, at)
    assert value is not None and D("0.05") < value < D("0.40")
