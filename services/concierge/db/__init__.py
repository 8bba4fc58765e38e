"""Postgres access shared by retrieval and memory: migrations, pooled connections, tenant scope.

Every tenant table has row-level security with FORCE; application connections switch to a
role without BYPASSRLS and set the tenant per transaction, so isolation holds in the database.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
APP_ROLE = "concierge_app"
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 0x636F6E63


def migration_files() -> list[Path]:
    """Migrations in the order they apply (by their numeric file name prefix)."""
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def migrate(conninfo: str) -> list[str]:
    """Apply pending migrations in order, one transaction each; returns what was applied.

    Safe to call from several processes at once: an advisory lock serialises them.
    """
    applied: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [_MIGRATION_LOCK])
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for path in migration_files():
                version = path.stem
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", [version])
                log.info("migration applied version=%s", version)
                applied.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [_MIGRATION_LOCK])
    return applied


async def open_pool(
    conninfo: str, *, role: str | None = APP_ROLE, min_size: int = 1, max_size: int = 8
) -> AsyncConnectionPool:
    """An opened async pool whose connections act as `role` (RLS applies) with pgvector types."""

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await register_vector_async(conn)
        if role:
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        await conn.commit()

    pool = AsyncConnectionPool(conninfo, min_size=min_size, max_size=max_size, configure=configure, open=False)
    await pool.open(wait=True, timeout=30)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        row = await cur.fetchone()
    if row is not None and row[1]:
        await pool.close()
        raise RuntimeError(
            f"database connections act as role {row[0]!r}, which bypasses row-level security, so tenants would "
            f"see each other's rows; set CONCIERGE_DATABASE_ROLE to a role without SUPERUSER or BYPASSRLS "
            f"(the migrations create {APP_ROLE!r})"
        )
    return pool


@asynccontextmanager
async def tenant_transaction(pool: AsyncConnectionPool, tenant: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """A transaction in which row-level security shows and accepts only `tenant`'s rows."""
    if not tenant:
        raise ValueError("tenant is required: every query is scoped to a namespace")
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT set_config('concierge.tenant', %s, true)", [tenant])
        yield conn


def bind_tenant_login(conninfo: str, tenant: str, password: str) -> str:
    """Create (or update) the login bound to `tenant` and return a conninfo that uses it.

    Run with the owner's `conninfo`. The login may act as the app role and nothing else: row-level
    security shows it only its tenant's rows, whatever tenant it names (migration 0010).
    """
    login = "concierge_t_" + hashlib.sha256(tenant.encode()).hexdigest()[:16]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [login]).fetchone()
        verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
        conn.execute(
            sql.SQL("{} {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE").format(
                verb, sql.Identifier(login), sql.Literal(password)
            )
        )
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), sql.Identifier(login)))
        conn.execute(
            "INSERT INTO tenant_logins (login, bound_tenant) VALUES (%s, %s) "
            "ON CONFLICT (login) DO UPDATE SET bound_tenant = excluded.bound_tenant",
            [login, tenant],
        )
    return make_conninfo(conninfo, user=login, password=password)
