"""Reference data per symbol: sector, beta to SPY, leverage factor, credit rating, next earnings.

Strategies ask a ``ReferenceData`` provider; the default provider is a TOML
file the user maintains (``config/reference_data.toml``)::

    [symbols.AAPL]
    sector = "Technology"      # a sector name as in hedging.underlying.sector_etfs
    beta = 1.20                # beta to SPY
    leverage = 1               # 3 for TQQQ, -1 for SH; default 1
    credit_rating = "AA+"      # S&P long-term issuer scale (AAA ... D)
    next_earnings = 2027-01-28 # a TOML date (or "YYYY-MM-DD")

    [symbols.TQQQ]
    tracks = "QQQ"             # an index ETF: the hedge ETF whose index it tracks
    beta = 1.15                # the tracked index's beta to SPY
    leverage = 3

Every field is optional. A symbol the file does not list is not an error: the
provider answers a ``SymbolInfo`` with ``None`` fields and leverage 1, and
each strategy decides what unknown means for its rule. A malformed file is an
error naming the file, the symbol and the field, so the user can fix it; it
is never half-loaded.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol, runtime_checkable

from alchemiser.settings.income import CREDIT_RATINGS

__all__ = [
    "CREDIT_RATINGS",
    "ReferenceData",
    "ReferenceDataError",
    "SymbolInfo",
    "TomlReferenceData",
]

# Same ticker shape as the settings (upper case, optional class suffix such as BRK.B).
_TICKER = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[.\-][A-Z0-9]{1,4})?$")
_FIELDS = ("sector", "beta", "leverage", "credit_rating", "next_earnings", "tracks")
# Plausibility bounds: a value outside them is a typo, not a market fact.
_MAX_ABS_BETA = Decimal(10)
_MAX_ABS_LEVERAGE = Decimal(5)


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """What the reference data says about one symbol; ``None`` means unknown."""

    symbol: str
    sector: str | None = None
    beta: Decimal | None = None  # beta to SPY (of the instrument's underlying index for ETFs)
    leverage: Decimal = Decimal(1)  # 3 for a 3x ETF, -1 for an inverse ETF
    credit_rating: str | None = None  # S&P scale, one of CREDIT_RATINGS
    next_earnings: date | None = None
    # For an index ETF (TQQQ, SH, ...): the hedge ETF whose index it tracks; overrides the sector.
    tracks: str | None = None


@runtime_checkable
class ReferenceData(Protocol):
    """A source of ``SymbolInfo``; an unknown symbol gets an all-unknown answer, never an error."""

    def get(self, symbol: str) -> SymbolInfo: ...


class ReferenceDataError(ValueError):
    """Reference data that cannot be used; the message names file, symbol and field."""

    def __init__(
        self, message: str, source: str, symbol: str | None = None, field: str | None = None
    ) -> None:
        where = source
        if symbol is not None:
            where += f": symbol {symbol}"
        if field is not None:
            where += f", field {field}"
        super().__init__(f"{where}: {message}")
        self.source = source
        self.symbol = symbol
        self.field = field


def _number(value: object, what: str) -> Decimal:
    """A TOML number as an exact Decimal (floats through their shortest repr)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return number


