"""Settings of the income section (filled in from PARAMETERS.md)."""

from alchemiser.settings.base import Section


class IncomeSettings(Section):
    enabled: bool = True
