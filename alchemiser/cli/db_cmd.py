"""`alchemiser db upgrade|current`."""

from __future__ import annotations

import click

from alchemiser.cli.common import CliFailure, CliState, open_database, pass_state, run
from alchemiser.exit_codes import ExitCode
from alchemiser.store import migrate
from alchemiser.store.engine import describe_url


@click.group("db")
def db_group() -> None:
    """Database schema: upgrade it, or say where it stands."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_state
def upgrade(state: CliState, revision: str) -> None:
    """Apply pending migrations."""
    settings = state.settings()

    async def go() -> tuple[str | None, str | None]:
        async with open_database(settings, require_current_schema=False) as engine:
            before = (await migrate.schema_state(engine)).current
            try:
                await migrate.upgrade(engine, revision)
            except Exception as exc:
                raise CliFailure(f"migration failed: {exc}", ExitCode.DATABASE) from None
            return before, (await migrate.schema_state(engine)).current

    before, after = run(go())
    where = describe_url(settings.database.url.get_secret_value())
    if before == after:
        click.echo(f"{where}: already at {after}")
    else:
        click.echo(f"{where}: upgraded {before or '(empty)'} -> {after}")


@db_group.command("current")
@pass_state
def current(state: CliState) -> None:
    """Print the schema revision and whether it is the newest; exit 4 if out of date."""
    settings = state.settings()

    async def go() -> migrate.SchemaState:
        async with open_database(settings, require_current_schema=False) as engine:
            return await migrate.schema_state(engine)

    schema = run(go())
    click.echo(f"current: {schema.current or '(empty database)'}")
    click.echo(f"head:    {schema.head}")
    if not schema.up_to_date:
        raise CliFailure("schema is out of date: run `alchemiser db upgrade`", ExitCode.DATABASE)
    click.echo("up to date")
