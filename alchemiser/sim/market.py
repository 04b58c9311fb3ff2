"""``SimMarket``: the seeded, deterministic synthetic market behind the simulated broker.

Pure: every answer is a function of (seed, start, universe, calendar, rate,
params) and the aware instant or date asked about. It never reads a clock,
does no I/O and logs nothing; caches only remember what would be computed
again, so the order and pattern of calls never change an answer.

Time. Within a session, prices follow the intraday path (``paths``). Before
the open, the state is the previous close; after the close, the close;
weekends and holidays, the last close. Quotes outside the session are the
last close's quotes and carry that close's timestamp (what a feed shows);
options are then valued at that close instant too, so a weekend quote is the
Friday-close quote.

Options. Listing follows ``listing``; the model price is Black-Scholes-Merton
(``domain.pricing.bsm_greeks``) at the surface vol (``surface``), floored at
the immediate-exercise value because listed options are American; greeks are
the European ones of the kernel, and ``implied_volatility`` is the surface vol
(the IV of the unrounded European model price). Bid and ask straddle the
model price on the tick grid, so bid ≤ model ≤ ask always.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Generic, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

from alchemiser.clock import NEW_YORK, ensure_aware
from alchemiser.domain.options import OccSymbolError, OptionContract, OptionRight, parse_occ
from alchemiser.domain.pricing import bsm_greeks
from alchemiser.domain.ticks import PENNY_BREAK_CENTS, tick_schedule_cents
from alchemiser.domain.trading import ContractInfo, Greeks, OptionSnapshot, StockQuote
from alchemiser.sim.listing import Expiry, ExpiryType, ListingParams, listed_expiries, strike_grid
from alchemiser.sim.paths import CrashEvent, MarketPaths, PathParams, symbol_key
from alchemiser.sim.surface import (
    SurfaceParams,
    atm_total_variance,
    implied_vol,
    vol_index_of_state,
)
from alchemiser.sim.universe import Instrument, InstrumentKind, default_universe
from alchemiser.trading_calendar import CALENDAR_START, TradingCalendar

__all__ = [
    "ChainArrays",
    "QuoteParams",
    "SimMarket",
    "SimParams",
    "UnknownSymbolError",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

_SECONDS_PER_YEAR = 365.0 * 86400.0
_MULTIPLIER = 100
# Years the default calendar must cover past the start: backtests run decades.
_DEFAULT_HORIZON_YEARS = 40
_DEFAULT_CALENDAR_END = date(2100, 12, 31)
_U64 = np.uint64
_MASK64 = (1 << 64) - 1
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class UnknownSymbolError(KeyError):
    """A symbol that is not in the market's universe."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown symbol"


@dataclass(frozen=True, slots=True)
class QuoteParams:
    """Spreads, sizes, open interest and volume of the quotes."""

    # Option spread (full width, $) = liquidity factor × (base + per_dollar × price)
    #   × (1 + per_year × T) × (1 + otm × clip(|z| − otm_free, 0, otm_cap)),
    #   z = ln(K/F)/√(ATM total variance).
    spread_base: float = 0.015
    spread_per_dollar: float = 0.004
    spread_per_year: float = 0.4
    spread_otm: float = 0.2
    otm_free: float = 1.5
    otm_cap: float = 5.0  # the OTM widening stops at 1 + otm × cap (expiring wings)
    worthless: float = 0.005  # below this model value: bid 0, ask one minimum tick
    # Open interest (contracts) at the money of a monthly at liquidity 1.0.
    oi_base: float = 60_000.0
    oi_width: float = 1.6  # std devs of the bell around the money
    oi_floor: float = 0.02  # far wings keep this fraction
    weekly_oi: float = 0.25
    quarterly_oi: float = 1.5
    etf_put_wing_oi: float = 1.3  # index puts are where hedgers buy
    stock_call_wing_oi: float = 1.2  # stock calls are where overwriters sell
    oi_build_days: float = 21.0  # open interest builds up after listing
    turnover: float = 0.03  # daily volume / open interest
    turnover_short: float = 0.5  # extra turnover of the last days
    turnover_days: float = 5.0
    size_base: float = 40.0  # option quote size (contracts) at liquidity 1.0, near the money
    stock_spread: float = 2e-5  # stock spread / price at liquidity 1.0 (min one cent)


@dataclass(frozen=True, slots=True)
class SimParams:
    """Every parameter of the synthetic market (defaults documented per class)."""

    path: PathParams = field(default_factory=PathParams)
    surface: SurfaceParams = field(default_factory=SurfaceParams)
    listing: ListingParams = field(default_factory=ListingParams)
    quotes: QuoteParams = field(default_factory=QuoteParams)


@dataclass(frozen=True, slots=True, eq=False)
class ChainArrays:
    """One underlying's option quotes as parallel arrays (the vectorised form of ``chain``).

    Rows are sorted by expiry, strike, then call before put. Prices are per
    share in dollars (floats at this edge; ``chain`` gives Decimals).
    """

    underlying: str
    timestamp: datetime
    spot: float
    expiry: list[date]  # per row
    strike: FloatArray
    is_call: BoolArray
    years: FloatArray  # time to the expiry close, in years of 365 days
    bid: FloatArray
    ask: FloatArray
    model: FloatArray  # model value: max(European BSM, exercise value)
    iv: FloatArray  # surface vol
    delta: FloatArray
    gamma: FloatArray
    theta: FloatArray  # per calendar day
    vega: FloatArray  # per vol point
    rho: FloatArray  # per rate point
    open_interest: IntArray
    volume: IntArray
    bid_size: IntArray
    ask_size: IntArray

    def __len__(self) -> int:
        return int(self.strike.size)


