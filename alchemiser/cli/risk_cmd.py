"""`alchemiser risk`: the book's greeks and stress table now."""

from __future__ import annotations

import click

from alchemiser.cli.broker_access import open_trading
from alchemiser.cli.common import CliState, log_to_stderr, pass_state, run
from alchemiser.risk.report import RiskReport, current_risk


@click.command("risk")
@pass_state
def risk_command(state: CliState) -> None:
    """Greeks by strategy and for the book, and the stress scenarios' P&L."""
    settings = state.settings()
    log_to_stderr(settings)

    async def go() -> RiskReport:
        async with open_trading(settings) as services:
            return await current_risk(
                services.broker,
                services.hedging.store,
                services.hedging.reference,
                settings.risk,
                services.clock,
            )

    report = run(go())
    click.echo(f"NAV: {report.nav:.2f}   positions: {len(report.positions)}")
    click.echo("\ngreeks (dollars)      delta   beta-delta  gamma/1%   theta/day   vega/pt")
    rows = {**report.greeks.by_strategy, "book": report.greeks.total}
    for name, g in rows.items():
        click.echo(
            f"  {name:<12} {g.delta_dollars:>12.2f} {g.beta_delta_dollars:>12.2f} "
            f"{g.gamma_dollars:>10.2f} {g.theta:>11.2f} {g.vega:>9.2f}"
        )
    click.echo(
        "\nstress scenarios            P&L     % NAV   by strategy (hedge / income / equity)"
    )
    for result in report.stress.scenarios:
        by = result.pnl_by_strategy
        click.echo(
            f"  {result.name:<20} {result.pnl:>12.2f} {result.pnl_pct_nav or 0:>8.2f}   "
            f"{by.get('hedge', 0):.2f} / {by.get('income', 0):.2f} / {by.get('equity', 0):.2f}"
        )
    if report.stress.hedge_payoff_pct_nav is not None:
        click.echo(f"\nhedge payoff at -20 %: {report.stress.hedge_payoff_pct_nav:.2f} % NAV")
    click.echo(
        "\nVaR/ES: computed by the risk jobs from stored underlying history (not yet scheduled)"
    )
