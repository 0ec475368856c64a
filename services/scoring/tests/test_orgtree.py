"""A rebuild's org moves through the org-tree index: the same rows and credits re-filed as a walk
over everything would, and nothing else touched."""

from __future__ import annotations

import asyncio
import random
from datetime import date
from typing import Any

from tuanlian.scoring.adapters.orgtree import OrgTreeIndex
from tuanlian.scoring.adapters.projection import PATH_TABLES, Projector
from tuanlian.scoring.adapters.state import State
from tuanlian.shared.auth import path_covers

DAY = date(2026, 5, 4)


def _tree(rnd: random.Random, n: int) -> list[str]:
    """Org paths of a random tree under /r (ids unique, as contacts makes them)."""
    paths = ["/r"]
    for i in range(n):
        paths.append(f"{rnd.choice(paths)}/o{i}")
    return paths


def _state(rnd: random.Random, paths: list[str]) -> State:
    st = State("t", "rebuild", authoritative=True, bulk=True)
    for i, path in enumerate(paths[1:]):
        st.put("orgs", {"org_id": path.rsplit("/", 1)[1], "org_path": path, "name": "", "org_type": "branch",
                        "depth": path.count("/"), "is_leadership_organ": False, "closed": False})
        if rnd.random() < 0.3:
            st.put("org_rules", {"org_path": path, "records": [], "replaced": None})
        if rnd.random() < 0.6:
            st.put("cadres", {"cadre_id": f"c{i}", "org_id": path.rsplit("/", 1)[1], "org_path": path,
                              "org_type": "branch", "kind": "part_time", "in_leadership_organ": False,
                              "active": True, "linked_youths": 0, "last_online": None, "last_face_to_face": None})
            st.add_period_points(f"c{i}", ("cadre", path, "part_time", "branch"), DAY, i + 1)
    return st


def _snapshot(st: State) -> dict[str, Any]:
    rows = {t: sorted((k, r["org_path"]) for k, r in st._rows[t].items() if r is not None) for t in PATH_TABLES}
    credits = sorted((o, c[2]) for o, days in st.period_delta.items() for c in days.values())
    return {"rows": rows, "credits": credits, "paths": sorted(r[0] for r in st.cadre_paths)}


def _walked(before: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """What a walk over every row makes of ``before`` (the move as it was done before the index)."""
    def moved(p: str) -> str:
        return new + p[len(old):] if path_covers(old, p) else p

    rows = {t: sorted(((k if t != "org_rules" else (moved(k[0]),)), moved(p)) for k, p in rs)
            for t, rs in before["rows"].items()}
    credits = sorted((o, moved(p)) for o, p in before["credits"])
    paths = sorted(before["paths"] + [k[0] for k, p in rows["cadres"] if path_covers(new, p)])
    return {"rows": rows, "credits": credits, "paths": paths}


def test_random_org_moves_re_file_what_a_walk_over_every_row_would() -> None:
    rnd = random.Random(11)
    paths = _tree(rnd, 400)
    st = _state(rnd, paths)
    projector = Projector(st)
    for _ in range(60):
        orgs = [r["org_path"] for r in st._rows["orgs"].values() if r is not None]
        old = rnd.choice(orgs)
        parents = [p for p in ["/r", *orgs] if not path_covers(old, p)]
        new = f"{rnd.choice(parents)}/{old.rsplit('/', 1)[1]}"
        before = _snapshot(st)
        asyncio.run(projector._rewrite(None, old, new))  # type: ignore[arg-type]  # memory only: no transaction
        assert _snapshot(st) == _walked(before, old, new), (old, new)
        assert {r["org_path"] for r in st.under(new, ("orgs",))["orgs"]} == {
            p for _, p in _snapshot(st)["rows"]["orgs"] if path_covers(new, p)}


def test_the_index_forgets_paths_moved_away_from() -> None:
    ix = OrgTreeIndex()
    for i in range(50):
        ix.add("cadres", f"/r/a/b{i}", (f"c{i}",))
    ix.add("orgs", "/r/z", ("z",))
    assert len(ix.under("/r/a")) == 50
    for _ in range(3):  # moved away and back as the state does it: unfiled, then filed anew
        for old, new in (("/r/a", "/r/x/a"), ("/r/x/a", "/r/a")):
            keys = ix.take("cadres", ix.under(old))
            for key in keys:
                ix.add("cadres", new + f"/b{str(key[0])[1:]}", key)
            assert ix.under(old) == []
    assert len(ix) == 51  # the 50 branches and /r/z: nothing left of the paths moved from
    assert ix.under("/") == ix.under("/r") and len(ix.under("/")) == 51
    assert ix.under("/r/a/b1") == ["/r/a/b1"] and ix.under("/r/a/b") == []
