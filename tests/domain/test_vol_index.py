"""The Cboe-method volatility index: synthetic chains with known answers, then real SPY chains."""

from __future__ import annotations

import csv
import math
import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pytest

from alchemiser.domain.implied_vol import implied_vol
from alchemiser.domain.pricing import bsm_price
from alchemiser.domain.vol_index import (
    NEW_YORK,
    OptionChain,
    VolIndexError,
    term_variance,
    vix_index,
)
from alchemiser.market.chain_csv import load_chain_csv

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VALUATION = datetime(2026, 3, 2, 16, 0, tzinfo=NEW_YORK)
SPOT = 100.0


def _years(days: int) -> float:
    return days / 365.0


def make_chain(
    days: list[int],
    vol_of: object,
    *,
    rate: float = 0.03,
    div: float = 0.0,
    spot: float = SPOT,
) -> OptionChain:
    """A listed-style chain priced by BSM: ``vol_of(days, strikes, forward)`` gives σ.

    Quotes straddle the model price by ±0.5 % so the mid is the model price;
    anything under half a cent is quoted with a zero bid, as on a screen.
    """
    expiries, strikes, calls, bids, asks = [], [], [], [], []
    for d in days:
        t = _years(d)
        forward = spot * math.exp((rate - div) * t)
        # Strikes every 0.1 standard deviation (at 20 % vol) out to where prices vanish.
        step = max(0.05, round(spot * 0.2 * math.sqrt(t) / 10, 2))
        ks = np.arange(step, spot * 4, step)
        sigma = np.asarray(vol_of(d, ks, forward), dtype=np.float64)  # type: ignore[operator]
        for is_call in (True, False):
            price = bsm_price(spot, ks, t, rate, div, sigma, is_call)
            bid = np.where(price < 0.005, 0.0, price * 0.995)
            ask = np.where(price < 0.005, 0.01, price * 1.005)
            expiries += [np.datetime64(VALUATION.date() + timedelta(days=d), "D")] * ks.size
            strikes.append(ks)
            calls += [is_call] * ks.size
            bids.append(bid)
            asks.append(ask)
    return OptionChain(
        expiry=np.array(expiries, dtype="datetime64[D]"),
        strike=np.concatenate(strikes),
        is_call=np.array(calls),
        bid=np.concatenate(bids),
        ask=np.concatenate(asks),
    )


def flat(sigma: float) -> object:
    return lambda d, ks, f: np.full(ks.shape, sigma)


