"""Rebuilding wishes' read model of contacts from the CONTACTS stream alone (重建), swapped in under
the running service (``shared/readmodel.py`` says how).

The pairs, orgs and their rules, youths, cadres and org moves are the read model; wishes' own
state (wishes, Youth Voice, ratings, ballots) is not touched. The application's reactions to a
cadre's transfer or deactivation (an accepted wish relocated, wishes sent to the pool) are wishes'
own events, published when the live consumers first applied the cadre's event: left out here.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from nats.js import JetStreamContext
from tuanlian.shared.consumer import durable_name
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.events import Envelope
from tuanlian.shared.readmodel import Feed, Progress, ReadModelRebuild
from tuanlian.wishes.adapters.projections import PATH_TABLES, contacts_feeds

SERVICE = "wishes"
READ_MODEL = ("pairs", "orgs", "org_rules", "youths", "cadres", "org_moves")
# Wishes' own tables the handlers also write (path rewrites, erasure).
_SCRATCH = tuple(sorted((set(PATH_TABLES) | {"wish_photos"}) - set(READ_MODEL)))


class _NoReactions:
    async def transferred(self, conn: object, cadre_id: str, org_id: str, org_path: str, env: Envelope) -> None:
        return None

    async def deactivated(self, conn: object, cadre_id: str, org_id: str, org_path: str, env: Envelope) -> None:
        return None


def _feeds(schema: str) -> list[Feed]:
    return [Feed(CONTACTS, stream_type, durable_name(SERVICE, name, CONTACTS.producer, stream_type), handlers)
            for name, (stream_type, handlers) in contacts_feeds(schema, _NoReactions()).items()]


def read_model_rebuild(conn: asyncpg.Connection, js: JetStreamContext, *, batch: int = 2000,
                       on_progress: Callable[[Progress], None] | None = None) -> ReadModelRebuild:
    return ReadModelRebuild(conn, js, SERVICE, feeds=_feeds, tables=READ_MODEL, scratch=_SCRATCH, batch=batch,
                            on_progress=on_progress)
