"""`alchemiser sim`: the simulated exchange as a service.

``alchemiser sim serve`` runs the Alpaca-compatible HTTP server over the
simulated broker and synthetic market of the configured database, so the
daemon with ``broker.kind = "alpaca"`` (or any alpaca-py script) can trade
against it: point ``ALPACA__ENDPOINT`` at the address it prints.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import click
import structlog

from alchemiser.cli.common import CliFailure, CliState, open_database, pass_state, run
from alchemiser.clock import RealClock
from alchemiser.exit_codes import ExitCode
from alchemiser.logs import configure_logging, register_settings_secrets
from alchemiser.settings import Settings
from alchemiser.sim.alpaca_server import AlpacaSimServer, FaultConfig, check_loopback
from alchemiser.sim_runtime import SimRuntime
from alchemiser.store import migrate
from alchemiser.store.engine import session_factory
from alchemiser.trading_calendar import nyse_calendar

log = structlog.stdlib.get_logger("alchemiser.cli.sim")

# Accepted when ALPACA__KEY / ALPACA__SECRET are not set: a local test double's
# well-known development credentials (documented in the README), never real ones.
DEV_KEY = "sim-key"
DEV_SECRET = "sim-secret"

PROBABILITY = click.FloatRange(0.0, 1.0)


@click.group("sim")
def sim_group() -> None:
    """The simulated exchange: serve it over Alpaca's API."""


@sim_group.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on."
)
@click.option(
    "--port",
    default=5005,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0: any free one).",
)
@click.option("--seed", type=int, default=None, help="Market seed (default: sim.seed).")
@click.option(
    "--speed",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Simulated seconds per real second (default: sim.speed).",
)
@click.option(
    "--realtime",
    is_flag=True,
    help="Run the market on the wall clock, so a daemon on real time sees 'now'.",
)
@click.option("--fault-429", "fault_429", type=PROBABILITY, default=0.0, help="Chance of a 429.")
@click.option("--fault-5xx", "fault_5xx", type=PROBABILITY, default=0.0, help="Chance of a 5xx.")
@click.option(
    "--latency-ms", type=click.FloatRange(min=0.0), default=0.0, help="Added to every request."
)
@click.option(
    "--hang-p", type=PROBABILITY, default=0.0, help="Chance a request hangs past the timeout."
)
@click.option(
    "--hang-seconds",
    type=click.FloatRange(min=0.0),
    default=15.0,
    show_default=True,
    help="How long a hung request waits before it is carried out.",
)
@click.option(
    "--lose-response-p",
    type=PROBABILITY,
    default=0.0,
    help="Chance a request is carried out but its response is lost.",
)
@pass_state
def serve_command(
    state: CliState,
    host: str,
    port: int,
    seed: int | None,
    speed: float | None,
    realtime: bool,
    fault_429: float,
    fault_5xx: float,
    latency_ms: float,
    hang_p: float,
    hang_seconds: float,
    lose_response_p: float,
) -> None:
    """Serve the simulated broker and market on Alpaca's REST paths until Ctrl-C."""
    try:
        check_loopback(host)
        faults = FaultConfig(
            rate_limited_p=fault_429,
            server_error_p=fault_5xx,
            latency_ms=latency_ms,
            hang_p=hang_p,
            hang_seconds=hang_seconds,
            lose_response_p=lose_response_p,
        )
    except ValueError as exc:
        raise CliFailure(str(exc), ExitCode.USAGE) from None
    settings = _with_overrides(state.settings(), seed, speed)
    configure_logging(settings.logging)
    register_settings_secrets(settings)
    run(_serve(settings, host, port, faults, realtime))


def _with_overrides(settings: Settings, seed: int | None, speed: float | None) -> Settings:
    changes: dict[str, Any] = {}
    if seed is not None:
        changes["seed"] = seed
    if speed is not None:
        changes["speed"] = speed
    if not changes:
        return settings
    return settings.model_copy(update={"sim": settings.sim.model_copy(update=changes)})


def _credentials(settings: Settings) -> tuple[str, str, bool]:
    broker = settings.broker
    if broker.key is not None and broker.secret is not None:
        return broker.key.get_secret_value(), broker.secret.get_secret_value(), False
    return DEV_KEY, DEV_SECRET, True


async def _serve(
    settings: Settings, host: str, port: int, faults: FaultConfig, realtime: bool
) -> None:
    auto = settings.database.auto_migrate
    async with open_database(settings, require_current_schema=not auto) as engine:
        if auto and not (await migrate.schema_state(engine)).up_to_date:
            await migrate.upgrade(engine)
            log.info("database_migrated")
        calendar = nyse_calendar()
        runtime = await SimRuntime.create(
            settings, session_factory(engine), calendar, RealClock() if realtime else None
        )
        key, secret, dev = _credentials(settings)
        server = AlpacaSimServer(
            runtime.broker,
            runtime.market,
            runtime.clock,
            key=key,
            secret=secret,
            faults=faults,
            calendar=calendar,
        )
        try:
            url = await server.start(host, port)
        except OSError as exc:
            raise CliFailure(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        click.echo(
            f"Alpaca-compatible API on {url} for simulated account {runtime.broker.account_id}"
        )
        click.echo(
            f"  market time {runtime.clock.now().isoformat()}, speed {runtime.clock.speed:g}x"
        )
        click.echo(f'  daemon: broker.kind = "alpaca" with ALPACA__ENDPOINT={url}')
        if dev:
            click.echo(
                f"  no ALPACA__KEY/ALPACA__SECRET set: accepting the development credentials "
                f"ALPACA__KEY={DEV_KEY} ALPACA__SECRET={DEV_SECRET}"
            )
        click.echo("  Ctrl-C stops it.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await server.stop()
        click.echo("stopped")
