"""The path model over 30 years: crashes, vol regimes, betas, leverage effect, VIXY."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from alchemiser.sim import SimMarket

FIRST, LAST = date(1994, 1, 3), date(2023, 12, 29)


@pytest.fixture(scope="module")
def series(long_run: SimMarket) -> dict[str, np.ndarray]:
    out = {s: long_run.closes(s, FIRST, LAST) for s in ("SPY", "QQQ", "IWM", "VIXY", "KO")}
    out["vix"] = long_run.vol_index_closes(FIRST, LAST)
    return out


def test_thirty_years_of_sessions(long_run: SimMarket, series: dict[str, np.ndarray]) -> None:
    assert series["SPY"].size == len(long_run.sessions(FIRST, LAST)) > 7500
    assert (series["SPY"] > 0).all() and np.isfinite(series["vix"]).all()


def test_crashes_of_ten_to_thirty_percent_occur(
    long_run: SimMarket, series: dict[str, np.ndarray]
) -> None:
    spy = np.log(series["SPY"])
    # Worst fall over any window of up to 10 sessions, from each starting session.
    worst = np.full(spy.size, 0.0)
    for n in range(1, 11):
        worst[:-n] = np.minimum(worst[:-n], spy[n:] - spy[:-n])
    falls = np.expm1(worst)
    assert (falls <= -0.10).any()
    # Count separate episodes (starts at least a month apart).
    starts = np.flatnonzero(falls <= -0.10)
    episodes = 1 + int(np.sum(np.diff(starts) > 21))
    assert episodes >= 3
    events = long_run.crash_events(LAST)
    assert len(events) >= 3
    for e in events:
        assert 0.10 <= e.drop <= 0.30
        assert 1 <= e.sessions <= 10


def test_vol_regimes_all_occur(series: dict[str, np.ndarray]) -> None:
    vix = series["vix"]
    assert vix.max() > 35  # rich
    assert ((vix > 28) & (vix <= 35)).any()  # high
    assert ((vix >= 18) & (vix <= 28)).mean() > 0.1  # mid
    assert (vix < 18).mean() > 0.25  # low, and in long stretches:
    runs, current = [], 0
    for low in vix < 18:
        current = current + 1 if low else 0
        runs.append(current)
    assert max(runs) >= 63
    assert 10 < np.median(vix) < 25


def test_betas_to_spy_match_the_configuration(
    long_run: SimMarket, series: dict[str, np.ndarray]
) -> None:
    spy = np.diff(np.log(series["SPY"]))
    for sym in ("QQQ", "IWM", "KO"):
        r = np.diff(np.log(series[sym]))
        beta = np.cov(r, spy)[0, 1] / np.var(spy, ddof=1)
        assert beta == pytest.approx(long_run.instrument(sym).beta, abs=0.1), sym


def test_vol_rises_when_prices_fall(series: dict[str, np.ndarray]) -> None:
    returns = np.diff(np.log(series["SPY"]))
    vix_changes = np.diff(np.log(series["vix"]))
    assert np.corrcoef(returns, vix_changes)[0, 1] < -0.4


def test_realised_vol_and_growth_are_plausible(series: dict[str, np.ndarray]) -> None:
    r = np.diff(np.log(series["SPY"]))
    assert 0.10 < r.std() * np.sqrt(252) < 0.30
    # The implied (vol index) sits above realised on average: a variance risk premium.
    assert np.mean(series["vix"]) / 100 > r.std() * np.sqrt(252) * 0.9


def test_vixy_spikes_in_crashes_and_decays_in_calm(
    long_run: SimMarket, series: dict[str, np.ndarray]
) -> None:
    vixy = np.log(series["VIXY"])
    sessions = long_run.sessions(FIRST, LAST)
    index = {d: n for n, d in enumerate(sessions)}
    moves = []
    for e in long_run.crash_events(LAST):
        if e.start in index and index[e.start] + e.sessions < len(sessions):
            i = index[e.start]
            moves.append(vixy[i + e.sessions - 1] - vixy[i - 1])
    assert moves and np.mean(moves) > np.log(1.3)
    vix = series["vix"]
    window = 63
    calm = [
        vixy[t + window] - vixy[t]
        for t in range(0, vix.size - window, 5)
        if (vix[t : t + window + 1] < 18).all()
    ]
    assert len(calm) > 10 and np.median(calm) < 0
    assert np.exp(vixy).min() > 0.5 and np.exp(vixy).max() < 2000  # quotable for decades
    assert np.corrcoef(np.diff(vixy), np.diff(np.log(series["SPY"])))[0, 1] < -0.4
