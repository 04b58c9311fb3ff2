"""Read, merge and validate settings; turn every failure into a list of named problems."""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from alchemiser.settings.root import (
    ENV_PREFIX,
    SECRET_ENV,
    Settings,
    default_config_path,
    env_overlay,
)
from alchemiser.settings.view import render_value

# Keys that hold secrets and so may never be written in the config file.
FILE_FORBIDDEN = {
    ("broker", "key"): "ALPACA__KEY",
    ("broker", "secret"): "ALPACA__SECRET",
    ("broker", "endpoint"): "ALPACA__ENDPOINT",
}


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, named by its dotted path."""

    path: str
    message: str
    value: Any = None
    source: str = ""

    def __str__(self) -> str:
        details = []
        if self.value is not None:
            details.append(f"value: {render_value(self.value)}")
        if self.source:
            details.append(f"from {self.source}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{self.path}: {self.message}{suffix}"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` says every reason."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    path: Path | None
    warnings: list[str] = field(default_factory=list)


_construct_lock = threading.Lock()


def load_settings(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedSettings:
    """Load settings from defaults, the TOML file and the environment.

    ``path`` None means ``ALCHEMISER_CONFIG`` or ``config/alchemiser.toml``; that
    default file may be absent (defaults apply), an explicitly named one may not.
    """
    env = dict(os.environ if env is None else env)
    explicit = path is not None or bool(env.get("ALCHEMISER_CONFIG"))
    file_path = Path(path) if path is not None else default_config_path(env)
    file_values: dict[str, Any] = {}
    used_path: Path | None = None
    if file_path.exists():
        file_values = read_toml(file_path)
        used_path = file_path
    elif explicit:
        raise ConfigError(
            [
                ConfigProblem(
                    str(file_path), "config file not found", source="--config/ALCHEMISER_CONFIG"
                )
            ]
        )

    problems = _secrets_in_file(file_values, file_path)
    if problems:
        raise ConfigError(problems)

    with _construct_lock:
        Settings._sources = (file_values, env)
        try:
            settings = Settings()
        except ValidationError as exc:
            raise ConfigError(_explain(exc, file_values, env, file_path)) from None
        finally:
            Settings._sources = ({}, {})
    return LoadedSettings(settings=settings, path=used_path, warnings=settings_warnings(settings))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            # Decimal keeps money and percentages exact from the file onward.
            return tomllib.load(fh, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), f"not valid TOML: {exc}")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), f"cannot read: {exc.strerror}")]) from None


def settings_warnings(settings: Settings) -> list[str]:
    """Allowed-but-questionable combinations, from each section's ``warnings()``."""
    found: list[str] = []
    for name in type(settings).model_fields:
        section = getattr(settings, name)
        warn = getattr(section, "warnings", None)
        if callable(warn):
            found.extend(warn())
    return found


def _secrets_in_file(values: Mapping[str, Any], path: Path) -> list[ConfigProblem]:
    problems = []
    for (section, key), env_name in FILE_FORBIDDEN.items():
        sect = values.get(section)
        if isinstance(sect, Mapping) and key in sect:
            problems.append(
                ConfigProblem(
                    f"{section}.{key}",
                    f"secrets are read only from the environment: remove it from the file and set {env_name}",
                    source=str(path),
                )
            )
    db = values.get("database")
    if isinstance(db, Mapping) and isinstance(db.get("url"), str) and urlsplit(db["url"]).password:
        problems.append(
            ConfigProblem(
                "database.url",
                "a database URL with a password must come from the environment (DATABASE_URL)",
                source=str(path),
            )
        )
    return problems


def _explain(
    exc: ValidationError, file_values: Mapping[str, Any], env: Mapping[str, str], path: Path
) -> list[ConfigProblem]:
    env_keys = _flat_keys(env_overlay(env))
    secret_keys = {f"{s}.{k}": name for name, (s, k) in SECRET_ENV.items() if env.get(name)}
    file_keys = _flat_keys(file_values)
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling against config/alchemiser.toml)"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if loc in secret_keys:
            source, value = secret_keys[loc], None  # never echo a secret
        elif loc in env_keys or any(k.startswith(loc + ".") for k in env_keys):
            source, value = ENV_PREFIX + loc.upper().replace(".", "__"), err.get("input")
        elif loc in file_keys or any(k.startswith(loc + ".") for k in file_keys):
            source, value = str(path), err.get("input")
        else:
            source, value = "defaults", err.get("input")
        if isinstance(value, Mapping):
            value = None  # a whole section: the message names what is wrong inside it
        problems.append(ConfigProblem(loc, message, value=value, source=source))
    return problems


def _flat_keys(values: Any, prefix: str = "") -> set[str]:
    """Every dotted path present in a nested mapping, list items by index (``a.0.b``)."""
    keys: set[str] = set()
    if isinstance(values, Mapping):
        items: list[tuple[Any, Any]] = list(values.items())
    elif isinstance(values, list):
        items = list(enumerate(values))
    else:
        return keys
    for key, value in items:
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        keys |= _flat_keys(value, dotted + ".")
    return keys
