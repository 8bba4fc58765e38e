"""Database plumbing: migrations are idempotent and no service may run as a role that bypasses RLS."""

from __future__ import annotations

import psycopg
import pytest

from concierge.db import APP_ROLE, migrate, migration_files, open_pool


def test_migrations_are_recorded_and_a_second_run_applies_nothing(postgres_url: str) -> None:
    assert migrate(postgres_url) == []
    with psycopg.connect(postgres_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [p.stem for p in migration_files()]


async def test_pool_acting_as_the_app_role_is_subject_to_row_level_security(postgres_url: str) -> None:
    pool = await open_pool(postgres_url)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT current_user")
            assert await cur.fetchone() == (APP_ROLE,)
    finally:
        await pool.close()


async def test_pool_refuses_a_role_that_bypasses_row_level_security(postgres_url: str) -> None:
    with pytest.raises(RuntimeError, match="bypasses row-level security"):
        await open_pool(postgres_url, role=None)
