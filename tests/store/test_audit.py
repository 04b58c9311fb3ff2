"""The audit history on SQLite and PostgreSQL, and the JSON-safe conversion of details."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Any
from uuid import UUID

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.clock import ManualClock
from alchemiser.store.audit import AuditLog, to_json_safe
from alchemiser.store.engine import session_factory

START = datetime(2026, 1, 5, 20, 30, tzinfo=UTC)


class Side(StrEnum):
    BUY = "buy"


class Level(IntEnum):
    HIGH = 3


class Color(Enum):
    RED = "red"


@dataclass(frozen=True)
class Leg:
    strike: Decimal
    expiry: date


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def audit(engine: AsyncEngine, clock: ManualClock) -> AuditLog:
    return AuditLog(session_factory(engine), clock, account="acct-1")


async def test_decimal_and_datetime_details_round_trip_as_strings(audit: AuditLog) -> None:
    written = await audit.record(
        "OPENED",
        related_ids={"hedge_id": 7, "client_order_id": "h-7-open"},
        details={
            "premium": Decimal("1234.50"),
            "tiny": Decimal("0.000001"),
            "filled_at": datetime(2026, 1, 5, 20, 29, 59, 123456, tzinfo=UTC),
            "expiry": date(2026, 3, 20),
            "side": Side.BUY,
            "legs": (Leg(Decimal("400"), date(2026, 3, 20)),),
            "ok": True,
            "nothing": None,
        },
        correlation_id="corr-1",
    )
    [entry] = await audit.entries()
    assert entry.id == written.id
    assert (entry.account, entry.action, entry.correlation_id) == ("acct-1", "OPENED", "corr-1")
    assert entry.at == START
    assert entry.related_ids == {"hedge_id": 7, "client_order_id": "h-7-open"}
    assert entry.details == {
        "premium": "1234.50",
        "tiny": "0.000001",
        "filled_at": "2026-01-05T20:29:59.123456+00:00",
        "expiry": "2026-03-20",
        "side": "buy",
        "legs": [{"strike": "400", "expiry": "2026-03-20"}],
        "ok": True,
        "nothing": None,
    }
    assert Decimal(entry.details["premium"]) == Decimal("1234.50")  # exact, no float on the way
    assert written.details == entry.details


async def test_correlation_id_comes_from_the_log_context(audit: AuditLog) -> None:
    with structlog.contextvars.bound_contextvars(correlation_id="from-context"):
        await audit.record("A")
        await audit.record("B", correlation_id="explicit")
    await audit.record("C")
    by_action = {e.action: e.correlation_id for e in await audit.entries()}
    assert by_action == {"A": "from-context", "B": "explicit", "C": None}


async def test_a_record_in_the_callers_transaction_rolls_back_with_it(
    audit: AuditLog, engine: AsyncEngine
) -> None:
    sessions = session_factory(engine)
    async with sessions() as s, s.begin():
        await audit.record("FILLED", details={"qty": 1}, session=s)
        await s.rollback()  # the fill failed: its audit entry must not remain
    assert await audit.entries() == []

    with pytest.raises(RuntimeError):
        async with sessions() as s, s.begin():
            await audit.record("FILLED", details={"qty": 2}, session=s)
            raise RuntimeError("broker said no")
    assert await audit.entries() == []

    async with sessions() as s, s.begin():
        await audit.record("FILLED", details={"qty": 3}, session=s)
    [entry] = await audit.entries()
    assert entry.details == {"qty": 3}


async def test_entries_are_newest_first_and_filtered(
    audit: AuditLog, engine: AsyncEngine, clock: ManualClock
) -> None:
    other_account = AuditLog(session_factory(engine), clock, account="acct-2")
    await audit.record("OPENED", related_ids={"hedge_id": 1})
    await clock.advance(60)
    await audit.record("ROLLED", related_ids={"hedge_id": 1}, correlation_id="c2")
    await other_account.record("OPENED")
    await clock.advance(60)
    await audit.record("CLOSED", related_ids={"hedge_id": 1})
    await audit.record("OPENED", related_ids={"hedge_id": 2})  # same instant: id breaks the tie

    entries = await audit.entries()
    assert [(e.action, e.related_ids["hedge_id"]) for e in entries] == [
        ("OPENED", 2),
        ("CLOSED", 1),
        ("ROLLED", 1),
        ("OPENED", 1),
    ]
    assert [e.related_ids["hedge_id"] for e in await audit.entries(action="OPENED")] == [2, 1]
    since = await audit.entries(since=START + timedelta(seconds=60))
    assert [e.action for e in since] == ["OPENED", "CLOSED", "ROLLED"]
    assert len(await audit.entries(limit=2)) == 2
    assert [e.action for e in await audit.entries(correlation_id="c2")] == ["ROLLED"]
    assert [e.account for e in await other_account.entries()] == ["acct-2"]


async def test_bad_details_are_refused_before_anything_is_written(audit: AuditLog) -> None:
    with pytest.raises(TypeError, match=r"\$\.order\.broker: object"):
        await audit.record("X", details={"order": {"broker": object()}})
    with pytest.raises(ValueError):
        await audit.record("")
    assert await audit.entries() == []


async def test_an_overlong_correlation_id_is_cut_to_the_column(audit: AuditLog) -> None:
    await audit.record("X", correlation_id="c" * 100)
    [entry] = await audit.entries()
    assert entry.correlation_id == "c" * 64


# -- to_json_safe (no database) ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("-0.10"), "-0.10"),
        (Decimal("1E+3"), "1E+3"),
        (datetime(2026, 1, 5, 9, 30), "2026-01-05T09:30:00"),
        (date(2026, 1, 5), "2026-01-05"),
        (timedelta(minutes=15), "900.0"),
        (Side.BUY, "buy"),
        (Level.HIGH, 3),
        (Color.RED, "red"),
        (UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ({3, 1, 2}, [1, 2, 3]),
        ((1, "a"), [1, "a"]),
        ({Side.BUY: 1, 2: "two"}, {"buy": 1, "2": "two"}),
        (1.5, 1.5),
        (None, None),
    ],
)
def test_to_json_safe_converts(value: Any, expected: Any) -> None:
    assert to_json_safe(value) == expected


def test_to_json_safe_turns_non_finite_floats_into_strings() -> None:
    # PostgreSQL JSONB has no NaN or Infinity.
    assert to_json_safe({"a": math.nan, "b": math.inf}) == {"a": "nan", "b": "inf"}


def test_to_json_safe_names_where_an_unsupported_value_is() -> None:
    with pytest.raises(TypeError, match=r"\$\.legs\[1\]: bytes"):
        to_json_safe({"legs": [1, b"raw"]})
