"""Event envelope, event contracts and upcasting.

Every fact a service records travels in an :class:`Envelope`: the metadata an auditor needs
(who, where in the org tree, why, in which order) around a payload whose shape is a versioned
contract owned by the producing service. Contracts are small frozen pydantic models registered
in a :class:`ContractRegistry`; old payload versions are upcast on read, never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Container, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Union, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from uuid_utils.compat import uuid7


def new_id() -> UUID:
    """A time-ordered UUID (v7): sortable, index-friendly, unique without coordination."""
    return uuid7()


def utcnow() -> datetime:
    return datetime.now(UTC)


class DomainEvent(BaseModel):
    """Base of every event payload contract.

    Subclasses set ``event_type`` (stable across versions), ``schema_version`` (the version this
    class describes) and ``stream_type`` (the kind of aggregate that emits it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    stream_type: ClassVar[str]


class Envelope(BaseModel):
    """What is stored and published for every event (事件信封)."""

    model_config = ConfigDict(frozen=True)

    event_id: UUID
    event_type: str
    schema_version: int = 1
    producer: str
    stream_type: str
    stream_id: str
    stream_version: int = Field(ge=1)
    occurred_at: datetime
    recorded_at: datetime | None = None
    actor: str | None = None
    org_path: str | None = None
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    payload: dict[str, Any]
    global_position: int | None = None
    prev_hash: str | None = None
    hash: str | None = None

    @property
    def subject(self) -> str:
        return subject_for(self.producer, self.stream_type, self.event_type)

    def chain_hash(self, prev_hash: str | None) -> str:
        """Hash of this event chained to its predecessor in the same stream.

        Covers every field an auditor relies on, in a canonical JSON form, so that changing a
        stored event (or dropping one from the middle of a stream) breaks the chain. Only
        ``recorded_at`` and ``global_position`` are left out: the database assigns them at
        insert, after the hash is computed.
        """
        body = {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "producer": self.producer,
            "stream_type": self.stream_type,
            "correlation_id": str(self.correlation_id) if self.correlation_id else None,
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "stream_id": self.stream_id,
            "stream_version": self.stream_version,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "actor": self.actor,
            "org_path": self.org_path,
            "payload": _canonical_numbers(self.payload),
            "prev": prev_hash,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical_numbers(value: Any) -> Any:
    """Numbers as Postgres ``jsonb`` gives them back, so a hash survives the round trip.

    ``jsonb`` stores numbers as decimals: ``1e+16`` comes back as ``10000000000000000`` and
    ``-0.0`` as ``0.0``. Hashing every integral float as the integer it spells keeps the hash of
    a stored event equal to the hash computed before it was written.
    """
    if isinstance(value, float):
        if value.is_integer():
            return int(Decimal(repr(value)))
        return value
    if isinstance(value, dict):
        return {k: _canonical_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_numbers(v) for v in value]
    return value


def subject_for(producer: str, stream_type: str, event_type: str) -> str:
    """NATS subject of an event: ``<producer>.events.<stream_type>.<event_type>``."""
    return f"{producer}.events.{stream_type}.{event_type}"


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEvent(LookupError):
    """An event type or version this code has no contract for."""


class ContractRegistry:
    """The versioned event contracts one producer publishes, with their upcasters.

    Reading an old envelope walks the chain of upcasters from its schema version up to the
    version of the registered class, so code only ever handles the newest shape.
    """

    def __init__(self, producer: str) -> None:
        self.producer = producer
        self._classes: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._typed: TypeAdapter[Envelope] | None = None  # see read_json

    def register(self, cls: type[DomainEvent]) -> type[DomainEvent]:
        if cls.event_type in self._classes:
            raise ValueError(f"event type {cls.event_type} registered twice")
        self._classes[cls.event_type] = cls
        self._typed = None
        return cls

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return decorate

    def __contains__(self, event_type: str) -> bool:
        return event_type in self._classes

    def types(self) -> list[type[DomainEvent]]:
        return list(self._classes.values())

    def stream_types(self) -> set[str]:
        return {c.stream_type for c in self._classes.values()}

    def decode(self, envelope: Envelope) -> DomainEvent:
        """The payload of ``envelope`` as an instance of its newest contract."""
        cls = self._classes.get(envelope.event_type)
        if cls is None:
            raise UnknownEvent(f"{self.producer} has no event type {envelope.event_type!r}")
        payload = envelope.payload  # validation does not change it; an upcaster gets a copy
        version = envelope.schema_version
        if version > cls.schema_version:
            raise UnknownEvent(
                f"{envelope.event_type} v{version} is newer than this code (v{cls.schema_version})"
            )
        while version < cls.schema_version:
            step = self._upcasters.get((envelope.event_type, version))
            if step is None:
                raise UnknownEvent(f"no upcaster for {envelope.event_type} v{version}")
            payload = step(dict(payload))
            version += 1
        return cls.model_validate(payload)

    def read_json(self, data: bytes | str, wanted: Container[str]) -> tuple[Envelope, DomainEvent | None]:
        """An envelope off the bus and, if its type is ``wanted``, its event at its newest
        contract (else None), for a reader that applies events and keeps nothing of them.

        A payload already at its class's version is validated with its envelope in one pass, an
        envelope per event type whose ``payload`` is the event: a replay decoded each event twice
        (the envelope with its payload as a dict, then the dict as the event), ~30% more of its
        applier's time than this. So the envelope returned may hold the event, not a dict, as
        its payload: never store, publish or hash it (:meth:`chain_hash` reads the dict). Older
        versions, types this registry does not know and anything the typed pass refuses go the
        usual way (:meth:`decode`, if wanted), which upcasts or raises the usual errors."""
        if self._typed is None and self._classes:
            self._typed = _typed_envelopes(self._classes.values())
        if self._typed is not None:
            try:
                env = self._typed.validate_json(data)
            except ValidationError:
                pass
            else:
                event = cast(DomainEvent, env.payload)  # a typed envelope's payload is its event
                if env.schema_version == event.schema_version:
                    return env, (event if env.event_type in wanted else None)
        env = Envelope.model_validate_json(data)
        return env, (self.decode(env) if env.event_type in wanted else None)


def _typed_envelopes(classes: Iterable[type[DomainEvent]]) -> TypeAdapter[Envelope]:
    """One envelope model per event type, its payload typed, told apart by ``event_type``."""
    typed: list[Any] = [create_model(f"{cls.__name__}Envelope", __base__=Envelope,
                                     event_type=(cast(Any, Literal)[cls.event_type], ...), payload=(cls, ...))
                        for cls in classes]
    if len(typed) == 1:  # a union of one is no union: pydantic wants a discriminator's choices
        return TypeAdapter(typed[0])
    union: Any = Annotated[Union[tuple(typed)], Field(discriminator="event_type")]  # noqa: UP007
    return TypeAdapter(union)


def short_id() -> str:
    """A compact random id for aggregates whose ids appear in org paths and URLs (16 chars)."""
    return secrets.token_hex(8)
