"""Option chains: no-arbitrage, quotes on the tick grid, kernel greeks and IV, activity."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest

from alchemiser.domain.implied_vol import implied_vol
from alchemiser.domain.pricing import bsm_greeks, bsm_price
from alchemiser.domain.vol_index import OptionChain, vix_index
from alchemiser.sim import ChainArrays, SimMarket
from tests.sim.util import ny, option_tick

# Dates in calm and stressed regimes (the fixture market's path), at several times of day.
WHEN = [
    ny(date(2020, 1, 2), 9, 45),
    ny(date(2020, 3, 20), 15, 30),
    ny(date(2021, 8, 3), 12, 0),
    ny(date(2022, 4, 14), 11, 0),  # the day before Good Friday
    ny(date(2023, 12, 29), 20, 0),  # after the close
    ny(date(2026, 7, 4), 12, 0),  # a holiday: Friday 3rd's close
]
SYMBOLS = ["SPY", "QQQ", "IWM", "VIXY", "AAPL", "NVDA", "KO", "XOM"]


def _groups(a: ChainArrays) -> list[tuple[date, bool, np.ndarray]]:
    """(expiry, is_call, rows sorted by strike) for every expiry and right."""
    exp = np.array([d.toordinal() for d in a.expiry])
    out = []
    for e in sorted(set(a.expiry)):
        for call in (True, False):
            rows = np.flatnonzero((exp == e.toordinal()) & (a.is_call == call))
            out.append((e, call, rows[np.argsort(a.strike[rows])]))
    return out


@pytest.fixture(scope="module")
def chains(market: SimMarket) -> list[tuple[str, ChainArrays]]:
    return [(u, market.chain_arrays(u, at)) for at in WHEN for u in SYMBOLS]


def test_chains_are_substantial(chains: list[tuple[str, ChainArrays]]) -> None:
    for u, a in chains:
        assert len(a) > 200, u
        assert len(set(a.expiry)) >= 8, u


def test_model_prices_are_free_of_static_arbitrage(chains: list[tuple[str, ChainArrays]]) -> None:
    for u, a in chains:
        for e, call, rows in _groups(a):
            k, v = a.strike[rows], a.model[rows]
            dv = np.diff(v)
            tol = 1e-9 * k[1:]
            if call:
                assert (dv <= tol).all(), (u, e, "calls must not rise with the strike")
            else:
                assert (dv >= -tol).all(), (u, e, "puts must not fall with the strike")
            slope = dv / np.diff(k)
            assert (np.diff(slope) >= -1e-7).all(), (u, e, call, "butterflies must be >= 0")
            assert (v >= 0).all()


def test_quote_mids_are_monotone_and_convex_within_a_tick(
    chains: list[tuple[str, ChainArrays]], market: SimMarket
) -> None:
    for u, a in chains:
        penny = market.instrument(u).penny_pilot
        for e, call, rows in _groups(a):
            mid = 0.5 * (a.bid[rows] + a.ask[rows])
            tick = np.array([option_tick(u, p, penny) for p in a.ask[rows]])
            step = np.diff(mid) if call else -np.diff(mid)
            assert (step <= tick[1:] + 1e-9).all(), (u, e, call)
            # Butterfly on neighbouring strikes, in price: K-weighted for uneven spacing.
            k = a.strike[rows]
            w = (k[2:] - k[1:-1]) / (k[2:] - k[:-2])
            fly = w * mid[:-2] + (1 - w) * mid[2:] - mid[1:-1]
            assert (fly >= -2 * tick[1:-1] - 1e-9).all(), (u, e, call)


def test_longer_expiries_are_worth_more(chains: list[tuple[str, ChainArrays]]) -> None:
    """Calendar: same strike, later expiry >= earlier (OTM options; ITM ones are floored)."""
    for u, a in chains:
        exps = sorted(set(a.expiry))
        exp = np.array([d.toordinal() for d in a.expiry])
        for call in (True, False):
            for e1, e2 in itertools.pairwise(exps):
                r1 = np.flatnonzero((exp == e1.toordinal()) & (a.is_call == call))
                r2 = np.flatnonzero((exp == e2.toordinal()) & (a.is_call == call))
                k, i1, i2 = np.intersect1d(a.strike[r1], a.strike[r2], return_indices=True)
                otm = k >= a.spot if call else k <= a.spot
                near, far = r1[i1][otm], r2[i2][otm]
                assert (a.model[far] >= a.model[near] - 1e-9).all(), (u, e1, e2, call)
                mid_near = 0.5 * (a.bid[near] + a.ask[near])
                mid_far = 0.5 * (a.bid[far] + a.ask[far])
                assert (mid_far >= mid_near - 0.05 - 1e-9).all(), (u, e1, e2, call)


def test_put_call_parity_of_mids_within_spreads(
    chains: list[tuple[str, ChainArrays]], market: SimMarket
) -> None:
    checked = 0
    for u, a in chains:
        inst = market.instrument(u)
        r = market.rate(WHEN[0])
        european = bsm_price(a.spot, a.strike, a.years, r, inst.div_yield, a.iv, a.is_call)
        exact = np.abs(a.model - european) <= 1e-9 * a.strike  # the American floor is not binding
        for _, call, rows in _groups(a):
            if not call:
                continue
            calls = rows
            puts = rows + 1  # each put follows its call
            ok = exact[calls] & exact[puts]
            ok &= np.abs(np.log(a.strike[calls] / a.spot)) < 0.15
            c, p = calls[ok], puts[ok]
            if not c.size:
                continue
            t = a.years[c]
            parity = a.spot * np.exp(-inst.div_yield * t) - a.strike[c] * np.exp(-r * t)
            mid_c = 0.5 * (a.bid[c] + a.ask[c])
            mid_p = 0.5 * (a.bid[p] + a.ask[p])
            half_spreads = 0.5 * ((a.ask[c] - a.bid[c]) + (a.ask[p] - a.bid[p]))
            assert (np.abs(mid_c - mid_p - parity) <= half_spreads + 1e-9).all(), u
            checked += c.size
    assert checked > 1000


def test_quotes_straddle_the_model_on_the_tick_grid(
    chains: list[tuple[str, ChainArrays]], market: SimMarket
) -> None:
    for u, a in chains:
        penny = market.instrument(u).penny_pilot
        assert (a.bid >= 0).all() and (a.bid < a.ask).all(), u
        assert (a.bid <= a.model + 1e-9).all() and (a.model <= a.ask + 1e-9).all(), u
        cents_b, cents_a = np.round(a.bid * 100), np.round(a.ask * 100)
        assert np.allclose(cents_b, a.bid * 100) and np.allclose(cents_a, a.ask * 100)
        # Every price on the increment that applies at that price (domain.ticks).
        for cents in (cents_b, cents_a):
            step = np.array([round(option_tick(u, c / 100, penny) * 100) for c in cents])
            assert (cents % step == 0).all(), u
        worthless = a.model < 0.004
        assert worthless.any(), u
        assert (a.bid[worthless] == 0).all()
        assert (a.ask[worthless] == option_tick(u, 0.0, penny)).all()


def test_spreads_widen_for_cheap_far_and_long_dated(market: SimMarket) -> None:
    at = ny(date(2021, 8, 3), 12)
    a = market.chain_arrays("SPY", at)
    mid = 0.5 * (a.bid + a.ask)
    width = a.ask - a.bid
    rel = width / np.maximum(mid, 0.005)
    dte = np.array([(e - at.date()).days for e in a.expiry])
    puts = ~a.is_call
    atm = puts & (np.abs(np.log(a.strike / a.spot)) < 0.02)
    far = puts & (a.strike < 0.7 * a.spot) & (dte < 60)
    assert np.median(rel[far]) > 3 * np.median(rel[atm & (dte < 60)])
    short = atm & (dte < 40)
    long = atm & (dte > 300)
    assert np.median(width[long]) > np.median(width[short])
    # Spreads the hedger's liquidity gates can accept exist: 15-delta ~90-day SPY puts.
    gate = puts & (dte > 60) & (dte < 120) & (np.abs(a.delta + 0.15) < 0.03)
    assert gate.any()
    assert (width[gate] <= 0.10).all() and (width[gate] <= 0.05 * mid[gate]).all()
    assert (a.open_interest[gate] >= 1000).all() and (a.volume[gate] >= 100).all()


def test_iv_and_greeks_come_from_the_kernel(
    chains: list[tuple[str, ChainArrays]], market: SimMarket
) -> None:
    for u, a in chains[:: len(SYMBOLS) // 2]:
        q = market.instrument(u).div_yield
        r = market.rate(WHEN[0])
        g = bsm_greeks(a.spot, a.strike, a.years, r, q, a.iv, a.is_call)
        for name in ("delta", "gamma", "theta", "vega", "rho"):
            np.testing.assert_allclose(getattr(a, name), getattr(g, name), rtol=1e-12, atol=1e-15)
        # The reported IV is the IV of the European model price (OTM, where vega is material).
        otm = np.where(a.is_call, a.strike >= a.spot, a.strike <= a.spot) & (g.vega > 1e-3)
        back = implied_vol(g.price[otm], a.spot, a.strike[otm], a.years[otm], r, q, a.is_call[otm])
        np.testing.assert_allclose(back.vol, a.iv[otm], rtol=1e-6)


def test_chain_objects_match_the_arrays(market: SimMarket) -> None:
    at = ny(date(2021, 11, 9), 10, 5)
    a = market.chain_arrays("GOOGL", at)
    snaps = market.chain("GOOGL", at)
    assert len(snaps) == len(a)
    for j in range(0, len(a), 7):
        s = snaps[j]
        assert s.contract.expiry == a.expiry[j]
        assert float(s.contract.strike) == a.strike[j]
        assert s.contract.right.is_call == bool(a.is_call[j])
        assert s.bid == Decimal(str(round(a.bid[j], 2))).quantize(Decimal("0.01"))
        assert s.ask == Decimal(str(round(a.ask[j], 2))).quantize(Decimal("0.01"))
        assert s.implied_volatility == a.iv[j]
        assert s.greeks is not None and s.greeks.delta == a.delta[j]
        assert s.open_interest == a.open_interest[j] and s.volume == a.volume[j]
        assert s.bid_size > 0 and s.ask_size > 0


def test_put_skew_term_structure_and_vol_etf_call_skew(market: SimMarket) -> None:
    vix = market.vol_index_closes(date(2020, 1, 2), date(2027, 12, 31))
    days = market.sessions(date(2020, 1, 2), date(2027, 12, 31))
    calm = days[int(np.argmin(vix))]
    stress = days[int(np.argmax(vix))]
    assert vix.min() < 16 < 30 < vix.max()

    def atm_term(d: date) -> list[float]:
        a = market.chain_arrays("SPY", ny(d, 12))
        out = []
        for e in sorted(set(a.expiry)):
            rows = np.flatnonzero(np.array([x == e for x in a.expiry]) & ~a.is_call)
            out.append(float(np.interp(a.spot, a.strike[rows], a.iv[rows])))
        return out

    calm_term, stress_term = atm_term(calm), atm_term(stress)
    assert calm_term[-1] > calm_term[0]  # upward sloping when vol is low
    assert stress_term[-1] < stress_term[0]  # inverted when vol is high

    a = market.chain_arrays("SPY", ny(calm, 12), expiry_from=calm + timedelta(days=50))
    e = a.expiry[0]
    rows = np.flatnonzero(np.array([x == e for x in a.expiry]) & ~a.is_call)
    k, iv = a.strike[rows], a.iv[rows]
    assert (
        np.interp(0.85 * a.spot, k, iv) > np.interp(a.spot, k, iv) > np.interp(1.1 * a.spot, k, iv)
    )
    v = market.chain_arrays("VIXY", ny(calm, 12), expiry_from=calm + timedelta(days=50))
    rows = np.flatnonzero(np.array([x == v.expiry[0] for x in v.expiry]) & v.is_call)
    assert np.interp(1.3 * v.spot, v.strike[rows], v.iv[rows]) > np.interp(
        0.8 * v.spot, v.strike[rows], v.iv[rows]
    )


def test_vol_index_matches_the_cboe_method_on_the_spy_chain(market: SimMarket) -> None:
    for at in WHEN:
        a = market.chain_arrays("SPY", at)
        chain = OptionChain(
            expiry=np.array(a.expiry, dtype="datetime64[D]"),
            strike=a.strike,
            is_call=a.is_call,
            bid=a.bid,
            ask=a.ask,
        )
        cboe = vix_index(chain, a.timestamp, market.rate(at)).value
        assert cboe == pytest.approx(market.vol_index(at), rel=0.06)


def test_open_interest_concentrates_near_the_money_and_in_monthlies(market: SimMarket) -> None:
    on = date(2021, 6, 7)
    at = ny(on, 12)
    infos = market.contracts("SPY", on, on, on + timedelta(days=60))
    spot = market.spot("SPY", at)

    def oi(kind: str, lo: float, hi: float) -> float:
        vals = [
            i.open_interest
            for i in infos
            if i.extra["expiry_type"] in kind and lo <= float(i.contract.strike) / spot <= hi
        ]
        return float(np.mean([v for v in vals if v is not None]))

    assert oi("monthly quarterly", 0.98, 1.02) > 2 * oi("weekly", 0.98, 1.02)
    assert oi("monthly quarterly", 0.98, 1.02) > 5 * oi("monthly quarterly", 0.6, 0.75)


def test_volume_accumulates_through_the_session(market: SimMarket) -> None:
    d = date(2021, 6, 8)
    early = market.chain_arrays("QQQ", ny(d, 8))
    mid = market.chain_arrays("QQQ", ny(d, 12, 45))
    late = market.chain_arrays("QQQ", ny(d, 17))
    assert early.volume.sum() == 0  # before the open
    assert 0 < mid.volume.sum() < late.volume.sum()
    assert (late.open_interest == mid.open_interest).all()  # open interest is the day's


def test_weekend_chain_is_the_friday_close_chain(market: SimMarket) -> None:
    fri = market.chain_arrays("IWM", ny(date(2021, 6, 11), 16, 0))
    sat = market.chain_arrays("IWM", ny(date(2021, 6, 12), 12, 0))
    assert sat.timestamp == fri.timestamp
    assert date(2021, 6, 11) not in sat.expiry  # expired at Friday's close
    keep = np.array([e != date(2021, 6, 11) for e in fri.expiry])
    np.testing.assert_array_equal(fri.bid[keep], sat.bid)
    np.testing.assert_array_equal(fri.ask[keep], sat.ask)
