"""Consumer runtime: JetStream → projection, exactly once in effect, in order per aggregate.

A durable pull consumer (bound to the producer's stream, never redeclaring it) hands batches to
:meth:`EventConsumer.process`. One Postgres transaction per batch records, beside the projection
change, each event id in the inbox, each aggregate's applied version and the stream checkpoint.
While one batch's transaction runs, the next is decoded and, if the projection can
(:class:`AppliesAhead`), applied in memory ahead of its own transaction, which keeps that work
only if nothing it rested on changed.

Order per aggregate holds even with several replicas pulling from the same durable consumer:
an event is applied only when its ``stream_version`` is exactly one past the version recorded
for its aggregate (rows locked ``FOR UPDATE``); an event that arrives early is put back with a
short delay, a repeat is acknowledged without effect. A handler that raises is retried with
growing delays; after ``max_deliveries`` failures the event goes to this service's dead-letter
stream with the reason, its aggregate moves on, and the consumer keeps going.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import sqlalchemy.exc
import structlog
from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from tuanlian.shared.db import Database
from tuanlian.shared.events import ContractRegistry, DomainEvent, Envelope, UnknownEvent
from tuanlian.shared.logging import bind_event_context
from tuanlian.shared.nats_client import fix_nats_client
from tuanlian.shared.streams import dlq_subject, event_stream_name

log = structlog.get_logger("tuanlian.consumer")


class _Raced(Exception):
    """Another replica applied an aggregate this batch saw for the first time: retry the batch."""


# Failures of the infrastructure, not of an event: the batch is retried as a whole later and no
# handler is charged an attempt. Anything else a handler (or its queued SQL) raises counts
# against that event and, repeated, dead-letters it.
_DB_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, query cancelled
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ConnectionDoesNotExistError,  # connection closed underneath
    sqlalchemy.exc.DBAPIError,  # the pool could not connect
    sqlalchemy.exc.TimeoutError,  # the pool is exhausted
)
# Outside handlers, a network error or timeout is the infrastructure's too (inside a handler it
# may be the handler's own doing, and counts as its failure).
_TRANSIENT: tuple[type[BaseException], ...] = (*_DB_TRANSIENT, OSError, TimeoutError, _Raced)


class ProjectionTx:
    """The projection's view of the batch transaction.

    Writes are queued and sent as ``executemany`` runs of consecutive identical statements, so a
    batch of similar events costs a few round trips, not one per event; a read flushes first,
    so handlers always see their own earlier writes.
    """

    def __init__(self, conn: asyncpg.Connection, gate: asyncio.Event | None = None,
                 version: str | None = None, consumer: str | None = None) -> None:
        self.conn = conn
        #: The projection version the batch writes to, as ``EventConsumer.version_of`` told the
        #: runtime under its lock (no swap can commit before this transaction ends); None without.
        self.version = version
        #: The durable applying the batch, and the stream sequence its checkpoint moves to (set
        #: before the flush; None outside the runtime): a projection that records when it applied
        #: what (scoring's ``applied_log``) keys it by these.
        self.consumer = consumer
        self.through: int | None = None
        self._pending: list[tuple[str, list[tuple[Any, ...]]]] = []
        self._before_flush: list[Callable[[ProjectionTx], Awaitable[None]]] = []
        self._gate = gate

    def release_memory(self) -> None:
        """The projection has taken all this batch writes out of its memory: the next batch may
        be applied there ahead of its own transaction (see :class:`AppliesAhead`)."""
        if self._gate is not None:
            self._gate.set()

    def before_flush(self, hook: Callable[[ProjectionTx], Awaitable[None]]) -> None:
        """Run ``hook`` once before the next flush (a projection that keeps a batch's changes in
        memory writes them there, grouped per table, instead of one statement per event)."""
        if hook not in self._before_flush:
            self._before_flush.append(hook)

    def execute(self, sql: str, *args: Any) -> None:
        if self._pending and self._pending[-1][0] == sql:
            self._pending[-1][1].append(args)
        else:
            self._pending.append((sql, [args]))

    async def flush(self) -> None:
        hooks, self._before_flush = self._before_flush, []
        for hook in hooks:
            await hook(self)
        pending, self._pending = self._pending, []
        for sql, rows in pending:
            if len(rows) == 1:
                await self.conn.execute(sql, *rows[0])
            else:
                await self.conn.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        await self.flush()
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        await self.flush()
        return await self.conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        await self.flush()
        return await self.conn.fetchval(sql, *args)


Handler = Callable[[ProjectionTx, Envelope, DomainEvent], Awaitable[None]]
VersionOf = Callable[[asyncpg.Connection], Awaitable[str | None]]


def durable_name(service: str, name: str, producer: str, stream_type: str | None = None) -> str:
    """A durable consumer's name (and its key in the inbox, checkpoint and positions tables)."""
    return f"{service}_{name}_{producer}" + (f"_{stream_type}" if stream_type else "")


