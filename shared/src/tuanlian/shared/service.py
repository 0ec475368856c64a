"""One service process: HTTP API + FastStream consumers + outbox relay, started and stopped together.

A service describes itself with a :class:`ServiceSpec`; :func:`create_app` turns it into a FastAPI
application whose lifespan connects Postgres and NATS (failing with one clear line when either is
missing), migrates the service's schema, declares the streams the service owns, binds its durable
consumers and starts the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from tuanlian.shared.auth import Principal, TokenIssuer, TokenVerifier, load_or_create_signing_key
from tuanlian.shared.consumer import EventConsumer, Handler, VersionOf
from tuanlian.shared.db import Database
from tuanlian.shared.events import ContractRegistry
from tuanlian.shared.eventstore import EventStore
from tuanlian.shared.http import install_correlation, install_error_handlers, principal_dependency
from tuanlian.shared.late import LateConsumer
from tuanlian.shared.migrations import load_migrations, migrate
from tuanlian.shared.outbox import OutboxRelay
from tuanlian.shared.settings import Settings
from tuanlian.shared.streams import (
    connect_nats,
    declare_stream,
    dlq_stream,
    nats_servers,
    producer_stream,
    wait_for_stream,
)

log = structlog.get_logger("tuanlian.service")


class StartupError(RuntimeError):
    """A dependency is missing or unreachable; the message says which and where."""


@dataclass
class ServiceSpec:
    name: str
    title: str
    description: str
    migrations_package: str
    contracts: ContractRegistry | None
    build_consumers: Callable[[Runtime], list[EventConsumer]]
    build_router: Callable[[Runtime], APIRouter]
    owns_signing_key: bool = False
    #: Consumers of streams whose owner may start later (see ``shared/late.py``): bound in the
    #: background once their stream exists, instead of holding up (or failing) the start.
    build_late_consumers: Callable[[Runtime], list[EventConsumer]] | None = None
    #: Consumers one replica of the service runs at a time, the others standing by (see
    #: ``shared/late.py``): bound in the background like late ones, once this replica holds the
    #: durable's advisory lock. For projections whose batches serialise anyway (scoring's).
    build_exclusive_consumers: Callable[[Runtime], list[EventConsumer]] | None = None
    #: Background work of the service beside its consumers (scoring's fold of credits into the
    #: leaderboards): each runs from start until the stop event is set.
    build_tasks: Callable[[Runtime], dict[str, Callable[[asyncio.Event], Coroutine[Any, Any, None]]]] | None = None


@dataclass
class Runtime:
    """Everything a service's handlers need, built once per process."""

    spec: ServiceSpec
    settings: Settings
    db: Database
    broker: NatsBroker
    store: EventStore | None
    consumers: list[EventConsumer] = field(default_factory=list)
    nc: NATS | None = None
    js: JetStreamContext | None = None
    issuer: TokenIssuer | None = None
    _verifier: TokenVerifier | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    relay: OutboxRelay | None = None
    late: list[LateConsumer] = field(default_factory=list)

    @property
    def schema(self) -> str:
        return self.spec.name

    async def verifier(self) -> TokenVerifier:
        if self._verifier is None:
            if self.issuer is not None:
                self._verifier = TokenVerifier.from_jwks(self.issuer.jwks())
            else:
                self._verifier = TokenVerifier.from_jwks(await self._fetch_jwks())
        return self._verifier

    async def _fetch_jwks(self) -> dict[str, Any]:
        base = self.settings.contacts_url or self.settings.url_of("contacts")
        async with httpx.AsyncClient(timeout=5) as client:
            r = await client.get(f"{base}/.well-known/jwks.json")
            r.raise_for_status()
            return dict(r.json())

    def consumer(
        self,
        name: str,
        contracts: ContractRegistry,
        handlers: dict[str, Handler],
        stream_type: str | None = None,
        *,
        batch_size: int | None = None,
        version_of: VersionOf | None = None,
    ) -> EventConsumer:
        """A durable consumer of ``contracts.producer``'s events feeding this service's schema
        (``version_of``: see ``EventConsumer``; ``consumer.one_version`` for a read model rebuilt
        in place, ``shared/readmodel.py``)."""
        s = self.settings
        return EventConsumer(
            service=self.spec.name,
            name=name,
            producer=contracts.producer,
            contracts=contracts,
            db=self.db,
            schema=self.schema,
            handlers=handlers,
            stream_type=stream_type,
            max_deliveries=s.max_deliveries,
            retry_base_delay=s.retry_base_delay,
            batch_size=batch_size or s.consumer_batch,
            version_of=version_of,
        )

    def current_principal(self) -> Callable[..., Any]:
        return principal_dependency(self.verifier)

    async def start(self) -> None:
        s = self.settings
        tune_gc()
        try:
            await self.db.ping(timeout=5)
        except Exception as exc:
            raise StartupError(
                f"{self.spec.name}: Postgres is not reachable at {_redact(self.db.url)}: {exc}"
            ) from exc
        nats_url = s.require_nats_url()
        try:
            self.nc = await connect_nats(nats_url, name=f"tuanlian-{self.spec.name}")
        except ConnectionError as exc:
            raise StartupError(f"{self.spec.name}: {exc}") from exc
        self.js = self.nc.jetstream()
        async with self.db.connection() as conn:
            applied = await migrate(
                conn, self.schema, load_migrations(self.spec.migrations_package, self.schema)
            )
        if applied:
            log.info("migrated", schema=self.schema, applied=applied)
        if self.spec.owns_signing_key:
            self.issuer = load_or_create_signing_key(s.keys_dir)
        if self.spec.contracts is not None:
            await declare_stream(
                self.js, producer_stream(self.spec.name), storage=s.stream_storage, replicas=s.stream_replicas
            )
        if self.consumers or self.late:
            await declare_stream(
                self.js, dlq_stream(self.spec.name), storage=s.stream_storage, replicas=s.stream_replicas
            )
        for consumer in self.consumers:
            await wait_for_stream(self.js, consumer.stream)
            await consumer.ensure_durable(self.js)
            consumer.bind_js(self.js)
        await self.broker.start()
        # Its subscriptions are with the server before the service says it is up: a request to
        # the direct subject sent just after found no responder now and then (notify's tests).
        await self.broker.connection.flush()
        for late in self.late:
            if late.lock is not None:  # exclusive: its stream is waited for as a consumer's is
                await wait_for_stream(self.js, late.consumer.stream)
            late.start()
        for late in self.late:
            # Ready means this replica consumes, or stands by for the one that does.
            if late.lock is not None and not await late.settled(timeout=30):
                log.warning("exclusive consumer not bound yet", durable=late.consumer.durable, state=late.state,
                            error=late.last_error)
        if self.store is not None:
            self.relay = OutboxRelay(
                self.db, self.js, schema=self.schema, producer=self.spec.name, batch_size=s.relay_batch
            )
            self._tasks.append(asyncio.create_task(self.relay.run(self._stop), name="outbox-relay"))
        for name, run in (self.spec.build_tasks(self) if self.spec.build_tasks else {}).items():
            self._tasks.append(asyncio.create_task(run(self._stop), name=name))
        log.info("service started", service=self.spec.name)

    async def stop(self) -> None:
        self._stop.set()
        for late in self.late:
            await late.stop()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=10)
        with contextlib.suppress(Exception):
            await self.broker.stop()
        for consumer in self.consumers:
            await consumer.drain()  # its last batch settles while NATS is still there to ack
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        await self.db.close()

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await self.db.ping(timeout=2)
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"unreachable: {exc}"
        if self.nc is not None and self.nc.is_connected and self.js is not None:
            try:
                await asyncio.wait_for(self.js.account_info(), timeout=2)
                checks["nats"] = "ok"
            except Exception as exc:
                checks["nats"] = f"jetstream unavailable: {exc}"
        else:
            checks["nats"] = "not connected"
        return checks


