"""The whole settings tree and where each value comes from.

Precedence, lowest to highest: model defaults < the TOML file < environment
variables ``ALCHEMISER__SECTION__KEY`` < the secret variables (``ALPACA__KEY``,
``ALPACA__SECRET``, ``ALPACA__ENDPOINT``, ``DATABASE_URL``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alchemiser.settings.core import (
    BrokerSettings,
    DatabaseSettings,
    LoggingSettings,
    QueueSettings,
    ScheduleSettings,
    SimSettings,
    WebSettings,
)
from alchemiser.settings.hedging import HedgingSettings
from alchemiser.settings.income import IncomeSettings
from alchemiser.settings.risk import RiskSettings

ENV_PREFIX = "ALCHEMISER__"
# Secret environment variables and the setting each one fills.
SECRET_ENV: dict[str, tuple[str, str]] = {
    "ALPACA__KEY": ("broker", "key"),
    "ALPACA__SECRET": ("broker", "secret"),
    "ALPACA__ENDPOINT": ("broker", "endpoint"),
    "DATABASE_URL": ("database", "url"),
}


class Settings(BaseSettings):
    """Everything the daemon can be told. Immutable: a reload builds a new one."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, validate_default=True)

    mode: Literal["paper", "live"] = "paper"
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    hedging: HedgingSettings = Field(default_factory=HedgingSettings)
    income: IncomeSettings = Field(default_factory=IncomeSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    sim: SimSettings = Field(default_factory=SimSettings)

    # Filled by the loader; a class attribute so it never becomes a setting.
    _sources: ClassVar[tuple[Mapping[str, Any], Mapping[str, str]]] = ({}, {})

    @model_validator(mode="after")
    def _live_needs_a_real_broker(self) -> Settings:
        if self.mode == "live" and self.broker.kind != "alpaca":
            raise ValueError(
                "mode = 'live' trades real money and needs broker.kind = 'alpaca' "
                f"(broker.kind is {self.broker.kind!r})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_values, env = cls._sources
        return (
            init_settings,
            _MappingSource(settings_cls, secret_overlay(env)),
            _MappingSource(settings_cls, env_overlay(env)),
            _MappingSource(settings_cls, file_values),
        )


class _MappingSource(PydanticBaseSettingsSource):
    """A settings source over an already-parsed nested mapping."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = dict(values)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def env_overlay(env: Mapping[str, str]) -> dict[str, Any]:
    """Nest ``ALCHEMISER__SECTION__KEY=value`` variables into a mapping (keys lower-cased).

    Values stay strings: pydantic converts them to each field's type and a bad
    one is reported with its dotted path. ``{...}`` and ``[...]`` values are
    read as JSON so dict and list settings can be set too.
    """
    import json

    nested: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == "ALCHEMISER_CONFIG":
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        value: Any = raw
        if raw.strip()[:1] in ("{", "["):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw  # let the field's own validation name the problem
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return nested


def secret_overlay(env: Mapping[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, (section, key) in SECRET_ENV.items():
        value = env.get(name)
        if value:
            nested.setdefault(section, {})[key] = value
    return nested


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("ALCHEMISER_CONFIG") or "config/alchemiser.toml")
