"""Container healthcheck for the Tuanlian image: ``GET /healthz`` on the service's own port.

One image runs all four services, so the port is not known when the image is built. This script
finds the service either from its first argument (``python /app/healthcheck.py wishes``) or from
the ``tuanlian serve <service>`` process running in the container, and takes the port from the
same settings the service reads (``TUANLIAN_<SERVICE>_PORT``, else the default port).

Exit status 0 = healthy, 1 = unhealthy (Docker's HEALTHCHECK contract). Standard library only,
apart from the settings module: the slim base image has no curl or wget.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

TIMEOUT_SECONDS = 4.0


def _services() -> dict[str, int]:
    from tuanlian.shared.settings import DEFAULT_PORTS

    return dict(DEFAULT_PORTS)


def served_service(known: set[str]) -> str | None:
    """The ``<service>`` of a ``tuanlian serve <service>`` process in this container, if any."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for i, arg in enumerate(argv[:-1]):
            if arg == "serve" and argv[i + 1] in known:
                return argv[i + 1]
    return None


def main(argv: list[str]) -> int:
    known = _services()
    service = argv[1] if len(argv) > 1 else served_service(set(known))
    if service not in known:
        print(f"healthcheck: no Tuanlian service to check (got {service!r})", file=sys.stderr)
        return 1
    from tuanlian.shared.settings import Settings

    port = Settings().port_of(service)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            ok = 200 <= response.status < 300
    except Exception as exc:  # connection refused, timeout, HTTP 5xx (HTTPError) …
        print(f"healthcheck: {service} at {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
