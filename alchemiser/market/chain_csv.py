"""Read an option chain from a CSV file of quotes.

Header (any order, case-insensitive): ``expiry,strike,right,bid,ask`` with
optional ``volume,open_interest``; or an OCC ``symbol`` column instead of
``expiry,strike,right``. Values: ISO dates (YYYY-MM-DD), numbers, ``C``/``P``
(``CALL``/``PUT`` also read). One row per contract.

What is an error and what is a dropped quote:

- a malformed header (missing or unknown or repeated column, or both
  ``symbol`` and ``expiry/strike/right``), an unreadable value, a negative
  price, an unknown right or a repeated contract is an error naming the line
  and column: the file is wrong and nothing is guessed;
- a quote with an empty (or ``nan``) bid or ask, or a crossed one (bid above
  ask), is a bad quote: it is dropped and counted, the rest of the chain is
  kept.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from alchemiser.domain.options import OccSymbolError, OptionRight, parse_occ
from alchemiser.domain.vol_index import OptionChain

__all__ = ["ChainCsvError", "LoadedChain", "load_chain_csv", "read_chain_csv"]

_CONTRACT_COLUMNS = ("expiry", "strike", "right")
_PRICE_COLUMNS = ("bid", "ask")
_OPTIONAL_COLUMNS = ("volume", "open_interest")
_KNOWN = {*_CONTRACT_COLUMNS, *_PRICE_COLUMNS, *_OPTIONAL_COLUMNS, "symbol"}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# "4,362": thousands separators as spreadsheets and web tables write them.
_GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d*)?")
_MISSING = {"", "-", "nan", "na", "n/a", "null", "none"}


class ChainCsvError(ValueError):
    """A chain CSV that cannot be read; says where (file, line, column) and why."""

    def __init__(
        self, message: str, source: str, line: int | None = None, column: str | None = None
    ) -> None:
        where = source
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class LoadedChain:
    """The chain and what was dropped on the way in."""

    chain: OptionChain
    rows: int  # data rows read
    dropped_missing: int  # empty / nan bid or ask
    dropped_crossed: int  # bid above ask

    @property
    def dropped(self) -> int:
        return self.dropped_missing + self.dropped_crossed


def _header(names: list[str], source: str) -> dict[str, int]:
    columns: dict[str, int] = {}
    for i, raw in enumerate(names):
        name = raw.strip().lower()
        if name in columns:
            raise ChainCsvError(f"column {name!r} appears twice in the header", source, 1)
        columns[name] = i
    unknown = [n for n in columns if n not in _KNOWN]
    if unknown:
        raise ChainCsvError(
            f"unknown column(s) {', '.join(map(repr, unknown))}; expected "
            "expiry,strike,right (or symbol),bid,ask and optionally volume,open_interest",
            source,
            1,
        )
    given = [c for c in _CONTRACT_COLUMNS if c in columns]
    if "symbol" in columns and given:
        raise ChainCsvError(
            f"header has both symbol and {','.join(given)}: use one way to name contracts",
            source,
            1,
        )
    required = [*_PRICE_COLUMNS, *(() if "symbol" in columns else _CONTRACT_COLUMNS)]
    missing = [c for c in required if c not in columns]
    if missing:
        raise ChainCsvError(
            f"header lacks column(s) {', '.join(missing)} "
            "(expected expiry,strike,right,bid,ask or symbol,bid,ask)",
            source,
            1,
        )
    return columns


def _number(text: str, source: str, line: int, column: str) -> float | None:
    """A non-negative finite number, or None when the cell is empty/nan."""
    cell = text.strip()
    if cell.lower() in _MISSING:
        return None
    if _GROUPED.fullmatch(cell):
        cell = cell.replace(",", "")
    try:
        value = float(cell)
    except ValueError:
        raise ChainCsvError(f"{cell!r} is not a number", source, line, column) from None
    if not math.isfinite(value):
        raise ChainCsvError(f"{cell!r} is not a finite number", source, line, column)
    if value < 0:
        raise ChainCsvError(f"negative value {cell}", source, line, column)
    return value


def read_chain_csv(lines: Iterable[str], source: str = "<chain>") -> LoadedChain:
    """Parse CSV text (an iterable of lines) into a chain; see the module doc."""
    reader = csv.reader(lines)
    try:
        names = next(reader)
    except StopIteration:
        raise ChainCsvError("empty file: no header", source, 1) from None
    except csv.Error as exc:
        raise ChainCsvError(f"unreadable CSV: {exc}", source, 1) from None
    col = _header(names, source)
    width = len(names)
    by_symbol = "symbol" in col

    expiries: list[date] = []
    strikes: list[float] = []
    calls: list[bool] = []
    bids: list[float] = []
    asks: list[float] = []
    volumes: list[float] = []
    interests: list[float] = []
    roots: set[str] = set()
    seen: dict[tuple[date, float, bool], int] = {}
    rows = missing = crossed = 0

    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ChainCsvError(f"unreadable CSV: {exc}", source, reader.line_num) from None
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue  # blank line
        if len(row) != width:
            raise ChainCsvError(f"{len(row)} fields, the header has {width}", source, line)
        rows += 1

        if by_symbol:
            text = row[col["symbol"]]
            try:
                contract = parse_occ(text)
            except OccSymbolError as exc:
                raise ChainCsvError(str(exc), source, line, "symbol") from None
            expiry, strike, is_call = (
                contract.expiry,
                float(contract.strike),
                contract.right.is_call,
            )
            roots.add(contract.root)
        else:
            text = row[col["expiry"]].strip()
            if not _ISO_DATE.fullmatch(text):
                raise ChainCsvError(
                    f"{text!r} is not an ISO date (YYYY-MM-DD)", source, line, "expiry"
                )
            try:
                expiry = date.fromisoformat(text)
            except ValueError as exc:
                raise ChainCsvError(f"bad date {text!r}: {exc}", source, line, "expiry") from None
            value = _number(row[col["strike"]], source, line, "strike")
            if value is None or value <= 0:
                raise ChainCsvError("strike must be a positive number", source, line, "strike")
            strike = value
            try:
                is_call = OptionRight.parse(row[col["right"]]).is_call
            except ValueError:
                raise ChainCsvError(
                    f"unknown right {row[col['right']]!r} (expected C or P)", source, line, "right"
                ) from None

        key = (expiry, strike, is_call)
        if key in seen:
            raise ChainCsvError(
                f"repeats the contract of line {seen[key]} "
                f"({expiry} {strike:g} {'C' if is_call else 'P'})",
                source,
                line,
            )
        seen[key] = line

        bid = _number(row[col["bid"]], source, line, "bid")
        ask = _number(row[col["ask"]], source, line, "ask")
        extra = [
            _number(row[col[name]], source, line, name) if name in col else None
            for name in _OPTIONAL_COLUMNS
        ]
        if bid is None or ask is None:
            missing += 1
            continue
        if bid > ask:
            crossed += 1
            continue
        expiries.append(expiry)
        strikes.append(strike)
        calls.append(is_call)
        bids.append(bid)
        asks.append(ask)
        volumes.append(math.nan if extra[0] is None else extra[0])
        interests.append(math.nan if extra[1] is None else extra[1])

    chain = OptionChain(
        expiry=np.array(expiries, dtype="datetime64[D]"),
        strike=np.array(strikes, dtype=np.float64),
        is_call=np.array(calls, dtype=np.bool_),
        bid=np.array(bids, dtype=np.float64),
        ask=np.array(asks, dtype=np.float64),
        volume=np.array(volumes, dtype=np.float64) if "volume" in col else None,
        open_interest=np.array(interests, dtype=np.float64) if "open_interest" in col else None,
        underlying=next(iter(roots)) if len(roots) == 1 else None,
    )
    return LoadedChain(chain=chain, rows=rows, dropped_missing=missing, dropped_crossed=crossed)


def load_chain_csv(path: str | Path) -> LoadedChain:
    """Read a chain CSV file; ChainCsvError (a ValueError) says what is wrong and where."""
    file = Path(path)
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            return read_chain_csv(handle, source=str(file))
    except UnicodeDecodeError as exc:
        raise ChainCsvError(f"not UTF-8 text: {exc}", str(file)) from None
