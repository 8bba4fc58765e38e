"""Database plumbing: migrations are idempotent and no service may run as a role that bypasses RLS."""

from __future__ import annotations

import psycopg
import pytest

from concierge.db import APP_ROLE, bind_tenant_login, migrate, migration_files, open_pool


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


def test_a_tenant_login_sees_only_its_tenant_whatever_tenant_it_names(postgres_url: str) -> None:
    """The binding the operator gives each tenant namespace's services (migration 0010)."""
    with psycopg.connect(postgres_url, autocommit=True) as owner:
        owner.execute("SET ROLE concierge_app")
        for tenant in ("bound-a", "bound-b"):
            owner.execute("SELECT set_config('concierge.tenant', %s, false)", [tenant])
            owner.execute("INSERT INTO sessions (tenant, agent) VALUES (%s, 'helper')", [tenant])
    bound = bind_tenant_login(postgres_url, "bound-a", "s3cret-a")
    with psycopg.connect(bound, autocommit=True) as conn:
        conn.execute("SET ROLE concierge_app")
        for named, expected in (("bound-a", 1), ("bound-b", 0)):
            conn.execute("SELECT set_config('concierge.tenant', %s, false)", [named])
            row = conn.execute("SELECT count(*) FROM sessions WHERE tenant IN ('bound-a', 'bound-b')").fetchone()
            assert row is not None
            assert row[0] == expected, named
        conn.execute("SELECT set_config('concierge.tenant', 'bound-b', false)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO sessions (tenant, agent) VALUES ('bound-b', 'helper')")
    # Binding again (a new password after the operator lost its Secret) keeps one login.
    assert bind_tenant_login(postgres_url, "bound-a", "s3cret-2").count("concierge_t_") == 1
