"""Shared base for settings sections, and the check helpers every section uses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Section(BaseModel):
    """A settings section: unknown keys are errors, values are immutable once loaded.

    Immutability is what makes a live reload safe: a reader holding a section
    sees one consistent snapshot, and a reload swaps in a whole new object.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


_TICKER = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[.\-][A-Z0-9]{1,4})?$")


def _ticker(value: str) -> str:
    if not _TICKER.match(value):
        raise ValueError(
            f"{value!r} is not a ticker symbol: use upper-case letters and digits, e.g. 'QQQ' or 'BRK.B'"
        )
    return value


# An exchange ticker such as "QQQ"; written in upper case so lookups never depend on spelling.
Symbol = Annotated[str, AfterValidator(_ticker)]


def fmt(value: Decimal | float | int) -> str:
    """A number as a person would write it: no exponent, no trailing zeros."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def fail_if(problems: Iterable[str]) -> None:
    """Raise one error naming every problem found, so a user fixes them all in one edit."""
    found = [p for p in problems if p]
    if found:
        raise ValueError("; ".join(found))


def range_problem(low_name: str, low: Decimal | int, high_name: str, high: Decimal | int) -> str:
    """Message for a min/max pair given the wrong way round ('' when it is fine)."""
    if low > high:
        return f"{low_name} ({fmt(low)}) must not be above {high_name} ({fmt(high)})"
    return ""


def weights_problem(what: str, weights: dict[str, Decimal]) -> str:
    """Message for weights that do not add up to exactly 1 ('' when they do)."""
    total = sum(weights.values(), Decimal(0))
    if total != 1:
        parts = " + ".join(f"{name} ({fmt(w)})" for name, w in weights.items())
        return f"{what} must add up to 1: {parts} = {fmt(total)}"
    return ""


def empty_is_none(value: object) -> object:
    # TOML has no null: an empty string means "not set" (it is also how `config show` prints None).
    if isinstance(value, str) and not value.strip():
        return None
    return value
