"""JetStream streams: each is declared by the service that owns it, and only by that service.

A producer owns ``<PRODUCER>`` (subjects ``<producer>.events.>``), the audit record of its events,
kept by limits rather than by interest so that a new consumer or an auditor can replay from the
beginning. A consuming service owns its dead-letter stream ``DLQ_<CONSUMER>``. Consumers bind to
streams by name and never redeclare them (a subscriber's ``stream="…"`` string would).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from tuanlian.shared.nats_client import fix_nats_client

# Re-publishing the same event id inside this window is dropped by JetStream itself; beyond it
# the consumers' inbox still makes the duplicate harmless. Ten minutes covers a relay restart
# while keeping the server's dedup map small at national publish rates.
DUPLICATE_WINDOW_SECONDS = 600.0


def event_stream_name(producer: str) -> str:
    return producer.upper()


def event_subjects(producer: str) -> str:
    return f"{producer}.events.>"


def dlq_stream_name(consumer_service: str) -> str:
    return f"DLQ_{consumer_service.upper()}"


def dlq_subject(consumer_service: str, consumer: str) -> str:
    return f"dlq.{consumer_service}.{consumer}"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    description: str
    max_age_seconds: float = 0  # 0 = keep forever (the audit record)

    def config(self, storage: str, replicas: int) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=self.subjects,
            description=self.description,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE if storage == "file" else StorageType.MEMORY,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_age=self.max_age_seconds,
        )


def producer_stream(producer: str) -> StreamSpec:
    return StreamSpec(
        name=event_stream_name(producer),
        subjects=[event_subjects(producer)],
        description=f"Events published by the {producer} service (its audit record)",
    )


def dlq_stream(consumer_service: str) -> StreamSpec:
    return StreamSpec(
        name=dlq_stream_name(consumer_service),
        subjects=[f"dlq.{consumer_service}.>"],
        description=f"Events the {consumer_service} service could not process, with the reason",
    )


async def declare_stream(
    js: JetStreamContext, spec: StreamSpec, *, storage: str = "file", replicas: int = 1
) -> None:
    """Create the stream, or bring an existing one to this configuration."""
    config = spec.config(storage, replicas)
    try:
        await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


async def wait_for_stream(js: JetStreamContext, name: str, *, timeout: float = 60.0) -> None:
    """Wait until the owning service has declared ``name`` (consumers never declare it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await js.stream_info(name)
            return
        except NotFoundError:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"stream {name} does not exist: start the service that owns it first"
                ) from None
            await asyncio.sleep(0.5)


def nats_servers(url: str) -> list[str]:
    """``TUANLIAN_NATS_URL`` may list a cluster's servers, comma-separated."""
    return [u.strip() for u in url.split(",") if u.strip()]


async def connect_nats(url: str, *, name: str, timeout: float = 5.0) -> NATS:
    """Connect, failing fast with one clear line when no server is there.

    nats-py retries an unreachable server for ever when reconnects are allowed (as they must be
    once running), so reachability is probed first with a plain TCP connect: one answering
    server of the list is enough, nats-py learns the rest of the cluster from it.
    """
    fix_nats_client()
    servers = nats_servers(url)
    errors = []
    for server in servers:
        parsed = urlsplit(server)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout
            )
            writer.close()
            break
        except (OSError, TimeoutError) as exc:
            errors.append(f"{server}: {exc or type(exc).__name__}")
    else:
        raise ConnectionError(f"NATS is not reachable at {'; '.join(errors) or url}")
    try:
        return await nats.connect(
            servers,
            name=name,
            connect_timeout=timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )
    except Exception as exc:  # nats raises several unrelated types here
        raise ConnectionError(f"NATS is not reachable at {url}: {exc or type(exc).__name__}") from exc
