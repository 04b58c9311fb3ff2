"""What every CLI verb shares: loading settings, opening the database, exit codes."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.exit_codes import ExitCode
from alchemiser.logs import configure_logging, register_settings_secrets
from alchemiser.settings import ConfigError, LoadedSettings, Settings, load_settings
from alchemiser.store import migrate
from alchemiser.store.engine import create_engine, describe_url, ping

T = TypeVar("T")


class CliFailure(click.ClickException):
    """An error the user can act on, with the documented exit code."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.exit_code = int(exit_code)

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@dataclass
class CliState:
    config_path: Path | None = None
    _loaded: LoadedSettings | None = field(default=None, repr=False)

    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            try:
                self._loaded = load_settings(self.config_path)
            except ConfigError as exc:
                raise config_failure(exc) from None
        return self._loaded

    def settings(self) -> Settings:
        return self.loaded().settings


pass_state = click.make_pass_decorator(CliState, ensure=True)


def log_to_stderr(settings: Settings) -> None:
    """For verbs that print a report: log lines go to stderr, warnings and worse only."""
    levels = settings.logging
    if logging.getLevelName(levels.level) < logging.WARNING:
        levels = levels.model_copy(update={"level": "WARNING"})
    configure_logging(levels, sys.stderr)
    register_settings_secrets(settings)


def config_failure(exc: ConfigError) -> CliFailure:
    lines = [f"invalid configuration ({len(exc.problems)} problem(s)):"]
    lines += [f"  {p}" for p in exc.problems]
    return CliFailure("\n".join(lines), ExitCode.CONFIG)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@asynccontextmanager
async def open_database(
    settings: Settings, require_current_schema: bool = True
) -> AsyncIterator[AsyncEngine]:
    """An engine that has answered a query; optionally one whose schema is at head."""
    url = settings.database.url.get_secret_value()
    engine = create_engine(url, echo=settings.database.echo)
    try:
        await check_reachable(engine, url)
        if require_current_schema:
            state = await migrate.schema_state(engine)
            if not state.up_to_date:
                raise CliFailure(
                    f"database schema is at {state.current or 'nothing (empty database)'}, "
                    f"this version needs {state.head}: run `alchemiser db upgrade`",
                    ExitCode.DATABASE,
                )
        yield engine
    finally:
        await engine.dispose()


async def check_reachable(engine: AsyncEngine, url: str) -> None:
    try:
        await ping(engine)
    except Exception as exc:  # driver errors vary by backend; all mean "cannot use it"
        raise CliFailure(
            f"cannot reach the database at {describe_url(url)}: {exc}", ExitCode.DATABASE
        ) from None


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last column runs free."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())
