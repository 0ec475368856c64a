"""Composition root of the wishes service (微心愿、心愿池、青年之声、满意度测评)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from tuanlian.shared.consumer import EventConsumer
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.contracts.wishes import WISHES
from tuanlian.shared.service import Runtime, ServiceSpec, create_app
from tuanlian.shared.settings import Settings, get_settings
from tuanlian.wishes.adapters.projections import contacts_handlers
from tuanlian.wishes.entrypoints.http import build_router


def _consumers(runtime: Runtime) -> list[EventConsumer]:
    return [
        runtime.consumer("pairs", CONTACTS, contacts_handlers(runtime.schema), stream_type="contact_link")
    ]


def _router(runtime: Runtime) -> APIRouter:
    return build_router(runtime)


SPEC = ServiceSpec(
    name="wishes",
    title="micro-wishes, wish pool, Youth Voice, ratings, ballots",
    description="Micro-wishes (微心愿) and the wish pool (心愿池), Youth Voice (青年之声), ratings and "
    "anonymous satisfaction ballots (满意度测评). Publishes the WISHES stream.",
    migrations_package="tuanlian.wishes.migrations",
    contracts=WISHES,
    build_consumers=_consumers,
    build_router=_router,
)


def app(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings or get_settings())
