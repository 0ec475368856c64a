"""``tuanlian wishes``: rebuild wishes' read model of contacts from the CONTACTS stream."""

from __future__ import annotations

import asyncio

import typer
from tuanlian.cli.connect import connect_bus, connect_db, rebuild_bar
from tuanlian.cli.errors import fail

wishes = typer.Typer(no_args_is_help=True, help="Wishes service: rebuild (重建) its read model of contacts.")


@wishes.command("rebuild")
def rebuild(batch: int = typer.Option(2000, min=1, help="events per transaction")) -> None:
    """Replay the CONTACTS stream into fresh pairs, orgs, rules, youths, cadres and org moves,
    then swap them in under the running service (wishes' own state is not touched).

    Events the live consumers have not reached yet are left to them; those they dead-lettered
    and passed over are applied (run it once the fix is deployed)."""
    from tuanlian.wishes.adapters.rebuild import Progress as Step
    from tuanlian.wishes.adapters.rebuild import ReadModelRebuild, RebuildError

    async def go() -> None:
        conn = await connect_db()
        try:
            if await conn.fetchval("SELECT to_regclass('wishes.pairs')") is None:
                fail("no wishes read model in this database (has the wishes service run?)")
        except BaseException:
            await conn.close()
            raise
        nc = await connect_bus(conn, "tuanlian-wishes-rebuild", ("contacts",))
        bar, task = rebuild_bar("{task.fields[applied]:,} applied", applied=0)

        def show(p: Step) -> None:
            bar.update(task, total=p.total, completed=p.read, phase=p.phase, applied=p.applied)

        try:
            with bar:
                try:
                    r = await ReadModelRebuild(conn, nc.jetstream(), batch=batch, on_progress=show).run()
                except RebuildError as exc:
                    fail(f"rebuild failed, the read model is as it was: {exc}")
        finally:
            await nc.close()
            await conn.close()
        rows = ", ".join(f"{t} {n:,}" for t, n in r.rows.items())
        typer.echo(f"wishes' read model rebuilt from {r.read:,} CONTACTS messages: {r.applied:,} events applied, "
                   f"{r.left_to_live:,} left to the live consumers, in {r.seconds:.1f} s; the live consumers "
                   f"were held {r.held * 1000:,.0f} ms for the swap")
        typer.echo(f"rows now: {rows}")

    asyncio.run(go())
