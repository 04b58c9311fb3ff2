"""``alchemiser vol-index`` through click's CliRunner: output contract and errors."""

from __future__ import annotations

import csv
import math
import os
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from alchemiser.cli.vol_index import vol_index_command
from alchemiser.domain.pricing import bsm_price

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
QUOTE_DATE = date(2026, 3, 2)


def write_flat_chain(path: Path, sigma: float, days: tuple[int, ...] = (23, 37)) -> None:
    """A BSM-priced chain at one volatility, as a vol-index CSV (symbol-free format)."""
    spot, rate = 100.0, 0.03
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["expiry", "strike", "right", "bid", "ask"])
        for d in days:
            t = d / 365
            strikes = np.arange(0.25, 400.0, 0.25)
            for right in ("C", "P"):
                prices = bsm_price(spot, strikes, t, rate, 0.0, sigma, right == "C")
                for k, p in zip(strikes, prices, strict=True):
                    bid, ask = (0.0, 0.01) if p < 0.005 else (p * 0.995, p * 1.005)
                    out.writerow(
                        [
                            QUOTE_DATE + timedelta(days=d),
                            f"{k:g}",
                            right,
                            f"{bid:.6f}",
                            f"{ask:.6f}",
                        ]
                    )


def invoke(*args: str) -> Result:
    return CliRunner().invoke(vol_index_command, list(args))


def test_prints_the_index_alone_on_the_last_line(tmp_path: Path) -> None:
    chain = tmp_path / "chain.csv"
    write_flat_chain(chain, 0.22)
    result = invoke(str(chain), "--date", QUOTE_DATE.isoformat(), "--rate", "0.03")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert float(lines[-1]) == pytest.approx(22.0, abs=0.25)
    assert lines[-1] == lines[-1].strip() and " " not in lines[-1]
    text = "\n".join(lines[:-1])
    assert "near: 2026-03-25" in text and "far: 2026-04-08" in text
    assert "interpolated" in text and "16:00 America/New_York" in text


def test_rate_defaults_to_zero_and_barely_moves_the_index(tmp_path: Path) -> None:
    chain = tmp_path / "chain.csv"
    write_flat_chain(chain, 0.3)
    with_rate = invoke(str(chain), "--date", QUOTE_DATE.isoformat(), "--rate", "0.03")
    without = invoke(str(chain), "--date", QUOTE_DATE.isoformat())
    assert with_rate.exit_code == without.exit_code == 0
    a = float(with_rate.stdout.strip().splitlines()[-1])
    b = float(without.stdout.strip().splitlines()[-1])
    assert a == pytest.approx(b, abs=0.1)
    assert "America/New_York, rate 0\n" in without.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-03-02", "--rate", "4.5"], "pass a decimal"),
        (["--date", "03/02/2026"], "'03/02/2026' does not match the format"),
        ([], "Missing option '--date'"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    chain = tmp_path / "chain.csv"
    write_flat_chain(chain, 0.2, days=(30,))
    result = invoke(str(chain), *args)
    assert result.exit_code == 2
    assert message in result.output


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "nope.csv"), "--date", "2026-03-02")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_malformed_csv_exits_1_naming_line_and_column(tmp_path: Path) -> None:
    chain = tmp_path / "chain.csv"
    chain.write_text("expiry,strike,right,bid,ask\n2026-03-25,100,C,1,2\n2026-03-25,100,Q,1,2\n")
    result = invoke(str(chain), "--date", "2026-03-02")
    assert result.exit_code == 1
    assert "line 3, column right" in result.output and "unknown right 'Q'" in result.output


def test_chain_without_a_usable_expiry_exits_1(tmp_path: Path) -> None:
    chain = tmp_path / "chain.csv"
    write_flat_chain(chain, 0.2, days=(30,))
    result = invoke(str(chain), "--date", "2026-04-01")  # the only expiry is in the past
    assert result.exit_code == 1
    assert "no expiry" in result.output


def test_real_spy_chain_end_to_end(tmp_path: Path) -> None:
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the shared data at {SHARED_DATA}")
        pytest.skip(f"shared market data not found at {SHARED_DATA}")
    source = SHARED_DATA / "options_SPY_chain_2026-05-01_yahoo_ZOOMKB.csv"
    chain = tmp_path / "spy.csv"
    with source.open(newline="") as src, chain.open("w", newline="") as dst:
        out = csv.writer(dst)
        out.writerow(["symbol", "bid", "ask", "volume", "open_interest"])
        for row in csv.DictReader(src):
            out.writerow(
                [row["contractSymbol"], row["bid"], row["ask"], row["volume"], row["openInterest"]]
            )
    result = invoke(str(chain), "--date", "2026-05-01", "--rate", "0.0363")
    assert result.exit_code == 0, result.output
    value = float(result.stdout.strip().splitlines()[-1])
    with (SHARED_DATA / "VIX_daily.csv").open(newline="") as fh:
        close = next(float(r["CLOSE"]) for r in csv.DictReader(fh) if r["Date"] == "2026-05-01")
    assert math.isfinite(value) and abs(value - close) <= 1.5