@dataclass(frozen=True, slots=True)
class _Moment:
    """Where an instant falls: the state to use and the instant it belongs to."""

    index: int  # session whose state applies (-1: before the first session)
    fraction: float | None  # intraday position in session ``index``; None when closed
    when: datetime  # the instant quotes are valued at (UTC)
    day: date  # New York date of the instant asked about


@dataclass(eq=False)
class _Listing:
    """What one underlying lists on one session: fixed for the day."""

    session: date
    expiries: list[Expiry]
    expiry_close: FloatArray  # POSIX seconds of each expiry's close
    exp_idx: IntArray  # per contract: index into ``expiries``
    strike_milli: IntArray
    strike: FloatArray
    is_call: BoolArray
    starts: IntArray  # first contract of each expiry (len(expiries) + 1 entries)
    open_interest: IntArray
    full_volume: FloatArray  # volume of a whole session
    bid_size: IntArray
    ask_size: IntArray
    contracts: list[OptionContract] | None = None


@dataclass(eq=False)
class _Valuation:
    """Vectorised valuation of some contracts of a listing at one moment."""

    rows: IntArray  # contract indices into the listing
    spot: float
    years: FloatArray
    iv: FloatArray
    model: FloatArray
    delta: FloatArray
    gamma: FloatArray
    theta: FloatArray
    vega: FloatArray
    rho: FloatArray
    bid_cents: IntArray
    ask_cents: IntArray


class _Lru(Generic[K, V]):
    """A small least-recently-used map (memory stays bounded over decades)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self._data[key] = value
        if len(self._data) > self._size:
            self._data.popitem(last=False)
        return value


_DECIMAL_CENTS: dict[int, Decimal] = {}


def _cents(c: int) -> Decimal:
    """Decimal dollars of an integer number of cents (interned: chains reuse the same prices)."""
    d = _DECIMAL_CENTS.get(c)
    if d is None:
        if len(_DECIMAL_CENTS) > 500_000:
            _DECIMAL_CENTS.clear()
        d = _DECIMAL_CENTS[c] = Decimal(c).scaleb(-2)
    return d


def _splitmix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 finaliser, element-wise (wrapping uint64 arithmetic)."""
    h = h + _U64(0x9E3779B97F4A7C15)
    h = (h ^ (h >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> _U64(27))) * _U64(0x94D049BB133111EB)
    return np.asarray(h ^ (h >> _U64(31)), dtype=np.uint64)


def _uniform_scalar(*words: int) -> float:
    """``_uniform`` for plain ints, without NumPy's per-call overhead (same hash)."""
    h = 0
    for w in words:
        h = (h ^ (w & _MASK64)) + 0x9E3779B97F4A7C15 & _MASK64
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _MASK64
        h ^= h >> 31
    return (h >> 11) * 2.0**-53


