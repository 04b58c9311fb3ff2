"""Settings: pydantic models per concern, loaded from defaults, TOML file and environment."""

from alchemiser.settings.live import LiveSettings
from alchemiser.settings.loader import ConfigError, ConfigProblem, LoadedSettings, load_settings
from alchemiser.settings.root import Settings

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "LiveSettings",
    "LoadedSettings",
    "Settings",
    "load_settings",
]
