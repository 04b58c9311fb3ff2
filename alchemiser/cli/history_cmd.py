"""`alchemiser history import|list`: the stored daily closes historical VaR is computed from.

The daemon records each session's closes after the close (the risk_eod job); importing
a user's history lets VaR work from the first day instead of after half a year.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from alchemiser.cli.broker_access import trading_clock
from alchemiser.cli.common import CliFailure, CliState, open_database, pass_state, run
from alchemiser.risk.history import CLOSE_COLUMNS, HistoryFileError, parse_closes_csv
from alchemiser.store.engine import session_factory
from alchemiser.store.risk import HistoryCoverage, PriceHistoryStore
from alchemiser.trading_calendar import nyse_calendar

__all__ = ["history_group"]

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,9}(\.[A-Z])?$")


@click.group("history")
def history_group() -> None:
    """Stored daily closes of underlyings (for historical VaR)."""


@history_group.command("import")
@click.argument("symbol")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_state
def import_command(state: CliState, symbol: str, file: Path) -> None:
    """Load daily closes of SYMBOL from FILE.csv.

    The CSV needs a header with Date (YYYY-MM-DD) and a close column: AdjClose,
    "Adj Close" or Close (the first found). A file with any bad row is not imported
    at all; each bad row is listed with its line number. Closes already stored for
    the same dates are replaced.
    """
    symbol = symbol.strip().upper()
    if not _SYMBOL.match(symbol):
        raise click.BadParameter(f"{symbol!r} is not a ticker", param_hint="SYMBOL")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliFailure(f"cannot read {file}: {exc}") from None
    try:
        rows = parse_closes_csv(text)
    except HistoryFileError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise CliFailure(f"{file}: bad rows, nothing imported:\n{lines}") from None
    settings = state.settings()

    async def go() -> tuple[int, int]:
        async with open_database(settings) as engine:
            sessions = session_factory(engine)
            clock = await trading_clock(settings, sessions, nyse_calendar())
            return await PriceHistoryStore(sessions).import_closes(symbol, rows, clock.now())

    new, replaced = run(go())
    click.echo(
        f"imported {len(rows)} closes of {symbol} from {file} ({rows[0][0]} to {rows[-1][0]}): "
        f"{new} new, {replaced} replaced"
    )


@history_group.command("list")
@pass_state
def list_command(state: CliState) -> None:
    """How many closes are stored per symbol, and from when to when."""
    settings = state.settings()

    async def go() -> list[HistoryCoverage]:
        async with open_database(settings) as engine:
            return await PriceHistoryStore(session_factory(engine)).coverage()

    rows = run(go())
    if not rows:
        click.echo(
            "no closes stored yet: the risk_eod job records them after each close; "
            f"`alchemiser history import SYMBOL FILE.csv` loads a file (Date and {CLOSE_COLUMNS[0]} "
            "or Close)"
        )
        return
    click.echo("symbol   closes  first       last")
    for r in rows:
        click.echo(f"{r.symbol:<8} {r.sessions:>6}  {r.first}  {r.last}")
