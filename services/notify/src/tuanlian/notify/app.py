"""Composition root of the notify service (提醒、站内信、推送)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from tuanlian.notify.adapters.projections import contacts_handlers
from tuanlian.notify.entrypoints.http import build_router
from tuanlian.shared.consumer import EventConsumer
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.service import Runtime, ServiceSpec, create_app
from tuanlian.shared.settings import Settings, get_settings


def _consumers(runtime: Runtime) -> list[EventConsumer]:
    return [
        runtime.consumer("inbox", CONTACTS, contacts_handlers(runtime.schema), stream_type="contact_link")
    ]


def _router(runtime: Runtime) -> APIRouter:
    return build_router(runtime)


SPEC = ServiceSpec(
    name="notify",
    title="reminders, inbox, delivery channels",
    description="Reminder rules and the League calendar, fan-out of messages to inboxes (站内信), "
    "webhook and email delivery.",
    migrations_package="tuanlian.notify.migrations",
    contracts=None,
    build_consumers=_consumers,
    build_router=_router,
)


def app(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings or get_settings())
