"""`alchemiser history import|list`: a user's closes loaded, a bad file refused whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from alchemiser.cli.main import cli
from tests.conftest import SHARED_DATA


def test_import_loads_closes_and_a_bad_file_is_refused_naming_the_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    lines = (SHARED_DATA / "SPY_daily.csv").read_text().splitlines()
    good = tmp_path / "spy.csv"
    good.write_text("\n".join(lines[:1] + lines[-300:]) + "\n")

    ok = runner.invoke(cli, ["history", "import", "spy", str(good)], env=env)
    assert ok.exit_code == 0, ok.output
    first, last = lines[-300].split(",")[0], lines[-1].split(",")[0]
    assert f"imported 300 closes of SPY from {good} ({first} to {last}): 300 new" in ok.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"{lines[0]}\n2026-08-21,765.96,768.15,762.03,770.00,45479200,0,0,0,770.00,1\n"
        "2026-08-20,765.96,768.15,762.03,n/a,45479200,0,0,0,762.60,1\n"
        "20/08/2026,765.96,768.15,762.03,762.59,45479200,0,0,0,762.60,1\n"
    )
    refused = runner.invoke(cli, ["history", "import", "SPY", str(bad)], env=env)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        f"error: {bad}: bad rows, nothing imported:",
        "  line 3: AdjClose 'n/a' is not a number",
        "  line 4: date '20/08/2026' is not YYYY-MM-DD",
    ]

    listed = runner.invoke(cli, ["history", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    # The bad file's good row (21 August) was not imported either.
    assert f"SPY         300  {first}  {last}" in listed.stdout
