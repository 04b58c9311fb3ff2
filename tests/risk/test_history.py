"""Underlying history: the closes file reader and returns aligned on NYSE sessions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from alchemiser.risk.history import (
    HistoryFileError,
    aligned_returns,
    parse_closes_csv,
    session_window,
)
from alchemiser.trading_calendar import nyse_calendar
from tests.conftest import SHARED_DATA


def test_the_shipped_spy_file_reads_every_row_with_the_adjusted_close() -> None:
    text = (SHARED_DATA / "SPY_daily.csv").read_text()
    rows = parse_closes_csv(text)
    assert len(rows) == len(text.strip().splitlines()) - 1
    assert rows[0] == (date(1993, 1, 29), Decimal("24.113256"))  # AdjClose, not the raw close
    assert [d for d, _ in rows] == sorted({d for d, _ in rows})


def test_a_plain_close_column_is_read_when_there_is_no_adjusted_one() -> None:
    rows = parse_closes_csv("Date,Open,Close\n2024-01-03,1,2.5\n2024-01-02,1,2\n")
    assert rows == [(date(2024, 1, 2), Decimal(2)), (date(2024, 1, 3), Decimal("2.5"))]


def test_every_bad_row_is_named_by_line_and_nothing_is_returned() -> None:
    text = (
        "Date,AdjClose\n"
        "2024-01-02,100\n"
        "2024-01-03,abc\n"  # line 3
        "\n"  # a blank line is fine
        "01/04/2024,101\n"  # line 5
        "2024-01-02,99\n"  # line 6: repeats line 2
        "2024-01-08,0\n"  # line 7
        "2024-01-09\n"  # line 8
    )
    with pytest.raises(HistoryFileError) as info:
        parse_closes_csv(text)
    assert info.value.problems == [
        "line 3: AdjClose 'abc' is not a number",
        "line 5: date '01/04/2024' is not YYYY-MM-DD",
        "line 6: date 2024-01-02 repeats line 2",
        "line 7: AdjClose '0' must be a positive price",
        "line 8: 1 fields, the header has 2",
    ]


def test_a_header_without_a_close_or_rows_is_refused() -> None:
    with pytest.raises(HistoryFileError, match="line 1: header 'Date,Open' needs"):
        parse_closes_csv("Date,Open\n2024-01-02,1\n")
    with pytest.raises(HistoryFileError, match="no rows"):
        parse_closes_csv("Date,Close\n")
    with pytest.raises(HistoryFileError, match="empty"):
        parse_closes_csv("")


def test_returns_use_consecutive_sessions_only() -> None:
    cal = nyse_calendar()
    # Thursday 2 April 2026, then Good Friday (closed), Monday 6 and Tuesday 7 April.
    window = session_window(cal, date(2026, 4, 7), 3)
    assert window == [date(2026, 4, 1), date(2026, 4, 2), date(2026, 4, 6), date(2026, 4, 7)]
    closes = {
        "AAA": {date(2026, 4, 1): Decimal(100), date(2026, 4, 2): Decimal(110),
                date(2026, 4, 6): Decimal(99), date(2026, 4, 7): Decimal(99)},
        # No close on 2 April: neither the return into it nor out of it exists.
        "BBB": {date(2026, 4, 1): Decimal(50), date(2026, 4, 6): Decimal(60),
                date(2026, 4, 7): Decimal(66)},
    }  # fmt: skip
    hist = aligned_returns(closes, ["AAA", "BBB"], window)
    assert hist.per_symbol == {"AAA": 3, "BBB": 1} and hist.common == 1
    np.testing.assert_allclose(hist.returns[:, 0], np.log([1.1, 0.9, 1.0]))
    assert np.isnan(hist.returns[:2, 1]).all()
    np.testing.assert_allclose(hist.returns[2, 1], np.log(1.1))
    assert hist.shortfall(2) == "insufficient history: 1 of 2 sessions for BBB"
    assert hist.shortfall(1) is None


def test_misaligned_history_is_short_even_when_each_symbol_has_enough() -> None:
    window = session_window(nyse_calendar(), date(2026, 4, 7), 3)
    closes = {
        "AAA": {d: Decimal(100 + i) for i, d in enumerate(window[:3])},
        "BBB": {d: Decimal(100 + i) for i, d in enumerate(window[1:])},
    }
    hist = aligned_returns(closes, ["AAA", "BBB"], window)
    assert hist.per_symbol == {"AAA": 2, "BBB": 2} and hist.common == 1
    assert hist.shortfall(2) == (
        "insufficient history: 1 of 2 sessions where every underlying (AAA, BBB) "
        "has closes on consecutive sessions"
    )
