"""``alchemiser vol-index CHAIN.csv --date YYYY-MM-DD [--rate R]``.

Prints the Cboe-method 30-day volatility index of an option chain CSV (see
``alchemiser.market.chain_csv`` for the format), the expiries behind it, and
on the last line the index alone so scripts can read it.

Conventions: the quotes are end-of-day, so the valuation instant is 16:00
New York time on --date; every expiry settles at 16:00 New York time on its
date (PM settlement, as for SPY/QQQ/IWM options). --rate is the continuously
compounded risk-free rate as a decimal (0.04 = 4 %); it moves the index by
hundredths of a point, so the default 0 is a fair stand-in when unknown.
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

import click

from alchemiser.cli.common import CliFailure
from alchemiser.domain.vol_index import NEW_YORK, TermVariance, VolIndexError, vix_index
from alchemiser.market.chain_csv import ChainCsvError, load_chain_csv

__all__ = ["vol_index_command"]

VALUATION_TIME = time(16, 0)
# A |rate| above this is almost surely a percentage typed as a number.
_MAX_ABS_RATE = 1.0


def _check_rate(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not abs(value) <= _MAX_ABS_RATE:
        raise click.BadParameter(
            f"{value:g} is not a plausible rate: pass a decimal, e.g. 0.045 for 4.5 %",
            ctx=ctx,
            param=param,
        )
    return value


def _describe(label: str, term: TermVariance) -> str:
    vol = 100.0 * max(term.variance, 0.0) ** 0.5
    return (
        f"{label}: {term.expiry.isoformat()}  T={term.years * 365.0:.2f}d  "
        f"F={term.forward:.4f}  K0={term.k0:g}  strikes={term.strikes}  vol={vol:.2f}"
    )


@click.command("vol-index")
@click.argument(
    "chain_csv", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
)
@click.option(
    "--date",
    "quote_date",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Date of the end-of-day quotes (valued at 16:00 New York time).",
)
@click.option(
    "--rate",
    type=float,
    default=0.0,
    show_default=True,
    callback=_check_rate,
    help="Risk-free rate, continuously compounded, as a decimal (0.04 = 4 %).",
)
def vol_index_command(chain_csv: Path, quote_date: datetime, rate: float) -> None:
    """Compute the 30-day volatility index (Cboe VIX method) of an option chain CSV."""
    try:
        loaded = load_chain_csv(chain_csv)
    except ChainCsvError as exc:
        raise CliFailure(str(exc)) from None
    except OSError as exc:
        raise CliFailure(f"cannot read {chain_csv}: {exc.strerror or exc}") from None
    valuation = datetime.combine(quote_date.date(), VALUATION_TIME, tzinfo=NEW_YORK)
    try:
        index = vix_index(loaded.chain, valuation, rate)
    except VolIndexError as exc:
        raise CliFailure(f"{chain_csv}: {exc}") from None
    click.echo(
        f"chain: {loaded.rows} quotes from {chain_csv} "
        f"(dropped {loaded.dropped_missing} without bid/ask, {loaded.dropped_crossed} crossed)"
    )
    click.echo(f"valuation: {valuation:%Y-%m-%d %H:%M} America/New_York, rate {rate:g}")
    click.echo(_describe("near", index.near))
    if index.far is not None:
        click.echo(_describe("far", index.far))
    click.echo(f"method: {index.method} to {index.target_days:g} days")
    click.echo(f"{index.value:.4f}")
