"""Log lines: personal data masked, and the event being handled named on every line."""

from __future__ import annotations

import contextvars
import json
from datetime import UTC, datetime
from uuid import uuid4

import structlog
from structlog.contextvars import bind_contextvars
from tuanlian.shared.events import Envelope, new_id
from tuanlian.shared.logging import bind_event_context, shared_processors


def test_a_line_written_while_handling_an_event_names_it_and_masks_phones() -> None:
    # In a context of its own: no event or id bound by an earlier test.
    contextvars.Context().run(_log_around_an_event)


def _log_around_an_event() -> None:
    # The processors configure_logging installs, rendering to a returned string instead of stderr
    # (configuring structlog globally here would point later tests' loggers at a closed capture).
    log = structlog.wrap_logger(structlog.ReturnLogger(),
                                processors=[*shared_processors(), structlog.processors.JSONRenderer()])
    bind_contextvars(service="testsvc")
    correlation = uuid4()
    env = Envelope(event_id=new_id(), event_type="Thing", producer="p", stream_type="thing", stream_id="t1",
                   stream_version=1, occurred_at=datetime.now(UTC), correlation_id=correlation, payload={})
    before = json.loads(log.info("before any event", note="13812345678"))
    bind_event_context(env)
    during = json.loads(log.info("handling", note="call 13812345678", phone="13812345678"))
    assert "causation_id" not in before
    assert before["note"] == "138****5678"
    assert during["causation_id"] == str(env.event_id)
    assert during["correlation_id"] == str(correlation)
    assert during["note"] == "call 138****5678"
    assert during["phone"] == "***"
    assert during["service"] == "testsvc"


def test_an_error_logged_with_its_exception_carries_the_traceback_masked() -> None:
    log = structlog.wrap_logger(structlog.ReturnLogger(),
                                processors=[*shared_processors(), structlog.processors.JSONRenderer()])
    try:
        raise ValueError("no youth with phone 13812345678")
    except ValueError:
        line = json.loads(log.exception("lookup failed"))
    assert "Traceback (most recent call last)" in line["exception"]
    assert 'raise ValueError("no youth with phone 138****5678")' in line["exception"]
    assert "13812345678" not in json.dumps(line)