@pytest.mark.parametrize("sigma", [0.08, 0.15, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("div", [0.0, 0.02])
def test_flat_vol_chain_gives_100_sigma(sigma: float, div: float) -> None:
    chain = make_chain([23, 37], flat(sigma), div=div)
    assert chain.expiries() == [date(2026, 3, 25), date(2026, 4, 8)]
    index = vix_index(chain, VALUATION, 0.03)
    assert index.method == "interpolated"
    assert index.value == pytest.approx(100 * sigma, abs=0.25)
    assert index.near.expiry == date(2026, 3, 25)
    assert index.far is not None and index.far.expiry == date(2026, 4, 8)
    # The parity forward is the model forward.
    assert index.near.forward == pytest.approx(SPOT * math.exp((0.03 - div) * 23 / 365), rel=1e-3)


def test_skewed_chain_is_above_atm_implied_vol() -> None:
    # An equity-index smile: σ rises ~1 point per 1 % of strike below the forward.
    def skew(d: int, ks: np.ndarray, f: float) -> np.ndarray:
        k = np.log(ks / f)
        return np.clip(0.20 - 1.0 * k + 2.0 * k**2, 0.08, 2.0)

    chain = make_chain([23, 37], skew)
    index = vix_index(chain, VALUATION, 0.03)
    # ATM IV read back from the chain's own quotes at the strike nearest the forward.
    near = chain.expiry == np.datetime64("2026-03-25")
    k_atm = chain.strike[near][np.argmin(np.abs(chain.strike[near] - index.near.forward))]
    row = near & (chain.strike == k_atm) & chain.is_call
    mid = 0.5 * (chain.bid[row] + chain.ask[row])
    atm = implied_vol(mid, SPOT, k_atm, 23 / 365, 0.03, 0.0, True).vol[0]
    assert atm == pytest.approx(0.20, abs=0.005)
    assert index.value > 100 * atm + 0.5


def test_term_structure_interpolates_total_variance() -> None:
    chain = make_chain([23, 37], lambda d, ks, f: np.full(ks.shape, 0.30 if d == 23 else 0.20))
    index = vix_index(chain, VALUATION, 0.03)
    t1, t2, t30 = 23 / 365, 37 / 365, 30 / 365
    w1 = (t2 - t30) / (t2 - t1)
    expected = 100 * math.sqrt((w1 * t1 * 0.30**2 + (1 - w1) * t2 * 0.20**2) / t30)
    assert index.value == pytest.approx(expected, abs=0.25)


def test_one_sided_chains_extrapolate_or_use_the_single_expiry() -> None:
    later = vix_index(make_chain([44, 58], flat(0.25)), VALUATION, 0.03)
    assert later.method == "extrapolated"
    assert later.value == pytest.approx(25.0, abs=0.25)
    single = vix_index(make_chain([44], flat(0.25)), VALUATION, 0.03)
    assert single.method == "single_expiry" and single.far is None
    assert single.value == pytest.approx(25.0, abs=0.25)


def test_expiries_inside_min_days_are_ignored() -> None:
    # A 3-day expiry at 90 % vol must not leak into a 20 % index.
    chain = make_chain([3, 23, 37], lambda d, ks, f: np.full(ks.shape, 0.9 if d == 3 else 0.2))
    index = vix_index(chain, VALUATION, 0.03)
    assert index.value == pytest.approx(20.0, abs=0.25)
    with_short = vix_index(chain, VALUATION, 0.03, min_days=1.0)
    assert with_short.near.expiry == date(2026, 3, 25)  # still the bracketing pair
    only_short = make_chain([3], flat(0.2))
    with pytest.raises(VolIndexError, match="no expiry"):
        vix_index(only_short, VALUATION, 0.03)


def test_strip_stops_after_two_consecutive_zero_bids() -> None:
    # Cboe rule: walking out from K0, two zero bids in a row end the strip, so a
    # stale far quote beyond them is ignored.
    k = np.array([60.0, 70.0, 80.0, 90.0, 100.0, 110.0, 120.0])
    put_bid = np.array([5.0, 0.0, 0.0, 0.4, 2.0, 0.0, 0.0])
    call_bid = np.array([0.0, 0.0, 0.0, 0.0, 2.0, 0.5, 0.1])
    mids = {"put": put_bid + 0.05, "call": call_bid + 0.05}
    strikes = np.concatenate([k, k])
    is_call = np.array([False] * 7 + [True] * 7)
    bids = np.concatenate([put_bid, call_bid])
    asks = np.concatenate([mids["put"] + 0.05, mids["call"] + 0.05])
    t, r = 30 / 365, 0.0
    variance, forward, k0, used = term_variance(strikes, is_call, bids, asks, t, r) or (0, 0, 0, 0)
    assert forward == pytest.approx(100.0) and k0 == 100.0
    # Included: put 90, K0 = 100 (average of put and call mids), calls 110 and 120.
    ks = np.array([90.0, 100.0, 110.0, 120.0])
    q = np.array([0.45, 2.05, 0.55, 0.15])
    dk = np.array([10.0, 10.0, 10.0, 10.0])
    expected = 2 / t * np.sum(dk / ks**2 * q)
    assert used == 4
    assert variance == pytest.approx(expected, rel=1e-12)


def test_bad_inputs() -> None:
    chain = make_chain([23, 37], flat(0.2))
    with pytest.raises(ValueError, match="timezone-aware"):
        vix_index(chain, datetime(2026, 3, 2, 16, 0), 0.03)
    empty = OptionChain(
        expiry=np.array([], dtype="datetime64[D]"),
        strike=np.array([]),
        is_call=np.array([], dtype=bool),
        bid=np.array([]),
        ask=np.array([]),
    )
    with pytest.raises(VolIndexError):
        vix_index(empty, VALUATION, 0.03)
    with pytest.raises(ValueError, match="rows"):
        OptionChain(chain.expiry, chain.strike, chain.is_call[:-1], chain.bid, chain.ask)
    doubled = OptionChain(
        np.concatenate([chain.expiry, chain.expiry[:1]]),
        np.concatenate([chain.strike, chain.strike[:1]]),
        np.concatenate([chain.is_call, chain.is_call[:1]]),
        np.concatenate([chain.bid, chain.bid[:1]]),
        np.concatenate([chain.ask, chain.ask[:1]]),
    )
    with pytest.raises(VolIndexError, match="two quotes"):
        vix_index(doubled, VALUATION, 0.03)


def test_valuation_timezone_only_changes_the_instant() -> None:
    chain = make_chain([23, 37], flat(0.2))
    same_instant = VALUATION.astimezone(UTC)
    assert vix_index(chain, same_instant, 0.03).value == vix_index(chain, VALUATION, 0.03).value
    # Wall-clock days across the March daylight-saving change, as Cboe counts them.
    pm = vix_index(chain, VALUATION, 0.03)
    assert pm.near.years == pytest.approx(23 / 365, rel=1e-12)
    # An AM-settled reading of the same chain has 6.5 hours less to each expiry.
    am = vix_index(chain, VALUATION, 0.03, settlement=time(9, 30))
    assert am.near.years == pytest.approx(23 / 365 - 6.5 / (24 * 365), rel=1e-12)


# --- real SPY chains against that day's VIX close --------------------------------


def _shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        reason = f"shared market data not found at {SHARED_DATA}"
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the shared data: {reason}")
        pytest.skip(reason)
    return SHARED_DATA


def _as_of(path: Path, column: str, day: date) -> float:
    """The last non-empty value on or before ``day`` (FRED leaves holidays empty)."""
    value = None
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if date.fromisoformat(row["Date"]) > day:
                break
            if row[column].strip():
                value = float(row[column])
    assert value is not None, f"no {column} in {path.name} on or before {day}"
    return value


def _convert(source: Path, target: Path, right_column: str) -> None:
    """Write the shared file in the loader's format (expiry,strike,right,bid,ask,...)."""
    with source.open(newline="") as src, target.open("w", newline="") as dst:
        out = csv.writer(dst)
        out.writerow(["expiry", "strike", "right", "bid", "ask", "volume", "open_interest"])
        for row in csv.DictReader(src):
            right = row[right_column].strip().upper()[0]
            interest = row.get("oi", row.get("openInterest", ""))
            out.writerow(
                [
                    row["expiry"],
                    row["strike"],
                    right,
                    row["bid"],
                    row["ask"],
                    row["volume"],
                    interest,
                ]
            )


@pytest.mark.parametrize(
    ("file", "right_column", "day"),
    [
        ("options_SPY_chain_2020-07-31_yahoo_jamesfbush.csv", "type", date(2020, 7, 31)),
        ("options_SPY_chain_2026-05-01_yahoo_ZOOMKB.csv", "option_type", date(2026, 5, 1)),
    ],
)
def test_real_spy_chain_lands_near_the_vix_close(
    file: str, right_column: str, day: date, tmp_path: Path
) -> None:
    data = _shared_data()
    converted = tmp_path / "chain.csv"
    _convert(data / file, converted, right_column)
    loaded = load_chain_csv(converted)
    assert loaded.rows > 5000
    # 3-month T-bill (discount basis, %) as the rate: its last value on or before the day.
    rate = _as_of(data / "DTB3_daily.csv", "DTB3", day) / 100.0
    vix_close = _as_of(data / "VIX_daily.csv", "CLOSE", day)
    valuation = datetime.combine(day, time(16, 0), tzinfo=NEW_YORK)
    index = vix_index(loaded.chain, valuation, rate)
    assert index.method == "interpolated"
    assert index.near.years <= 30 / 365 < index.far.years  # type: ignore[union-attr]
    assert abs(index.value - vix_close) <= 1.5, (index.value, vix_close)
