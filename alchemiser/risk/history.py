"""Underlying history for historical VaR: daily closes read from a user's CSV, and returns
aligned on NYSE sessions. Pure: no I/O beyond the text given, no clock.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import numpy as np

from alchemiser.domain.pricing import FloatArray
from alchemiser.trading_calendar import TradingCalendar

__all__ = [
    "CLOSE_COLUMNS",
    "HistoryFileError",
    "ReturnHistory",
    "aligned_returns",
    "parse_closes_csv",
    "session_window",
]

# The close column, in order of preference: dividend- and split-adjusted first (the shipped
# data's "AdjClose", Yahoo's "Adj Close"), else a plain "Close".
CLOSE_COLUMNS = ("AdjClose", "Adj Close", "Close")
_MAX_PROBLEMS = 20


class HistoryFileError(ValueError):
    """A closes file with bad rows; ``problems`` name each line and what is wrong with it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_closes_csv(text: str) -> list[tuple[date, Decimal]]:
    """(date, close) rows of a daily CSV with a ``Date`` column (YYYY-MM-DD) and a close column.

    Every bad row is reported (line number and why) and nothing is returned if any is bad.
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise HistoryFileError(
            ["line 1: the file is empty (expected a header with Date and a close)"]
        )
    names = [h.strip() for h in header]
    close_name = next((c for c in CLOSE_COLUMNS if c in names), None)
    if "Date" not in names or close_name is None:
        raise HistoryFileError(
            [
                f"line 1: header {','.join(names)!r} needs a Date column and one of "
                f"{', '.join(CLOSE_COLUMNS)}"
            ]
        )
    date_at, close_at = names.index("Date"), names.index(close_name)
    problems: list[str] = []
    seen: dict[date, int] = {}
    rows: list[tuple[date, Decimal]] = []
    for record in reader:
        line = reader.line_num
        if not record or all(not field.strip() for field in record):
            continue  # blank line
        if len(record) != len(names):
            problems.append(f"line {line}: {len(record)} fields, the header has {len(names)}")
            continue
        raw_date, raw_close = record[date_at].strip(), record[close_at].strip()
        try:
            day = date.fromisoformat(raw_date)
        except ValueError:
            problems.append(f"line {line}: date {raw_date!r} is not YYYY-MM-DD")
            continue
        try:
            close = Decimal(raw_close)
        except InvalidOperation:
            problems.append(f"line {line}: {close_name} {raw_close!r} is not a number")
            continue
        if not close.is_finite() or close <= 0:
            problems.append(f"line {line}: {close_name} {raw_close!r} must be a positive price")
            continue
        if day in seen:
            problems.append(f"line {line}: date {day} repeats line {seen[day]}")
            continue
        seen[day] = line
        rows.append((day, close))
    if not rows and not problems:
        problems.append("the file has a header but no rows")
    if problems:
        extra = len(problems) - _MAX_PROBLEMS
        shown = problems[:_MAX_PROBLEMS] + ([f"... and {extra} more"] if extra > 0 else [])
        raise HistoryFileError(shown)
    return sorted(rows)


def session_window(calendar: TradingCalendar, last: date, returns: int) -> list[date]:
    """The ``returns + 1`` NYSE sessions ending at ``last`` (fewer near the calendar's start)."""
    # 7 calendar days hold at least 3 sessions, even around the longest closures.
    first = max(calendar.first_date, last - timedelta(days=returns * 7 // 3 + 10))
    return calendar.sessions_in_range(first, last)[-(returns + 1) :]


@dataclass(frozen=True)
class ReturnHistory:
    """Daily log-returns on consecutive sessions; NaN where a close is missing."""

    symbols: tuple[str, ...]
    returns: FloatArray  # shape (sessions, symbols)
    per_symbol: dict[str, int]  # returns available for each symbol
    common: int  # sessions where every symbol has a return

    def shortfall(self, required: int) -> str | None:
        """Why VaR cannot be computed from this history, or None if it can."""
        short = [(n, s) for s, n in self.per_symbol.items() if n < required]
        if short:
            parts = [f"{n} of {required} sessions for {s}" for n, s in sorted(short)]
            return "insufficient history: " + ", ".join(parts)
        if self.common < required:
            return (
                f"insufficient history: {self.common} of {required} sessions where every "
                f"underlying ({', '.join(self.symbols)}) has closes on consecutive sessions"
            )
        return None


def aligned_returns(
    closes: Mapping[str, Mapping[date, Decimal]], symbols: Sequence[str], window: Sequence[date]
) -> ReturnHistory:
    """Log-returns of each symbol from one session of ``window`` to the next.

    A return needs the closes of both sessions: a gap (a session without a close) is
    left out rather than counted as one day's move.
    """
    days = max(len(window) - 1, 0)
    out = np.full((days, len(symbols)), np.nan)
    for j, symbol in enumerate(symbols):
        series = closes.get(symbol, {})
        px = np.array([float(series.get(d, "nan")) for d in window], dtype=np.float64)
        if days:
            out[:, j] = np.log(px[1:] / px[:-1])
    finite = np.isfinite(out)
    return ReturnHistory(
        symbols=tuple(symbols),
        returns=out,
        per_symbol={s: int(finite[:, j].sum()) for j, s in enumerate(symbols)},
        common=int(finite.all(axis=1).sum()) if len(symbols) else days,
    )
