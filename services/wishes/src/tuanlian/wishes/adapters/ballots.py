"""The ballot's two stores, kept strictly apart (背靠背).

``ballot_electorate`` says who may vote and whether they have; ``ballot_tally`` is one row of
three counters per ballot, incremented in place. Neither row carries a time, a sequence or a
vote id, and no event or log line is written per vote, so nothing joins a voter to a choice.
"""

from __future__ import annotations

import asyncpg
from tuanlian.wishes.domain.ballot import Choice, Tally

_COLUMN = {Choice.satisfied: "satisfied", Choice.basically_satisfied: "basically_satisfied",
           Choice.unsatisfied: "unsatisfied"}


async def snapshot_electorate(conn: asyncpg.Connection, s: str, ballot_id: str, branch_path: str) -> int:
    """The branch's members (its dorm groups included) at opening: they, and only they, vote."""
    await conn.execute(
        f"INSERT INTO {s}.ballot_tally (ballot_id) VALUES ($1)", ballot_id
    )
    status = await conn.execute(
        f"INSERT INTO {s}.ballot_electorate (ballot_id, youth_id) SELECT $1, youth_id FROM {s}.youths "
        "WHERE org_path = $2 OR starts_with(org_path, $2 || '/')",
        ballot_id, branch_path,
    )
    return int(status.split()[-1])


async def mark_voted(conn: asyncpg.Connection, s: str, ballot_id: str, youth_id: str) -> str:
    """``voted`` now, ``already`` voted before, or ``not_eligible``."""
    row = await conn.fetchrow(
        f"UPDATE {s}.ballot_electorate SET voted = true WHERE ballot_id = $1 AND youth_id = $2 AND NOT voted "
        "RETURNING true AS ok",
        ballot_id, youth_id,
    )
    if row is not None:
        return "voted"
    known = await conn.fetchval(
        f"SELECT 1 FROM {s}.ballot_electorate WHERE ballot_id = $1 AND youth_id = $2", ballot_id, youth_id
    )
    return "already" if known else "not_eligible"


async def count(conn: asyncpg.Connection, s: str, ballot_id: str, choice: Choice) -> None:
    column = _COLUMN[choice]  # from a closed enum: never user text in SQL
    await conn.execute(f"UPDATE {s}.ballot_tally SET {column} = {column} + 1 WHERE ballot_id = $1", ballot_id)


async def tally(conn: asyncpg.Connection, s: str, ballot_id: str) -> Tally:
    row = await conn.fetchrow(
        f"SELECT satisfied, basically_satisfied, unsatisfied FROM {s}.ballot_tally WHERE ballot_id = $1", ballot_id
    )
    assert row is not None
    return Tally(row["satisfied"], row["basically_satisfied"], row["unsatisfied"])
