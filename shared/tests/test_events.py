"""Unit tests: the envelope, its hash chain, the contract registry and upcasting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import platform_support as ps
import pytest
from pydantic import ValidationError
from tuanlian.shared.events import (
    ContractRegistry,
    DomainEvent,
    Envelope,
    UnknownEvent,
    new_id,
    subject_for,
)

T0 = datetime(2024, 3, 5, 8, 30, 15, 123456, tzinfo=UTC)


def _env(**changes: Any) -> Envelope:
    base: dict[str, Any] = {
        "event_id": UUID("01900000-0000-7000-8000-000000000001"),
        "event_type": "thing.created",
        "schema_version": 1,
        "producer": "demo",
        "stream_type": "thing",
        "stream_id": "t-1",
        "stream_version": 1,
        "occurred_at": T0,
        "actor": "cadre:7",
        "org_path": "1.2.3",
        "payload": {"name": "团支部", "nested": {"b": 2, "a": [1, 2]}},
    }
    base.update(changes)
    return Envelope(**base)


# -- envelope ----------------------------------------------------------------------------------


def test_subject_names_producer_stream_type_and_event_type() -> None:
    assert _env().subject == "demo.events.thing.thing.created"
    assert subject_for("contacts", "youth", "youth.linked") == "contacts.events.youth.youth.linked"


def test_envelope_is_frozen_and_validates_version() -> None:
    env = _env()
    with pytest.raises(ValidationError):
        env.stream_version = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        _env(stream_version=0)


def test_envelope_json_round_trip_keeps_everything() -> None:
    env = _env(correlation_id=new_id(), causation_id=new_id(), global_position=42, hash="h")
    again = Envelope.model_validate_json(env.model_dump_json())
    assert again == env


def test_new_ids_are_time_ordered_v7() -> None:
    ids = [new_id() for _ in range(200)]
    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


# -- hash chain --------------------------------------------------------------------------------


def test_chain_hash_is_deterministic_and_ignores_key_order() -> None:
    a = _env(payload={"x": 1, "y": {"p": 1, "q": 2}})
    b = _env(payload={"y": {"q": 2, "p": 1}, "x": 1})
    assert a.chain_hash(None) == b.chain_hash(None)
    assert len(a.chain_hash(None)) == 64


def test_chain_hash_is_independent_of_the_timezone_the_instant_is_written_in() -> None:
    beijing = timezone(timedelta(hours=8))
    assert _env().chain_hash("p") == _env(occurred_at=T0.astimezone(beijing)).chain_hash("p")


@pytest.mark.parametrize(
    "change",
    [
        {"event_id": UUID("01900000-0000-7000-8000-000000000002")},
        {"event_type": "thing.renamed"},
        {"schema_version": 2},
        {"stream_id": "t-2"},
        {"stream_version": 2},
        {"occurred_at": T0 + timedelta(microseconds=1)},
        {"actor": "cadre:8"},
        {"org_path": "1.2.4"},
        {"payload": {"name": "团支部", "nested": {"b": 3, "a": [1, 2]}}},
        {"payload": {"name": "团支部", "nested": {"b": 2, "a": [2, 1]}}},
    ],
)
def test_chain_hash_covers_every_audited_field(change: dict[str, Any]) -> None:
    assert _env(**change).chain_hash("prev") != _env().chain_hash("prev")


def test_chain_hash_depends_on_the_predecessor() -> None:
    env = _env()
    assert env.chain_hash(None) != env.chain_hash("0" * 64)
    assert env.chain_hash("a" * 64) != env.chain_hash("b" * 64)


def test_chain_hash_ignores_fields_assigned_at_storage() -> None:
    # The hash is computed before the row exists; position and record time come later.
    assert _env(global_position=9, recorded_at=T0, hash="x", prev_hash="y").chain_hash("p") == (
        _env().chain_hash("p")
    )


# -- contracts ---------------------------------------------------------------------------------


def test_decode_current_version() -> None:
    env = ps.envelope("t-1", 1, ps.ThingCreated(name="一号"))
    event = ps.contracts.decode(env)
    assert isinstance(event, ps.ThingCreated)
    assert event.name == "一号"


def test_decode_upcasts_v1_to_v2() -> None:
    v1 = ps.ThingRenamedV1(name="新名字")
    env = ps.envelope("t-1", 2, v1)
    assert env.schema_version == 1
    event = ps.contracts.decode(env)
    assert isinstance(event, ps.ThingRenamed)
    assert event.new_name == "新名字"
    assert event.reason == "unspecified (v1)"
    assert env.payload == {"name": "新名字"}  # the stored fact is never rewritten


def test_decode_walks_a_chain_of_upcasters() -> None:
    reg = ContractRegistry("x")

    @reg.register
    class Scored(DomainEvent):
        event_type = "scored"
        schema_version = 3
        stream_type = "s"
        points: int
        unit: str

    seen: list[int] = []

    @reg.upcaster("scored", 1)
    def v1(p: dict[str, Any]) -> dict[str, Any]:
        seen.append(1)
        return {"score": p["value"]}

    @reg.upcaster("scored", 2)
    def v2(p: dict[str, Any]) -> dict[str, Any]:
        seen.append(2)
        return {"points": p["score"] * 10, "unit": "deci"}

    env = _env(event_type="scored", schema_version=1, payload={"value": 4})
    event = reg.decode(env)
    assert seen == [1, 2]
    assert event == Scored(points=40, unit="deci")
    assert reg.decode(_env(event_type="scored", schema_version=2, payload={"score": 1})) == Scored(
        points=10, unit="deci"
    )
    assert seen == [1, 2, 2]


def test_decode_refuses_what_it_cannot_read() -> None:
    with pytest.raises(UnknownEvent, match="no event type"):
        ps.contracts.decode(_env(event_type="thing.exploded"))
    with pytest.raises(UnknownEvent, match="newer than this code"):
        ps.contracts.decode(_env(event_type="thing.created", schema_version=2, payload={"name": "x"}))
    reg = ContractRegistry("x")

    @reg.register
    class Two(DomainEvent):
        event_type = "two"
        schema_version = 2
        stream_type = "s"

    with pytest.raises(UnknownEvent, match="no upcaster"):
        reg.decode(_env(event_type="two", schema_version=1, payload={}))


def test_decode_validates_the_payload_against_the_contract() -> None:
    with pytest.raises(ValidationError):
        ps.contracts.decode(_env(event_type="thing.created", payload={"name": "x", "extra": 1}))
    with pytest.raises(ValidationError):
        ps.contracts.decode(_env(event_type="thing.ticked", payload={"n": "not a number"}))


def test_read_json_reads_what_decode_reads() -> None:
    wanted = {t.event_type for t in ps.contracts.types()}
    current = ps.envelope("t-1", 1, ps.ThingCreated(name="一号"))
    env, event = ps.contracts.read_json(current.model_dump_json(), wanted)
    assert event == ps.contracts.decode(current) == ps.ThingCreated(name="一号")
    assert env.payload is event  # envelope and payload validated in one pass
    assert (env.event_id, env.stream_id, env.stream_version, env.occurred_at) == (
        current.event_id, current.stream_id, current.stream_version, current.occurred_at)
    # An older version still goes through its upcaster.
    old = ps.envelope("t-1", 2, ps.ThingRenamedV1(name="新名字"))
    env, event = ps.contracts.read_json(old.model_dump_json().encode(), wanted)
    assert event == ps.contracts.decode(old)
    assert isinstance(event, ps.ThingRenamed) and event.reason == "unspecified (v1)"
    assert env.payload == {"name": "新名字"}
    # Not wanted (a type the registry does not know included): the envelope alone.
    env, event = ps.contracts.read_json(current.model_dump_json(), set())
    assert event is None and env.event_id == current.event_id
    stranger = _env(event_type="thing.exploded", payload={"how": "loudly"})
    env, event = ps.contracts.read_json(stranger.model_dump_json(), wanted)
    assert event is None and env == stranger
    with pytest.raises(UnknownEvent, match="no event type"):
        ps.contracts.read_json(stranger.model_dump_json(), wanted | {"thing.exploded"})
    # What decode refuses, read_json refuses the same way.
    with pytest.raises(ValidationError):
        ps.contracts.read_json(_env(event_type="thing.created", payload={"name": "x", "extra": 1})
                               .model_dump_json(), wanted)
    with pytest.raises(UnknownEvent, match="newer than this code"):
        ps.contracts.read_json(_env(event_type="thing.created", schema_version=2, payload={"name": "x"})
                               .model_dump_json(), wanted)
    with pytest.raises(ValidationError):
        ps.contracts.read_json(b'{"event_type": "thing.created"}', wanted)


def test_read_json_with_one_contract() -> None:
    reg = ContractRegistry("x")

    @reg.register
    class Only(DomainEvent):
        event_type = "only"
        stream_type = "s"
        n: int

    env, event = reg.read_json(_env(event_type="only", payload={"n": 3}).model_dump_json(), {"only"})
    assert event == Only(n=3)
    env, event = reg.read_json(_env().model_dump_json(), {"only"})
    assert event is None and env.payload == _env().payload


def test_registry_refuses_a_type_twice_and_lists_what_it_has() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        ps.contracts.register(ps.ThingCreated)
    assert "thing.created" in ps.contracts
    assert "thing.exploded" not in ps.contracts
    assert ps.contracts.stream_types() == {"thing"}
    assert {t.event_type for t in ps.contracts.types()} == {
        "thing.created",
        "thing.ticked",
        "thing.renamed",
        "thing.broke",
    }


def test_contracts_are_immutable() -> None:
    event = ps.ThingCreated(name="a")
    with pytest.raises(ValidationError):
        event.name = "b"  # type: ignore[misc]


def test_chain_hash_survives_how_postgres_jsonb_spells_numbers() -> None:
    # jsonb gives 1e16 back as 10000000000000000 and -0.0 as 0.0: the hash must not change.
    pairs = [
        ({"x": 1e16}, {"x": 10**16}),
        ({"x": 1.5e20}, {"x": 150000000000000000000}),
        ({"x": [5.0, {"y": -0.0}]}, {"x": [5, {"y": 0.0}]}),
    ]
    for written, read_back in pairs:
        assert _env(payload=written).chain_hash(None) == _env(payload=read_back).chain_hash(None)
    assert _env(payload={"x": 0.5}).chain_hash(None) != _env(payload={"x": 0.25}).chain_hash(None)
    assert _env(payload={"x": 1}).chain_hash(None) != _env(payload={"x": "1"}).chain_hash(None)
