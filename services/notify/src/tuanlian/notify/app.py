"""Composition root of the notify service (提醒、站内信、推送)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from tuanlian.notify.adapters.channels import WebhookChannel, channels_from
from tuanlian.notify.adapters.projections import read_model_feeds, scoring_handlers
from tuanlian.notify.application.delivery import DeliveryWorker
from tuanlian.notify.application.fanout import FanoutWorker
from tuanlian.notify.application.scheduler import Scheduler
from tuanlian.notify.application.workers import Workers
from tuanlian.notify.entrypoints.direct import DirectDelivery, register_direct
from tuanlian.notify.entrypoints.http import LiveFeeds, build_router
from tuanlian.notify.settings import NotifySettings
from tuanlian.shared.consumer import EventConsumer, one_version
from tuanlian.shared.contracts.scoring import SCORING
from tuanlian.shared.service import Runtime, ServiceSpec, create_app
from tuanlian.shared.settings import Settings, get_settings


def workers_for(runtime: Runtime, ns: NotifySettings) -> Workers:
    channels = ns.enabled_channels()
    s = runtime.schema
    return Workers(
        Scheduler(runtime.db, s, channels=channels),
        FanoutWorker(runtime.db, s, ns.fanout_batch, channels),
        DeliveryWorker(runtime.db, s, channels_from(ns), ns),
        {"scheduler": ns.scheduler_seconds, "fanout": ns.fanout_seconds, "delivery": ns.delivery_seconds},
    )


def make_spec(notify_settings: NotifySettings | None = None) -> ServiceSpec:
    """The service, with its own settings (read from ``TUANLIAN_NOTIFY_*`` when not given)."""
    settings_box: list[NotifySettings] = []

    def ns() -> NotifySettings:
        if not settings_box:
            settings_box.append(notify_settings or NotifySettings())
        return settings_box[0]

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        channels = ns().enabled_channels()
        s = runtime.schema
        # The direct request is no stream consumer, but it must be on the broker before it starts.
        hook = channels_from(ns()).get("webhook")
        register_direct(runtime.broker,
                        DirectDelivery(runtime.db, s, hook if isinstance(hook, WebhookChannel) else None))
        # `tuanlian notify rebuild` swaps the read model in under them (one_version).
        return [runtime.consumer(name, contracts, handlers, version_of=one_version)
                for name, (contracts, handlers) in read_model_feeds(s, channels).items()]

    def router(runtime: Runtime) -> APIRouter:
        feeds = LiveFeeds()

        @asynccontextmanager
        async def workers(app: FastAPI) -> AsyncIterator[None]:
            app.state.notify_live_feeds = feeds
            # Included routers' lifespans run inside the service's: the runtime is up by now.
            running = workers_for(runtime, ns()) if ns().run_workers else None
            if running is not None:
                running.start()
            # Circulars come from scoring, which may be deployed later than notify: the runtime
            # binds that consumer whenever the SCORING stream appears (shared/late.py).
            [scoring] = runtime.late
            scoring.poll = ns().late_bind_poll_seconds
            app.state.notify_late_scoring = scoring
            try:
                yield
            finally:
                if running is not None:
                    await running.stop()

        api = APIRouter(lifespan=workers)
        api.include_router(build_router(runtime, ns(), feeds))
        return api

    return ServiceSpec(
        name="notify",
        title="reminders, inbox, delivery channels",
        description="Reminder rules and the League calendar, fan-out of messages to inboxes (站内信), "
        "webhook and email delivery.",
        migrations_package="tuanlian.notify.migrations",
        contracts=None,
        build_consumers=consumers,
        build_router=router,
        build_late_consumers=lambda runtime: [
            runtime.consumer("scoring", SCORING, scoring_handlers(runtime.schema))
        ],
    )


SPEC = make_spec()


def app(settings: Settings | None = None, notify_settings: NotifySettings | None = None) -> FastAPI:
    return create_app(make_spec(notify_settings), settings or get_settings())
