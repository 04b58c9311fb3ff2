"""`alchemiser risk` on the simulated default book."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from alchemiser.cli.main import cli
from alchemiser.settings.risk import RiskSettings


def test_risk_prints_the_greeks_and_every_stress_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(cli, ["risk"], env=env)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    # The default book is long stock only: positive delta, no option greeks yet.
    assert float(lines["equity"][1]) > 0 and float(lines["book"][3]) == 0.0
    for scenario in RiskSettings().stress_scenarios:
        assert scenario.name in lines, scenario.name
    # A 20 % fall loses money on a long 2x book: roughly 2 x 20 % of NAV.
    assert -60 < float(lines["index_down_20"][2]) < -30
    # Limits with their usage: no income book yet; the tech-heavy equity book is over the
    # sector limit, reported but not alerted.
    out = result.stdout
    assert "income positions                                0            10     0.00 %" in out
    tech = next(line for line in out.splitlines() if "sector Technology" in line)
    assert "OVER (equity book: reported, not alerted)" in tech
    assert "VaR/ES: no VaR yet: the risk_eod job stores it after each close" in out

    history = runner.invoke(cli, ["risk", "history", "--days", "10"], env=env)
    assert history.exit_code == 0, history.output
    assert history.stdout.strip() == "no end-of-day risk stored in the last 10 days"
