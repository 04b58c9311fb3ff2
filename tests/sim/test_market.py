"""SimMarket: determinism, time semantics, underlying quotes, option lookups and errors."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from alchemiser.domain.options import OptionContract, OptionRight
from alchemiser.sim import SimMarket, UnknownSymbolError, default_universe, stock, universe_with
from tests.sim.util import SEED, START, ny

# A sample of questions asked in a fixed list; answers must not depend on the order.
DAYS = [date(2020, 1, 2), date(2020, 3, 16), date(2021, 7, 1), date(2024, 2, 29), date(2031, 5, 5)]


def _answers(m: SimMarket, days: list[date]) -> dict[tuple[object, ...], object]:
    out: dict[tuple[object, ...], object] = {}
    for d in days:
        at = ny(d, 11, 17)
        for sym in ("SPY", "QQQ", "NVDA", "VIXY"):
            out[("spot", sym, d)] = m.spot(sym, at)
            out[("close", sym, d)] = m.close_price(sym, d)
            out[("quote", sym, d)] = m.stock_quote(sym, at)
        out[("vix", d)] = m.vol_index(at)
        chain = m.chain_arrays("SPY", at, expiry_to=d + timedelta(days=70))
        out[("chain", d)] = (
            tuple(chain.bid),
            tuple(chain.ask),
            tuple(chain.iv),
            tuple(chain.open_interest),
        )
        out[("expiries", d)] = tuple(m.expiries("IWM", d))
    return out


def test_same_seed_same_answers_whatever_the_order() -> None:
    forward = _answers(SimMarket(seed=SEED, start=START), DAYS)
    # Ask the far future first, then the rest backwards, on a fresh market.
    backward = _answers(SimMarket(seed=SEED, start=START), DAYS[::-1])
    assert forward == backward


def test_looking_far_ahead_does_not_change_the_past() -> None:
    peek = SimMarket(seed=SEED, start=START)
    peek.spot("SPY", ny(date(2045, 6, 1), 12))  # generates 25 years of path first
    fresh = SimMarket(seed=SEED, start=START)
    for d in DAYS[:3]:
        assert peek.close_price("IWM", d) == fresh.close_price("IWM", d)
        assert peek.vol_index(ny(d, 10, 30)) == fresh.vol_index(ny(d, 10, 30))


def test_different_seeds_differ() -> None:
    a = SimMarket(seed=1, start=START)
    b = SimMarket(seed=2, start=START)
    d = date(2020, 6, 1)
    assert a.close_price("SPY", d) != b.close_price("SPY", d)
    assert a.vol_index(ny(d, 12)) != b.vol_index(ny(d, 12))


def test_adding_a_stock_leaves_other_paths_alone() -> None:
    extra = universe_with([stock("ZZZ", "Industrials", beta=0.9, start_price=50.0)])
    a = SimMarket(seed=SEED, start=START)
    b = SimMarket(seed=SEED, start=START, universe=extra)
    d = date(2021, 3, 3)
    assert a.close_price("SPY", d) == b.close_price("SPY", d)
    assert a.close_price("QQQ", d) == b.close_price("QQQ", d)
    assert b.close_price("ZZZ", d) > 0
    assert b.symbols == ("SPY", "QQQ", "IWM", "VIXY", "ZZZ")


def test_symbols_and_instruments(market: SimMarket) -> None:
    assert market.symbols == tuple(i.symbol for i in default_universe())
    assert {"SPY", "QQQ", "IWM", "VIXY", "AAPL", "KO"} <= set(market.symbols)
    assert market.instrument("QQQ").beta == 1.15
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'NOPE'") as err:
        market.instrument("NOPE")
    assert isinstance(err.value, KeyError)
    with pytest.raises(UnknownSymbolError):
        market.spot("NOPE", ny(date(2020, 2, 3), 12))


def test_start_prices_and_first_session(market: SimMarket) -> None:
    assert market.first_session == date(2020, 1, 2)
    # Before the first open the price is the start price (the "previous close").
    assert market.spot("SPY", ny(date(2020, 1, 2), 8)) == market.instrument("SPY").start_price


def test_spot_outside_the_session_is_the_last_close(market: SimMarket) -> None:
    thu, fri, sat, mon = date(2020, 2, 13), date(2020, 2, 14), date(2020, 2, 15), date(2020, 2, 18)
    close_thu = float(market.close_price("AAPL", thu))
    close_fri = float(market.close_price("AAPL", fri))
    assert market.spot("AAPL", ny(fri, 9, 29)) == close_thu  # before the open
    assert market.spot("AAPL", ny(fri, 16, 0)) == close_fri  # at the close
    assert market.spot("AAPL", ny(fri, 20)) == close_fri  # after it
    assert market.spot("AAPL", ny(sat, 12)) == close_fri  # weekend
    assert market.spot("AAPL", ny(date(2020, 2, 17), 12)) == close_fri  # Presidents' Day
    assert market.spot("AAPL", ny(mon, 9, 0)) == close_fri


def test_intraday_path_is_continuous_and_moves(market: SimMarket) -> None:
    d = date(2020, 5, 12)
    prev = float(market.close_price("QQQ", date(2020, 5, 11)))
    close = float(market.close_price("QQQ", d))
    assert market.spot("QQQ", ny(d, 9, 30)) == pytest.approx(prev, rel=1e-12)
    assert market.spot("QQQ", ny(d, 15, 59, 59)) == pytest.approx(close, rel=1e-4)
    minutes = [ny(d, 9, 30) + timedelta(minutes=k) for k in range(0, 390, 10)]
    path = np.array([market.spot("QQQ", t) for t in minutes])
    # Not a straight line between the closes: a bridge with real excursions.
    line = np.linspace(prev, close, path.size + 1)[:-1]
    assert np.max(np.abs(path - line)) > 1e-4 * prev
    assert np.max(np.abs(np.diff(np.log(path)))) < 0.02  # no jumps between samples


def test_early_close_session(market: SimMarket) -> None:
    d = date(2020, 11, 27)  # the day after Thanksgiving closes at 13:00
    assert market.calendar.is_early_close(d)
    assert market.spot("SPY", ny(d, 14)) == float(market.close_price("SPY", d))
    assert market.spot("SPY", ny(d, 12, 59)) != market.spot("SPY", ny(d, 10))


def test_vol_index_and_rate(market: SimMarket) -> None:
    d = date(2020, 4, 1)
    v = market.vol_index(ny(d, 12))
    assert 5.0 < v < 150.0
    # Outside the session the index is the close's.
    assert market.vol_index(ny(d, 18)) == market.vol_index(ny(date(2020, 4, 2), 8))
    assert market.rate(ny(d, 12)) == 0.04
    assert SimMarket(seed=1, start=START, rate=0.02).rate(ny(d, 12)) == 0.02


def test_stock_quote(market: SimMarket) -> None:
    for sym in market.symbols:
        at = ny(date(2020, 9, 9), 13, 7)
        q = market.stock_quote(sym, at)
        spot = market.spot(sym, at)
        assert q.symbol == sym
        assert Decimal(0) < q.bid < q.ask
        assert float(q.bid) <= spot <= float(q.ask)
        assert float(q.ask - q.bid) <= max(0.03, 0.002 * spot)
        for px in (q.bid, q.ask, q.last):
            assert px == px.quantize(Decimal("0.01"))
        assert q.bid_size > 0 and q.ask_size > 0
        assert q.timestamp == at.astimezone(UTC)
    # Closed: the last close's quote, stamped at that close.
    sat = market.stock_quote("SPY", ny(date(2020, 9, 12), 12))
    assert sat.timestamp == market.calendar.session_close(date(2020, 9, 11))
    assert sat.last == market.close_price("SPY", date(2020, 9, 11))


def test_close_price_is_cents_and_only_for_sessions(market: SimMarket) -> None:
    c = market.close_price("KO", date(2020, 7, 7))
    assert c == c.quantize(Decimal("0.01")) and c > 0
    with pytest.raises(ValueError, match="not an NYSE session"):
        market.close_price("KO", date(2020, 7, 4))


def test_bad_times_and_dates_are_clear_errors(market: SimMarket) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        market.spot("SPY", datetime(2020, 3, 3, 12))
    with pytest.raises(ValueError, match="before the simulated market's start"):
        market.spot("SPY", ny(date(2019, 12, 31), 12))
    with pytest.raises(ValueError, match="before the simulated market's start"):
        market.expiries("SPY", date(2019, 6, 1))
    with pytest.raises(TypeError):
        SimMarket(seed=1, start=datetime(2020, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="duplicate symbols"):
        SimMarket(seed=1, start=START, universe=[*default_universe(), default_universe()[0]])


def _put(m: SimMarket, underlying: str, on: date, expiry: date) -> OptionContract:
    """A listed put of ``expiry`` near 90 % of the spot."""
    infos = m.contracts(underlying, on, expiry, expiry, right=OptionRight.PUT)
    spot = m.spot(underlying, ny(on, 12))
    return min(infos, key=lambda i: abs(float(i.contract.strike) - 0.9 * spot)).contract


def test_option_quotes_keep_listed_and_drop_the_rest(market: SimMarket) -> None:
    on = date(2020, 10, 5)
    at = ny(on, 14, 30)
    expiry = market.expiries("SPY", on)[3]
    put = _put(market, "SPY", on, expiry)
    padded = f"{put.root:<6}{put.occ_symbol[len(put.root) :]}"
    unlisted = OptionContract("SPY", expiry, OptionRight.PUT, put.strike + Decimal("0.5"))
    expired = OptionContract("SPY", date(2020, 9, 18), OptionRight.PUT, Decimal(300))
    asked = [
        put.occ_symbol,
        padded,
        unlisted.occ_symbol,
        expired.occ_symbol,
        "XYZ",
        "ZZZ201016P00100000",
    ]
    quotes = market.option_quotes(asked, at)
    assert set(quotes) == {put.occ_symbol, padded}
    snap = quotes[put.occ_symbol]
    assert snap.contract == put
    assert quotes[padded] == snap
    # The same quote as the chain's.
    chain = {s.symbol: s for s in market.chain("SPY", at, expiry, expiry)}
    assert chain[put.occ_symbol] == snap
    assert snap.underlying_price == Decimal(round(market.spot("SPY", at) * 100)) / 100
    assert snap.timestamp == at.astimezone(UTC)


def test_option_quotes_drop_an_expiry_after_its_close(market: SimMarket) -> None:
    expiry = date(2020, 11, 20)
    sym = _put(market, "IWM", date(2020, 11, 2), expiry).occ_symbol
    assert sym in market.option_quotes([sym], ny(expiry, 15, 59))
    assert market.option_quotes([sym], ny(expiry, 16, 0)) == {}
    assert market.option_quotes([sym], ny(expiry + timedelta(days=3), 12)) == {}
    assert market.is_listed(sym, expiry)
    assert not market.is_listed(sym, expiry + timedelta(days=1))


def test_option_model_value_settles_at_intrinsic(market: SimMarket) -> None:
    expiry = date(2021, 1, 15)
    on = date(2020, 12, 1)
    infos = market.contracts("SPY", on, expiry, expiry)
    close = float(market.close_price("SPY", expiry))
    for info in infos[:: max(1, len(infos) // 25)]:
        c = info.contract
        k = float(c.strike)
        intrinsic = max(close - k, 0.0) if c.right is OptionRight.CALL else max(k - close, 0.0)
        for at in (ny(expiry, 16), ny(expiry, 20), ny(date(2021, 2, 1), 12)):
            assert market.option_model_value(c.occ_symbol, at) == pytest.approx(intrinsic, abs=1e-9)
        # Before the close: at least the exercise value (American floor).
        spot = market.spot("SPY", ny(expiry, 10))
        exercise = spot - k if c.right is OptionRight.CALL else k - spot
        assert market.option_model_value(c.occ_symbol, ny(expiry, 10)) >= max(exercise, 0.0)
    with pytest.raises(UnknownSymbolError):
        market.option_model_value("ZZZ210115P00100000", ny(on, 12))
    with pytest.raises(ValueError, match="malformed"):
        market.option_model_value("not a symbol", ny(on, 12))


def test_option_model_value_is_the_quote_model(market: SimMarket) -> None:
    at = ny(date(2021, 4, 6), 11, 45)
    chain = market.chain_arrays("MSFT", at, expiry_to=date(2021, 6, 30))
    for j in range(0, len(chain), 17):
        c = OptionContract(
            "MSFT",
            chain.expiry[j],
            OptionRight.CALL if chain.is_call[j] else OptionRight.PUT,
            Decimal(str(chain.strike[j])),
        )
        assert market.option_model_value(c.occ_symbol, at) == pytest.approx(
            chain.model[j], rel=1e-12
        )
        assert chain.bid[j] <= chain.model[j] + 1e-9 <= chain.ask[j] + 2e-9


def test_contracts_filters_and_fields(market: SimMarket) -> None:
    on = date(2021, 2, 1)
    exps = market.expiries("AAPL", on)
    infos = market.contracts(
        "AAPL",
        on,
        exps[1],
        exps[4],
        right=OptionRight.CALL,
        strike_from=Decimal(100),
        strike_to=Decimal(150),
    )
    assert infos
    for info in infos:
        assert exps[1] <= info.expiry <= exps[4]
        assert info.contract.right is OptionRight.CALL
        assert Decimal(100) <= info.contract.strike <= Decimal(150)
        assert info.underlying == "AAPL" and info.multiplier == 100 and info.tradable
        assert info.open_interest is not None and info.open_interest >= 0
        assert info.extra["expiry_type"] in {"weekly", "monthly", "quarterly"}
        assert market.is_listed(info.symbol, on)
        assert info.close_price is None or info.close_price >= 0
    keys = [(i.expiry, i.contract.strike) for i in infos]
    assert keys == sorted(keys)
    assert any(i.close_price is not None for i in infos)
    everything = market.contracts("AAPL", on, None, None)
    assert {i.expiry for i in everything} == set(exps)


def test_contract_close_price_is_the_last_close_model_value(market: SimMarket) -> None:
    expiry = date(2021, 3, 19)
    for on, last_close in (
        (date(2021, 2, 2), date(2021, 2, 1)),
        (date(2021, 2, 6), date(2021, 2, 5)),
    ):
        infos = market.contracts("XOM", on, expiry, expiry)
        at = market.calendar.session_close(last_close)
        for info in infos[::5]:
            assert info.close_price is not None
            value = market.option_model_value(info.symbol, at)
            assert info.close_price == Decimal(round(value * 100)) / 100


def test_a_market_starting_on_a_weekend() -> None:
    m = SimMarket(seed=3, start=date(2022, 1, 1))
    assert m.first_session == date(2022, 1, 3)
    sat = ny(date(2022, 1, 1), 12)
    assert m.spot("IWM", sat) == m.instrument("IWM").start_price
    assert m.expiries("IWM", date(2022, 1, 1))[0] == date(2022, 1, 7)
    assert len(m.chain("IWM", sat)) > 100
    infos = m.contracts("IWM", date(2022, 1, 3), date(2022, 1, 3), date(2022, 2, 1))
    assert infos and all(i.close_price is None for i in infos)  # no close before the first


def test_is_listed_rejects_junk(market: SimMarket) -> None:
    on = date(2021, 2, 1)
    assert not market.is_listed("garbage", on)
    assert not market.is_listed("ZZZ210219C00100000", on)
    assert not market.is_listed("SPY210219C00123456", on)  # no such strike


def test_no_clock_is_read(market: SimMarket, monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers depend on ``at`` only: a frozen or broken wall clock changes nothing."""
    import alchemiser.clock as clock_module

    at = ny(date(2022, 8, 8), 10, 10)
    before = (market.spot("META", at), market.vol_index(at))

    def boom() -> datetime:
        raise AssertionError("the market read the clock")

    monkeypatch.setattr(clock_module.RealClock, "now", lambda self: boom())
    assert (market.spot("META", at), market.vol_index(at)) == before
    assert math.isfinite(market.chain_arrays("META", at).iv.sum())
