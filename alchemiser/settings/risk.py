"""Settings of the risk section (filled in from PARAMETERS.md)."""

from alchemiser.settings.base import Section


class RiskSettings(Section):
    enabled: bool = True
