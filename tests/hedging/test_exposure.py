"""Exposure: beta and leverage adjustments, sector mapping, the 80 % rule, L and the multiplier."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from alchemiser.hedging.exposure import (
    compute_exposure,
    exposure_multiplier,
    map_to_etf,
    rolling_beta,
)
from alchemiser.market.reference import SymbolInfo, TomlReferenceData
from alchemiser.sim import SimMarket
from tests.hedging.helpers import SHIPPED_REFERENCE, option_position, settings, stock

S = settings()
D = Decimal


def ref(**symbols: dict[str, object]) -> TomlReferenceData:
    return TomlReferenceData.parse({"symbols": symbols})


REF = ref(
    AAPL={"sector": "Technology", "beta": 1.2},
    MSFT={"sector": "Technology", "beta": 1.15},
    JPM={"sector": "Financials", "beta": 1.0},
    KO={"sector": "Consumer Staples", "beta": 0.6},
    XLRE={"sector": "Real Estate", "beta": 1.2},
    TQQQ={"tracks": "QQQ", "beta": 1.15, "leverage": 3},
    SQQQ={"tracks": "QQQ", "beta": 1.15, "leverage": -3},
    SH={"tracks": "SPY", "beta": 1.0, "leverage": -1},
    VIXY={"sector": "Volatility", "beta": -3},
)


@pytest.mark.parametrize(
    ("leverage", "multiplier"),
    [
        ("0", "1.0"),
        ("0.5", "1.0"),
        ("1.0", "1.0"),
        ("1.5", "1.25"),
        ("2.0", "1.5"),
        ("2.5", "1.5"),
        ("4", "1.5"),
    ],
)
def test_multiplier_table(leverage: str, multiplier: str) -> None:
    assert exposure_multiplier(D(leverage), S.exposure_multiplier) == D(multiplier)


def test_multiplier_reads_its_settings() -> None:
    custom = settings(exposure_multiplier={"base": "1", "slope": "1", "maximum": "3"})
    assert exposure_multiplier(D("2.5"), custom.exposure_multiplier) == D("2.5")


def test_a_stock_beta_to_spy_converts_to_beta_to_the_hedge_etf() -> None:
    # $100k AAPL, beta 1.2 to SPY; QQQ's beta to SPY is 1.15: AAPL moves 1.2/1.15 per 1 of QQQ.
    report = compute_exposure([stock("AAPL", "100000")], REF, S, D(50000))
    assert report.underlying == "QQQ" and report.underlying_beta == D("1.15")
    assert report.net == (D(100000) * D("1.2") / D("1.15")).quantize(D("0.01"))
    assert report.by_etf["QQQ"].spy_exposure == D("120000.00")
    assert report.leverage == (report.net / 50000).quantize(D("0.000001"))
    assert report.positions[0].beta_source == "reference"


def test_two_x_book_gets_multiplier_one_and_a_half() -> None:
    # $200k of beta-1.15 tech on $100k NAV: exactly 2.0x QQQ exposure.
    report = compute_exposure([stock("MSFT", "200000")], REF, S, D(100000))
    assert (report.leverage, report.multiplier) == (D("2.000000"), D("1.5"))
    report = compute_exposure([stock("MSFT", "100000")], REF, S, D(100000))
    assert (report.leverage, report.multiplier) == (D("1.000000"), D("1.0"))


def test_leverage_factors_three_x_and_inverse_etfs() -> None:
    tqqq = compute_exposure([stock("TQQQ", "10000")], REF, S, D(100000))
    assert tqqq.underlying == "QQQ" and tqqq.net == D("30000.00")
    sqqq = compute_exposure([stock("TQQQ", "10000"), stock("SQQQ", "5000")], REF, S, D(100000))
    assert sqqq.net == D("15000.00") and sqqq.gross == D("45000.00")
    sh = compute_exposure([stock("JPM", "50000"), stock("SH", "10000")], REF, S, D(100000))
    assert sh.underlying == "SPY" and sh.net == D("40000.00") and sh.gross == D("60000.00")


def test_short_stock_counts_negative() -> None:
    report = compute_exposure([stock("JPM", "50000"), stock("KO", "-10000")], REF, S, D(100000))
    assert report.net == D(50000) - D(6000)


def test_options_and_own_hedges_are_never_equity_exposure() -> None:
    positions = [
        stock("JPM", "50000"),
        option_position("SPY260619P00500000", 3),
        option_position("QQQ260619P00400000", -3),
        stock("VIXY", "5000"),
    ]
    report = compute_exposure(positions, REF, S, D(100000), hedge_symbols={"vixy"})
    assert report.net == D("50000.00") and report.equity_position_count == 1
    assert set(report.excluded) == {"SPY260619P00500000", "QQQ260619P00400000", "VIXY"}
    # Not named as a hedge, VIXY is a (negative-beta) holding like any other.
    held = compute_exposure(positions, REF, S, D(100000))
    assert held.net == D(50000) - D(15000) and held.equity_position_count == 2


def test_unknown_symbol_moves_with_its_etf() -> None:
    report = compute_exposure([stock("ZZZZ", "10000")], REF, S, D(100000))
    row = report.positions[0]
    assert (row.etf, row.beta_to_spy, row.beta_source) == ("SPY", D("1.00"), "etf")
    assert report.net == D("10000.00")


def test_hedge_etf_held_directly_maps_to_itself() -> None:
    report = compute_exposure([stock("IWM", "30000")], ref(), S, D(100000))
    assert report.underlying == "IWM" and report.net == D("30000.00")


@pytest.mark.parametrize(
    ("sector", "unavailable", "etf"),
    [
        ("Technology", (), "QQQ"),
        ("Technology", ("QQQ",), "SPY"),
        ("Communication Services", ("QQQ",), "SPY"),
        ("Healthcare", (), "SPY"),
        ("Healthcare", ("SPY",), "IWM"),
        ("Materials", ("SPY",), "IWM"),
        ("Consumer Staples", ("SPY",), "SPY"),  # no fallback: keep it, the evaluator fails closed
        ("Real Estate", (), "IWM"),
        ("Real Estate", ("IWM",), "SPY"),
        ("Basket Weaving", (), "SPY"),
        (None, (), "SPY"),
    ],
)
def test_sector_map_and_fallbacks(
    sector: str | None, unavailable: tuple[str, ...], etf: str
) -> None:
    info = SymbolInfo("X", sector=sector)
    assert map_to_etf(info, S.underlying, unavailable) == etf


def test_tracks_outside_the_hedge_etfs_falls_back_to_the_sector() -> None:
    info = SymbolInfo("DDM", sector="Industrials", tracks="DIA")
    assert map_to_etf(info, S.underlying) == "SPY"


def test_eighty_percent_rule_prefers_qqq_within_twenty_percent_of_the_largest() -> None:
    # Compared in SPY-equivalent dollars: JPM $100k x 1.0 vs AAPL $X x 1.2.
    at_80 = [stock("JPM", "100000"), stock("AAPL", str(D(80000) / D("1.2")))]
    report = compute_exposure(at_80, REF, S, D(100000))
    assert report.by_etf["QQQ"].spy_exposure == D("80000.00")
    assert report.underlying == "QQQ"
    below = [stock("JPM", "100000"), stock("AAPL", "66600")]  # 79.92 %
    assert compute_exposure(below, REF, S, D(100000)).underlying == "SPY"
    # The largest wins outright when it is not the preferred ETF's bucket.
    assert (
        compute_exposure([stock("XLRE", "50000"), stock("JPM", "10000")], REF, S, D(1e5)).underlying
        == "IWM"
    )


def test_eighty_percent_rule_reads_its_settings() -> None:
    strict = settings(underlying={"preferred_min_ratio": "0.95"})
    book = [stock("JPM", "100000"), stock("AAPL", "75000")]  # QQQ bucket 90 % of SPY's
    assert compute_exposure(book, REF, S, D(100000)).underlying == "QQQ"
    assert compute_exposure(book, REF, strict, D(100000)).underlying == "SPY"


def test_net_exposure_is_in_the_chosen_underlyings_dollars() -> None:
    book = [stock("AAPL", "100000"), stock("JPM", "50000")]
    report = compute_exposure(book, REF, S, D(100000))
    assert report.underlying == "QQQ"
    assert report.net == ((D(120000) + D(50000)) / D("1.15")).quantize(D("0.01"))
    assert report.by_etf["SPY"].exposure == D("50000.00")
    assert report.by_etf["QQQ"].exposure == (D(120000) / D("1.15")).quantize(D("0.01"))


def test_rolling_etf_betas_replace_static_ones() -> None:
    report = compute_exposure(
        [stock("AAPL", "115000")], REF, S, D(100000), etf_betas={"QQQ": D("1.2")}
    )
    assert report.underlying_beta == D("1.2") and report.net == D("115000.00")
    with pytest.raises(ValueError, match="positive"):
        compute_exposure([stock("AAPL", "1")], REF, S, D(1), etf_betas={"QQQ": D(0)})


def test_unavailable_etf_moves_the_book_along_the_fallbacks() -> None:
    report = compute_exposure(
        [stock("AAPL", "100000")], REF, S, D(100000), unavailable_etfs={"QQQ"}
    )
    assert report.underlying == "SPY" and report.net == D("120000.00")


def test_empty_book_and_zero_quantities() -> None:
    report = compute_exposure([stock("AAPL", "0")], REF, S, D(100000))
    assert report.underlying is None and report.equity_position_count == 0
    assert (report.net, report.leverage, report.multiplier) == (D(0), D(0), D("1.0"))


def test_non_positive_nav_gives_zero_leverage_not_an_error() -> None:
    assert compute_exposure([stock("AAPL", "1000")], REF, S, D(0)).leverage == 0
    with pytest.raises(ValueError, match="NAV"):
        compute_exposure([], REF, S, D("NaN"))


def test_sim_book_with_the_shipped_reference_data() -> None:
    data = TomlReferenceData.load(SHIPPED_REFERENCE)
    book = [
        stock("AAPL", "60000"),
        stock("MSFT", "50000"),
        stock("NVDA", "40000"),
        stock("AMZN", "30000"),
        stock("GOOGL", "30000"),
        stock("META", "20000"),
        stock("KO", "20000"),
        stock("JPM", "30000"),
        stock("TQQQ", "10000"),
    ]
    report = compute_exposure(book, data, S, D(150000))
    assert report.underlying == "QQQ"
    assert report.equity_position_count == 9
    assert D("2.0") < report.leverage < D("2.5") and report.multiplier == D("1.5")


def test_rolling_beta_from_aligned_closes() -> None:
    under = S.underlying
    market = [D(100)]
    asset = [D(50)]
    for n in range(200):
        r = D((-1) ** n * (n % 7)) / 1000
        market.append(market[-1] * (1 + r))
        asset.append(asset[-1] * (1 + D("1.5") * r))
    assert rolling_beta(asset, market, under) == D("1.5000")
    assert rolling_beta(asset[:126], market[:126], under) is None  # 125 returns: one short
    assert rolling_beta(asset[:127], market[:127], under) == D("1.5000")
    # A missing close drops the two returns that touch it, not the series.
    holed = [*asset[:50], D("NaN"), *asset[51:]]
    assert rolling_beta(holed, market, under) == D("1.5000")
    assert rolling_beta([D(1)] * 200, [D(1)] * 200, under) is None  # a flat market
    with pytest.raises(ValueError, match="aligned"):
        rolling_beta(asset, market[:-1], under)


def test_rolling_beta_recovers_the_sim_markets_betas(calm_market: SimMarket) -> None:
    first, last = date(2020, 1, 2), date(2021, 12, 31)
    spy = [D(repr(float(x))) for x in calm_market.closes("SPY", first, last)]
    qqq = [D(repr(float(x))) for x in calm_market.closes("QQQ", first, last)]
    beta = rolling_beta(qqq, spy, S.underlying)
    assert beta is not None and abs(beta - D("1.15")) < D("0.1")
