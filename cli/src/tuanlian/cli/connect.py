"""The servers a tool command (``audit``, ``scoring``, ``wishes``) works against: the URLs set,
or those of a ``tuanlian run`` under ``TUANLIAN_HOME``."""

from __future__ import annotations

from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from tuanlian.cli.errors import fail
from tuanlian.cli.launcher import running_stack
from tuanlian.shared.settings import Settings, get_settings


def tool_settings() -> Settings:
    """The settings, with the servers of a ``tuanlian run`` under ``TUANLIAN_HOME`` where no URL is
    set: an auditor beside ``make run`` need not look its free-chosen ports up."""
    settings = get_settings()
    if settings.database_url and settings.nats_url:
        return settings
    stack = running_stack(settings.home)
    if stack is None:
        return settings
    return settings.model_copy(update={"database_url": settings.database_url or stack["database_url"],
                                       "nats_url": settings.nats_url or stack["nats_url"]})


async def connect_db(needs: str | None = None, what: str = "") -> asyncpg.Connection:
    """Postgres; with ``needs`` (``schema.table``), the tool ends saying there is no ``what`` in
    this database unless that table is there (its service has not run against it)."""
    from tuanlian.shared.db import connect_raw

    url = tool_settings().database_url
    if not url:
        fail("TUANLIAN_DATABASE_URL is not set and no `tuanlian run` is running under TUANLIAN_HOME: "
             "which Postgres should I read?")
    try:
        conn = await connect_raw(url or "")
    except Exception as exc:
        fail(f"Postgres is not reachable: {exc}")
    if needs is not None:
        try:
            missing = await conn.fetchval("SELECT to_regclass($1)", needs) is None
        except BaseException:
            await conn.close()
            raise
        if missing:
            await conn.close()
            fail(f"no {what} in this database (has the {needs.split('.')[0]} service run?)")
    return conn


async def connect_bus(conn: asyncpg.Connection, name: str, producers: tuple[str, ...]) -> NATS:
    """NATS for a tool holding ``conn`` (closed, and the tool ended, when the bus is unreachable
    or lacks one of the ``producers``' streams)."""
    from nats.js.errors import NotFoundError
    from tuanlian.shared.streams import connect_nats, event_stream_name

    url = tool_settings().require_nats_url()
    try:
        nc = await connect_nats(url, name=name)
    except Exception as exc:
        await conn.close()
        fail(f"NATS is not reachable: {exc}")
    for producer in producers:
        try:
            await nc.jetstream().stream_info(event_stream_name(producer))
        except NotFoundError:
            await nc.close()
            await conn.close()
            fail(f"no {event_stream_name(producer)} stream on the bus at {url}: "
                 "is TUANLIAN_NATS_URL the bus the services publish to?")
    return nc


def rebuild_bar(counter: str, **fields: Any) -> tuple[Progress, TaskID]:
    """A rebuild's progress: its phase, messages read of the stream, ``counter`` (a column
    template over ``fields``) and the time."""
    bar = Progress(TextColumn("[bold]{task.fields[phase]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn(counter), TimeElapsedColumn())
    return bar, bar.add_task("rebuild", total=None, phase="replay", **fields)
