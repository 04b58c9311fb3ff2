"""Shared base for settings sections."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A settings section: unknown keys are errors, values are immutable once loaded.

    Immutability is what makes a live reload safe: a reader holding a section
    sees one consistent snapshot, and a reload swaps in a whole new object.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
