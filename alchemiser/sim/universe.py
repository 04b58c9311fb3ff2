"""Instruments of the synthetic market and the default universe.

Each instrument says how the path model moves it (beta to the market factor,
idiosyncratic volatility) and how its options are listed and quoted (strike
grid style, penny-pilot ticks, weeklies, liquidity). The default universe is
the three hedge ETFs (betas as PARAMETERS.md: SPY 1.00, QQQ 1.15, IWM 1.20),
VIXY, and a tech-heavy stock set with a few defensive names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CORE_ETFS",
    "DEFAULT_STOCKS",
    "Instrument",
    "InstrumentKind",
    "StrikeGridStyle",
    "default_universe",
    "stock",
    "universe_with",
]

# An OCC root: the option symbols of the instrument use its symbol as the root.
_SYMBOL_RE = re.compile(r"[A-Z][A-Z0-9]{0,5}")


class InstrumentKind(StrEnum):
    ETF = "etf"  # an equity index ETF: beta × factor + a little tracking noise
    STOCK = "stock"  # a single stock: beta × factor + idiosyncratic moves
    VOL_ETF = "vol_etf"  # a VIX-futures ETF (VIXY): driven by the vol state, not by beta


class StrikeGridStyle(StrEnum):
    INDEX = "index"  # $1 near the money widening to $5 (scaled up for high prices)
    STOCK = "stock"  # 0.5/1/2.5/5/10 by price level, doubled far from the money


@dataclass(frozen=True, slots=True)
class Instrument:
    """One underlying of the synthetic market.

    ``liquidity`` scales option open interest, volume and sizes (SPY = 1.0)
    and narrows spreads (spread multiplier 1/√liquidity).
    """

    symbol: str
    kind: InstrumentKind
    sector: str
    beta: float  # to the market factor; ignored for VOL_ETF
    start_price: float
    idio_vol: float  # annual idiosyncratic volatility (calm-market level)
    div_yield: float  # continuous dividend yield, used in option pricing
    strike_grid: StrikeGridStyle
    penny_pilot: bool  # options quoted in $0.01 at every price
    weeklies: bool  # Friday weekly expiries for the next ~8 weeks
    liquidity: float = 0.3

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not _SYMBOL_RE.fullmatch(self.symbol):
            raise ValueError(
                f"instrument symbol must be 1-6 upper-case letters/digits starting with a "
                f"letter (it is the option root), got {self.symbol!r}"
            )
        if not isinstance(self.kind, InstrumentKind):
            raise ValueError(f"{self.symbol}: kind must be an InstrumentKind, got {self.kind!r}")
        if not isinstance(self.strike_grid, StrikeGridStyle):
            raise ValueError(
                f"{self.symbol}: strike_grid must be a StrikeGridStyle, got {self.strike_grid!r}"
            )
        checks = (
            ("beta", self.beta, -5.0, 5.0),
            ("start_price", self.start_price, 0.5, 50_000.0),
            ("idio_vol", self.idio_vol, 0.0, 2.0),
            ("div_yield", self.div_yield, 0.0, 0.2),
            ("liquidity", self.liquidity, 1e-4, 10.0),
        )
        for name, value, lo, hi in checks:
            if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{self.symbol}: {name} must be in [{lo}, {hi}], got {value!r}")


def stock(
    symbol: str,
    sector: str,
    *,
    beta: float,
    start_price: float,
    idio_vol: float = 0.25,
    div_yield: float = 0.0,
    penny_pilot: bool = False,
    weeklies: bool = False,
    liquidity: float = 0.15,
) -> Instrument:
    """A single stock with the usual defaults (stock strike grid)."""
    return Instrument(
        symbol=symbol,
        kind=InstrumentKind.STOCK,
        sector=sector,
        beta=beta,
        start_price=start_price,
        idio_vol=idio_vol,
        div_yield=div_yield,
        strike_grid=StrikeGridStyle.STOCK,
        penny_pilot=penny_pilot,
        weeklies=weeklies,
        liquidity=liquidity,
    )


def _etf(symbol: str, beta: float, price: float, idio: float, q: float, liq: float) -> Instrument:
    return Instrument(
        symbol=symbol,
        kind=InstrumentKind.ETF,
        sector="Index",
        beta=beta,
        start_price=price,
        idio_vol=idio,
        div_yield=q,
        strike_grid=StrikeGridStyle.INDEX,
        penny_pilot=True,
        weeklies=True,
        liquidity=liq,
    )


# SPY is the market factor itself (no tracking noise), so regressions of the
# other ETFs on SPY recover their configured betas.
CORE_ETFS: tuple[Instrument, ...] = (
    _etf("SPY", 1.00, 580.0, 0.0, 0.013, 1.0),
    _etf("QQQ", 1.15, 500.0, 0.08, 0.006, 0.8),
    _etf("IWM", 1.20, 220.0, 0.11, 0.012, 0.5),
    Instrument(
        symbol="VIXY",
        kind=InstrumentKind.VOL_ETF,
        sector="Volatility",
        beta=0.0,
        start_price=40.0,
        idio_vol=0.05,
        div_yield=0.0,
        strike_grid=StrikeGridStyle.STOCK,
        penny_pilot=False,
        weeklies=False,
        liquidity=0.1,
    ),
)

_TECH = "Technology"
_COMM = "Communication Services"
DEFAULT_STOCKS: tuple[Instrument, ...] = (
    stock("AAPL", _TECH, beta=1.20, start_price=220.0, idio_vol=0.22, div_yield=0.005,
          penny_pilot=True, weeklies=True, liquidity=0.5),
    stock("MSFT", _TECH, beta=1.10, start_price=420.0, idio_vol=0.20, div_yield=0.008,
          penny_pilot=True, weeklies=True, liquidity=0.4),
    stock("NVDA", _TECH, beta=1.70, start_price=130.0, idio_vol=0.40, div_yield=0.0003,
          penny_pilot=True, weeklies=True, liquidity=0.5),
    stock("AMZN", "Consumer Discretionary", beta=1.30, start_price=200.0, idio_vol=0.25,
          penny_pilot=True, weeklies=True, liquidity=0.4),
    stock("GOOGL", _COMM, beta=1.10, start_price=170.0, idio_vol=0.22, div_yield=0.005,
          penny_pilot=True, weeklies=True, liquidity=0.35),
    stock("META", _COMM, beta=1.30, start_price=580.0, idio_vol=0.30, div_yield=0.004,
          penny_pilot=True, weeklies=True, liquidity=0.35),
    stock("KO", "Consumer Staples", beta=0.60, start_price=65.0, idio_vol=0.13, div_yield=0.030),
    stock("PG", "Consumer Staples", beta=0.50, start_price=165.0, idio_vol=0.13, div_yield=0.025),
    stock("JPM", "Financials", beta=1.10, start_price=240.0, idio_vol=0.18, div_yield=0.022),
    stock("XOM", "Energy", beta=0.90, start_price=110.0, idio_vol=0.22, div_yield=0.034),
)  # fmt: skip


def universe_with(
    stocks: Iterable[Instrument], *, etfs: Sequence[Instrument] = CORE_ETFS
) -> tuple[Instrument, ...]:
    """The core ETFs (SPY, QQQ, IWM, VIXY) followed by ``stocks``."""
    return (*etfs, *stocks)


def default_universe() -> tuple[Instrument, ...]:
    """SPY, QQQ, IWM, VIXY and the default stocks."""
    return universe_with(DEFAULT_STOCKS)
