"""The daemon: start-up in a fixed order, run until SIGTERM/SIGINT, shut down cleanly.

Start-up order: settings -> logging -> database (migrate, or refuse an old
schema) -> single-instance lock -> broker -> scheduler. Each step that fails
ends the process with the documented exit code and a message that says what
to do. Operational cadences (heartbeat, config polling) run on real time;
everything the strategies see comes from the Clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alchemiser import __version__
from alchemiser.alerts.config import AlertConfigError, build_notifiers, notifier_config_from_env
from alchemiser.alerts.service import AlertService
from alchemiser.broker.alpaca import AlpacaBroker, AlpacaConfigError
from alchemiser.broker.base import Broker, BrokerError
from alchemiser.broker.sim_scenario import ScenarioError
from alchemiser.clock import Clock, RealClock, SimClock
from alchemiser.exit_codes import ExitCode
from alchemiser.hedging.context import HedgingContext
from alchemiser.hedging.executor import HedgeExecutor
from alchemiser.income.context import IncomeContext
from alchemiser.income.trader import IncomeTrader
from alchemiser.jobs import JOBS
from alchemiser.logs import (
    apply_levels,
    configure_logging,
    register_settings_secrets,
    set_process_correlation_id,
)
from alchemiser.market.reference import ReferenceDataError
from alchemiser.risk_jobs import risk_monitor
from alchemiser.scheduler import DaemonScheduler, JobRunner, JobSpec
from alchemiser.settings import LiveSettings, LoadedSettings, Settings
from alchemiser.settings.view import diff
from alchemiser.sim_runtime import SimRuntime
from alchemiser.store import migrate
from alchemiser.store.alerts import AlertStore
from alchemiser.store.audit import AuditLog
from alchemiser.store.engine import create_engine, describe_url, session_factory
from alchemiser.store.instance_lock import InstanceLock, instance_lock_for
from alchemiser.store.instances import Instances
from alchemiser.store.job_runs import JobRuns
from alchemiser.store.queue import DurableQueue
from alchemiser.store.reconcile_state import TradingStateStore
from alchemiser.trading_calendar import TradingCalendar, nyse_calendar
from alchemiser.wiring import (
    build_hedging,
    build_income,
    build_reconciler,
    raise_reconciliation_alert,
)

log = structlog.stdlib.get_logger("alchemiser.daemon")

# Real seconds between passes of the background queue consumer.
CONSUMER_POLL_SECONDS = 5.0
# Real seconds between alert escalation and notification-retry passes.
ALERT_TICK_SECONDS = 15.0


class DaemonExit(Exception):
    """Stop start-up (or the run) with this exit code; the message says why."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Services:
    """The wired parts that jobs and strategy services are built from."""

    settings: LiveSettings
    clock: Clock
    calendar: TradingCalendar
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: DurableQueue
    audit: AuditLog
    job_runs: JobRuns
    instance_id: str
    broker: Broker
    hedging: HedgingContext
    hedge_executor: HedgeExecutor
    alerts: AlertService
    income: IncomeContext


