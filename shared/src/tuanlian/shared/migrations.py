"""Schema migrations, one Postgres schema per service.

Each service ships ordered SQL files (``NNNN_name.sql``) in its ``migrations/`` package; they run
once each, in order, under an advisory lock (replicas may start together), and are recorded with
a checksum in ``<schema>.schema_migrations`` so an edited, already-applied file is refused rather
than silently skipped. Plain SQL keeps the DDL reviewable by the team that owns the schema and
runs through asyncpg's simple-query protocol (multi-statement, no driver shims); the platform's
own tables come from :func:`tuanlian.shared.eventstore.platform_ddl` via ``-- include: platform``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg
from tuanlian.shared.eventstore import platform_ddl


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def load_migrations(package: str, schema: str) -> list[Migration]:
    root: Traversable = files(package)
    out = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            text = entry.read_text(encoding="utf-8")
            text = text.replace("-- include: platform", platform_ddl(schema))
            out.append(Migration(entry.name.removesuffix(".sql"), text.replace("{schema}", schema)))
    return out


async def migrate(conn: asyncpg.Connection, schema: str, migrations: list[Migration]) -> list[str]:
    """Apply what is missing; returns the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", f"migrate.{schema}")
    try:
        await conn.execute(
            f"CREATE SCHEMA IF NOT EXISTS {schema}; "
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            "version text PRIMARY KEY, checksum text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch(f"SELECT version, checksum FROM {schema}.schema_migrations")
        }
        for m in migrations:
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise MigrationError(
                        f"{schema} migration {m.version} was edited after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (version, checksum) VALUES ($1, $2)",
                    m.version,
                    m.checksum,
                )
            applied_now.append(m.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", f"migrate.{schema}")
    return applied_now
