"""The synthetic workload the benchmarks share: one realistic event contract and its envelopes.

``points.awarded`` on a ``youth`` aggregate is the commonest event in the system (every contact,
activity and wish ends up as points), with the metadata a real command carries (actor, org path,
correlation id). Each benchmark uses its own producer name, schema and stream, so they never see
each other's data.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from tuanlian.shared.events import ContractRegistry, DomainEvent, Envelope, new_id
from tuanlian.shared.eventstore import Metadata


class PointsAwarded(DomainEvent):
    event_type = "points.awarded"
    stream_type = "youth"
    activity_id: str
    points: int
    rule_version: int
    reason: str


def contracts(producer: str) -> ContractRegistry:
    registry = ContractRegistry(producer)
    registry.register(PointsAwarded)
    return registry


def event(i: int) -> PointsAwarded:
    return PointsAwarded(
        activity_id=f"act-{i % 977:05d}",
        points=1 + i % 9,
        rule_version=3,
        reason="参加志愿服务活动 (volunteer activity attended)",
    )


def metadata(i: int) -> Metadata:
    return Metadata(
        actor=f"cadre-{i % 113:04d}",
        org_path="cn.gd.sz.nanshan.yuehai.l0042",
        correlation_id=uuid4(),
    )


def aggregate_id(prefix: str, a: int) -> str:
    return f"{prefix}-{a:06d}"


_EPOCH = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def envelope(producer: str, stream_id: str, version: int, i: int) -> Envelope:
    """A stored-looking envelope (hash chain fields filled) for publishing directly to a stream."""
    meta = metadata(i)
    occurred = _EPOCH + timedelta(seconds=i)
    env = Envelope(
        event_id=new_id(),
        event_type=PointsAwarded.event_type,
        schema_version=1,
        producer=producer,
        stream_type=PointsAwarded.stream_type,
        stream_id=stream_id,
        stream_version=version,
        occurred_at=occurred,
        recorded_at=occurred,
        actor=meta.actor,
        org_path=meta.org_path,
        correlation_id=meta.correlation_id,
        payload=event(i).model_dump(mode="json"),
        global_position=i + 1,
        prev_hash=None if version == 1 else "0" * 64,
    )
    return env.model_copy(update={"hash": env.chain_hash(env.prev_hash)})


def envelope_bytes(env: Envelope) -> bytes:
    return env.model_dump_json().encode()


def size_of(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False).encode())
