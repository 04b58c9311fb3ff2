"""The book as the risk engine sees it: one ``RiskPosition`` per holding, floats inside.

``build_book`` turns broker ``Position``s plus quotes and a strategy tag per symbol
into ``RiskPosition``s; ``BookArrays`` is the same book as parallel NumPy arrays,
the input of every vectorised measure (greeks, VaR, stress). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

from alchemiser.domain.options import OptionRight, parse_occ
from alchemiser.domain.pricing import DAYS_PER_YEAR, BoolArray, FloatArray, bsm_price
from alchemiser.domain.trading import OptionSnapshot, Position, StockQuote

__all__ = [
    "OPTION_MULTIPLIER",
    "STRATEGIES",
    "BookArrays",
    "IntArray",
    "Kind",
    "RiskPosition",
    "Strategy",
    "book_arrays",
    "build_book",
    "revalue",
]

Kind = Literal["equity", "option"]
Strategy = Literal["hedge", "income", "equity"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
OPTION_MULTIPLIER = 100
IntArray: TypeAlias = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class RiskPosition:
    """One holding. ``qty`` is signed (shares, or contracts of 100 for options)."""

    symbol: str
    kind: Kind
    qty: float
    strategy: Strategy
    underlying: str
    spot: float  # price of the underlying (of the stock itself for equities)
    strike: float | None = None
    expiry: date | None = None
    right: OptionRight | None = None
    iv: float | None = None  # annual, 0.20 = 20 %
    mark: float | None = None  # option quote mark per share (mid), for reference

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"{self.symbol}: strategy must be one of {STRATEGIES}, got {self.strategy!r}"
            )
        if not (np.isfinite(self.spot) and self.spot > 0):
            raise ValueError(f"{self.symbol}: spot must be positive, got {self.spot!r}")
        if self.kind == "option":
            if self.strike is None or self.expiry is None or self.right is None or self.iv is None:
                raise ValueError(f"{self.symbol}: an option needs strike, expiry, right and iv")
        elif self.kind != "equity":
            raise ValueError(f"{self.symbol}: kind must be 'equity' or 'option', got {self.kind!r}")

    @property
    def multiplier(self) -> int:
        return OPTION_MULTIPLIER if self.kind == "option" else 1

    @property
    def units(self) -> float:
        """Signed quantity times the multiplier: shares, or option units on 1 share."""
        return self.qty * self.multiplier


@dataclass(frozen=True, slots=True)
class BookArrays:
    """The book as parallel arrays (one element per position)."""

    symbols: tuple[str, ...]
    underlyings: tuple[str, ...]  # distinct underlyings, sorted; ``und`` indexes it
    und: IntArray  # index into ``underlyings`` per position
    strategy: tuple[Strategy, ...]
    units: FloatArray  # signed qty × multiplier
    spot: FloatArray
    is_option: BoolArray
    strike: FloatArray  # NaN for equities
    time: FloatArray  # years to expiry, 0 for equities
    iv: FloatArray  # 0 for equities
    is_call: BoolArray

    def __len__(self) -> int:
        return len(self.symbols)


def book_arrays(book: Sequence[RiskPosition], as_of: date) -> BookArrays:
    """Arrays of the book; time to expiry is calendar days from ``as_of`` / 365 (≥ 0)."""
    underlyings = tuple(sorted({p.underlying for p in book}))
    where = {u: n for n, u in enumerate(underlyings)}
    n = len(book)
    strike = np.full(n, np.nan)
    time = np.zeros(n)
    iv = np.zeros(n)
    is_call = np.zeros(n, dtype=np.bool_)
    is_option = np.zeros(n, dtype=np.bool_)
    for i, p in enumerate(book):
        if p.kind == "option":
            assert p.strike is not None and p.expiry is not None and p.right is not None
            assert p.iv is not None
            is_option[i] = True
            strike[i] = p.strike
            time[i] = max((p.expiry - as_of).days, 0) / DAYS_PER_YEAR
            iv[i] = p.iv
            is_call[i] = p.right.is_call
    und: IntArray = np.array([where[p.underlying] for p in book], dtype=np.intp)
    return BookArrays(
        symbols=tuple(p.symbol for p in book),
        underlyings=underlyings,
        und=und,
        strategy=tuple(p.strategy for p in book),
        units=np.array([p.units for p in book], dtype=np.float64),
        spot=np.array([p.spot for p in book], dtype=np.float64),
        is_option=is_option,
        strike=strike,
        time=time,
        iv=iv,
        is_call=is_call,
    )


def _stock_price(quote: StockQuote) -> float:
    if quote.bid > 0 and quote.ask > 0:
        return float(quote.mid)
    return float(quote.last)


def build_book(
    positions: Sequence[Position],
    stock_quotes: Mapping[str, StockQuote],
    option_quotes: Mapping[str, OptionSnapshot],
    strategy_tags: Mapping[str, Strategy],
    *,
    default_option_strategy: Strategy | None = None,
) -> list[RiskPosition]:
    """Risk positions of broker positions.

    Strategy: ``strategy_tags[symbol]``; else equities are ``"equity"`` and options
    ``default_option_strategy`` (an untagged option with no default is an error:
    a hedge counted as income would misstate every income limit).
    Underlying spot: the stock quote's mid (last if no two-sided quote), else the
    option snapshot's ``underlying_price``. IV comes from the option snapshot;
    an option without a snapshot IV is an error naming the symbol.
    """
    out: list[RiskPosition] = []
    for pos in positions:
        qty = float(pos.qty)
        if qty == 0:
            continue
        tag = strategy_tags.get(pos.symbol)
        if not pos.is_option:
            quote = stock_quotes.get(pos.symbol)
            spot = _stock_price(quote) if quote is not None else float(pos.current_price)
            out.append(
                RiskPosition(
                    symbol=pos.symbol,
                    kind="equity",
                    qty=qty,
                    strategy=tag or "equity",
                    underlying=pos.symbol,
                    spot=spot,
                )
            )
            continue
        contract = parse_occ(pos.symbol)
        strategy = tag or default_option_strategy
        if strategy is None:
            raise ValueError(f"option {pos.symbol} has no strategy tag (hedge or income)")
        snap = option_quotes.get(pos.symbol)
        underlying_quote = stock_quotes.get(contract.root)
        if underlying_quote is not None:
            spot = _stock_price(underlying_quote)
        elif snap is not None and snap.underlying_price is not None:
            spot = float(snap.underlying_price)
        else:
            raise ValueError(f"no price for {contract.root}, the underlying of {pos.symbol}")
        if snap is None or snap.implied_volatility is None:
            raise ValueError(f"no implied volatility for {pos.symbol}")
        mark = float(snap.mid) if snap.bid > 0 and snap.ask > 0 else float(pos.current_price)
        out.append(
            RiskPosition(
                symbol=pos.symbol,
                kind="option",
                qty=qty,
                strategy=strategy,
                underlying=contract.root,
                spot=spot,
                strike=float(contract.strike),
                expiry=contract.expiry,
                right=contract.right,
                iv=float(snap.implied_volatility),
                mark=mark,
            )
        )
    return out


def revalue(
    arrays: BookArrays,
    spot: FloatArray,
    *,
    rate: float | FloatArray,
    iv: FloatArray | None = None,
    time: FloatArray | None = None,
    div_yield: float = 0.0,
) -> FloatArray:
    """Model value (units × price) of every position at the given inputs, fully repriced.

    ``spot`` (and ``iv``, ``time``, ``rate`` if arrays) have the positions on the
    last axis and any number of scenarios before it, e.g. shape (scenarios, n).
    Equities are worth spot; options their BSM value (one vectorised call).
    """
    spot = np.asarray(spot, dtype=np.float64)
    iv_ = arrays.iv if iv is None else np.asarray(iv, dtype=np.float64)
    time_ = arrays.time if time is None else np.asarray(time, dtype=np.float64)
    shape = np.broadcast_shapes(spot.shape, iv_.shape, time_.shape, np.shape(rate), (len(arrays),))
    price = np.array(np.broadcast_to(spot, shape), dtype=np.float64)
    opt = arrays.is_option
    if opt.any():

        def sel(a: FloatArray) -> FloatArray:
            return np.broadcast_to(a, shape)[..., opt]

        rate_ = np.asarray(rate, dtype=np.float64)
        price[..., opt] = bsm_price(
            sel(spot),
            arrays.strike[opt],
            sel(time_),
            sel(rate_) if rate_.ndim else float(rate_),
            div_yield,
            sel(iv_),
            arrays.is_call[opt],
        )
    value: FloatArray = price * arrays.units
    return value