async def one_version(conn: asyncpg.Connection) -> None:
    """``EventConsumer.version_of`` for a projection with one version that is rebuilt in place
    and swapped under the same names (wishes' read model of contacts): a batch then takes ROW
    SHARE on ``consumer_positions`` before anything else, so a swap holding it in EXCLUSIVE mode
    has no batch half way through and lets none begin."""
    return None


def positions_key(durable: str, version: str | None) -> str:
    """The ``consumer_positions.consumer`` under which a durable keeps its aggregate positions
    for one projection version (跟踪记录随版本), or for its only one."""
    return durable if version is None else f"{durable}@{version}"


class AppliesAhead(Protocol):
    """A projection that can apply a batch in memory before the batch's transaction (先行应用).

    While batch N's statements run, the Python process would otherwise wait: once N has taken its
    writes out of memory (:meth:`ProjectionTx.release_memory`), the runtime reads batch N+1's
    aggregate positions without locks, sorts N+1 out against them and N's, and has the projection
    apply it (:meth:`apply_ahead`). N+1's transaction then locks the positions as always: if they
    are what N+1 was sorted out against and the projection can :meth:`adopt` its memory, only the
    writes are left; otherwise the projection abandons it and the batch is applied as usual.
    """

    def applies_ahead(self, events: Sequence[tuple[Envelope, DomainEvent]]) -> bool: ...

    def memory_epoch(self) -> int: ...

    async def apply_ahead(self, conn: asyncpg.Connection, events: Sequence[tuple[Envelope, DomainEvent]]) -> None: ...

    async def adopt(self, tx: ProjectionTx, epoch: int) -> bool: ...

    def abandon(self) -> None: ...


class PoisonEvent(Exception):
    """An event that can never be processed (malformed, unknown type or version)."""


@dataclass
class _Item:
    msg: Msg
    envelope: Envelope | None = None
    event: DomainEvent | None = None
    error: str | None = None

    @property
    def seq(self) -> int:
        return self.msg.metadata.sequence.stream


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    deferred: int = 0
    failed: int = 0
    dead_lettered: int = 0


@dataclass
class _Sorted:
    """A batch sorted out against its aggregates' positions (see :meth:`EventConsumer._sort`)."""

    applied: list[_Item] = field(default_factory=list)
    duplicates: list[_Item] = field(default_factory=list)
    deferred: list[_Item] = field(default_factory=list)
    poisoned: list[_Item] = field(default_factory=list)
    moved: dict[str, int] = field(default_factory=dict)


@dataclass
class _Ahead:
    """A batch applied ahead: the positions it was sorted out against, and how."""

    positions: dict[str, int]
    sorted: _Sorted
    epoch: int


