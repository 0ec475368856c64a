"""Composition root of the contacts service (团干部直接联系青年: orgs, people, links, interactions)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from tuanlian.contacts.adapters.eligibility import scoring_handlers
from tuanlian.contacts.adapters.pii import PiiVault
from tuanlian.contacts.application.activities import ActivityWork
from tuanlian.contacts.application.handlers import ContactsService
from tuanlian.contacts.application.identity import IdentityService
from tuanlian.contacts.application.orgs import OrgsService
from tuanlian.contacts.application.people import PeopleService
from tuanlian.contacts.application.reports import ReportsService
from tuanlian.contacts.application.work import LinkWork
from tuanlian.contacts.entrypoints.http import build_router
from tuanlian.contacts.entrypoints.http_auth import build_auth_router
from tuanlian.contacts.entrypoints.http_links import build_links_router
from tuanlian.contacts.entrypoints.http_orgs import build_orgs_router
from tuanlian.contacts.entrypoints.http_people import build_people_router
from tuanlian.contacts.entrypoints.http_reports import build_reports_router
from tuanlian.contacts.entrypoints.http_work import build_work_router
from tuanlian.contacts.settings import get_contacts_settings
from tuanlian.shared.consumer import EventConsumer
from tuanlian.shared.contracts.contacts import CONTACTS
from tuanlian.shared.contracts.scoring import SCORING
from tuanlian.shared.service import Runtime, ServiceSpec, create_app
from tuanlian.shared.settings import Settings, get_settings


def contacts_service(runtime: Runtime) -> ContactsService:
    assert runtime.store is not None
    return ContactsService(runtime.db, runtime.store, PiiVault("contacts", runtime.settings.pii_hash_key))


def _router(runtime: Runtime) -> APIRouter:
    core = contacts_service(runtime)
    identity = IdentityService(core, runtime, get_contacts_settings())
    router = build_router(runtime, core)
    orgs = OrgsService(core)
    router.include_router(build_orgs_router(runtime, orgs))
    router.include_router(build_reports_router(runtime, ReportsService(orgs)))
    router.include_router(build_people_router(runtime, PeopleService(core, identity)))
    router.include_router(build_auth_router(runtime, identity))
    router.include_router(build_links_router(runtime, LinkWork(core)))
    router.include_router(build_work_router(runtime, ActivityWork(core)))
    return router


def _consumers(runtime: Runtime) -> list[EventConsumer]:
    return []


def _late_consumers(runtime: Runtime) -> list[EventConsumer]:
    # Scoring declares SCORING and may start after contacts: bound in the background (shared/late.py).
    return [runtime.consumer("eligibility", SCORING, scoring_handlers(runtime.schema))]


SPEC = ServiceSpec(
    name="contacts",
    title="organisations, people, contact links, interactions",
    description="League organisations and their rules, cadres and youths, identity, contact links "
    "(联系), interactions (联系记录) and activities. Publishes the CONTACTS stream.",
    migrations_package="tuanlian.contacts.migrations",
    contracts=CONTACTS,
    build_consumers=_consumers,
    build_router=_router,
    build_late_consumers=_late_consumers,
    owns_signing_key=True,
)


def app(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings or get_settings())
