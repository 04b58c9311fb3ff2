"""Chain CSV loader: formats it reads, quotes it drops, errors that say where."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from alchemiser.market.chain_csv import (
    ChainCsvError,
    LoadedChain,
    load_chain_csv,
    read_chain_csv,
)


def read(text: str) -> LoadedChain:
    return read_chain_csv(text.splitlines(keepends=True), source="chain.csv")


def test_reads_the_documented_format() -> None:
    loaded = read(
        "expiry,strike,right,bid,ask,volume,open_interest\n"
        "2026-05-29,720,C,10.10,10.30,1200,5000\n"
        "2026-05-29,720,P,9.80,10.00,,\n"
        "2026-06-05,700.5,p,3.25,3.35,4,17\n"
    )
    chain = loaded.chain
    assert (loaded.rows, loaded.dropped, len(chain)) == (3, 0, 3)
    assert chain.expiry.tolist() == [date(2026, 5, 29), date(2026, 5, 29), date(2026, 6, 5)]
    assert chain.strike.tolist() == [720.0, 720.0, 700.5]
    assert chain.is_call.tolist() == [True, False, False]
    assert chain.bid.tolist() == [10.10, 9.80, 3.25]
    assert chain.ask.tolist() == [10.30, 10.00, 3.35]
    assert chain.volume is not None and chain.open_interest is not None
    assert chain.volume[0] == 1200 and np.isnan(chain.volume[1])
    assert chain.open_interest.tolist()[2] == 17
    assert chain.underlying is None


def test_header_is_case_insensitive_in_any_order_and_optional_columns_may_be_absent() -> None:
    loaded = read("ASK, Bid ,Right,Strike,Expiry\n1.2,1.0,CALL,100,2026-01-16\n")
    assert loaded.chain.bid.tolist() == [1.0] and loaded.chain.ask.tolist() == [1.2]
    assert loaded.chain.is_call.tolist() == [True]
    assert loaded.chain.volume is None and loaded.chain.open_interest is None


def test_reads_occ_symbols_instead_of_expiry_strike_right() -> None:
    loaded = read("symbol,bid,ask\nQQQ260417P00450000,5.1,5.3\nQQQ   260417C00452500,4.0,4.2\n")
    chain = loaded.chain
    assert chain.expiry.tolist() == [date(2026, 4, 17)] * 2
    assert chain.strike.tolist() == [450.0, 452.5]
    assert chain.is_call.tolist() == [False, True]
    assert chain.underlying == "QQQ"


def test_crossed_and_missing_quotes_are_dropped_and_counted() -> None:
    loaded = read(
        "expiry,strike,right,bid,ask\n"
        "2026-05-29,700,C,1.00,1.10\n"
        "2026-05-29,710,C,1.20,1.10\n"  # crossed
        "2026-05-29,720,C,,0.50\n"  # no bid
        "2026-05-29,730,C,0.10,nan\n"  # no ask
        "2026-05-29,740,C,-,-\n"  # dashes
        "2026-05-29,750,C,0,0.05\n"  # a zero bid is a quote (the Cboe rule needs it)
    )
    assert (loaded.rows, loaded.dropped_crossed, loaded.dropped_missing) == (6, 1, 3)
    assert loaded.chain.strike.tolist() == [700.0, 750.0]


def test_blank_lines_and_thousands_separators() -> None:
    loaded = read('expiry,strike,right,bid,ask,volume\n\n2026-05-29,1000,C,1.0,1.1,"4,362"\n\n')
    assert loaded.rows == 1
    assert loaded.chain.volume is not None and loaded.chain.volume.tolist() == [4362.0]


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        ("2026-05-29,700,X,1,2", "right", "unknown right 'X'"),
        ("2026-05-29,700,C,-1,2", "bid", "negative value -1"),
        ("2026-05-29,700,C,1,abc", "ask", "'abc' is not a number"),
        ("2026-05-29,700,C,1,inf", "ask", "not a finite number"),
        ("29/05/2026,700,C,1,2", "expiry", "not an ISO date"),
        ("2026-02-30,700,C,1,2", "expiry", "bad date"),
        ("2026-05-29,0,C,1,2", "strike", "positive"),
        ("2026-05-29,,C,1,2", "strike", "positive"),
    ],
)
def test_bad_values_name_line_and_column(row: str, column: str, message: str) -> None:
    text = f"expiry,strike,right,bid,ask\n2026-05-29,690,C,1,2\n{row}\n"
    with pytest.raises(ChainCsvError, match=message) as info:
        read(text)
    assert (info.value.line, info.value.column) == (3, column)
    assert f"chain.csv, line 3, column {column}:" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_symbol_names_its_line() -> None:
    with pytest.raises(ChainCsvError, match="malformed OCC symbol") as info:
        read("symbol,bid,ask\nQQQ260417P00450000,1,2\nQQQ260417Z00450000,1,2\n")
    assert (info.value.line, info.value.column) == (3, "symbol")


def test_wrong_field_count_and_repeated_contract() -> None:
    with pytest.raises(ChainCsvError, match="4 fields, the header has 5") as info:
        read("expiry,strike,right,bid,ask\n2026-05-29,700,C,1\n")
    assert info.value.line == 2
    with pytest.raises(ChainCsvError, match="repeats the contract of line 2") as info:
        read("expiry,strike,right,bid,ask\n2026-05-29,700,C,1,2\n2026-05-29,700.0,c,1,2\n")
    assert info.value.line == 3


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("expiry,strike,right,bid", "lacks column\\(s\\) ask"),
        ("strike,right,bid,ask", "lacks column\\(s\\) expiry"),
        ("expiry,strike,right,bid,ask,openinterest", "unknown column\\(s\\) 'openinterest'"),
        ("expiry,strike,right,bid,ask,bid", "'bid' appears twice"),
        ("symbol,expiry,bid,ask", "both symbol and expiry"),
    ],
)
def test_malformed_header_is_an_error(header: str, message: str) -> None:
    with pytest.raises(ChainCsvError, match=message) as info:
        read(header + "\n")
    assert info.value.line == 1


def test_empty_file_is_an_error() -> None:
    with pytest.raises(ChainCsvError, match="empty file"):
        read("")


def test_load_from_path_with_bom_and_non_utf8(tmp_path: Path) -> None:
    good = tmp_path / "chain.csv"
    good.write_bytes("\ufeffexpiry,strike,right,bid,ask\n2026-05-29,700,C,1,2\n".encode())
    assert load_chain_csv(good).rows == 1
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"expiry,strike,right,bid,ask\n2026-05-29,700,\xe9,1,2\n")
    with pytest.raises(ChainCsvError, match="not UTF-8") as info:
        load_chain_csv(bad)
    assert str(bad) in str(info.value)
