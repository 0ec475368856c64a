"""``tuanlian wishes rebuild`` and ``tuanlian notify rebuild``: a service's read model of other
services' events, replayed from their streams and swapped in under the running service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import typer
from tuanlian.cli.connect import connect_bus, connect_db, rebuild_bar
from tuanlian.cli.errors import fail

wishes = typer.Typer(no_args_is_help=True, help="Wishes service: rebuild (重建) its read model of contacts.")
notify = typer.Typer(no_args_is_help=True, help="Notify service: rebuild (重建) its read model of contacts "
                                                "and wishes.")


def _rebuild(service: str, table: str, producers: tuple[str, ...], build: Callable[..., Any], batch: int) -> None:
    from tuanlian.shared.readmodel import Progress, RebuildError

    async def go() -> None:
        conn = await connect_db(f"{service}.{table}", f"{service} read model")
        nc = await connect_bus(conn, f"tuanlian-{service}-rebuild", producers)
        bar, task = rebuild_bar("{task.fields[applied]:,} applied", applied=0)

        def show(p: Progress) -> None:
            bar.update(task, total=p.total, completed=p.read, phase=p.phase, applied=p.applied)

        try:
            with bar:
                try:
                    r = await build(conn, nc.jetstream(), batch=batch, on_progress=show).run()
                except RebuildError as exc:
                    fail(f"rebuild failed, the read model is as it was: {exc}")
        finally:
            await nc.close()
            await conn.close()
        streams = " and ".join(p.upper() for p in producers)
        typer.echo(f"{service}: read model rebuilt from {r.read:,} {streams} messages: {r.applied:,} events "
                   f"applied, {r.left_to_live:,} left to the live consumers, in {r.seconds:.1f} s; the live "
                   f"consumers were held {r.held * 1000:,.0f} ms for the swap")
        typer.echo("rows now: " + ", ".join(f"{t} {n:,}" for t, n in r.rows.items()))

    asyncio.run(go())


@wishes.command("rebuild")
def rebuild_wishes(batch: int = typer.Option(2000, min=1, help="events per transaction")) -> None:
    """Replay the CONTACTS stream into fresh pairs, orgs, rules, youths, cadres and org moves,
    then swap them in under the running service (wishes' own state is not touched).

    Events the live consumers have not reached yet are left to them; those they dead-lettered
    and passed over are applied (run it once the fix is deployed)."""
    from tuanlian.wishes.adapters.rebuild import read_model_rebuild

    _rebuild("wishes", "pairs", ("contacts",), read_model_rebuild, batch)


@notify.command("rebuild")
def rebuild_notify(batch: int = typer.Option(2000, min=1, help="events per transaction")) -> None:
    """Replay the CONTACTS and WISHES streams into fresh recipients, orgs, rules, links, online
    contacts, activities, wishes, posts and ballots, then swap them in under the running service.
    Nothing is sent again, and the inbox, deliveries and preferences are not touched.

    Events the live consumers have not reached yet are left to them; those they dead-lettered
    and passed over are applied (run it once the fix is deployed)."""
    from tuanlian.notify.adapters.rebuild import read_model_rebuild

    _rebuild("notify", "recipients", ("contacts", "wishes"), read_model_rebuild, batch)
