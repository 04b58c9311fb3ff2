"""The live settings object: one swap-on-reload holder that every service reads through.

Services keep a reference to ``LiveSettings`` and read ``live.current`` (or
attribute access, which forwards to it) each time they need a limit, so an edit
of the config file applies to the next decision without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from alchemiser.settings.loader import ConfigError, load_settings
from alchemiser.settings.root import Settings
from alchemiser.settings.view import Change, diff

log = structlog.stdlib.get_logger("alchemiser.config")

# Keys read once at start-up (connections, identity, listening sockets): an
# edit of one is logged and takes effect at the next restart.
RESTART_ONLY_KEYS = (
    "mode",
    "broker.kind",
    "broker.account",
    "broker.key",
    "broker.secret",
    "broker.endpoint",
    "database.url",
    "web.enabled",
    "web.host",
    "web.port",
    "sim.seed",
    "sim.start_date",
    "sim.scenario",
)


@dataclass
class ReloadOutcome:
    applied: bool
    changes: list[Change] = field(default_factory=list)
    restart_required: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class LiveSettings:
    """Holds the settings in force and replaces them whole when a valid edit arrives."""

    def __init__(
        self,
        settings: Settings,
        path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._current = settings
        self.path = path
        self._env = env
        self._listeners: list[Callable[[Settings, Settings], None]] = []
        self._fingerprint = _fingerprint(path)

    @property
    def current(self) -> Settings:
        return self._current

    def __getattr__(self, name: str) -> Any:
        # Forward section access (live.hedging...) to the settings in force now.
        return getattr(self._current, name)

    def on_change(self, listener: Callable[[Settings, Settings], None]) -> None:
        """Call ``listener(old, new)`` after each applied reload."""
        self._listeners.append(listener)

    def reload(self) -> ReloadOutcome:
        """Re-read the file and environment; swap on success, keep the old settings on error."""
        self._fingerprint = _fingerprint(self.path)
        try:
            loaded = load_settings(self.path, self._env)
        except ConfigError as exc:
            errors = [str(p) for p in exc.problems]
            log.error(
                "config_rejected", path=str(self.path), errors=errors, kept="previous settings"
            )
            return ReloadOutcome(applied=False, errors=errors)

        old = self._current
        all_changes = diff(old, loaded.settings)
        restart = [c for c in all_changes if c.key in RESTART_ONLY_KEYS]
        new = _keep_restart_only_values(old, loaded.settings, restart)
        live_changes = [c for c in all_changes if c.key not in RESTART_ONLY_KEYS]
        if restart:
            log.warning(
                "config_restart_required",
                keys=[c.key for c in restart],
                changes=[c.as_text() for c in restart],
                note="these keys take effect at the next restart; the running values stay in force",
            )
        for warning in loaded.warnings:
            log.warning("config_warning", warning=warning)
        if not live_changes:
            return ReloadOutcome(applied=False, restart_required=restart)
        self._current = new  # one reference swap: readers see old or new, never a mix
        log.info(
            "config_reloaded",
            path=str(self.path),
            changed_keys=[c.key for c in live_changes],
            changes=[c.as_text() for c in live_changes],
        )
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception:
                log.exception(
                    "config_listener_failed",
                    listener=getattr(listener, "__qualname__", repr(listener)),
                )
        return ReloadOutcome(applied=True, changes=live_changes, restart_required=restart)

    def file_changed(self) -> bool:
        return self.path is not None and _fingerprint(self.path) != self._fingerprint

    async def watch(self, interval_seconds: float = 2.0) -> None:
        """Poll the file and reload when its content changes; runs until cancelled."""
        while True:
            await asyncio.sleep(interval_seconds)
            if self.file_changed():
                if self.path is not None and not self.path.exists():
                    self._fingerprint = None
                    log.warning(
                        "config_file_missing", path=str(self.path), kept="previous settings"
                    )
                    continue
                self.reload()


def _fingerprint(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _keep_restart_only_values(old: Settings, new: Settings, restart: list[Change]) -> Settings:
    if not restart:
        return new
    data = new.model_dump()
    old_data = old.model_dump()
    for change in restart:
        *parents, leaf = change.key.split(".")
        src, dst = old_data, data
        for part in parents:
            src, dst = src[part], dst[part]
        dst[leaf] = src[leaf]
    return Settings.model_validate(data)
