"""``tuanlian audit``: explain a cadre's points entry by entry, verify the producers' hash chains,
list what the consumers dead-lettered.
``tuanlian scoring``: rebuild the projection from the streams into a new version, list versions."""

from __future__ import annotations

import asyncio

import typer
from tuanlian.cli.connect import connect_bus, connect_db, rebuild_bar, tool_settings
from tuanlian.cli.errors import fail
from tuanlian.cli.launcher import SERVICES

audit = typer.Typer(no_args_is_help=True,
                    help="Audit (审计): explain points, verify the event logs, list dead-lettered events.")
scoring = typer.Typer(no_args_is_help=True, help="Scoring projection: rebuild (重放) into a new version, versions.")
_PROJECTION = ("scoring.projection_versions", "scoring projection")  # what connect_db needs for these


@audit.command("explain")
def explain(cadre: str = typer.Option(..., "--cadre", help="cadre id")) -> None:
    """Every ledger entry of a cadre with its rule, rule-set version and source event ids."""

    async def go() -> None:
        conn = await connect_db(*_PROJECTION)
        try:
            from tuanlian.scoring.adapters.queries import current_projection

            p = await current_projection(conn, "scoring")
            rows = await conn.fetch(
                "SELECT entry_id, occurred_at, points, rule, ruleset_version, source_event_ids, youth_id, ref "
                f"FROM {p}.ledger WHERE owner_id = $1 ORDER BY entry_id", cadre)
        finally:
            await conn.close()
        if not rows:
            fail(f"no ledger entries for cadre {cadre}")
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
        conn = await connect_db()
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


