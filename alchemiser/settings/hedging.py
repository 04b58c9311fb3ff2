"""Settings of the hedging section (filled in from PARAMETERS.md)."""

from alchemiser.settings.base import Section


class HedgingSettings(Section):
    enabled: bool = True
