"""Composition root of the scoring service (积分、活跃度、排名、通报)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI
from tuanlian.scoring.adapters.folding import PeriodFolder
from tuanlian.scoring.adapters.projection import CONTACTS_EVENTS, WISHES_EVENTS, attach, projector
from tuanlian.scoring.application.schedule import PeriodClose
from tuanlian.scoring.entrypoints.http import build_router
from tuanlian.shared.consumer import EventConsumer
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.contracts.scoring import SCORING
from tuanlian.shared.contracts.wishes import WISHES
from tuanlian.shared.service import Runtime, ServiceSpec, create_app
from tuanlian.shared.settings import Settings, get_settings


def projection_schema(runtime: Runtime) -> str:
    """The first version's schema; the consumers and the HTTP reads follow ``projection_versions``
    to whichever version serves (a rebuild builds another beside it and swaps it in)."""
    return f"{runtime.schema}_proj"


def _consumers(runtime: Runtime) -> list[EventConsumer]:
    """One replica at a time runs them (``build_exclusive_consumers``): a durable's batches are
    applied one transaction at a time whichever replica fetched them, so more replicas would only
    take turns on interleaved sequences, each batch reading its rows afresh, and date the applied
    log out of order for the rebuilds."""
    p = projection_schema(runtime)
    batch = runtime.settings.projector_batch
    contacts = runtime.consumer("points", CONTACTS, {}, batch_size=batch)
    wishes = runtime.consumer("points", WISHES, {}, batch_size=batch)
    for consumer, names in ((contacts, CONTACTS_EVENTS), (wishes, WISHES_EVENTS)):
        attach(consumer, projector(p, consumer.durable, versions=f"{runtime.schema}.projection_versions"), names)
    return [contacts, wishes]


def _tasks(runtime: Runtime) -> dict[str, Callable[[asyncio.Event], Coroutine[Any, Any, None]]]:
    return {"period-fold": PeriodFolder(runtime.db, f"{runtime.schema}.projection_versions").run,
            "period-close": PeriodClose(runtime).run}


def _router(runtime: Runtime) -> APIRouter:
    return build_router(runtime)


SPEC = ServiceSpec(
    name="scoring",
    title="points, leaderboards, circulars, audit",
    description="Projects every event into points (个人积分), activity levels, compliance, "
    "leaderboards (日常排名) and circulars (通报); replay and as-of queries.",
    migrations_package="tuanlian.scoring.migrations",
    contracts=SCORING,
    build_consumers=lambda runtime: [],
    build_exclusive_consumers=_consumers,
    build_router=_router,
    build_tasks=_tasks,
)


def app(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings or get_settings())