def _word(w: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """An integer (or bool) key as wrapping uint64."""
    if isinstance(w, int):
        return np.asarray(w & _MASK64, dtype=np.uint64)
    return np.asarray(w).astype(np.int64).astype(np.uint64)


def _uniform(*words: npt.ArrayLike) -> FloatArray:
    """Deterministic uniforms in [0, 1) from integer keys (a hash, not a stream)."""
    h = np.zeros(np.broadcast_shapes(*(np.shape(w) for w in words)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for w in words:
            h = _splitmix(h ^ _word(w))
    return np.asarray((h >> _U64(11)).astype(np.float64) * 2.0**-53, dtype=np.float64)


@lru_cache(maxsize=4)
def _wide_calendar(start: date, end: date) -> TradingCalendar:
    return TradingCalendar(start, end)


def _default_calendar(start: date) -> TradingCalendar:
    """An NYSE calendar from 1990 (or ``start``) to decades past ``start`` (built once, cached)."""
    horizon = date(start.year + _DEFAULT_HORIZON_YEARS, 12, 31)
    return _wide_calendar(min(start, CALENDAR_START), max(horizon, _DEFAULT_CALENDAR_END))


class SimMarket:
    """A seeded synthetic market: underlyings, vol index, listed option chains.

    Without a ``calendar`` it builds an NYSE calendar from 1990 (or the start)
    to at least 40 years past the start. Not thread-safe (its caches are
    plain dicts): use it from one thread, such as the event loop's.
    """

    def __init__(
        self,
        *,
        seed: int,
        start: date,
        universe: Sequence[Instrument] | None = None,
        calendar: TradingCalendar | None = None,
        rate: float = 0.04,
        params: SimParams | None = None,
    ) -> None:
        if isinstance(start, datetime) or not isinstance(start, date):
            raise TypeError(f"start must be a datetime.date, got {type(start).__name__}")
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if not (isinstance(rate, int | float) and math.isfinite(rate) and -0.05 <= rate <= 0.5):
            raise ValueError(f"rate must be a continuous annual rate in [-0.05, 0.5], got {rate!r}")
        instruments = tuple(default_universe() if universe is None else universe)
        if not instruments:
            raise ValueError("the universe must hold at least one instrument")
        symbols = [i.symbol for i in instruments]
        duplicates = sorted({s for s in symbols if symbols.count(s) > 1})
        if duplicates:
            raise ValueError(f"duplicate symbols in the universe: {', '.join(duplicates)}")
        self._seed = seed
        self._start = start
        self._rate = float(rate)
        self._params = params or SimParams()
        self._instruments = instruments
        self._by_symbol = {inst.symbol: n for n, inst in enumerate(instruments)}
        self._calendar = calendar if calendar is not None else _default_calendar(start)
        if not self._calendar.covers(start):
            raise ValueError(f"the calendar {self._calendar!r} does not cover the start {start}")
        # Session index i counts from the first session on or after the start.
        self._sessions: list[date] = list(self._calendar.iter_sessions(start))
        if not self._sessions:
            raise ValueError(f"the calendar has no session on or after {start}")
        self._session_index = {d: n for n, d in enumerate(self._sessions)}
        self._paths = MarketPaths(
            seed, instruments, self._sessions, self._params.path, self._params.surface
        )
        self._listings: _Lru[tuple[int, int], _Listing] = _Lru(32)
        self._bridges: _Lru[tuple[int, int], FloatArray] = _Lru(512)
        self._vol_bridges: _Lru[int, FloatArray] = _Lru(64)
        # Contract objects outlive a session's listing: most are listed again tomorrow.
        self._contract_objs: list[dict[tuple[int, int, bool], OptionContract]] = [
            {} for _ in instruments
        ]
        self._contract_pruned: list[date] = [date.min for _ in instruments]

    # -- identity ---------------------------------------------------------------

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def start(self) -> date:
        return self._start

    @property
    def params(self) -> SimParams:
        return self._params

    @property
    def calendar(self) -> TradingCalendar:
        return self._calendar

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every underlying in the universe, in universe order."""
        return tuple(i.symbol for i in self._instruments)

    @property
    def first_session(self) -> date:
        """The first session of the market (on or after ``start``)."""
        return self._sessions[0]

    def instrument(self, symbol: str) -> Instrument:
        return self._instruments[self._sym(symbol)]

    def _sym(self, symbol: str) -> int:
        try:
            return self._by_symbol[symbol]
        except (KeyError, TypeError):
            raise UnknownSymbolError(
                f"unknown symbol {symbol!r}: the simulated market lists "
                f"{', '.join(self._by_symbol)}"
            ) from None

    # -- time -------------------------------------------------------------------

    def _check_day(self, d: date, what: str = "date") -> date:
        if isinstance(d, datetime) or not isinstance(d, date):
            raise TypeError(f"{what} must be a datetime.date, got {type(d).__name__}")
        if d < self._start:
            raise ValueError(f"{what} {d} is before the simulated market's start {self._start}")
        if d > self._calendar.last_date:
            raise ValueError(
                f"{what} {d} is beyond the calendar's last date {self._calendar.last_date}"
            )
        return d

    def _session_of_day(self, d: date) -> int:
        """Index of the last session on or before ``d`` (-1 before the first)."""
        return bisect.bisect_right(self._sessions, d) - 1

    def _close_dt(self, i: int) -> datetime:
        return self._calendar.session_close(self._sessions[i])

    def _locate(self, at: datetime) -> _Moment:
        ensure_aware(at, "at")
        day = self._check_day(at.astimezone(NEW_YORK).date(), "the date of `at`")
        at_utc = at.astimezone(UTC)
        i = self._session_index.get(day)
        if i is not None:
            opens = self._calendar.session_open(day)
            closes = self._calendar.session_close(day)
            if opens <= at_utc < closes:
                frac = (at_utc - opens) / (closes - opens)
                return _Moment(i, frac, at_utc, day)
            if at_utc < opens:
                i -= 1
        else:
            i = self._session_of_day(day)
        when = self._close_dt(i) if i >= 0 else at_utc
        return _Moment(i, None, when, day)

    def _expiry_close(self, d: date) -> float:
        """POSIX time an expiry settles: its session's close (16:00 New York past the calendar)."""
        if self._calendar.covers(d) and self._calendar.is_session(d):
            return self._calendar.session_close(d).timestamp()
        return datetime.combine(d, time(16, 0), NEW_YORK).timestamp()

    def _steps(self, i: int) -> int:
        d = self._sessions[i]
        minutes = (self._calendar.session_close(d) - self._calendar.session_open(d)).seconds / 60
        return max(1, round(minutes / self._params.path.intraday_step_minutes))

    @staticmethod
    def _interp(grid: FloatArray, frac: float) -> float:
        pos = frac * (grid.size - 1)
        j = min(int(pos), grid.size - 2)
        w = pos - j
        return float(grid[j] * (1.0 - w) + grid[j + 1] * w)

    def _spot_at(self, s: int, m: _Moment) -> float:
        if m.fraction is None:
            return self._paths.close(s, m.index)
        key = (s, m.index)
        grid = self._bridges.get(key)
        if grid is None:
            self._paths.ensure(m.index)
            grid = self._bridges.put(
                key, self._paths.intraday_log_prices(s, m.index, self._steps(m.index))
            )
        return math.exp(self._interp(grid, m.fraction))

    def _log_var_at(self, m: _Moment) -> float:
        if m.fraction is None:
            return self._paths.log_var(m.index)
        grid = self._vol_bridges.get(m.index)
        if grid is None:
            self._paths.ensure(m.index)
            grid = self._vol_bridges.put(
                m.index, self._paths.intraday_log_var(m.index, self._steps(m.index))
            )
        return self._interp(grid, m.fraction)

    # -- underlyings --------------------------------------------------------------

    def spot(self, symbol: str, at: datetime) -> float:
        """Price of ``symbol`` at the aware instant ``at`` (intraday path, else last close)."""
        s = self._sym(symbol)
        return self._spot_at(s, self._locate(at))

    def close_price(self, symbol: str, session: date) -> Decimal:
        """Official close of ``session`` (2 dp); a non-session date is an error."""
        s = self._sym(symbol)
        self._check_day(session, "session")
        i = self._session_index.get(session)
        if i is None:
            raise ValueError(f"{session} is not an NYSE session of the simulated market")
        return _cents(round(self._paths.close(s, i) * 100))

    def vol_index(self, at: datetime) -> float:
        """The market's 30-day volatility index at ``at`` (VIX-like level, e.g. 18.5)."""
        return float(vol_index_of_state(self._log_var_at(self._locate(at)), self._params.surface))

    def rate(self, at: datetime) -> float:
        """Risk-free rate (continuously compounded) at ``at``: constant in this model."""
        ensure_aware(at, "at")
        return self._rate

    def stock_quote(self, symbol: str, at: datetime) -> StockQuote:
        """Bid/ask around the spot on the cent grid, with round-lot sizes."""
        s = self._sym(symbol)
        m = self._locate(at)
        px = self._spot_at(s, m)
        inst = self._instruments[s]
        half = max(0.01, px * self._params.quotes.stock_spread / inst.liquidity) / 2.0
        bid = max(1, math.floor((px - half) * 100.0 + 1e-9))
        ask = max(bid + 1, math.ceil((px + half) * 100.0 - 1e-9))
        minute = int(m.when.timestamp() // 60)
        depth = 10.0 * math.sqrt(inst.liquidity)
        sizes = [
            100
            * (2 + int(_uniform_scalar(self._seed, symbol_key(inst.symbol), minute, side) * depth))
            for side in (0, 1)
        ]
        return StockQuote(
            symbol=inst.symbol,
            bid=_cents(bid),
            ask=_cents(ask),
            last=_cents(round(px * 100.0)),
            timestamp=m.when,
            bid_size=sizes[0],
            ask_size=sizes[1],
        )

    # -- history (vectorised, for tests, backtests and reports) ----------------

    def sessions(self, first: date, last: date) -> list[date]:
        """The market's sessions from ``first`` to ``last`` inclusive."""
        lo = bisect.bisect_left(self._sessions, self._check_day(first, "first"))
        hi = bisect.bisect_right(self._sessions, self._check_day(last, "last"))
        return self._sessions[lo:hi]

    def _range(self, first: date, last: date) -> tuple[int, int]:
        lo = bisect.bisect_left(self._sessions, self._check_day(first, "first"))
        hi = bisect.bisect_right(self._sessions, self._check_day(last, "last")) - 1
        return lo, hi

    def closes(self, symbol: str, first: date, last: date) -> FloatArray:
        """Closes of ``symbol`` over the sessions from ``first`` to ``last`` (floats)."""
        s = self._sym(symbol)
        lo, hi = self._range(first, last)
        return self._paths.closes(s, lo, hi) if hi >= lo else np.empty(0)

    def vol_index_closes(self, first: date, last: date) -> FloatArray:
        """The vol index at each close from ``first`` to ``last``."""
        lo, hi = self._range(first, last)
        if hi < lo:
            return np.empty(0)
        return vol_index_of_state(self._paths.log_vars(lo, hi), self._params.surface)

    def crash_events(self, until: date) -> list[CrashEvent]:
        """Crashes of the market factor that began on or before ``until``."""
        i = self._session_of_day(self._check_day(until, "until"))
        return self._paths.crash_events(i) if i >= 0 else []

    # -- listing --------------------------------------------------------------------

    def _listing(self, s: int, day: date) -> tuple[_Listing, int]:
        """The listing of the session on or before ``day`` (the first one before the start)."""
        i = max(0, self._session_of_day(day))
        key = (s, i)
        listing = self._listings.get(key)
        if listing is None:
            listing = self._listings.put(key, self._build_listing(s, i))
        return listing, i

    def _build_listing(self, s: int, i: int) -> _Listing:
        inst = self._instruments[s]
        session = self._sessions[i]
        lp = self._params.listing
        expiries = listed_expiries(self._calendar, session, inst.weeklies, lp)
        strikes: list[IntArray] = []
        for e in expiries:
            first = bisect.bisect_left(self._sessions, e.listed_from)  # first listed session
            ref = min(first, i) - 1
            window = self._paths.closes(s, ref, i - 1)
            years_left = (e.date - session).days / 365.0
            strikes.append(
                strike_grid(
                    inst.strike_grid,
                    float(window[0]),
                    float(window.min()),
                    float(window.max()),
                    e.tenor_at_listing,
                    years_left,
                    lp,
                )
            )
        counts = np.array([2 * k.size for k in strikes], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        milli = np.repeat(np.concatenate(strikes), 2) if strikes else np.empty(0, dtype=np.int64)
        n = milli.size
        is_call = np.tile(np.array([True, False]), n // 2)
        exp_idx = np.repeat(np.arange(len(expiries), dtype=np.int64), counts)
        closes = np.array([self._expiry_close(e.date) for e in expiries])
        listing = _Listing(
            session=session,
            expiries=expiries,
            expiry_close=closes,
            exp_idx=exp_idx,
            strike_milli=milli.astype(np.int64),
            strike=milli / 1000.0,
            is_call=is_call,
            starts=starts,
            open_interest=np.zeros(n, dtype=np.int64),
            full_volume=np.zeros(n),
            bid_size=np.ones(n, dtype=np.int64),
            ask_size=np.ones(n, dtype=np.int64),
        )
        if n:
            self._activity(s, i, listing)
        return listing

    def _activity(self, s: int, i: int, listing: _Listing) -> None:
        """Open interest, volume and sizes: bell-shaped around the money, by expiry type."""
        inst = self._instruments[s]
        q = self._params.quotes
        session = listing.session
        spot = self._paths.close(s, i - 1)
        x = self._paths.log_var(i - 1)
        days = np.array([(e.date - session).days for e in listing.expiries], dtype=np.float64)
        years = (days + 0.5) / 365.0
        theta = atm_total_variance(
            inst.kind, inst.beta, self._idio_vol(inst, x), x, years, self._params.surface
        )
        z = np.log(listing.strike / spot) / np.sqrt(theta[listing.exp_idx])
        bell = np.exp(-0.5 * (z / q.oi_width) ** 2) + q.oi_floor
        wing = np.ones_like(z)
        if inst.kind is InstrumentKind.ETF:
            wing[(z < 0) & ~listing.is_call] = q.etf_put_wing_oi
        elif inst.kind is InstrumentKind.STOCK:
            wing[(z > 0) & listing.is_call] = q.stock_call_wing_oi
        type_factor = np.array(
            [
                {ExpiryType.WEEKLY: q.weekly_oi, ExpiryType.QUARTERLY: q.quarterly_oi}.get(
                    e.type, 1.0
                )
                for e in listing.expiries
            ]
        )
        age = np.array([(session - e.listed_from).days for e in listing.expiries], dtype=float)
        build = -np.expm1(-(age + 1.0) / q.oi_build_days)
        exp_ord = np.array([e.date.toordinal() for e in listing.expiries], dtype=np.int64)
        key = symbol_key(inst.symbol)
        contract_u = _uniform(
            self._seed, key, exp_ord[listing.exp_idx], listing.strike_milli, listing.is_call
        )
        day_u = _uniform(
            self._seed,
            key,
            session.toordinal(),
            exp_ord[listing.exp_idx],
            listing.strike_milli,
            listing.is_call,
        )
        jitter = np.exp(0.7 * (contract_u - 0.5))
        oi = q.oi_base * inst.liquidity * bell * wing
        oi *= (type_factor * build)[listing.exp_idx] * jitter
        listing.open_interest = np.floor(oi).astype(np.int64)
        turnover = q.turnover + q.turnover_short * np.exp(-days / q.turnover_days)
        listing.full_volume = oi * turnover[listing.exp_idx] * (0.5 + bell) * np.exp(day_u - 0.5)
        size = q.size_base * math.sqrt(inst.liquidity) * (0.2 + bell)
        listing.bid_size = np.maximum(1, np.floor(size * (0.5 + day_u))).astype(np.int64)
        listing.ask_size = np.maximum(1, np.floor(size * (1.5 - day_u))).astype(np.int64)

    def _contracts_of(self, s: int, listing: _Listing) -> list[OptionContract]:
        """OptionContract objects of a listing, reusing those of earlier sessions."""
        if listing.contracts is not None:
            return listing.contracts
        root = self._instruments[s].symbol
        cache = self._contract_objs[s]
        if listing.session > self._contract_pruned[s] + timedelta(days=30):
            # Drop contracts that have expired: the cache would otherwise grow for decades.
            cutoff = listing.session.toordinal()
            for k in [k for k in cache if k[0] < cutoff]:
                del cache[k]
            self._contract_pruned[s] = listing.session
        out: list[OptionContract] = []
        dates = [e.date for e in listing.expiries]
        for e_i, milli, call in zip(
            listing.exp_idx.tolist(),
            listing.strike_milli.tolist(),
            listing.is_call.tolist(),
            strict=True,
        ):
            d = dates[e_i]
            k = (d.toordinal(), milli, call)
            c = cache.get(k)
            if c is None:
                right = OptionRight.CALL if call else OptionRight.PUT
                c = cache[k] = OptionContract(root, d, right, Decimal(milli) / 1000)
            out.append(c)
        listing.contracts = out
        return out

    def _find(self, listing: _Listing, contract: OptionContract) -> int | None:
        """Row of ``contract`` in a listing, or None if it is not listed there."""
        e_i = next((n for n, e in enumerate(listing.expiries) if e.date == contract.expiry), None)
        if e_i is None:
            return None
        lo, hi = int(listing.starts[e_i]), int(listing.starts[e_i + 1])
        milli = contract.strike * 1000
        if milli != milli.to_integral_value():
            return None
        strikes = listing.strike_milli[lo:hi:2]
        j = int(np.searchsorted(strikes, int(milli)))
        if j >= strikes.size or strikes[j] != int(milli):
            return None
        return lo + 2 * j + (0 if contract.right is OptionRight.CALL else 1)

    def expiries(self, underlying: str, on: date) -> list[date]:
        """Expiries listed on ``on`` (expiring on or after it), soonest first."""
        s = self._sym(underlying)
        self._check_day(on, "on")
        listing, _ = self._listing(s, on)
        return [e.date for e in listing.expiries if e.date >= on]

    def is_listed(self, symbol: str, on: date) -> bool:
        """Whether the OCC ``symbol`` is listed on ``on`` (False for unknown or malformed)."""
        self._check_day(on, "on")
        try:
            contract = parse_occ(symbol)
        except OccSymbolError:
            return False
        s = self._by_symbol.get(contract.root)
        if s is None or contract.expiry < on:
            return False
        listing, _ = self._listing(s, on)
        return self._find(listing, contract) is not None

    def contracts(
        self,
        underlying: str,
        on: date,
        expiry_from: date | None,
        expiry_to: date | None,
        right: OptionRight | None = None,
        strike_from: Decimal | None = None,
        strike_to: Decimal | None = None,
    ) -> list[ContractInfo]:
        """Listed contracts on ``on`` with expiry and strike in range, sorted as the chain.

        A bound of None is open (expiries still start at ``on``).

        ``open_interest`` is that session's; ``close_price`` is the model mid at
        the previous session's close (None on an expiry's first listed session).
        """
        s = self._sym(underlying)
        self._check_day(on, "on")
        listing, _ = self._listing(s, on)
        rows = self._select(
            listing, on if expiry_from is None else max(on, expiry_from), expiry_to, right
        )
        if strike_from is not None:
            rows = rows[listing.strike[rows] >= float(strike_from) - 1e-9]
        if strike_to is not None:
            rows = rows[listing.strike[rows] <= float(strike_to) + 1e-9]
        objs = self._contracts_of(s, listing)
        # The last close before ``on``: the previous session's on a session day.
        last = self._session_of_day(on)
        if last >= 0 and self._sessions[last] == on:
            last -= 1
        prev_close: list[int | None] = [None] * rows.size
        if last >= 0 and rows.size:
            last_day = self._sessions[last]
            val = self._value(s, listing, rows, _Moment(last, None, self._close_dt(last), last_day))
            fresh = np.array([e.listed_from > last_day for e in listing.expiries], dtype=np.bool_)
            cents = np.round(val.model * 100.0).astype(np.int64)
            prev_close = [
                None if f else c
                for f, c in zip(fresh[listing.exp_idx[rows]].tolist(), cents.tolist(), strict=True)
            ]
        labels = [e.type.label for e in listing.expiries]
        out: list[ContractInfo] = []
        for r, close in zip(rows.tolist(), prev_close, strict=True):
            out.append(
                ContractInfo(
                    contract=objs[r],
                    underlying=self._instruments[s].symbol,
                    tradable=True,
                    multiplier=_MULTIPLIER,
                    open_interest=int(listing.open_interest[r]),
                    close_price=None if close is None else _cents(close),
                    extra={"expiry_type": labels[int(listing.exp_idx[r])], "style": "american"},
                )
            )
        return out

    @staticmethod
    def _select(
        listing: _Listing,
        expiry_from: date | None,
        expiry_to: date | None,
        right: OptionRight | None = None,
    ) -> IntArray:
        """Rows of a listing with expiry in [from, to] (and of one right)."""
        keep = [
            n
            for n, e in enumerate(listing.expiries)
            if (expiry_from is None or e.date >= expiry_from)
            and (expiry_to is None or e.date <= expiry_to)
        ]
        if not keep:
            return np.empty(0, dtype=np.int64)
        rows = np.concatenate(
            [np.arange(listing.starts[n], listing.starts[n + 1], dtype=np.int64) for n in keep]
        )
        if right is not None:
            rows = rows[listing.is_call[rows] == (right is OptionRight.CALL)]
        return rows

    # -- valuation -------------------------------------------------------------------

    def _idio_vol(self, inst: Instrument, x: float) -> float:
        """The instrument's idiosyncratic vol in the regime of state x (as the path uses)."""
        p = self._params.path
        scale = float((math.exp(x) / p.long_run_vol**2) ** p.idio_regime_power)
        return inst.idio_vol * min(max(scale, p.idio_regime_min), p.idio_regime_max)

    def _value(self, s: int, listing: _Listing, rows: IntArray, m: _Moment) -> _Valuation:
        """Model values, greeks and quotes of ``rows`` at moment ``m`` (all alive there)."""
        spot = self._spot_at(s, m)
        x = self._log_var_at(m)
        years = (listing.expiry_close[listing.exp_idx[rows]] - m.when.timestamp()) / (
            _SECONDS_PER_YEAR
        )
        return self._price(s, spot, x, listing.strike[rows], listing.is_call[rows], years, rows)

    def _price(
        self,
        s: int,
        spot: float,
        x: float,
        strike: FloatArray,
        is_call: BoolArray,
        years: FloatArray,
        rows: IntArray,
    ) -> _Valuation:
        inst = self._instruments[s]
        sp = self._params.surface
        q = self._params.quotes
        r = self._rate
        years = np.maximum(years, 1e-9)
        theta = atm_total_variance(inst.kind, inst.beta, self._idio_vol(inst, x), x, years, sp)
        forward = spot * np.exp((r - inst.div_yield) * years)
        k = np.log(strike / forward)
        iv = implied_vol(inst.kind, theta, k, years, sp)
        g = bsm_greeks(spot, strike, years, r, inst.div_yield, iv, is_call)
        w = np.where(is_call, 1.0, -1.0)
        model = np.maximum(g.price, np.maximum(w * (spot - strike), 0.0))
        z = np.abs(k) / np.sqrt(theta)
        width = (q.spread_base + q.spread_per_dollar * model) / math.sqrt(inst.liquidity)
        width *= 1.0 + q.spread_per_year * years
        width *= 1.0 + q.spread_otm * np.clip(z - q.otm_free, 0.0, q.otm_cap)
        below, above = tick_schedule_cents(inst.symbol, penny_pilot=inst.penny_pilot)
        bid_c, ask_c = _ticks(model - 0.5 * width, model + 0.5 * width, below, above)
        worthless = model < q.worthless
        bid_c[worthless] = 0
        ask_c[worthless] = below  # the minimum tick
        return _Valuation(
            rows=rows,
            spot=spot,
            years=years,
            iv=iv,
            model=model,
            delta=g.delta,
            gamma=g.gamma,
            theta=g.theta,
            vega=g.vega,
            rho=g.rho,
            bid_cents=bid_c,
            ask_cents=ask_c,
        )

    def _alive(self, listing: _Listing, rows: IntArray, m: _Moment) -> IntArray:
        """Rows whose expiry is on or after the asked day and whose close is after ``m.when``."""
        exp_close = listing.expiry_close[listing.exp_idx[rows]]
        keep = exp_close > m.when.timestamp()
        return rows[keep]

    def _elapsed(self, m: _Moment, listing: _Listing) -> float:
        """Fraction of the listing session's volume done at ``m``."""
        if m.fraction is not None:
            return m.fraction
        return 1.0 if m.index >= self._session_index[listing.session] else 0.0

    def chain_arrays(
        self,
        underlying: str,
        at: datetime,
        expiry_from: date | None = None,
        expiry_to: date | None = None,
    ) -> ChainArrays:
        """The chain as parallel arrays: the fast path for vectorised consumers."""
        s = self._sym(underlying)
        m = self._locate(at)
        listing, _ = self._listing(s, m.day)
        lo = m.day if expiry_from is None else max(m.day, expiry_from)
        rows = self._alive(listing, self._select(listing, lo, expiry_to), m)
        val = self._value(s, listing, rows, m)
        return self._arrays(underlying, listing, val, m)

    def _arrays(
        self, underlying: str, listing: _Listing, val: _Valuation, m: _Moment
    ) -> ChainArrays:
        rows = val.rows
        elapsed = self._elapsed(m, listing)
        dates = [e.date for e in listing.expiries]
        return ChainArrays(
            underlying=underlying,
            timestamp=m.when,
            spot=val.spot,
            expiry=[dates[e] for e in listing.exp_idx[rows].tolist()],
            strike=listing.strike[rows],
            is_call=listing.is_call[rows],
            years=val.years,
            bid=val.bid_cents / 100.0,
            ask=val.ask_cents / 100.0,
            model=val.model,
            iv=val.iv,
            delta=val.delta,
            gamma=val.gamma,
            theta=val.theta,
            vega=val.vega,
            rho=val.rho,
            open_interest=listing.open_interest[rows],
            volume=np.floor(listing.full_volume[rows] * elapsed).astype(np.int64),
            bid_size=listing.bid_size[rows],
            ask_size=listing.ask_size[rows],
        )

    def chain(
        self,
        underlying: str,
        at: datetime,
        expiry_from: date | None = None,
        expiry_to: date | None = None,
    ) -> list[OptionSnapshot]:
        """Snapshots (quotes, IV, greeks, OI, volume) of every listed, unexpired contract."""
        s = self._sym(underlying)
        m = self._locate(at)
        listing, _ = self._listing(s, m.day)
        lo = m.day if expiry_from is None else max(m.day, expiry_from)
        rows = self._alive(listing, self._select(listing, lo, expiry_to), m)
        val = self._value(s, listing, rows, m)
        return self._snapshots(s, listing, val, m)

    def _snapshots(
        self, s: int, listing: _Listing, val: _Valuation, m: _Moment
    ) -> list[OptionSnapshot]:
        objs = self._contracts_of(s, listing)
        rows = val.rows
        elapsed = self._elapsed(m, listing)
        volume = np.floor(listing.full_volume[rows] * elapsed).astype(np.int64)
        under = _cents(round(val.spot * 100.0))
        when = m.when
        out: list[OptionSnapshot] = []
        for r, b, a, bs, as_, iv, d, gm, th, vg, rh, oi, vol in zip(
            rows.tolist(),
            val.bid_cents.tolist(),
            val.ask_cents.tolist(),
            listing.bid_size[rows].tolist(),
            listing.ask_size[rows].tolist(),
            val.iv.tolist(),
            val.delta.tolist(),
            val.gamma.tolist(),
            val.theta.tolist(),
            val.vega.tolist(),
            val.rho.tolist(),
            listing.open_interest[rows].tolist(),
            volume.tolist(),
            strict=True,
        ):
            out.append(
                OptionSnapshot(
                    contract=objs[r],
                    bid=_cents(b),
                    ask=_cents(a),
                    bid_size=bs,
                    ask_size=as_,
                    timestamp=when,
                    implied_volatility=iv,
                    greeks=Greeks(delta=d, gamma=gm, theta=th, vega=vg, rho=rh),
                    last=None,
                    open_interest=oi,
                    volume=vol,
                    underlying_price=under,
                )
            )
        return out

    def option_quotes(self, symbols: Sequence[str], at: datetime) -> dict[str, OptionSnapshot]:
        """Snapshots of the given OCC symbols, keyed as passed; unknown, malformed,
        not-listed or expired symbols are left out."""
        m = self._locate(at)
        wanted: dict[int, list[tuple[str, OptionContract]]] = {}
        for text in symbols:
            try:
                contract = parse_occ(text)
            except OccSymbolError:
                continue
            s = self._by_symbol.get(contract.root)
            if s is not None and contract.expiry >= m.day:
                wanted.setdefault(s, []).append((text, contract))
        out: dict[str, OptionSnapshot] = {}
        for s, items in wanted.items():
            listing, _ = self._listing(s, m.day)
            found = [(t, self._find(listing, c)) for t, c in items]
            pairs = [(t, r) for t, r in found if r is not None]
            if not pairs:
                continue
            rows = np.array([r for _, r in pairs], dtype=np.int64)
            alive = self._alive(listing, rows, m)
            if not alive.size:
                continue
            keep = set(alive.tolist())
            pairs = [(t, r) for t, r in pairs if r in keep]
            rows = np.array([r for _, r in pairs], dtype=np.int64)
            snaps = self._snapshots(s, listing, self._value(s, listing, rows, m), m)
            out.update((t, snap) for (t, _), snap in zip(pairs, snaps, strict=True))
        return out

    def option_model_value(self, symbol: str, at: datetime) -> float:
        """Model mid per share at ``at``; intrinsic (on the expiry close) at/after the expiry close.

        Works for any valid OCC symbol of a known underlying, listed or not.
        """
        try:
            contract = parse_occ(symbol)
        except OccSymbolError as exc:
            raise ValueError(str(exc)) from None
        s = self._sym(contract.root)
        m = self._locate(at)
        strike = float(contract.strike)
        call = contract.right is OptionRight.CALL
        e = contract.expiry
        close_ts = self._expiry_close(e)
        if m.when.timestamp() >= close_ts:
            # Settled on the underlying's close of the expiry day (the last session by then).
            j = self._session_of_day(e)
            px = self._paths.close(s, j)
            return max((px - strike) if call else (strike - px), 0.0)
        spot = self._spot_at(s, m)
        x = self._log_var_at(m)
        years = np.array([(close_ts - m.when.timestamp()) / _SECONDS_PER_YEAR])
        val = self._price(
            s, spot, x, np.array([strike]), np.array([call]), years, np.zeros(1, dtype=np.int64)
        )
        return float(val.model[0])


def _ticks(
    low: FloatArray, high: FloatArray, below_cents: int, above_cents: int
) -> tuple[IntArray, IntArray]:
    """Bid (rounded down) and ask (rounded up) in cents on the option tick grid.

    The grid is ``domain.ticks``' schedule: ``below_cents`` under $3.00,
    ``above_cents`` from $3.00. A negative bid becomes 0; the ask is at least
    one tick above the bid.
    """
    lo = np.maximum(low, 0.0) * 100.0
    hi = high * 100.0
    brk = float(PENNY_BREAK_CENTS)
    bid_tick = np.where(lo >= brk, float(above_cents), float(below_cents))
    ask_tick = np.where(hi >= brk, float(above_cents), float(below_cents))
    bid = np.floor(lo / bid_tick + 1e-7) * bid_tick
    ask = np.ceil(hi / ask_tick - 1e-7) * ask_tick
    ask = np.maximum(ask, float(below_cents))
    tick_above_bid = np.where(bid >= brk, float(above_cents), float(below_cents))
    ask = np.maximum(ask, bid + tick_above_bid)
    return bid.astype(np.int64), ask.astype(np.int64)
