"""Reference data: the shipped file, unknown symbols, and errors that name file, symbol and field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from alchemiser.market.reference import (
    ReferenceData,
    ReferenceDataError,
    SymbolInfo,
    TomlReferenceData,
)
from alchemiser.sim import default_universe

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "reference_data.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reference.toml"
    path.write_text(text)
    return path


def test_shipped_file_covers_the_sim_universe_and_the_listed_etfs() -> None:
    data = TomlReferenceData.load(SHIPPED)
    assert isinstance(data, ReferenceData)
    wanted = {i.symbol for i in default_universe()} | {"TQQQ", "SQQQ", "SH"}
    assert wanted <= set(data.symbols())
    aapl = data.get("AAPL")
    assert aapl.sector == "Technology" and aapl.beta == Decimal("1.20")
    assert aapl.leverage == 1 and aapl.credit_rating == "AA+"
    assert isinstance(aapl.next_earnings, date)
    assert data.get("TQQQ").leverage == 3 and data.get("TQQQ").tracks == "QQQ"
    assert data.get("SQQQ").leverage == -3
    assert data.get("SH").leverage == -1 and data.get("SH").tracks == "SPY"
    assert [data.get(s).beta for s in ("SPY", "QQQ", "IWM")] == [
        Decimal("1.00"),
        Decimal("1.15"),
        Decimal("1.20"),
    ]
    # Every stock of the sim universe has the fields the income screens need.
    for inst in default_universe():
        if inst.kind == "stock":
            info = data.get(inst.symbol)
            assert info.sector == inst.sector, inst.symbol
            assert info.credit_rating is not None and info.next_earnings is not None


def test_shipped_sectors_are_in_the_default_sector_map() -> None:
    from alchemiser.settings.hedging import HedgingSettings

    sectors = set(HedgingSettings().underlying.sector_etfs)
    data = TomlReferenceData.load(SHIPPED)
    used = {i.sector for i in data if i.sector is not None} - {"Volatility"}
    assert used <= sectors


def test_unknown_symbol_is_all_unknown_not_an_error() -> None:
    data = TomlReferenceData.parse({"symbols": {}})
    assert data.get("ZZZZ") == SymbolInfo(symbol="ZZZZ")
    assert data.get("zzzz").leverage == 1
    assert "ZZZZ" not in data


def test_lookup_ignores_case_and_spaces() -> None:
    data = TomlReferenceData.parse({"symbols": {"AAPL": {"beta": 1.2}}})
    assert data.get(" aapl ").beta == Decimal("1.2")


def test_floats_become_exact_decimals_and_string_dates_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[symbols.XYZ]\nbeta = 1.1\nleverage = 2\nnext_earnings = "2027-02-01"\n'
        'credit_rating = "bbb+"\n',
    )
    info = TomlReferenceData.load(path).get("XYZ")
    assert info.beta == Decimal("1.1") and info.leverage == Decimal(2)
    assert info.next_earnings == date(2027, 2, 1) and info.credit_rating == "BBB+"


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ('beta = "high"', "beta", "must be a number"),
        ("beta = 11", "beta", "between -10 and 10"),
        ("beta = true", "beta", "must be a number"),
        ("beta = nan", "beta", "finite"),
        ("leverage = 0", "leverage", "non-zero"),
        ("leverage = 6", "leverage", "between -5 and 5"),
        ('credit_rating = "AAA+"', "credit_rating", "S&P long-term rating"),
        ("next_earnings = 2027-02-01T10:00:00", "next_earnings", "without a time"),
        ('next_earnings = "soon"', "next_earnings", "must be a date"),
        ('sector = ""', "sector", "non-empty"),
        ('tracks = "qqq"', "tracks", "ticker"),
        ("colour = 1", "colour", "unknown field"),
    ],
)
def test_bad_values_name_file_symbol_and_field(
    tmp_path: Path, body: str, field: str, fragment: str
) -> None:
    path = write(tmp_path, f"[symbols.ABC]\n{body}\n")
    with pytest.raises(ReferenceDataError) as caught:
        TomlReferenceData.load(path)
    err = caught.value
    assert (err.source, err.symbol, err.field) == (str(path), "ABC", field)
    message = str(err)
    assert str(path) in message and "ABC" in message and field in message and fragment in message


def test_bad_ticker_and_bad_structure(tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match="is not a ticker"):
        TomlReferenceData.load(write(tmp_path, '[symbols."aapl"]\nbeta = 1\n'))
    with pytest.raises(ReferenceDataError, match="must be a table"):
        TomlReferenceData.load(write(tmp_path, "[symbols]\nAAPL = 1\n"))
    with pytest.raises(ReferenceDataError, match="unknown top-level key 'AAPL'"):
        TomlReferenceData.load(write(tmp_path, "[AAPL]\nbeta = 1\n"))


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ReferenceDataError, match=r"absent\.toml: cannot read"):
        TomlReferenceData.load(missing)
    with pytest.raises(ReferenceDataError, match=r"reference\.toml: not valid TOML.*line 2"):
        TomlReferenceData.load(write(tmp_path, "[symbols.AAPL]\nbeta = = 1\n"))


def test_error_is_a_value_error() -> None:
    assert issubclass(ReferenceDataError, ValueError)
