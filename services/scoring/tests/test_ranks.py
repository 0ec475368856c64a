"""Previous ranks of a leaderboard's owners: the index walk agrees with ranking the whole subtree."""

from __future__ import annotations

import random

from scoring_support import Scoring
from tuanlian.scoring.adapters import queries as q

P = "scoring_proj"


async def test_previous_ranks_by_walk_equal_ranks_of_the_whole_subtree(scoring: Scoring) -> None:
    rnd = random.Random(11)
    rows = [("month", "2026-02", f"c{i}", "cadre", f"/r/a{i % 3}/b{i % 7}", rnd.choice(["full_time", "part_time"]),
             "branch", rnd.randrange(0, 40)) for i in range(600)]
    async with scoring.runtime.db.connection() as conn:
        await conn.copy_records_to_table("period_points", schema_name=P, records=rows,
                                         columns=["period_kind", "period_key", "owner_id", "owner_kind", "org_path",
                                                  "cadre_kind", "org_type", "points"])
        for org_path in ("/r", "/r/a1", "/r/a2/b5"):
            for cadre_kind in (None, "part_time"):
                inside = [r for r in rows if (r[4] == org_path or r[4].startswith(org_path + "/"))
                          and cadre_kind in (None, r[5])]
                ids = [r[2] for r in rnd.sample(inside, min(50, len(inside)))] + ["nobody"]
                expected = {r[2]: 1 + sum(1 for o in inside if o[7] > r[7]) for r in inside if r[2] in ids}
                kw = dict(period_kind="month", period_key="2026-02", org_path=org_path, owner_kind="cadre",
                          ids=ids, cadre_kind=cadre_kind)
                walked = await q.previous_ranks(conn, P, **kw)  # type: ignore[arg-type]
                whole = await q.previous_ranks(conn, P, probe=1, **kw)  # type: ignore[arg-type]
                assert walked == expected, (org_path, cadre_kind)
                assert whole == expected, (org_path, cadre_kind)