@audit.command("dead-letters")
def dead_letters(
    service: str = typer.Option(None, "--service", help="only this consuming service's (wishes, scoring, notify…)"),
    limit: int = typer.Option(20, min=1, max=10_000, help="the latest this many of each service"),
) -> None:
    """The events a service's consumers dead-lettered (死信), latest first: when, which consumer,
    the original subject and sequence, the event, the attempts and the reason."""
    from nats.js.errors import NotFoundError
    from tuanlian.shared.streams import connect_nats, dlq_stream_name

    if service is not None and service not in SERVICES:
        fail(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    url = tool_settings().nats_url
    if not url:
        fail("TUANLIAN_NATS_URL is not set and no `tuanlian run` is running under TUANLIAN_HOME: "
             "which NATS server should I read?")

    async def go() -> None:
        try:
            nc = await connect_nats(url, name="tuanlian-audit-dead-letters")
        except Exception as exc:
            fail(f"NATS is not reachable: {exc}")
        js = nc.jetstream()
        try:
            for name in (service,) if service else SERVICES:
                stream = dlq_stream_name(name)
                try:
                    state = (await js.stream_info(stream)).state
                except NotFoundError:
                    typer.echo(f"{name}: no dead-letter stream ({stream}): it consumes nothing, or never ran")
                    continue
                typer.echo(f"{name}: {state.messages} dead-lettered" + (
                    f" (the latest {min(limit, state.messages)} below)" if state.messages else ""))
                shown, seq = 0, state.last_seq
                while shown < limit and seq >= max(state.first_seq, 1):
                    try:
                        msg = await js.get_msg(stream, seq)
                    except NotFoundError:  # deleted from the middle of the stream
                        seq -= 1
                        continue
                    h = msg.headers or {}
                    event = h.get("Nats-Msg-Id", "").rsplit(":", 1)[-1] or "-"
                    when = f"{msg.time:%Y-%m-%d %H:%M:%S}" if msg.time else "-"
                    typer.echo(f"  {when} {h.get('Tuanlian-Consumer', '-')} "
                               f"{h.get('Tuanlian-Original-Subject', '-')}#{h.get('Tuanlian-Original-Sequence', '-')} "
                               f"event={event} attempts={h.get('Tuanlian-Attempts', '-')}: "
                               f"{h.get('Tuanlian-Reason', '')}")
                    shown += 1
                    seq -= 1
        finally:
            await nc.close()

    asyncio.run(go())


@scoring.command("rebuild")
def rebuild(
    ruleset: str = typer.Option(None, "--ruleset", help="score every event by this rule set version "
                                "(an explicit replay under other rules); default: each org's own"),
    drop_old: bool = typer.Option(False, "--drop-old", help="drop the old version's schema after the swap "
                                  "(default: keep it, marked retired, for comparison)"),
    batch: int = typer.Option(10_000, min=1, help="events per transaction"),
) -> None:
    """Build a new projection version from the CONTACTS and WISHES streams alone, then swap it in.

    The old version keeps serving until the swap; the live consumers continue from the new
    version's positions without counting anything twice."""
    from tuanlian.scoring.adapters.rebuild import Progress as Step
    from tuanlian.scoring.adapters.rebuild import Rebuild, RebuildError
    from tuanlian.scoring.domain.rules import UnknownRuleSet, known_rulesets

    settings = tool_settings()

    async def go() -> None:
        conn = await connect_db(*_PROJECTION)
        nc = await connect_bus(conn, "tuanlian-scoring-rebuild", ("contacts", "wishes"))
        bar, task = rebuild_bar("{task.fields[rate]:>9,.0f} events/s", rate=0.0)

        def show(p: Step) -> None:
            bar.update(task, total=p.total, completed=p.done, phase=p.phase, rate=p.rate)

        try:
            try:
                job = Rebuild(conn, nc.jetstream(), ruleset_override=ruleset, batch=batch, on_progress=show,
                              reader_url=settings.require_nats_url(), db_url=settings.database_url)
            except UnknownRuleSet:
                fail(f"unknown rule set {ruleset!r}; known: {', '.join(known_rulesets())}")
            with bar:
                try:
                    r = await job.run(drop_old=drop_old)
                except RebuildError as exc:
                    fail(f"rebuild failed, the old version still serves: {exc}")
        finally:
            await nc.close()
            await conn.close()
        typer.echo(f"version {r.version} ({r.schema}) now serves: {r.events} events read, {r.applied} applied, "
                   f"{r.duplicates} duplicates, {r.skipped} unreadable skipped in {r.seconds:.1f} s "
                   f"= {r.rate:,.0f} events/s; the live consumers were held {r.held * 1000:,.0f} ms for the swap")
        typer.echo("phases: " + ", ".join(f"{name} {sec:.1f} s" for name, sec in r.phases.items()))
        typer.echo(f"previous version {r.previous} " + ("dropped" if r.dropped_old else "kept (retired)"))

    asyncio.run(go())


@scoring.command("versions")
def versions(failed: int = typer.Option(None, "--fail", help="mark a 'building' version whose rebuild died as failed")) -> None:
    """The projection versions: which one serves, which are retired, built, failed."""
    from tuanlian.scoring.adapters.rebuild import forget_positions

    async def go() -> None:
        conn = await connect_db(*_PROJECTION)
        try:
            if failed is not None:
                target = await conn.fetchval(
                    "UPDATE scoring.projection_versions SET status = 'failed', retired_at = now() "
                    "WHERE version = $1 AND status = 'building' RETURNING schema_name", failed)
                if target is None:
                    fail(f"version {failed} is not being built")
                await conn.execute(f"DROP SCHEMA IF EXISTS {target} CASCADE")
                await forget_positions(conn, "scoring", target)
            rows = await conn.fetch("SELECT * FROM scoring.projection_versions ORDER BY version")
        finally:
            await conn.close()
        for r in rows:
            typer.echo(f"{r['version']:>3} {r['status']:<9} {r['schema_name']:<22} events={r['events']} "
                       f"ruleset={r['ruleset_override'] or '(orgs)'} built={r['built_at']:%Y-%m-%d %H:%M:%S}"
                       + (" dropped" if r["dropped_at"] else ""))

    asyncio.run(go())