@dataclass
class EventConsumer:
    """One durable consumer of one producer's events, feeding one projection."""

    service: str
    name: str
    producer: str
    contracts: ContractRegistry
    db: Database
    schema: str
    handlers: dict[str, Handler]
    stream_type: str | None = None
    max_deliveries: int = 5
    retry_base_delay: float = 0.5
    gap_delay: float = 0.2
    #: An aggregate whose next event has not come for this long is logged as stalled (an error
    #: an operator should see: the producer lost an event, or a stream was purged), again at
    #: most once per this interval while it lasts.
    gap_alert_after: float = 60.0
    batch_size: int = 256
    fetch_timeout: float = 0.05
    #: Messages decoded between turns of the event loop (see _decoded).
    decode_chunk: int = 64
    #: The projection, when it can apply a batch ahead of its transaction (see AppliesAhead).
    ahead: AppliesAhead | None = None
    #: For a projection rebuilt into versions (scoring): the version a batch writes to, asked in
    #: its transaction. Each version keeps its own aggregate positions (``positions_key``): a
    #: rebuild writes its version's before its swap, which then hands none over. The swap holds
    #: ``consumer_positions`` in EXCLUSIVE mode; a batch takes ROW SHARE before asking, so the
    #: version it is told is the one serving once any swap under way has committed.
    version_of: VersionOf | None = None
    _js: JetStreamContext | None = field(default=None, repr=False)
    _waiting: dict[str, list[float]] = field(default_factory=dict, repr=False)
    _in_flight: asyncio.Task[None] | None = field(default=None, repr=False)
    # Set once the batch in flight has taken its writes out of the projection's memory.
    _released: asyncio.Event | None = field(default=None, repr=False)
    # Set once the batch in flight has committed (its acknowledgements may still be going out).
    _committed: asyncio.Event | None = field(default=None, repr=False)
    # Every batch task not ended yet (the one in flight, and any still acknowledging).
    _batches: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    # The positions the batch in flight moves its aggregates to (not committed yet).
    _moving: dict[str, int] = field(default_factory=dict, repr=False)
    # The positions key the last transaction used (a batch applied ahead reads under it).
    _key: str | None = field(default=None, repr=False)

    @property
    def durable(self) -> str:
        return durable_name(self.service, self.name, self.producer, self.stream_type)

    async def _tracking(self, conn: asyncpg.Connection) -> tuple[str, str | None]:
        """This transaction's key of the aggregate positions and its projection version (see
        ``version_of``)."""
        if self.version_of is None:
            return self.durable, None
        await conn.execute(f"LOCK TABLE {self.schema}.consumer_positions IN ROW SHARE MODE")
        version = await self.version_of(conn)
        self._key = positions_key(self.durable, version)
        return self._key, version

    @property
    def subject(self) -> str:
        return f"{self.producer}.events.{self.stream_type or '*'}.>".replace("*.>", ">")

    @property
    def stream(self) -> str:
        return event_stream_name(self.producer)

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=self.subject,
            ack_wait=30.0,
            # Deliveries are bounded by this runtime (it counts handler failures, not the
            # redeliveries used to wait for an aggregate's earlier event).
            max_deliver=-1,
            max_ack_pending=20_000,
            description=f"{self.service}: {self.name} projection of {self.producer} events",
        )

    async def ensure_durable(self, js: JetStreamContext) -> None:
        """Create the durable consumer, or bring its config up to date.

        JetStream keeps a durable's config across redeploys; without this a changed filter or
        ack wait would silently not apply.
        """
        desired = self.consumer_config()
        try:
            info = await js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            await js.add_consumer(self.stream, desired)
            return
        current = info.config
        drift = {
            k: (getattr(current, k), getattr(desired, k))
            for k in ("filter_subject", "ack_wait", "max_ack_pending", "description")
            if getattr(current, k) != getattr(desired, k)
        }
        if drift:
            log.info("updating durable consumer config", durable=self.durable, drift=str(drift))
            await js.add_consumer(self.stream, desired)

    def register(self, broker: NatsBroker) -> None:
        """Attach this consumer to the FastStream broker as a manual-ack batch pull subscriber.

        Batches are pipelined: while one batch's transaction runs (mostly waiting on Postgres),
        the next is fetched and decoded. One transaction at a time, in delivery order.
        """

        fix_nats_client()

        async def on_batch(body: Any, message: Any = Context("message")) -> None:
            await self.submit(list(message.raw_message))

        broker.subscriber(
            self.subject,
            stream=JStream(self.stream, declare=False),
            durable=self.durable,
            config=self.consumer_config(),
            pull_sub=PullSub(batch_size=self.batch_size, timeout=self.fetch_timeout, batch=True),
            ack_policy=AckPolicy.MANUAL,
            decoder=_no_decode,
            title=f"{self.durable}:consume",
            description=f"{self.name} projection: {', '.join(sorted(self.handlers)) or 'all'}",
        )(on_batch)

    async def submit(self, msgs: list[Msg]) -> None:
        """Take one delivered batch: decode it while the batch before is still in its transaction,
        and have its own transaction start once that one has ended.

        With a projection that applies batches ahead, the batch is applied ahead as soon as the
        one before has released the projection's memory, and this returns then (its transaction
        waits, in a task of its own, for the one before to commit): the next batch is fetched and
        decoded while the one before is still being written. Otherwise this returns once the
        batch before has ended. Either way at most one transaction runs, in delivery order.
        """
        items = await self._decoded(msgs)
        ahead, before, before_committed = None, None, None
        if self.ahead is None:
            await self.drain()
        else:
            ahead = await self._apply_ahead(items)
            before, before_committed = self._in_flight, self._committed
        self._released, self._committed = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            self._after(before, before_committed, msgs, items, ahead, self._released, self._committed),
            name=f"{self.durable}:batch",
        )
        self._in_flight = task
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _after(self, before: asyncio.Task[None] | None, before_committed: asyncio.Event | None,
                     msgs: list[Msg], items: list[_Item], ahead: _Ahead | None, released: asyncio.Event,
                     committed: asyncio.Event) -> None:
        if before is not None:
            # Once the batch before has committed, or ended some other way: its acknowledgements
            # (~7 ms of Python for 4,000 messages) go out while this transaction runs.
            await _set_or_ended(before_committed, before)
        await self._settled(msgs, items, ahead, released, committed)

    async def _apply_ahead(self, items: list[_Item]) -> _Ahead | None:
        in_flight, released, projection = self._in_flight, self._released, self.ahead
        if in_flight is None or released is None or projection is None:
            return None
        await _set_or_ended(released, in_flight)
        ordered = [i for i in items if i.envelope is not None]
        if not released.is_set() or not ordered:
            return None  # the batch before failed before writing, or there is nothing to apply
        if not projection.applies_ahead(self._handled(ordered)):
            return None
        epoch = projection.memory_epoch()
        try:
            async with self.db.connection() as conn:
                stream_ids = sorted({i.envelope.stream_id for i in ordered if i.envelope})
                # Under the key the last transaction used. After a swap the transaction reads the
                # new version's, and the projection does not adopt what it applied on the old one.
                rows = await conn.fetch(
                    f"SELECT stream_id, stream_version FROM {self.schema}.consumer_positions "
                    "WHERE consumer = $1 AND stream_id = ANY($2::text[])",
                    self._key or self.durable,
                    stream_ids,
                )
                positions = {sid: 0 for sid in stream_ids}
                positions.update((r["stream_id"], r["stream_version"]) for r in rows)
                # The batch in flight has moved some of them, uncommitted yet.
                positions.update((sid, v) for sid, v in self._moving.items() if sid in positions)
                sorted_ = self._sort(ordered, dict(positions))
                await projection.apply_ahead(conn, self._handled(sorted_.applied))
        except Exception as exc:  # whatever it was, the transaction will apply the batch as usual
            projection.abandon()
            log.info("batch not applied ahead", durable=self.durable, error=f"{type(exc).__name__}: {exc}")
            return None
        return _Ahead(positions, sorted_, epoch)

    def _handled(self, items: list[_Item]) -> list[tuple[Envelope, DomainEvent]]:
        """The events among ``items`` a handler of this consumer takes."""
        return [(i.envelope, i.event) for i in items
                if i.envelope is not None and i.event is not None and i.envelope.event_type in self.handlers]

    def bind_js(self, js: JetStreamContext) -> None:
        self._js = js

    async def drain(self) -> None:
        """Wait for the batch in flight (at stop, and before the next batch's transaction)."""
        if self._in_flight is not None:
            # Shielded: a broker stopping cancels the waiting subscriber, which must not cancel
            # the batch's transaction halfway; Runtime.stop drains it afterwards. Batches before
            # it may still be acknowledging.
            await asyncio.shield(asyncio.wait(self._batches | {self._in_flight}))
            self._in_flight = None

    async def _settled(self, msgs: list[Msg], items: list[_Item], ahead: _Ahead | None = None,
                       released: asyncio.Event | None = None, committed: asyncio.Event | None = None) -> None:
        try:
            await self._process(items, ahead, released, committed)
        except Exception as exc:
            # Never leave a batch to the 30 s ack wait (or to FastStream, which only logs):
            # whatever was not settled comes back after a pause.
            log.error("batch failed", durable=self.durable, error=f"{type(exc).__name__}: {exc}")
            for m in msgs:
                with contextlib.suppress(Exception):  # already acknowledged ones refuse
                    await m.nak(delay=self.retry_base_delay * 4)

    # -- processing -----------------------------------------------------------------------

    def _decode(self, msg: Msg) -> _Item:
        item = _Item(msg)
        try:
            item.envelope = Envelope.model_validate_json(msg.data)
        except ValidationError as exc:
            item.error = f"malformed envelope: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}"
            return item
        if item.envelope.event_type in self.handlers:
            try:
                item.event = self.contracts.decode(item.envelope)
            except (UnknownEvent, ValidationError) as exc:
                item.error = f"cannot read {item.envelope.event_type}: {exc}"
        elif item.envelope.event_type not in self.contracts:
            item.error = f"unknown event type {item.envelope.event_type!r} from {self.producer}"
        return item

    def _prepare(self, msgs: Sequence[Msg]) -> list[_Item]:
        return [self._decode(m) for m in msgs]

    async def _decoded(self, msgs: Sequence[Msg]) -> list[_Item]:
        """``_prepare``, handing the event loop back every few dozen messages: decoding a whole
        batch at once held it for 30-160 ms, and the batch in its transaction waited that long
        for each statement's reply."""
        items: list[_Item] = []
        for start in range(0, len(msgs), self.decode_chunk):
            if start:
                await asyncio.sleep(0)
            items += self._prepare(msgs[start:start + self.decode_chunk])
        return items

    async def process(self, msgs: Sequence[Msg]) -> BatchOutcome:
        """Apply one delivered batch; acknowledges, delays or dead-letters every message."""
        return await self._process(self._prepare(msgs))

    async def _process(self, items: list[_Item], ahead: _Ahead | None = None,
                       released: asyncio.Event | None = None, committed: asyncio.Event | None = None) -> BatchOutcome:
        outcome = BatchOutcome()
        for item in items:
            if item.envelope is None:  # not even an envelope: nothing to wait for
                await self._dead_letter(item, item.error or "", attempts=0)
                outcome.dead_lettered += 1
        ordered = [i for i in items if i.envelope is not None]
        if not ordered:
            return outcome
        try:
            result = await self._apply(ordered, ahead=ahead, released=released)
        except _HandlerFailed:
            # Some handler raised: isolate it by applying the batch one event per transaction.
            for i in ordered:
                await self._apply_single(i, outcome)
            return outcome
        except _TRANSIENT as exc:
            # Infrastructure trouble: nothing was committed; let the whole batch come back later.
            log.warning("batch not applied", durable=self.durable, error=str(exc))
            for i in ordered:
                await i.msg.nak(delay=self.retry_base_delay * 4)
            outcome.deferred += len(ordered)
            return outcome
        poisoned = result[3]
        if committed is not None and not poisoned:
            # The next batch's transaction may begin; dead-lettering a poisoned event moves its
            # aggregate in a transaction of its own, which must come first.
            committed.set()
        await self._settle(result, outcome)
        return outcome

    async def _settle(self, result: _Applied, outcome: BatchOutcome) -> None:
        applied, duplicates, deferred, poisoned = result
        await self._ack_all(applied + duplicates)
        for i in deferred:
            await i.msg.nak(delay=self.gap_delay)
        if self._waiting or deferred:
            self._watch_gaps(applied, deferred)
        for i in poisoned:
            await self._dead_letter(i, i.error or "", attempts=0)
        outcome.applied += len(applied)
        outcome.duplicates += len(duplicates)
        outcome.deferred += len(deferred)
        outcome.dead_lettered += len(poisoned)

    def _watch_gaps(self, applied: list[_Item], deferred: list[_Item]) -> None:
        now = time.monotonic()
        for i in applied:
            assert i.envelope is not None
            self._waiting.pop(i.envelope.stream_id, None)
        for i in deferred:
            assert i.envelope is not None
            since, alerted = self._waiting.setdefault(i.envelope.stream_id, [now, 0.0])
            if now - since >= self.gap_alert_after and now - alerted >= self.gap_alert_after:
                self._waiting[i.envelope.stream_id][1] = now
                log.error(
                    "aggregate stalled: an earlier event has not arrived",
                    durable=self.durable,
                    stream_id=i.envelope.stream_id,
                    waiting_version=i.envelope.stream_version,
                    waiting_seconds=round(now - since, 1),
                )

    def stalled(self) -> dict[str, float]:
        """Aggregates waiting for an earlier event, and for how many seconds."""
        now = time.monotonic()
        return {sid: now - since for sid, (since, _) in self._waiting.items()}

    async def _apply(self, items: list[_Item], *, blocked: set[str] | None = None, ahead: _Ahead | None = None,
                     released: asyncio.Event | None = None) -> _Applied:
        """One transaction: apply what is next for its aggregate, sort out the rest.

        Returns (applied, duplicates, deferred, poisoned). A poisoned item (an envelope this code
        cannot read) is dead-lettered only once it is next for its aggregate: dead-lettering
        moves the aggregate past it, which must not skip its predecessors.
        """
        s = self.schema
        stream_ids = sorted({i.envelope.stream_id for i in items if i.envelope})
        async with self.db.transaction() as conn:
            key, version = await self._tracking(conn)
            # Known aggregates are locked here; one seen for the first time has no row to lock
            # and is inserted at the end: a replica that inserted it meanwhile makes that insert
            # fail, and the batch comes back (_Raced) to find it applied.
            rows = await conn.fetch(
                f"SELECT stream_id, stream_version FROM {s}.consumer_positions "
                "WHERE consumer = $1 AND stream_id = ANY($2::text[]) ORDER BY stream_id FOR UPDATE",
                key,
                stream_ids,
            )
            stored = {r["stream_id"]: r["stream_version"] for r in rows}
            positions = {sid: stored.get(sid, 0) for sid in stream_ids}
            tx = ProjectionTx(conn, released, version, self.durable)
            if ahead is not None and self.ahead is not None:
                # Applied ahead against these very positions, on memory still Postgres's: keep it.
                if positions == ahead.positions and await self.ahead.adopt(tx, ahead.epoch):
                    done = ahead.sorted
                else:
                    self.ahead.abandon()
                    ahead = None
            if ahead is None:
                done = self._sort(items, positions, blocked)
                for item in done.applied:
                    env = item.envelope
                    assert env is not None
                    handler = self.handlers.get(env.event_type)
                    if handler is not None and item.event is not None:
                        bind_event_context(env)
                        try:
                            await handler(tx, env, item.event)
                        except _DB_TRANSIENT:
                            raise
                        except Exception as exc:
                            raise _HandlerFailed(item, exc) from exc
            applied, duplicates, deferred, poisoned, moved = (
                done.applied, done.duplicates, done.deferred, done.poisoned, done.moved)
            self._moving = moved
            if applied:
                tx.through = applied[-1].seq  # what the checkpoint below moves to
            try:
                await tx.flush()
            except _DB_TRANSIENT:
                raise
            except asyncpg.PostgresError as exc:
                # A handler's queued write failed. Applied one at a time (as after any handler
                # failure) the culprit is found, charged an attempt and in the end dead-lettered.
                raise _HandlerFailed(applied[-1] if applied else items[0], exc) from exc
            known = {sid: v for sid, v in moved.items() if sid in stored}
            if known:
                await conn.execute(
                    f"UPDATE {s}.consumer_positions p SET stream_version = m.v "
                    "FROM unnest($2::text[], $3::int[]) AS m(sid, v) "
                    "WHERE p.consumer = $1 AND p.stream_id = m.sid",
                    key,
                    list(known),
                    list(known.values()),
                )
            if len(known) < len(moved):
                first_seen = {sid: v for sid, v in moved.items() if sid not in stored}
                try:
                    await conn.execute(
                        f"INSERT INTO {s}.consumer_positions (consumer, stream_id, stream_version) "
                        "SELECT $1, unnest($2::text[]), unnest($3::int[])",
                        key,
                        list(first_seen),
                        list(first_seen.values()),
                    )
                except asyncpg.UniqueViolationError as exc:
                    raise _Raced(f"another replica applied one of {len(first_seen)} new aggregates") from exc
            if applied or duplicates:
                # A duplicate is recorded too: its aggregate's position says its effect is in the
                # projection, put there by this consumer before or, after a rebuild's swap, by the
                # replay (which then has no inbox of the events the live consumer had not seen).
                await conn.execute(
                    f"INSERT INTO {s}.consumer_inbox (consumer, event_id) "
                    "SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
                    self.durable,
                    [i.envelope.event_id for i in (*applied, *duplicates) if i.envelope],
                )
            if applied:
                await conn.execute(
                    f"INSERT INTO {s}.consumer_checkpoint (consumer, stream_sequence) "
                    "VALUES ($1, $2) ON CONFLICT (consumer) DO UPDATE SET "
                    f"stream_sequence = GREATEST({s}.consumer_checkpoint.stream_sequence, "
                    "EXCLUDED.stream_sequence), updated_at = now()",
                    self.durable,
                    # The last applied in delivery order: a pull batch comes in stream order
                    # (redeliveries first), and GREATEST keeps the mark monotonic. Parsing every
                    # message's metadata for an exact max was ~14% of the batch time.
                    applied[-1].seq,
                )
        return applied, duplicates, deferred, poisoned

    @staticmethod
    def _sort(items: list[_Item], positions: dict[str, int], blocked: set[str] | None = None) -> _Sorted:
        """Which of the batch's events are next for their aggregate (applied, in order), already
        applied, early (deferred) or unreadable when next (poisoned); ``positions`` is moved on."""
        done = _Sorted()
        blocked = set(blocked or ())
        for item in _versions_in_order(items):
            env = item.envelope
            assert env is not None
            sid = env.stream_id
            current = positions[sid]
            if sid in blocked:
                done.deferred.append(item)
            elif env.stream_version <= current:
                done.duplicates.append(item)
            elif env.stream_version == current + 1:
                if item.error is not None:
                    done.poisoned.append(item)
                    blocked.add(sid)  # its successors wait until it is dead-lettered
                    continue
                positions[sid] = done.moved[sid] = env.stream_version
                done.applied.append(item)
            else:
                blocked.add(sid)
                done.deferred.append(item)
        return done

    async def _apply_single(self, item: _Item, outcome: BatchOutcome) -> None:
        try:
            result = await self._apply([item])
        except _HandlerFailed as failed:
            await self._record_failure(item, failed.cause, outcome)
            return
        except _TRANSIENT:
            await item.msg.nak(delay=self.retry_base_delay * 4)
            outcome.deferred += 1
            return
        await self._settle(result, outcome)

    async def _record_failure(self, item: _Item, exc: BaseException, outcome: BatchOutcome) -> None:
        env = item.envelope
        assert env is not None
        reason = f"{type(exc).__name__}: {exc}"
        async with self.db.transaction() as conn:
            attempts = await conn.fetchval(
                f"INSERT INTO {self.schema}.consumer_failures (consumer, event_id, attempts, last_error) "
                "VALUES ($1, $2, 1, $3) ON CONFLICT (consumer, event_id) DO UPDATE SET "
                f"attempts = {self.schema}.consumer_failures.attempts + 1, "
                "last_error = EXCLUDED.last_error, updated_at = now() RETURNING attempts",
                self.durable,
                env.event_id,
                reason,
            )
        log.warning(
            "handler failed",
            durable=self.durable,
            event_id=str(env.event_id),
            event_type=env.event_type,
            attempt=attempts,
            error=reason,
            trace="".join(traceback.format_exception(exc, limit=-3)),
        )
        if attempts >= self.max_deliveries:
            await self._dead_letter(item, reason, attempts=attempts)
            outcome.dead_lettered += 1
        else:
            outcome.failed += 1
            await item.msg.nak(delay=self.retry_base_delay * 2 ** (attempts - 1))

    async def _dead_letter(self, item: _Item, reason: str, *, attempts: int) -> None:
        """Publish to the dead-letter stream, then let the aggregate move past the event."""
        js = self._js
        if js is None:
            raise RuntimeError("consumer not bound to JetStream")
        msg = item.msg
        env = item.envelope
        key = str(env.event_id) if env else f"seq-{item.seq}"
        headers = {
            "Nats-Msg-Id": f"{self.durable}:{key}",
            # One line: a CR/LF inside a header value would corrupt the NATS message.
            "Tuanlian-Reason": " ".join(reason.split())[:1000],
            "Tuanlian-Consumer": self.durable,
            "Tuanlian-Original-Subject": msg.subject,
            "Tuanlian-Original-Sequence": str(item.seq),
            "Tuanlian-Attempts": str(attempts),
        }
        await js.publish(dlq_subject(self.service, self.name), msg.data, headers=headers)
        log.error(
            "event dead-lettered",
            durable=self.durable,
            reason=reason,
            subject=msg.subject,
            sequence=item.seq,
            event_id=key,
        )
        if env is not None:
            s = self.schema
            async with self.db.transaction() as conn:
                await conn.execute(
                    f"INSERT INTO {s}.consumer_positions (consumer, stream_id, stream_version) "
                    "VALUES ($1, $2, $3) ON CONFLICT (consumer, stream_id) DO UPDATE SET "
                    f"stream_version = GREATEST({s}.consumer_positions.stream_version, $3)",
                    (await self._tracking(conn))[0],
                    env.stream_id,
                    env.stream_version,
                )
                await conn.execute(
                    f"INSERT INTO {s}.consumer_inbox (consumer, event_id, outcome) VALUES ($1, $2, "
                    "'dead_lettered') ON CONFLICT (consumer, event_id) DO UPDATE SET "
                    "outcome = 'dead_lettered'",
                    self.durable,
                    env.event_id,
                )
                await conn.execute(
                    f"UPDATE {s}.consumer_failures SET dead_lettered = true "
                    "WHERE consumer = $1 AND event_id = $2",
                    self.durable,
                    env.event_id,
                )
        await msg.term()

    @staticmethod
    async def _ack_all(items: list[_Item]) -> None:
        # An ack only buffers a publish: awaiting them in turn avoids a Task per message, which
        # was ~23% of batch time under gather.
        for i in items:
            await i.msg.ack()