class Daemon:
    def __init__(
        self,
        loaded: LoadedSettings,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        log_stream: TextIO | None = None,
        handle_signals: bool = True,
        config_poll_seconds: float = 2.0,
        jobs: tuple[JobSpec, ...] = JOBS,
    ) -> None:
        self.jobs = jobs
        self.live = LiveSettings(loaded.settings, loaded.path, env)
        self._warnings = loaded.warnings
        self._clock_override = clock
        self.clock: Clock = clock or RealClock()
        # Operational records (instance rows, heartbeats) are wall time even in simulation,
        # so `status` can say how long ago the daemon was last seen.
        self._wall = RealClock()
        self._stop_reason = ""
        self.instance_id = uuid.uuid4().hex
        self._log_stream = log_stream
        self._handle_signals = handle_signals
        self._config_poll_seconds = config_poll_seconds
        self._stop = asyncio.Event()
        self._exit_code = ExitCode.OK
        self._started_monotonic = 0.0
        self._pending_audits: set[asyncio.Task[object]] = set()
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.scheduler: DaemonScheduler | None = None
        self.services: Services | None = None

    @property
    def settings(self) -> Settings:
        return self.live.current

    def request_stop(self, reason: str, code: ExitCode = ExitCode.OK) -> None:
        if not self._stop.is_set():
            log.info("daemon_stopping", reason=reason)
            self._exit_code = code
            self._stop_reason = reason
        self._stop.set()

    async def run(self) -> int:
        """Run until asked to stop; returns the process exit code."""
        configure_logging(self.settings.logging, self._log_stream)
        register_settings_secrets(self.settings)
        set_process_correlation_id(self.instance_id)
        self.live.on_change(self._settings_changed)
        log.info(
            "daemon_starting",
            version=__version__,
            mode=self.settings.mode,
            broker=self.settings.broker.kind,
            account=self.settings.broker.account,
            config=str(self.live.path) if self.live.path else "(defaults: no config file)",
            database=describe_url(self.settings.database.url.get_secret_value()),
            pid=os.getpid(),
        )
        for warning in self._warnings:
            log.warning("config_warning", warning=warning)
        try:
            return await self._run()
        except DaemonExit as exc:
            log.error("daemon_start_failed", reason=str(exc), exit_code=int(exc.code))
            return int(exc.code)

    def _settings_changed(self, old: Settings, new: Settings) -> None:
        apply_levels(new.logging)
        register_settings_secrets(new)
        changes = [c.as_text() for c in diff(old, new)]
        task = asyncio.get_running_loop().create_task(
            self._audit("CONFIG_RELOADED", details={"changes": changes})
        )
        self._pending_audits.add(task)
        task.add_done_callback(self._pending_audits.discard)

    async def _audit(self, action: str, **fields: Any) -> None:
        """Record an audit entry; a failure is logged, never raised into the daemon's work."""
        if self.services is None:
            return
        try:
            await self.services.audit.record(action, **fields)
        except Exception:
            log.exception("audit_write_failed", action=action)

    async def _run(self) -> int:
        url = self.settings.database.url.get_secret_value()
        engine = create_engine(url, echo=self.settings.database.echo)
        lock: InstanceLock | None = None
        background: list[asyncio.Task[None]] = []
        instances: Instances | None = None
        try:
            await self._prepare_database(engine, url)
            lock = instance_lock_for(engine, url, self.settings.broker.account)
            if not await lock.acquire():
                lock = None
                raise DaemonExit(
                    ExitCode.ALREADY_RUNNING,
                    f"another alchemiser daemon is already running for account "
                    f"{self.settings.broker.account!r} on this database "
                    f"({instance_lock_for(engine, url, self.settings.broker.account).description})",
                )
            sessions = session_factory(engine)
            instances = Instances(sessions, self.settings.broker.account)
            await instances.started(
                self.instance_id,
                socket.gethostname(),
                os.getpid(),
                __version__,
                self.settings.mode,
                self._wall.now(),
            )
            broker, sim = await self._connect_broker(sessions)
            services = self._wire(engine, sessions, broker)
            self.services = services
            await self._audit(
                "DAEMON_STARTED",
                related_ids={"instance_id": self.instance_id},
                details={
                    "version": __version__,
                    "mode": self.settings.mode,
                    "broker": self.settings.broker.kind,
                    "config": str(self.live.path) if self.live.path else None,
                },
            )
            await self._reconcile(services)
            self.scheduler = DaemonScheduler(
                self.clock, services.calendar, self.live, JobRunner(services), list(self.jobs)
            )
            self.scheduler.start()
            self._install_signal_handlers()
            self._started_monotonic = asyncio.get_running_loop().time()
            background = [
                *self._sim_tasks(sim),
                asyncio.create_task(self._heartbeat(instances, lock), name="heartbeat"),
                asyncio.create_task(self._consume(services), name="queue-consumer"),
                asyncio.create_task(self._tick_alerts(services), name="alerts"),
                asyncio.create_task(self._risk_snapshots(services), name="risk-snapshots"),
                asyncio.create_task(
                    self.live.watch(self._config_poll_seconds), name="config-watch"
                ),
            ]
            log.info("daemon_started", instance_id=self.instance_id, lock=lock.description)
            await self._stop.wait()
            return int(self._exit_code)
        finally:
            await self._shutdown(engine, lock, background, instances)

    async def _prepare_database(self, engine: AsyncEngine, url: str) -> None:
        try:
            state = await migrate.schema_state(engine)
        except Exception as exc:  # connection, auth, missing file directory...
            raise DaemonExit(
                ExitCode.DATABASE, f"cannot reach the database at {describe_url(url)}: {exc}"
            ) from None
        if state.up_to_date:
            log.info("database_ready", schema=state.current)
            return
        if not self.settings.database.auto_migrate:
            raise DaemonExit(
                ExitCode.DATABASE,
                f"database schema is at {state.current or 'nothing (empty database)'} but this "
                f"version needs {state.head}; database.auto_migrate is false: run "
                "`alchemiser db upgrade`, then start again",
            )
        log.info("database_migrating", current=state.current, head=state.head)
        try:
            await migrate.upgrade(engine)
        except Exception as exc:
            raise DaemonExit(ExitCode.DATABASE, f"migration to {state.head} failed: {exc}") from exc
        log.info("database_migrated", schema=state.head)

    async def _connect_broker(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> tuple[Broker, SimRuntime | None]:
        broker = self.settings.broker
        if broker.kind == "alpaca":
            try:
                alpaca = AlpacaBroker.from_settings(self.settings, clock=self.clock)
            except AlpacaConfigError as exc:
                raise DaemonExit(ExitCode.CONFIG, str(exc)) from None
            self._closers.append(alpaca.aclose)
            log.info("broker_selected", kind=broker.kind, mode=self.settings.mode)
            return alpaca, None
        try:
            sim = await SimRuntime.create(
                self.settings, sessions, nyse_calendar(), self._clock_override
            )
        except ScenarioError as exc:
            raise DaemonExit(ExitCode.CONFIG, str(exc)) from None
        self.clock = sim.clock
        log.info("broker_selected", kind=broker.kind, mode=self.settings.mode)
        return sim.broker, sim

    async def _consume(self, services: Services) -> None:
        """The queue consumer: external plans, and executions or rolls left for a retry
        (a redelivery after a crash, an expired lease). Polls on real time."""
        worker = f"{self.instance_id}:consumer"
        while True:
            await asyncio.sleep(CONSUMER_POLL_SECONDS)
            try:
                await services.hedge_executor.consume(worker)
            except Exception:  # a failing pass must not end the consumer
                log.exception("queue_consumer_failed")
            try:
                # Trades a person approved (`alchemiser approvals approve ID`).
                await IncomeTrader(services.income).execute_approved()
            except Exception:
                # Logged; the approval stays APPROVED and the next pass tries it again until
                # it expires at the close (its intent key keeps a retry from selling twice).
                log.exception("income_approved_execution_failed")

    async def _tick_alerts(self, services: Services) -> None:
        """Escalate unacknowledged alerts and retry failed notifications (real-time cadence)."""
        while True:
            await asyncio.sleep(ALERT_TICK_SECONDS)
            await services.alerts.tick()  # never raises: a notifier failure never stops trading

    async def _risk_snapshots(self, services: Services) -> None:
        """Intraday risk snapshots in market hours, on the Clock (simulated time too)."""
        if isinstance(self.clock, SimClock) and self.clock.manual:
            # Manual time is moved by its driver (a test, a backtest) to the next sleeper's
            # deadline; a background sleeper would pull time forward under every job.
            log.info("risk_snapshots_off", reason="manual clock")
            return
        await risk_monitor(services).run(lambda: self.live.current.schedule.risk_snapshot_minutes)

    async def _reconcile(self, services: Services) -> None:
        """Start-up reconciliation; a mismatch halts opening orders, an unreadable broker stops."""
        reconciler = build_reconciler(
            services.broker,
            services.sessions,
            services.clock,
            services.calendar,
            services.audit,
            services.hedging.store,
            services.hedging.account,
            income=services.income.store,
        )
        try:
            report = await reconciler.run()
        except BrokerError as exc:
            raise DaemonExit(
                ExitCode.ERROR,
                f"start-up reconciliation could not read the broker ({exc}); nothing was traded: "
                "the daemon will try again when restarted",
            ) from None
        await raise_reconciliation_alert(services.alerts, report)

    def _sim_tasks(self, sim: SimRuntime | None) -> list[asyncio.Task[None]]:
        if sim is None:
            return []
        tasks = [
            asyncio.create_task(
                sim.sync_forever(self.settings.sim.sync_minutes), name="sim-broker-sync"
            )
        ]
        runner = self.scheduler.runner if self.scheduler else None
        executor = self.services.hedge_executor if self.services else None
        skipper = sim.skipper(
            lambda: (
                (runner is None or not runner.running) and (executor is None or not executor.busy)
            )
        )
        if skipper is not None:
            tasks.append(asyncio.create_task(skipper.run(), name="sim-closed-hours"))
        return tasks

    def _wire(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], broker: Broker
    ) -> Services:
        account = self.settings.broker.account
        calendar = nyse_calendar()
        queue = DurableQueue(sessions, self.clock, lambda: self.live.queue)
        audit = AuditLog(sessions, self.clock, account)
        try:
            hedging, hedge_executor = build_hedging(
                self.live, broker, sessions, self.clock, calendar, queue, audit
            )
            income = build_income(
                self.live, broker, sessions, self.clock, calendar, audit, hedging.reference
            )
        except ReferenceDataError as exc:
            raise DaemonExit(ExitCode.CONFIG, str(exc)) from None
        try:
            notifiers = build_notifiers(notifier_config_from_env())
        except AlertConfigError as exc:
            raise DaemonExit(ExitCode.CONFIG, str(exc)) from None
        alerts = AlertService(
            AlertStore(sessions, self.clock, account),
            notifiers,
            self.clock,
            lambda: self.live.current.risk.alerts,
            TradingStateStore(sessions, self.clock, account),
        )
        self._closers.append(alerts.aclose)
        return Services(
            alerts=alerts,
            settings=self.live,
            clock=self.clock,
            calendar=calendar,
            engine=engine,
            sessions=sessions,
            queue=queue,
            audit=audit,
            job_runs=JobRuns(sessions, account),
            instance_id=self.instance_id,
            broker=broker,
            hedging=hedging,
            hedge_executor=hedge_executor,
            income=income,
        )

    def _install_signal_handlers(self) -> None:
        if not self._handle_signals:
            return
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)

    def _reload_on_signal(self) -> None:
        log.info("config_reload_requested", signal="SIGHUP")
        self.live.reload()

    async def _heartbeat(self, instances: Instances, lock: InstanceLock) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.logging.heartbeat_seconds)
            if not await lock.still_held():
                log.critical("instance_lock_lost", lock=lock.description, action="stopping")
                self.request_stop("instance lock lost", ExitCode.ERROR)
                return
            try:
                await instances.beat(self.instance_id, self._wall.now())
            except Exception:  # a database hiccup must not stop the heartbeat line
                log.exception("heartbeat_store_failed")
            log.info(
                "heartbeat",
                version=__version__,
                mode=self.settings.mode,
                broker=self.settings.broker.kind,
                uptime_seconds=round(loop.time() - self._started_monotonic),
                clock=self.clock.now().isoformat(timespec="seconds"),
                next_jobs=self.scheduler.next_runs()[:5] if self.scheduler else [],
            )

    async def _shutdown(
        self,
        engine: AsyncEngine,
        lock: InstanceLock | None,
        background: list[asyncio.Task[None]],
        instances: Instances | None,
    ) -> None:
        if self.scheduler is not None:
            await self.scheduler.shutdown(self.settings.schedule.shutdown_grace_seconds)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if instances is not None and lock is not None:
            await asyncio.gather(*self._pending_audits)
            await self._audit(
                "DAEMON_STOPPED",
                related_ids={"instance_id": self.instance_id},
                details={"reason": self._stop_reason, "exit_code": int(self._exit_code)},
            )
            with contextlib.suppress(Exception):  # stopping anyway; the row is informational
                await instances.stopped(self.instance_id, self._wall.now())
        for close in self._closers:
            with contextlib.suppress(Exception):  # stopping anyway
                await close()
        if lock is not None:
            with contextlib.suppress(Exception):  # a lost connection already released it
                await lock.release()
        await engine.dispose()
        if lock is not None:
            log.info("daemon_stopped", instance_id=self.instance_id, exit_code=int(self._exit_code))