def _redact(url: str) -> str:
    if "@" in url and ":" in url.split("@")[0].split("//")[-1]:
        scheme, rest = url.split("//", 1)
        creds, host = rest.split("@", 1)
        return f"{scheme}//{creds.split(':')[0]}:***@{host}"
    return url


YOUNG_GC_THRESHOLD = 200_000  # see tune_gc


def tune_gc() -> None:
    """Collect garbage less often in a long-running process (once per process; later calls do nothing).

    CPython's defaults (a young collection every 700 allocations, a full one when the heap has
    grown by a quarter) suit scripts. A projection that keeps a few hundred thousand rows in
    memory paid ~250 ms per full collection, about a third of the scoring projector's time
    (benchmarks/bench_scoring.py). What is alive after startup (modules, schemas) is collected
    once and frozen out of later collections.

    Young collections come every 200,000 net allocations: about what a consumer keeps alive at
    once (pipelined 4,000-event batches decoded), which reference counting frees anyway. Every
    50,000 they scanned those batches over and over: ~15 collections and 0.3-0.5 s in a 3.5 s
    projector run. Measured since (eighth session): ~2 young collections per 32,000 events, each
    a 0.15-0.2 s pause; every 20th is a generation-1 collection, which scans what the young ones
    promoted (the projection's new rows): 0.6 s once in 600,000 events applied by one projection.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()  # garbage alive now would never be collected once frozen
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, 20, 10)


_gc_tuned = False


def build_runtime(spec: ServiceSpec, settings: Settings) -> Runtime:
    db = Database(
        settings.database_url or "postgresql://unset/unset",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    broker = NatsBroker(
        nats_servers(settings.nats_url or "nats://127.0.0.1:4222"), logger=logging.getLogger("faststream")
    )
    store = EventStore(spec.name, spec.name, spec.contracts) if spec.contracts else None
    runtime = Runtime(spec=spec, settings=settings, db=db, broker=broker, store=store)
    runtime.consumers = spec.build_consumers(runtime)
    for consumer in runtime.consumers:
        consumer.register(broker)
    if spec.build_late_consumers is not None:
        url = settings.nats_url or "nats://127.0.0.1:4222"
        runtime.late = [LateConsumer(c, url) for c in spec.build_late_consumers(runtime)]
    if spec.build_exclusive_consumers is not None:
        url = settings.nats_url or "nats://127.0.0.1:4222"
        runtime.late += [LateConsumer(c, url, lock=db) for c in spec.build_exclusive_consumers(runtime)]
    return runtime


def asyncapi_document(runtime: Runtime) -> dict[str, Any]:
    spec = runtime.spec
    doc = AsyncAPI(
        runtime.broker, title=f"Tuanlian {spec.name}", version="1.0.0", description=spec.description
    ).to_specification()
    schema = json.loads(doc.to_json())
    if runtime.late:
        # Late consumers run on their own broker: document them as the runtime's own.
        shadow = NatsBroker(logger=logging.getLogger("faststream"))
        for late in runtime.late:
            late.consumer.register(shadow)
        extra = json.loads(AsyncAPI(shadow, title="late", version="1.0.0").to_specification().to_json())
        for section in ("channels", "operations"):
            schema.setdefault(section, {}).update(extra.get(section, {}))
        for section, entries in extra.get("components", {}).items():
            schema.setdefault("components", {}).setdefault(section, {}).update(entries)
    if spec.contracts is not None:
        # FastStream documents what the service consumes; add what it publishes (its contracts).
        channels = schema.setdefault("channels", {})
        for cls in spec.contracts.types():
            subject = f"{spec.name}.events.{cls.stream_type}.{cls.event_type}"
            channels[f"publish:{cls.event_type}"] = {
                "address": subject,
                "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
                "x-schema-version": cls.schema_version,
                "x-payload": cls.model_json_schema(),
            }
    return schema


def create_app(spec: ServiceSpec, settings: Settings) -> FastAPI:
    runtime = build_runtime(spec, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=f"Tuanlian {spec.name} — {spec.title}",
        description=spec.description,
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_correlation(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": spec.name}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)

    @app.get("/asyncapi.json", tags=["ops"])
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document(runtime)

    app.include_router(spec.build_router(runtime))
    return app


__all__ = ["Principal", "Runtime", "ServiceSpec", "StartupError", "asyncapi_document", "create_app"]
