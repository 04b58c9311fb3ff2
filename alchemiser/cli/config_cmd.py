"""`alchemiser config check|show`."""

from __future__ import annotations

from pathlib import Path

import click

from alchemiser.cli.common import CliState, config_failure, pass_state
from alchemiser.settings import ConfigError, load_settings
from alchemiser.settings.view import render_toml


@click.group("config")
def config_group() -> None:
    """Validate and show the configuration."""


@config_group.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_state
def check(state: CliState, path: Path | None) -> None:
    """Validate PATH (default: the daemon's config) with the environment applied; exit 3 if invalid."""
    target = path or state.config_path
    try:
        loaded = load_settings(target)
    except ConfigError as exc:
        raise config_failure(exc) from None
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}")
    source = str(loaded.path) if loaded.path else "defaults (no config file found)"
    click.echo(f"ok: {source} is valid")


@config_group.command("show")
@click.option(
    "--show-secrets", is_flag=True, help="Print secrets in clear (they are redacted otherwise)."
)
@pass_state
def show(state: CliState, show_secrets: bool) -> None:
    """Print the settings in force (defaults, file and environment merged) as TOML."""
    loaded = state.loaded()
    source = str(loaded.path) if loaded.path else "defaults only (no config file found)"
    click.echo(f"# effective settings from {source} and the environment")
    click.echo(render_toml(loaded.settings, show_secrets=show_secrets), nl=False)
