"""Rebuilding notify's read model of contacts and wishes from their streams alone (重建), swapped in
under the running service (``shared/readmodel.py`` says how).

Recipients, orgs and their rules, links, online contacts, activities, wishes, Youth Voice posts and
open ballots are the read model. Notify's own state (the inbox, deliveries, digests, preferences,
reminders, fan-out jobs) is not touched, and nothing is sent again: the messages the handlers queue
(a link invitation, a ballot's) land in the scratch twins of the inbox and deliveries, dropped
with them; they were queued when the live consumers first applied the events.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from nats.js import JetStreamContext
from tuanlian.notify.adapters.projections import read_model_feeds
from tuanlian.shared.consumer import durable_name
from tuanlian.shared.readmodel import Feed, Progress, ReadModelRebuild

SERVICE = "notify"
READ_MODEL = ("recipients", "orgs", "org_rules", "links", "online_contact", "activities", "wishes", "voice_posts",
              "ballots", "work_reports")
# Notify's own tables the handlers also write (path rewrites, a youth's erasure).
_SCRATCH = ("inbox", "deliveries", "digests", "preferences")


def _feeds(schema: str) -> list[Feed]:
    return [Feed(contracts, None, durable_name(SERVICE, name, contracts.producer), handlers)
            for name, (contracts, handlers) in read_model_feeds(schema).items()]


def read_model_rebuild(conn: asyncpg.Connection, js: JetStreamContext, *, batch: int = 2000,
                       on_progress: Callable[[Progress], None] | None = None) -> ReadModelRebuild:
    return ReadModelRebuild(conn, js, SERVICE, feeds=_feeds, tables=READ_MODEL, scratch=_SCRATCH, batch=batch,
                            on_progress=on_progress)
