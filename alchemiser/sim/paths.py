"""Daily and intraday price paths of the synthetic market.

Model (one step per NYSE session, dt = 1/252):

- **Vol state.** x = ln v, the log instantaneous variance of the market
  factor, is an Ornstein-Uhlenbeck process: it mean-reverts at ``kappa`` to
  ln(``long_run_vol``²) with volatility ``vol_of_var``. Its shock is
  correlated (``leverage`` < 0) with the factor's return shock: vol rises
  when prices fall.
- **Market factor.** Log return (μ − v/2) dt + √(v dt) z plus, during a crash,
  the crash's share of the day. Crashes arrive as a Poisson process
  (``crash_rate`` a year, never overlapping); each is a total drop of
  ``crash_min``..``crash_max`` spread over ``crash_min_sessions``..
  ``crash_max_sessions`` sessions with random weights, and lifts the vol
  state as it unfolds, to at least ``crash_vol_base + crash_vol_slope × drop``
  at the bottom. The drift μ is set so that, crashes included, the market
  still grows over the long run.
- **ETFs and stocks.** Log return β × factor + idiosyncratic noise of vol
  ``idio_vol``, scaled by (v/v̄)^{1/4} (clipped) so dispersion rises in stress.
- **VIXY.** Follows the 1-month vol future implied by the vol state
  (``surface.vol_futures_level``) and pays the roll: each session it loses
  (ln F − ln VIX)/``vixy_roll_sessions`` in contango and gains in
  backwardation. Once the accumulated roll has taken the price below
  ``vixy_floor`` of what the vol state alone would give, it is pulled back
  (``vixy_floor_reversion``), standing in for the reverse splits that keep
  the real fund's price tradable: the price decays in calm and spikes in
  crashes, yet stays in a quotable range over decades.
- **Intraday.** Between the previous close and the session close, each price
  follows a Brownian bridge sampled every ``intraday_step_minutes`` minutes:
  a market bridge shared by all symbols (scaled by β) plus the symbol's own.
  The vol state bridges between the two closes and moves against the market
  bridge, so intraday quotes keep the leverage effect.

Randomness: each chunk of ``chunk_sessions`` sessions draws from its own
PCG64 stream seeded by (seed, stream, chunk) — per symbol for idiosyncratic
noise, so adding a stock changes no other path — and chunks are generated in
order, so no answer depends on how far ahead anyone looked. Closes are kept
rounded to cents (what the tape prints); a close of session −1 is the
instrument's start price.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from alchemiser.sim.surface import SurfaceParams, vol_index_table
from alchemiser.sim.universe import Instrument, InstrumentKind

__all__ = [
    "CrashEvent",
    "MarketPaths",
    "PathParams",
    "rng_for",
    "symbol_key",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]

# Stream tags: each kind of randomness has its own seed sequence.
_FACTOR = 1
_IDIO = 2
_BRIDGE_MARKET = 3
_BRIDGE_SYMBOL = 4
_INITIAL = 5
_MAX_CRASH_SESSIONS = 16


@dataclass(frozen=True, slots=True)
class PathParams:
    """Physical (real-world) path parameters, annualised."""

    sessions_per_year: float = 252.0
    drift: float = 0.155  # μ, before the −v/2 convexity and crash losses
    long_run_vol: float = 0.12  # x reverts to ln(long_run_vol²): the median vol
    kappa: float = 5.0  # mean reversion of x per year (half-life ~ 7 weeks)
    vol_of_var: float = 1.8  # volatility of x
    leverage: float = -0.7  # corr(return shock, shock to x)
    min_vol: float = 0.04
    max_vol: float = 1.6
    crash_rate: float = 0.3  # crashes per year
    crash_min: float = 0.10  # total drop of a crash, as a fraction
    crash_max: float = 0.30
    crash_min_sessions: int = 3
    crash_max_sessions: int = 8
    crash_vol_base: float = 0.22  # vol at the crash bottom ≥ base + slope × drop
    crash_vol_slope: float = 1.0
    idio_regime_power: float = 0.25
    idio_regime_min: float = 0.7
    idio_regime_max: float = 2.0
    vixy_roll_sessions: float = 21.0  # VIXY's constant futures maturity, in sessions
    vixy_floor: float = 0.25  # the accumulated roll is pulled back below this fraction ...
    vixy_floor_reversion: float = 4.0  # ... at this rate per year (in place of reverse splits)
    vixy_intraday_loading: float = 0.4  # d ln(VIXY) / d x, for the intraday bridge
    intraday_step_minutes: int = 5
    chunk_sessions: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.crash_min_sessions <= self.crash_max_sessions <= _MAX_CRASH_SESSIONS:
            raise ValueError(
                f"crash sessions must satisfy 1 <= min <= max <= {_MAX_CRASH_SESSIONS}, got "
                f"{self.crash_min_sessions}..{self.crash_max_sessions}"
            )
        if not 0.0 < self.crash_min <= self.crash_max < 1.0:
            raise ValueError(f"crash size must satisfy 0 < min <= max < 1, got {self}")
        if not -1.0 < self.leverage < 1.0:
            raise ValueError(f"leverage correlation must be in (-1, 1), got {self.leverage}")
        if self.chunk_sessions < 16 or self.intraday_step_minutes < 1:
            raise ValueError("chunk_sessions must be >= 16 and intraday_step_minutes >= 1")

    @property
    def dt(self) -> float:
        return 1.0 / self.sessions_per_year


@dataclass(frozen=True, slots=True)
class CrashEvent:
    """A crash of the market factor: ``drop`` spread over ``sessions`` sessions."""

    start: date  # first session of the crash
    sessions: int
    drop: float  # total drop of the crash component, e.g. 0.18 for −18 %


def symbol_key(symbol: str) -> int:
    """A stable integer per symbol (its bytes; symbols are at most 6 characters)."""
    return int.from_bytes(symbol.encode("ascii"), "big")


def rng_for(seed: int, *words: int) -> np.random.Generator:
    """A PCG64 generator for (seed, words...): independent streams per key."""
    entropy = [seed % 2**64, 1 if seed < 0 else 0, *words]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


class MarketPaths:
    """Lazily generated daily closes and vol states, chunk by chunk, in order.

    Session index i counts sessions from the market's first one; i = −1 is the
    state before it (start prices, initial vol state).
    """

    def __init__(
        self,
        seed: int,
        instruments: Sequence[Instrument],
        sessions: Sequence[date],
        params: PathParams,
        surface: SurfaceParams,
    ) -> None:
        self._seed = seed
        self._instruments = tuple(instruments)
        self._sessions = sessions
        self._p = params
        self._surface = surface
        n = len(self._instruments)
        self._keys = [symbol_key(i.symbol) for i in self._instruments]
        self._beta = np.array([i.beta for i in self._instruments])
        self._idio = np.array([i.idio_vol for i in self._instruments])
        self._is_vol_etf = np.array([i.kind is InstrumentKind.VOL_ETF for i in self._instruments])
        self._start = np.array([i.start_price for i in self._instruments])
        # Generated so far: one column per session.
        self._x = np.empty(0)  # vol state at each close
        self._v_day = np.empty(0)  # variance that drove each session's diffusion
        self._factor = np.empty(0)  # factor log return of each session
        self._closes = np.empty((n, 0))  # rounded closes
        self._crashes: list[CrashEvent] = []
        # Carried state between chunks.
        self._x0 = self._initial_state()
        self._x_last = self._x0
        self._log_last = np.log(self._start)  # unrounded log prices
        self._crash_left: list[float] = []  # remaining daily crash log returns
        self._crash_vol: list[float] = []  # vol floor for each remaining crash day
        # Accumulated roll of a VOL_ETF: it starts at the floor, so the start price
        # is a typical calm-market price rather than one the roll must first erode.
        self._vixy_roll = np.full(n, math.log(params.vixy_floor))
        x_grid, vix, fut = vol_index_table(surface)
        self._x_grid, self._vix_grid, self._fut_grid = x_grid, vix, fut
        self._log_fut_last = self._log_future(np.array([self._x_last]))[0]

    # -- inputs -----------------------------------------------------------------

    @property
    def params(self) -> PathParams:
        return self._p

    @property
    def generated(self) -> int:
        """Number of sessions generated so far."""
        return int(self._x.size)

    def _initial_state(self) -> float:
        """Initial vol state: a draw from x's stationary law (clipped), per seed."""
        p = self._p
        sd = p.vol_of_var / math.sqrt(2.0 * p.kappa)
        z = float(np.clip(rng_for(self._seed, _INITIAL).standard_normal(), -1.5, 1.5))
        return math.log(p.long_run_vol**2) + sd * z

    def _log_future(self, x: FloatArray) -> FloatArray:
        return np.log(np.interp(x, self._x_grid, self._fut_grid))

    def _log_vix(self, x: FloatArray) -> FloatArray:
        return np.log(np.interp(x, self._x_grid, self._vix_grid))

    # -- generation -------------------------------------------------------------

    def ensure(self, i: int) -> None:
        """Generate every session up to index i (inclusive)."""
        if i >= len(self._sessions):
            last = self._sessions[-1] if self._sessions else None
            raise IndexError(
                f"session index {i} is beyond the calendar (last session {last}); "
                "pass a calendar that covers the dates you need"
            )
        while self.generated <= i:
            self._generate_chunk(self.generated // self._p.chunk_sessions)

    def _generate_chunk(self, chunk: int) -> None:
        p = self._p
        size = p.chunk_sessions
        first = chunk * size
        n = min(size, len(self._sessions) - first)
        dt = p.dt
        sqdt = math.sqrt(dt)
        rng = rng_for(self._seed, _FACTOR, chunk)
        # Always draw the full chunk, in a fixed order: the numbers never depend
        # on how many sessions the calendar has left.
        z = rng.standard_normal((2, size))
        u_jump = rng.random(size)
        u_size = rng.random(size)
        u_len = rng.random(size)
        u_weights = rng.random((size, _MAX_CRASH_SESSIONS))

        m = math.log(p.long_run_vol**2)
        x_lo, x_hi = math.log(p.min_vol**2), math.log(p.max_vol**2)
        rho = p.leverage
        rho_c = math.sqrt(1.0 - rho * rho)
        jump_prob = -math.expm1(-p.crash_rate * dt)
        x = self._x_last
        xs = np.empty(n)
        v_day = np.empty(n)
        ret = np.empty(n)
        for j in range(n):
            v = math.exp(x)
            if not self._crash_left and u_jump[j] < jump_prob:
                self._start_crash(first + j, v, u_size[j], u_len[j], u_weights[j])
            crash = 0.0
            vol_floor = 0.0
            if self._crash_left:
                crash = self._crash_left.pop(0)
                vol_floor = self._crash_vol.pop(0)
            z1 = z[0, j]
            ret[j] = (p.drift - 0.5 * v) * dt + math.sqrt(v * dt) * z1 + crash
            x = x + p.kappa * (m - x) * dt + p.vol_of_var * sqdt * (rho * z1 + rho_c * z[1, j])
            if vol_floor > 0.0:
                x = max(x, 2.0 * math.log(vol_floor))
            x = min(max(x, x_lo), x_hi)
            xs[j] = x
            v_day[j] = v
        self._x_last = x
        log_ret = self._symbol_returns(chunk, n, ret, v_day, xs)
        log_px = self._log_last[:, None] + np.cumsum(log_ret, axis=1)
        self._log_last = log_px[:, -1].copy()
        closes = np.maximum(np.round(np.exp(log_px), 2), 0.01)
        self._x = np.concatenate((self._x, xs))
        self._v_day = np.concatenate((self._v_day, v_day))
        self._factor = np.concatenate((self._factor, ret))
        self._closes = np.concatenate((self._closes, closes), axis=1)

    def _start_crash(
        self, index: int, v: float, u_size: float, u_len: float, u_weights: FloatArray
    ) -> None:
        p = self._p
        drop = p.crash_min + (p.crash_max - p.crash_min) * u_size
        span = p.crash_max_sessions - p.crash_min_sessions + 1
        sessions = p.crash_min_sessions + min(int(u_len * span), span - 1)
        weights = 0.5 + u_weights[:sessions]
        weights /= weights.sum()
        total = math.log1p(-drop)
        self._crash_left = [float(total * w) for w in weights]
        # Vol climbs as the crash unfolds, to its peak at the bottom.
        vol0 = math.sqrt(v)
        peak = max(vol0, p.crash_vol_base + p.crash_vol_slope * drop)
        done = np.cumsum(weights)
        self._crash_vol = [float(vol0 + (peak - vol0) * f) for f in done]
        self._crashes.append(CrashEvent(self._sessions[index], sessions, drop))

    def _symbol_returns(
        self, chunk: int, n: int, factor: FloatArray, v_day: FloatArray, xs: FloatArray
    ) -> FloatArray:
        """Log returns of every instrument for the chunk's n sessions."""
        p = self._p
        dt = p.dt
        size = p.chunk_sessions
        scale = np.clip(
            (v_day / p.long_run_vol**2) ** p.idio_regime_power,
            p.idio_regime_min,
            p.idio_regime_max,
        )
        out = np.empty((len(self._instruments), n))
        x_prev = np.concatenate(([self._x_prev_of_chunk(chunk)], xs[:-1]))
        for s, inst in enumerate(self._instruments):
            z = rng_for(self._seed, _IDIO, self._keys[s], chunk).standard_normal(size)[:n]
            sig = inst.idio_vol * scale
            eps = sig * math.sqrt(dt) * z - 0.5 * sig * sig * dt
            if inst.kind is InstrumentKind.VOL_ETF:
                out[s] = self._vixy_returns(s, xs, x_prev, eps)
            else:
                out[s] = inst.beta * factor + eps
        return out

    def _x_prev_of_chunk(self, chunk: int) -> float:
        first = chunk * self._p.chunk_sessions
        return float(self._x[first - 1]) if first > 0 else self._x0

    def _vixy_returns(
        self, s: int, xs: FloatArray, x_prev: FloatArray, eps: FloatArray
    ) -> FloatArray:
        """VIXY: change of the 1-month future, minus the roll, with slow reversion of the roll."""
        p = self._p
        log_f = self._log_future(xs)
        log_f_prev = self._log_future(x_prev)
        roll = (self._log_vix(x_prev) - log_f_prev) / p.vixy_roll_sessions
        floor = math.log(p.vixy_floor)
        pull = p.vixy_floor_reversion * p.dt
        acc = float(self._vixy_roll[s])
        out = np.empty(xs.size)
        for j in range(xs.size):
            new = acc + roll[j] + eps[j] + pull * max(0.0, floor - acc)
            out[j] = (log_f[j] - log_f_prev[j]) + (new - acc)
            acc = new
        self._vixy_roll[s] = acc
        return out

    # -- reading ----------------------------------------------------------------

    def close(self, s: int, i: int) -> float:
        """Rounded close of instrument s at session i (i = −1: its start price)."""
        if i < 0:
            return float(self._start[s])
        self.ensure(i)
        return float(self._closes[s, i])

    def closes(self, s: int, lo: int, hi: int) -> FloatArray:
        """Closes of instrument s for sessions lo..hi inclusive (lo may be −1)."""
        if hi < lo:
            return np.empty(0)
        self.ensure(hi)
        if lo < 0:
            return np.concatenate(([self._start[s]], self._closes[s, 0 : hi + 1]))
        return np.array(self._closes[s, lo : hi + 1])

    def log_var(self, i: int) -> float:
        """Vol state x = ln v at the close of session i (i = −1: the initial state)."""
        if i < 0:
            return self._x0
        self.ensure(i)
        return float(self._x[i])

    def log_vars(self, lo: int, hi: int) -> FloatArray:
        """Vol states at the closes of sessions lo..hi inclusive (lo >= 0)."""
        self.ensure(hi)
        return np.array(self._x[lo : hi + 1])

    def factor_returns(self, lo: int, hi: int) -> FloatArray:
        """Market factor log returns of sessions lo..hi inclusive (lo >= 0)."""
        self.ensure(hi)
        return np.array(self._factor[lo : hi + 1])

    def day_variance(self, i: int) -> float:
        """Variance that drove session i's diffusion (the vol state at its open)."""
        self.ensure(i)
        return float(self._v_day[i])

    def crash_events(self, up_to: int) -> list[CrashEvent]:
        """Crashes that started at or before session index ``up_to``."""
        self.ensure(up_to)
        last = self._sessions[up_to]
        return [c for c in self._crashes if c.start <= last]

    # -- intraday ---------------------------------------------------------------

    def market_bridge(self, i: int, steps: int) -> FloatArray:
        """Standard Brownian bridge on [0, 1] at steps + 1 points, shared by all symbols."""
        return _bridge(rng_for(self._seed, _BRIDGE_MARKET, i), steps)

    def intraday_log_prices(self, s: int, i: int, steps: int) -> FloatArray:
        """ln price of instrument s on session i at steps + 1 evenly spaced times, open to close."""
        p = self._p
        a = math.log(self.close(s, i - 1))
        b = math.log(self.close(s, i))
        u = np.linspace(0.0, 1.0, steps + 1)
        path = a + u * (b - a)
        sqdt = math.sqrt(p.dt)
        v = self.day_variance(i)
        inst = self._instruments[s]
        market = self.market_bridge(i, steps)
        if inst.kind is InstrumentKind.VOL_ETF:
            loading = p.vixy_intraday_loading * p.leverage * p.vol_of_var * sqdt
        else:
            loading = inst.beta * math.sqrt(v) * sqdt
        path += loading * market
        if inst.idio_vol > 0.0:
            own = _bridge(rng_for(self._seed, _BRIDGE_SYMBOL, self._keys[s], i), steps)
            path += inst.idio_vol * sqdt * own
        return path

    def intraday_log_var(self, i: int, steps: int) -> FloatArray:
        """Vol state x on session i at steps + 1 times: bridged, moving against the market."""
        p = self._p
        a = self.log_var(i - 1)
        b = self.log_var(i)
        u = np.linspace(0.0, 1.0, steps + 1)
        loading = p.leverage * p.vol_of_var * math.sqrt(p.dt)
        return a + u * (b - a) + loading * self.market_bridge(i, steps)


def _bridge(rng: np.random.Generator, steps: int) -> FloatArray:
    """A standard Brownian bridge on [0, 1] sampled at steps + 1 points."""
    w = np.concatenate(([0.0], np.cumsum(rng.standard_normal(steps)))) / math.sqrt(steps)
    return np.asarray(w - np.linspace(0.0, 1.0, steps + 1) * w[-1], dtype=np.float64)