async def _set_or_ended(event: asyncio.Event | None, task: asyncio.Task[None]) -> None:
    """Wait until ``event`` is set or ``task`` has ended, whichever comes first (a cancelled
    wait does not cancel the task)."""
    if event is None:
        await asyncio.wait({task})
        return
    setting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({setting, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        setting.cancel()


def _versions_in_order(items: list[_Item]) -> list[_Item]:
    """The batch with each aggregate's events sorted by version, in the slots they came in.

    Redelivery can hand an aggregate's events over out of order inside one batch. Taken as they
    come, the first one that is early would hold back the rest, including the one that is next;
    and redelivered together in the same order they would be held back again, indefinitely.
    The interleaving of different aggregates is kept as delivered. A repeat of a version already
    in the batch (a relay re-published it) keeps its own slot and takes no other: sorted in with
    the rest, an early event's repeat late in the batch pushed that aggregate's later events to
    later slots, past other aggregates' events they came before (a transfer past the credits
    after it).
    """
    slots: dict[str, list[int]] = {}
    seen: set[tuple[str, int]] = set()
    for index, item in enumerate(items):
        env = item.envelope
        assert env is not None
        if (env.stream_id, env.stream_version) in seen:
            continue
        seen.add((env.stream_id, env.stream_version))
        slots.setdefault(env.stream_id, []).append(index)
    ordered = list(items)
    for indexes in slots.values():
        if len(indexes) > 1:
            by_version = sorted((items[i] for i in indexes), key=_version_of)
            for index, item in zip(indexes, by_version, strict=True):
                ordered[index] = item
    return ordered


def _version_of(item: _Item) -> int:
    assert item.envelope is not None
    return item.envelope.stream_version


_Applied = tuple[list[_Item], list[_Item], list[_Item], list[_Item]]


class _HandlerFailed(Exception):
    def __init__(self, item: _Item, cause: BaseException) -> None:
        self.item = item
        self.cause = cause
        super().__init__(str(cause))


async def _no_decode(msg: Any) -> Any:
    # The runtime validates envelopes itself (and dead-letters what fails); FastStream's JSON
    # decoding of every body would be wasted work.
    return None
