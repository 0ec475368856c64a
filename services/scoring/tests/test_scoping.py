"""Who sees which figures: a cadre sees the rankings and circulars of the subtrees it is in, not
another city's; a leader (a read-only account, as contacts issues it) neither publishes circulars
nor runs assessments."""

from __future__ import annotations

from scoring_support import Producer, Scoring
from test_projection import T0, _interaction, _org_and_cadre
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts import contacts as c


async def _two_cities(scoring: Scoring, contacts: Producer) -> None:
    # /root/o1 with cadre c1 (scored), and an unrelated /town/t1 with cadre c9.
    await contacts.emit(
        "org-root",
        c.OrgCreated(
            org_id="root",
            parent_id=None,
            name="市团委",
            org_type=c.OrgType.city,
            depth=1,
            is_leadership_organ=True,
            org_path="/root",
        ),
        T0,
    )
    await _org_and_cadre(contacts)
    await contacts.emit(
        "org-town",
        c.OrgCreated(
            org_id="town",
            parent_id=None,
            name="镇团委",
            org_type=c.OrgType.city,
            depth=1,
            is_leadership_organ=True,
            org_path="/town",
        ),
        T0,
    )
    await _org_and_cadre(contacts, cadre="c9", org="t1", path="/town/t1")
    await contacts.emit(
        "link-l1", c.ContactLinkAccepted(link_id="l1", cadre_id="c1", youth_id="y1", org_path="/root/o1"), T0
    )
    await contacts.emit("interaction-i1", _interaction("i1", ["y1"], False, T0))
    await scoring.applied(8)


async def test_cadre_cannot_see_another_citys_cadre_leaderboard(scoring: Scoring, contacts: Producer) -> None:
    await _two_cities(scoring, contacts)
    foreign_cadre = scoring.auth(Role.cadre, "c9", "/town/t1")
    r = await scoring.http.get(
        "/leaderboards/cadres",
        params={"org_path": "/root", "period_kind": "month", "period": "2026-03"},
        headers=foreign_cadre,
    )
    assert r.status_code == 403, f"cadre of /town/t1 read /root's ranking: {r.status_code} {r.text}"
    own = scoring.auth(Role.cadre, "c1", "/root/o1")
    for path in ("/root", "/root/o1"):  # where c1 is ranked among its peers
        r = await scoring.http.get(
            "/leaderboards/cadres",
            params={"org_path": path, "period_kind": "month", "period": "2026-03"},
            headers=own,
        )
        assert r.status_code == 200 and [x["cadre_id"] for x in r.json()["entries"]] == ["c1"], r.text


async def test_cadre_cannot_see_another_citys_org_leaderboard(scoring: Scoring, contacts: Producer) -> None:
    await _two_cities(scoring, contacts)
    foreign_cadre = scoring.auth(Role.cadre, "c9", "/town/t1")
    r = await scoring.http.get(
        "/leaderboards/orgs",
        params={"org_path": "/root", "org_type": "branch", "period_kind": "month", "period": "2026-03"},
        headers=foreign_cadre,
    )
    assert r.status_code == 403, f"cadre of /town/t1 read /root's org ranking: {r.status_code} {r.text}"


async def test_cadre_cannot_read_another_citys_circulars(scoring: Scoring, contacts: Producer) -> None:
    await _two_cities(scoring, contacts)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    r = await scoring.http.post(
        "/circulars", json={"org_id": "root", "period_kind": "month", "period": "2026-03"}, headers=admin
    )
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    foreign_cadre = scoring.auth(Role.cadre, "c9", "/town/t1")
    leaks = {}
    for url, params in (
        (f"/circulars/{number}", {}),
        (f"/circulars/{number}", {"format": "csv"}),
        (f"/circulars/{number}/as-of", {}),
        ("/circulars", {"org_id": "root"}),
    ):
        got = await scoring.http.get(url, params=params, headers=foreign_cadre)
        if got.status_code != 403:
            leaks[f"{url}?{params}"] = (got.status_code, got.text[:200])
    assert not leaks, f"cadre of /town/t1 read /root's circulars: {leaks}"
    own = scoring.auth(Role.cadre, "c1", "/root/o1")  # the circular is its city's: it may read it
    assert (await scoring.http.get(f"/circulars/{number}", headers=own)).json()["number"] == number
    assert [
        c["number"]
        for c in (await scoring.http.get("/circulars", params={"org_id": "root"}, headers=own)).json()
    ] == [number]


async def test_read_only_leader_cannot_publish_circulars_or_run_assessments(
    scoring: Scoring, contacts: Producer
) -> None:
    await _two_cities(scoring, contacts)
    leader = scoring.auth(Role.leader, "l", "/root")
    r = await scoring.http.post(
        "/circulars", json={"org_id": "root", "period_kind": "month", "period": "2026-03"}, headers=leader
    )
    assert r.status_code == 403, f"leader published circular: {r.status_code} {r.text[:200]}"
    r = await scoring.http.post(
        "/assessments", json={"org_id": "root", "period_kind": "year", "period": "2025"}, headers=leader
    )
    assert r.status_code == 403, f"leader ran an assessment: {r.status_code} {r.text[:200]}"
    admin = scoring.auth(Role.org_admin, "a", "/root")
    r = await scoring.http.post(
        "/circulars", json={"org_id": "root", "period_kind": "month", "period": "2026-03"}, headers=admin
    )
    assert r.status_code == 201
    assert (
        await scoring.http.get(f"/circulars/{r.json()['number']}", headers=leader)
    ).status_code == 200  # reads


async def test_cadre_reads_own_scoring_but_not_another_cadres(scoring: Scoring, contacts: Producer) -> None:
    """Control: the per-cadre reads are scoped properly."""
    await _two_cities(scoring, contacts)
    c9 = scoring.auth(Role.cadre, "c9", "/town/t1")
    for url in ("/cadres/c1/ledger", "/cadres/c1/activity-level", "/cadres/c1/compliance"):
        assert (await scoring.http.get(url, headers=c9)).status_code == 403, url
    assert (await scoring.http.get("/cadres/c9/ledger", headers=c9)).status_code == 200
    town_admin = scoring.auth(Role.org_admin, "b", "/town")
    assert (await scoring.http.get("/cadres/c1/ledger", headers=town_admin)).status_code == 403
    assert (
        await scoring.http.get("/leaderboards/cadres", params={"org_path": "/root"}, headers=town_admin)
    ).status_code == 403
    r = await scoring.http.get("/leaderboards/cadres", params={"org_path": "/root"})
    assert r.status_code == 401
