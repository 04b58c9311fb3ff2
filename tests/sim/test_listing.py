"""Listing rules (expiries, strike grids), the universe and the surface's shape."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from alchemiser.sim import (
    CORE_ETFS,
    Instrument,
    InstrumentKind,
    SimMarket,
    StrikeGridStyle,
    SurfaceParams,
    default_universe,
)
from alchemiser.sim.listing import ListingParams, listed_expiries, strike_steps, third_friday
from alchemiser.sim.surface import (
    atm_total_variance,
    market_atm_variance,
    ssvi_total_variance,
    vol_index_of_state,
)
from tests.sim.util import ny

FRIDAY = 4


def _is_third_friday(d: date) -> bool:
    return d.weekday() == FRIDAY and 15 <= d.day <= 21


def test_third_friday() -> None:
    for year in (2020, 2024, 2031):
        for month in range(1, 13):
            d = third_friday(year, month)
            assert _is_third_friday(d) and d.month == month


def test_monthlies_on_third_fridays_out_to_eighteen_months(market: SimMarket) -> None:
    on = date(2021, 1, 11)
    exps = market.expiries("KO", on)  # no weeklies for KO
    assert all(on <= e for e in exps) and exps == sorted(exps)
    for e in exps:
        # A third Friday, or the Thursday before one that is a holiday.
        assert _is_third_friday(e) or (
            _is_third_friday(e + timedelta(days=1))
            and not market.calendar.is_session(e + timedelta(days=1))
        )
    months_out = (exps[-1] - on).days / 30.44
    assert 15 <= months_out <= 19
    # Every month of the next year has its monthly.
    months = {(e.year, e.month) for e in exps}
    for k in range(12):
        y, m = divmod(on.month - 1 + k, 12)
        assert (on.year + y, m + 1) in months


def test_good_friday_expiry_moves_to_thursday(market: SimMarket) -> None:
    # 2022-04-15 was both the third Friday of April and Good Friday.
    assert not market.calendar.is_session(date(2022, 4, 15))
    for sym in ("SPY", "KO"):
        exps = market.expiries(sym, date(2022, 3, 1))
        assert date(2022, 4, 14) in exps
        assert date(2022, 4, 15) not in exps


def test_weeklies_for_etfs_and_big_stocks_only(market: SimMarket) -> None:
    on = date(2021, 9, 1)  # a Wednesday
    fridays = [on + timedelta(days=2 + 7 * k) for k in range(8)]
    for sym in ("SPY", "QQQ", "IWM", "AAPL", "NVDA"):
        listed = set(market.expiries(sym, on))
        assert all(f in listed for f in fridays if market.calendar.is_session(f)), sym
    for sym in ("KO", "XOM", "VIXY"):
        exps = market.expiries(sym, on)
        assert all(_is_third_friday(e) for e in exps[:3]), sym


def test_expiries_appear_and_disappear_as_time_passes(market: SimMarket) -> None:
    d1 = date(2021, 3, 1)
    d2 = d1 + timedelta(days=60)
    e1, e2 = set(market.expiries("SPY", d1)), set(market.expiries("SPY", d2))
    assert {e for e in e1 if e < d2} & e2 == set()  # expired ones are gone
    assert e2 - e1  # new ones were listed
    assert max(e2) > max(e1)


def test_listed_expiries_pure_function() -> None:
    cal = SimMarket(seed=1, start=date(2020, 1, 2)).calendar
    params = ListingParams()
    # An expiry is listed from (Friday − horizon) to its expiry day.
    weekly = date(2021, 5, 28)
    on_first = weekly - timedelta(days=params.weekly_days)
    assert weekly in [e.date for e in listed_expiries(cal, on_first, True, params)]
    assert weekly not in [
        e.date for e in listed_expiries(cal, on_first - timedelta(days=1), True, params)
    ]
    assert weekly in [e.date for e in listed_expiries(cal, weekly, True, params)]


def test_index_strikes_are_one_dollar_near_and_five_far(market: SimMarket) -> None:
    on = date(2020, 2, 3)
    spot = market.spot("SPY", ny(on, 12))
    expiry = market.expiries("SPY", on)[2]
    strikes = np.array(
        [float(i.contract.strike) for i in market.contracts("SPY", on, expiry, expiry)]
    )
    strikes = np.unique(strikes)
    near = strikes[np.abs(strikes / spot - 1) < 0.04]
    far = strikes[strikes < 0.8 * spot]
    assert set(np.diff(near)) == {1.0}
    assert set(np.diff(far)) == {5.0}
    assert strikes.min() <= 0.65 * spot and strikes.max() >= 1.25 * spot


def test_stock_strike_steps_by_price_level() -> None:
    assert strike_steps(StrikeGridStyle.STOCK, 20.0) == (0.5, 1.0)
    assert strike_steps(StrikeGridStyle.STOCK, 120.0) == (2.5, 5.0)
    assert strike_steps(StrikeGridStyle.STOCK, 300.0) == (5.0, 10.0)
    assert strike_steps(StrikeGridStyle.STOCK, 700.0) == (10.0, 20.0)
    assert strike_steps(StrikeGridStyle.INDEX, 450.0) == (1.0, 5.0)
    assert strike_steps(StrikeGridStyle.INDEX, 2200.0) == (2.5, 12.5)


def test_strikes_of_an_expiry_are_only_ever_added(market: SimMarket) -> None:
    expiry = date(2020, 12, 18)
    days = market.sessions(date(2020, 2, 3), date(2020, 6, 30))  # through the spring crash
    previous: set[str] = set()
    for d in days[::3]:
        current = {i.symbol for i in market.contracts("QQQ", d, expiry, expiry)}
        assert previous <= current
        previous = current
    assert len(previous) > 100


def test_long_dated_ranges_are_wider(market: SimMarket) -> None:
    on = date(2021, 1, 4)
    exps = market.expiries("SPY", on)

    def span(e: date) -> float:
        k = [float(i.contract.strike) for i in market.contracts("SPY", on, e, e)]
        return max(k) / min(k)

    assert span(exps[-1]) > span(exps[0])


def test_default_universe_matches_the_parameters() -> None:
    u = {i.symbol: i for i in default_universe()}
    assert (u["SPY"].beta, u["QQQ"].beta, u["IWM"].beta) == (1.00, 1.15, 1.20)
    assert u["VIXY"].kind is InstrumentKind.VOL_ETF
    assert {"AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "KO", "PG", "JPM", "XOM"} <= set(u)
    assert all(u[s].penny_pilot and u[s].weeklies for s in ("SPY", "QQQ", "IWM", "AAPL", "META"))
    assert not u["KO"].penny_pilot and not u["KO"].weeklies
    assert u["AAPL"].sector == "Technology" and u["XOM"].sector == "Energy"
    assert CORE_ETFS[0].symbol == "SPY"


@pytest.mark.parametrize(
    ("field", "value"),
    [("symbol", "spy"), ("symbol", "TOOLONGX"), ("beta", float("nan")), ("start_price", 0.0)],
)
def test_instrument_validation(field: str, value: object) -> None:
    base = dict(
        symbol="ABC",
        kind=InstrumentKind.STOCK,
        sector="Industrials",
        beta=1.0,
        start_price=50.0,
        idio_vol=0.2,
        div_yield=0.01,
        strike_grid=StrikeGridStyle.STOCK,
        penny_pilot=False,
        weeklies=False,
    )
    base[field] = value
    with pytest.raises(ValueError, match=field):
        Instrument(**base)  # type: ignore[arg-type]


def test_surface_has_no_calendar_or_butterfly_arbitrage_on_a_grid() -> None:
    p = SurfaceParams()
    times = np.array([1 / 365, 7 / 365, 30 / 365, 0.25, 0.5, 1.0, 1.5])
    k = np.linspace(-1.5, 0.8, 400)
    for vol in (0.06, 0.12, 0.25, 0.6, 1.2):
        x = np.log(vol * vol)
        for kind, beta, idio in (
            (InstrumentKind.ETF, 1.2, 0.1),
            (InstrumentKind.STOCK, 1.7, 0.4),
            (InstrumentKind.VOL_ETF, 0.0, 0.0),
        ):
            theta = atm_total_variance(kind, beta, idio, x, times, p)
            assert (np.diff(theta) > 0).all()
            rho = {InstrumentKind.ETF: p.index_rho, InstrumentKind.STOCK: p.stock_rho}.get(
                kind, p.vol_etf_rho
            )
            eta = {InstrumentKind.ETF: p.index_eta, InstrumentKind.STOCK: p.stock_eta}.get(
                kind, p.vol_etf_eta
            )
            w = np.array([ssvi_total_variance(k, t, rho, eta, p.ssvi_gamma) for t in theta])
            assert (np.diff(w, axis=0) > 0).all()  # total variance grows with expiry at every k
            # Durrleman's condition g(k) >= 0 (no butterfly arbitrage), by finite differences.
            dk = k[1] - k[0]
            for row in w:
                w1 = np.gradient(row, dk)
                w2 = np.gradient(w1, dk)
                g = (1 - k * w1 / (2 * row)) ** 2 - w1**2 / 4 * (1 / row + 0.25) + w2 / 2
                assert g[2:-2].min() > -1e-6


def test_vol_index_rises_with_the_vol_state() -> None:
    p = SurfaceParams()
    x = np.log(np.linspace(0.05, 1.0, 50) ** 2)
    v = vol_index_of_state(x, p)
    assert (np.diff(v) > 0).all()
    # Short-dated market ATM variance leads; long-dated reverts to the long-run level.
    low, high = (
        market_atm_variance(x[0], np.array([0.1, 1.0]), p),
        market_atm_variance(x[-1], np.array([0.1, 1.0]), p),
    )
    assert low[1] / 1.0 > low[0] / 0.1 and high[1] / 1.0 < high[0] / 0.1
