from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from alchemiser.store import migrate
from alchemiser.store.engine import create_engine
from alchemiser.store.models import Base


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_from_empty_to_head_and_back_down(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)
    try:
        assert await _tables(engine) == set()
        state = await migrate.schema_state(engine)
        assert state.current is None and not state.up_to_date

        await migrate.upgrade(engine)
        state = await migrate.schema_state(engine)
        assert state.up_to_date and state.current == migrate.head_revision()
        assert set(Base.metadata.tables) <= await _tables(engine)

        await migrate.downgrade(engine, "base")
        assert await _tables(engine) <= {"alembic_version"}
        assert (await migrate.schema_state(engine)).current is None
    finally:
        await engine.dispose()


async def test_models_match_the_migrated_schema(engine: AsyncEngine) -> None:
    """Autogenerate finds nothing to do: the ORM models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        diffs = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    assert diffs == []
