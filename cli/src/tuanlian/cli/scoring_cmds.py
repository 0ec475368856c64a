"""``tuanlian audit``: explain a cadre's points entry by entry, verify the producers' hash chains."""

from __future__ import annotations

import asyncio

import typer
from tuanlian.shared.settings import get_settings

audit = typer.Typer(no_args_is_help=True, help="Audit (审计): explain points, verify the event logs.")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


async def _connect():  # type: ignore[no-untyped-def]
    from tuanlian.shared.db import connect_raw

    url = get_settings().database_url
    if not url:
        _fail("TUANLIAN_DATABASE_URL is not set: which Postgres should I read?")
    try:
        return await connect_raw(url or "")
    except Exception as exc:
        _fail(f"Postgres is not reachable: {exc}")


@audit.command("explain")
def explain(cadre: str = typer.Option(..., "--cadre", help="cadre id")) -> None:
    """Every ledger entry of a cadre with its rule, rule-set version and source event ids."""

    async def go() -> None:
        conn = await _connect()
        try:
            rows = await conn.fetch(
                "SELECT entry_id, occurred_at, points, rule, ruleset_version, source_event_ids, youth_id, ref "
                "FROM scoring_proj.ledger WHERE owner_id = $1 ORDER BY entry_id", cadre)
        finally:
            await conn.close()
        if not rows:
            _fail(f"no ledger entries for cadre {cadre}")
        total = 0
        for r in rows:
            total += r["points"]
            sources = ",".join(str(s) for s in r["source_event_ids"])
            typer.echo(f"{r['entry_id']:>8} {r['occurred_at']:%Y-%m-%d %H:%M} {r['points']:+4d} {r['rule']:<30} "
                       f"{r['ruleset_version']:<16} youth={r['youth_id'] or '-'} ref={r['ref'] or '-'} src={sources}")
        typer.echo(f"total {total} points in {len(rows)} entries")

    asyncio.run(go())


@audit.command("verify")
def verify() -> None:
    """Check the producers' hash chains (contacts, wishes, scoring); report the first broken link."""
    from tuanlian.shared.contracts.contacts import CONTACTS
    from tuanlian.shared.contracts.scoring import SCORING
    from tuanlian.shared.contracts.wishes import WISHES
    from tuanlian.shared.eventstore import EventStore

    async def go() -> int:
        conn = await _connect()
        broken = 0
        try:
            for reg in (CONTACTS, WISHES, SCORING):
                exists = await conn.fetchval("SELECT to_regclass($1)", f"{reg.producer}.events")
                if exists is None:
                    typer.echo(f"{reg.producer}: no event log here")
                    continue
                problems = await EventStore(reg.producer, reg.producer, reg).verify_chains(conn)
                n = await conn.fetchval(f"SELECT count(*) FROM {reg.producer}.events")
                if problems:
                    broken += 1
                    typer.echo(f"{reg.producer}: BROKEN at {problems[0]} ({len(problems)} problems in {n} events)")
                else:
                    typer.echo(f"{reg.producer}: {n} events, every chain intact")
        finally:
            await conn.close()
        return broken

    if asyncio.run(go()):
        raise typer.Exit(1)
