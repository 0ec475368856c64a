"""Documents generated from the code (committed, and checked in tests so they cannot rot)."""

from __future__ import annotations

import json

from tuanlian.shared.service import ServiceSpec, asyncapi_document, build_runtime
from tuanlian.shared.settings import Settings


def asyncapi_json(spec: ServiceSpec) -> str:
    runtime = build_runtime(
        spec, Settings(database_url="postgresql://docs@localhost/docs", nats_url="nats://localhost:4222")
    )
    return json.dumps(asyncapi_document(runtime), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
