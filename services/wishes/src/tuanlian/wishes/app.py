"""Composition root of the wishes service (微心愿、心愿池、青年之声、满意度测评)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from tuanlian.shared.consumer import EventConsumer, one_version
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.contracts.wishes import WISHES
from tuanlian.shared.service import Runtime, ServiceSpec, create_app
from tuanlian.shared.settings import Settings, get_settings
from tuanlian.wishes.adapters.projections import contacts_feeds
from tuanlian.wishes.application.service import WishesService
from tuanlian.wishes.entrypoints.http import build_router
from tuanlian.wishes.settings import WishesSettings

# One service object per runtime, so tests (and tools) reach the clock and the scheduler.
_services: dict[int, WishesService] = {}


def service_of(runtime: Runtime) -> WishesService:
    if id(runtime) not in _services:
        assert runtime.store is not None
        _services[id(runtime)] = WishesService(runtime.db, runtime.store, settings=WishesSettings())
    return _services[id(runtime)]


def _consumers(runtime: Runtime) -> list[EventConsumer]:
    # `tuanlian wishes rebuild` swaps the read model in under them (one_version).
    return [runtime.consumer(name, CONTACTS, handlers, stream_type=stream_type, version_of=one_version)
            for name, (stream_type, handlers) in contacts_feeds(runtime.schema, service_of(runtime).cadres).items()]


def _router(runtime: Runtime) -> APIRouter:
    return build_router(runtime, service_of(runtime), WishesSettings())


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