def _parse_field(name: str, value: object) -> object:
    """One field's value, checked; raises ValueError with a message for the user."""
    if name == "sector":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"must be a non-empty string, got {value!r}")
        return value.strip()
    if name == "beta":
        beta = _number(value, "beta")
        if abs(beta) > _MAX_ABS_BETA:
            raise ValueError(f"must be between -{_MAX_ABS_BETA} and {_MAX_ABS_BETA}, got {value!r}")
        return beta
    if name == "leverage":
        leverage = _number(value, "leverage")
        if leverage == 0 or abs(leverage) > _MAX_ABS_LEVERAGE:
            raise ValueError(
                f"must be non-zero and between -{_MAX_ABS_LEVERAGE} and {_MAX_ABS_LEVERAGE} "
                f"(3 for a 3x ETF, -1 for an inverse ETF), got {value!r}"
            )
        return leverage
    if name == "credit_rating":
        rating = value.strip().upper() if isinstance(value, str) else None
        if rating not in CREDIT_RATINGS:
            raise ValueError(
                f"must be an S&P long-term rating ({', '.join(CREDIT_RATINGS)}), got {value!r}"
            )
        return rating
    if name == "next_earnings":
        if isinstance(value, datetime):
            raise ValueError(f"must be a date without a time, got {value!r}")
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValueError(f'must be a date (2027-01-28 or "2027-01-28"), got {value!r}')
    if name == "tracks":
        if not isinstance(value, str) or not _TICKER.match(value):
            raise ValueError(f"must be a ticker such as QQQ, got {value!r}")
        return value
    raise AssertionError(name)  # pragma: no cover - callers pass known names only


def _symbol_info(symbol: str, table: object, source: str) -> SymbolInfo:
    if not isinstance(table, Mapping):
        raise ReferenceDataError(
            f"must be a table of fields ({', '.join(_FIELDS)}), got {table!r}", source, symbol
        )
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise ReferenceDataError(
            f"unknown field; the fields are {', '.join(_FIELDS)}", source, symbol, unknown[0]
        )
    values: dict[str, object] = {}
    for name in _FIELDS:
        if name in table:
            try:
                values[name] = _parse_field(name, table[name])
            except ValueError as exc:
                raise ReferenceDataError(str(exc), source, symbol, name) from None
    return SymbolInfo(symbol=symbol, **values)  # type: ignore[arg-type]  # checked above


class TomlReferenceData:
    """Reference data read from a TOML file (or an already-parsed mapping)."""

    def __init__(self, symbols: Mapping[str, SymbolInfo], source: str = "<memory>") -> None:
        self._symbols = dict(symbols)
        self.source = source

    @classmethod
    def parse(cls, data: Mapping[str, object], source: str = "<memory>") -> TomlReferenceData:
        """Check and convert a parsed document (``{"symbols": {SYMBOL: {field: value}}}``)."""
        unknown = sorted(set(data) - {"symbols"})
        if unknown:
            raise ReferenceDataError(
                f"unknown top-level key {unknown[0]!r}: symbols go in [symbols.SYMBOL] tables",
                source,
            )
        tables = data.get("symbols", {})
        if not isinstance(tables, Mapping):
            raise ReferenceDataError("'symbols' must be a table of [symbols.SYMBOL] tables", source)
        symbols: dict[str, SymbolInfo] = {}
        for symbol, table in tables.items():
            if not isinstance(symbol, str) or not _TICKER.match(symbol):
                raise ReferenceDataError(
                    "is not a ticker: use upper-case letters and digits, e.g. QQQ or BRK.B",
                    source,
                    repr(symbol),
                )
            symbols[symbol] = _symbol_info(symbol, table, source)
        return cls(symbols, source)

    @classmethod
    def load(cls, path: str | Path) -> TomlReferenceData:
        """Read and check ``path``; any problem is a ReferenceDataError naming the file."""
        source = str(path)
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ReferenceDataError(f"cannot read: {exc.strerror or exc}", source) from None
        except tomllib.TOMLDecodeError as exc:
            raise ReferenceDataError(f"not valid TOML: {exc}", source) from None
        return cls.parse(data, source)

    def get(self, symbol: str) -> SymbolInfo:
        key = symbol.strip().upper()
        found = self._symbols.get(key)
        return found if found is not None else SymbolInfo(symbol=key)

    def symbols(self) -> list[str]:
        """The listed symbols, sorted."""
        return sorted(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.strip().upper() in self._symbols

    def __iter__(self) -> Iterator[SymbolInfo]:
        return (self._symbols[s] for s in self.symbols())

    def __len__(self) -> int:
        return len(self._symbols)
