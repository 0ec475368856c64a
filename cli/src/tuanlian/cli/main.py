"""The ``tuanlian`` command."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from datetime import timedelta
from typing import Any

import typer
from tuanlian.cli.errors import fail
from tuanlian.shared.settings import DEFAULT_PORTS, get_settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Tuanlian (团联): the League's 1+100 system."
)

SERVICES = tuple(DEFAULT_PORTS)

from tuanlian.cli.readmodel_cmds import notify as _notify  # noqa: E402
from tuanlian.cli.readmodel_cmds import wishes as _wishes  # noqa: E402
from tuanlian.cli.scoring_cmds import audit as _audit  # noqa: E402
from tuanlian.cli.scoring_cmds import scoring as _scoring  # noqa: E402

app.add_typer(_audit, name="audit")
app.add_typer(_scoring, name="scoring")
app.add_typer(_wishes, name="wishes")
app.add_typer(_notify, name="notify")


def _spec(service: str):  # type: ignore[no-untyped-def]
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return importlib.import_module(f"tuanlian.{service}.app").SPEC


@app.command()
def serve(service: str = typer.Argument(..., help="contacts | wishes | scoring | notify")) -> None:
    """Run one service process (HTTP API, consumers and relay)."""
    import uvicorn
    from tuanlian.cli.preflight import preflight
    from tuanlian.shared.logging import configure_logging
    from tuanlian.shared.service import create_app

    spec = _spec(service)
    settings = get_settings()
    configure_logging(service, level=settings.log_level, json=settings.log_json)
    problem = asyncio.run(preflight(settings, service))
    if problem:
        fail(problem)
    # uvloop and httptools when installed (uvicorn[standard]): far less CPU per request than the
    # pure-Python event loop and HTTP parser.
    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port_of(service), log_config=None, access_log=False, lifespan="on"
    )
    if settings.http_workers <= 1:
        uvicorn.run(create_app(spec, settings), **options)
        return
    if spec.owns_signing_key:
        from tuanlian.shared.auth import load_or_create_signing_key

        load_or_create_signing_key(settings.keys_dir)  # once, before the workers read it
    os.environ[_SERVE_ENV] = service
    uvicorn.run("tuanlian.cli.main:worker_app", factory=True, workers=settings.http_workers, **options)


_SERVE_ENV = "TUANLIAN_SERVE_SERVICE"


def worker_app() -> Any:
    """One uvicorn worker process's application (``tuanlian serve`` with several workers)."""
    from tuanlian.shared.logging import configure_logging
    from tuanlian.shared.service import create_app

    service = os.environ[_SERVE_ENV]
    settings = get_settings()
    configure_logging(service, level=settings.log_level, json=settings.log_json)
    return create_app(_spec(service), settings)


@app.command()
def run(
    demo: bool = typer.Option(True, help="load the demo League on first start"),
) -> None:
    """Start embedded NATS and Postgres, the four services, and the demo League; Ctrl-C stops all."""
    from tuanlian.cli.launcher import launch

    sys.exit(launch(get_settings(), load_demo=demo))


@app.command()
def token(
    role: str = typer.Option("system", help="youth | cadre | org_admin | leader | partner | system"),
    subject: str = typer.Option("operator", help="user id the token speaks for"),
    org_path: str = typer.Option(None, help="org subtree for scoped roles"),
    hours: int = typer.Option(12),
) -> None:
    """Sign a token with this deployment's key (operators and local development)."""
    from tuanlian.shared.auth import Principal, Role, load_or_create_signing_key

    settings = get_settings()
    if not (settings.keys_dir / "token_signing_ed25519.pem").exists():
        fail(f"no signing key under {settings.keys_dir}: start contacts once (tuanlian run)")
    try:
        principal = Principal(subject=subject, role=Role(role), org_path=org_path)
    except ValueError:
        fail(f"unknown role {role!r}")
        return
    issuer = load_or_create_signing_key(settings.keys_dir)
    typer.echo(issuer.issue(principal, ttl=timedelta(hours=hours)))


@app.command("asyncapi")
def asyncapi(
    service: str = typer.Argument(...),
    check: bool = typer.Option(False, help="fail if the committed document is out of date"),
) -> None:
    """Write (or check) services/<service>/asyncapi.json from the code."""
    import json
    from pathlib import Path

    from tuanlian.cli.docs import asyncapi_json

    text = asyncapi_json(_spec(service))
    target = Path("services") / service / "asyncapi.json"
    if check:
        current = target.read_text() if target.exists() else ""
        if json.loads(current or "{}") != json.loads(text):
            fail(f"{target} is out of date: run `tuanlian asyncapi {service}`")
        typer.echo(f"{target} is up to date")
        return
    target.write_text(text)
    typer.echo(f"wrote {target}")


if __name__ == "__main__":
    app()
