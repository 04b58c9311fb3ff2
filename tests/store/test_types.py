"""Money and UtcDateTime round-trip exactly on SQLite and PostgreSQL.

A scratch table is created with ``metadata.create_all`` inside each test: this
checks the column types themselves and changes no schema (migrations do that).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, delete, insert, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.store.types import Money, UtcDateTime

EXACT_DECIMALS = [
    Decimal("0.1"),
    Decimal("123456789012345.123456789"),
    Decimal("-0.000001"),
    Decimal("1E+3"),
    Decimal("0.30"),
    Decimal("-987654321.5"),
    Decimal("0"),
]


def _scratch_table() -> Table:
    """A throwaway table with one Money and one UtcDateTime column."""
    metadata = MetaData()
    return Table(
        f"scratch_types_{uuid.uuid4().hex[:8]}",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("amount", Money, nullable=True),
        Column("at", UtcDateTime, nullable=True),
    )


async def _create(engine: AsyncEngine, table: Table) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)


async def _round_trip(engine: AsyncEngine, table: Table, **values: Any) -> Any:
    """Insert one row with ``values``, read it back, delete it; returns the row."""
    async with engine.begin() as conn:
        await conn.execute(insert(table).values(id=1, **values))
    try:
        async with engine.connect() as conn:
            return (await conn.execute(select(table).where(table.c.id == 1))).one()
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(table))


async def _insert_error(engine: AsyncEngine, table: Table, **values: Any) -> BaseException:
    """The error raised binding ``values`` (unwrapped from SQLAlchemy's StatementError)."""
    with pytest.raises((TypeError, ValueError, StatementError)) as info:
        async with engine.begin() as conn:
            await conn.execute(insert(table).values(id=1, **values))
    err: BaseException = info.value
    if isinstance(err, StatementError) and err.orig is not None:
        err = err.orig
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table))).all()
    assert rows == [], "a refused value must not be stored"
    return err


def _assert_same_decimal(got: Any, expected: Decimal) -> None:
    assert isinstance(got, Decimal), f"{got!r} is {type(got).__name__}, not Decimal"
    assert got == expected
    if expected != 0:  # PostgreSQL NUMERIC has no negative zero; -0 == 0 is all we ask
        assert str(got.normalize()) == str(expected.normalize())


@pytest.mark.parametrize("value", EXACT_DECIMALS, ids=str)
async def test_money_round_trips_exactly(engine: AsyncEngine, value: Decimal) -> None:
    table = _scratch_table()
    await _create(engine, table)
    row = await _round_trip(engine, table, amount=value)
    _assert_same_decimal(row.amount, value)


async def test_money_accepts_int_and_str_as_exact_decimals(engine: AsyncEngine) -> None:
    table = _scratch_table()
    await _create(engine, table)
    _assert_same_decimal((await _round_trip(engine, table, amount=42)).amount, Decimal(42))
    _assert_same_decimal((await _round_trip(engine, table, amount="0.07")).amount, Decimal("0.07"))
    assert (await _round_trip(engine, table, amount=None)).amount is None


async def test_money_refuses_float(engine: AsyncEngine) -> None:
    table = _scratch_table()
    await _create(engine, table)
    err = await _insert_error(engine, table, amount=0.1)
    assert isinstance(err, TypeError), repr(err)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN"])
async def test_money_refuses_non_finite(engine: AsyncEngine, value: str) -> None:
    table = _scratch_table()
    await _create(engine, table)
    err = await _insert_error(engine, table, amount=Decimal(value))
    assert isinstance(err, (ValueError, TypeError)), repr(err)


async def test_datetime_refuses_naive(engine: AsyncEngine) -> None:
    table = _scratch_table()
    await _create(engine, table)
    err = await _insert_error(engine, table, at=datetime(2026, 3, 9, 15, 30))
    assert isinstance(err, ValueError), repr(err)
    assert "naive" in str(err)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 9, 15, 30, 0, 123456, tzinfo=ZoneInfo("America/New_York")),
        datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1),
        datetime(2026, 7, 1, 9, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 1, 2, 0, 0, tzinfo=timezone(timedelta(hours=-10))),
        datetime(2026, 1, 2, 23, 59, 59, 999999, tzinfo=UTC),
    ],
    ids=["new-york-edt", "new-york-fold", "plus-0530", "minus-10", "utc"],
)
async def test_aware_datetime_comes_back_as_same_instant_in_utc(
    engine: AsyncEngine, value: datetime
) -> None:
    table = _scratch_table()
    await _create(engine, table)
    got = (await _round_trip(engine, table, at=value)).at
    # Same instant (timestamps: Python's inter-zone == is False for a fold=1 time).
    assert got.timestamp() == value.timestamp()
    assert got.tzinfo == UTC and got.utcoffset() == timedelta(0)
    assert got.replace(tzinfo=None) == value.astimezone(UTC).replace(tzinfo=None)


_table_for_run = _scratch_table()  # one table per test run, reused by every example


@st.composite
def bounded_decimals(draw: st.DrawFn) -> Decimal:
    """Finite decimals with 0 to 10 places and magnitude below 10**12."""
    places = draw(st.integers(min_value=0, max_value=10))
    return draw(
        st.decimals(
            min_value=Decimal(-(10**12)),
            max_value=Decimal(10**12),
            allow_nan=False,
            allow_infinity=False,
            places=places,
        )
    )


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=bounded_decimals())
async def test_money_round_trips_any_bounded_decimal(engine: AsyncEngine, value: Decimal) -> None:
    await _create(engine, _table_for_run)  # checkfirst: created once per database
    row = await _round_trip(engine, _table_for_run, amount=value)
    _assert_same_decimal(row.amount, value)
