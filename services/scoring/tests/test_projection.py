"""The ledger from contacts and wishes events, through real JetStream and Postgres."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from scoring_support import Producer, Scoring
from tuanlian.scoring.domain.periods import PeriodKind, china_day, period_of
from tuanlian.shared.auth import Role
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts import wishes as w

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Beijing


async def _org_and_cadre(contacts: Producer, cadre: str = "c1", kind: c.CadreKind = c.CadreKind.part_time,
                         org: str = "o1", path: str = "/root/o1") -> None:
    await contacts.emit(f"org-{org}", c.OrgCreated(org_id=org, parent_id="root", name="一支部", org_type=c.OrgType.branch,
                                                    depth=2, is_leadership_organ=False, org_path=path), T0)
    await contacts.emit(f"cadre-{cadre}", c.CadreRegistered(cadre_id=cadre, org_id=org, org_path=path, kind=kind,
                                                            in_leadership_organ=False), T0)


async def _city_and_branch(contacts: Producer) -> None:
    """市团委 /root, its branch o1 and the branch's part-time cadre c1."""
    await contacts.emit("org-root", c.OrgCreated(org_id="root", parent_id=None, name="市团委", org_type=c.OrgType.city,
                                                 depth=1, is_leadership_organ=True, org_path="/root"), T0)
    await _org_and_cadre(contacts)


def _interaction(iid: str, youths: list[str], online: bool, at: datetime, cadre: str = "c1",
                 path: str = "/root/o1", summary: str = "h") -> c.InteractionLogged:
    return c.InteractionLogged(interaction_id=iid, cadre_id=cadre, org_path=path, youth_ids=youths,
                               channel=c.Channel.wechat if online else c.Channel.face_to_face, online=online,
                               occurred_at=at, summary_length=10, summary_hash=summary)


async def test_ledger_caps_confirmations_disputes_and_corrections(scoring: Scoring, contacts: Producer) -> None:
    await _org_and_cadre(contacts)
    # Quota for a part-time cadre is 10 by default: lower it to 2 from an effective date.
    rules = c.OrgRules(contact_quotas=c.ContactQuotas(part_time=2))
    await contacts.emit("org-o1", c.OrgRulesSet(org_id="o1", org_path="/root/o1", effective_from=date(2026, 1, 1),
                                                rules=rules), T0)
    for i, y in enumerate(["y1", "y2", "y3"]):
        await contacts.emit(f"link-l{i}", c.ContactLinkAccepted(link_id=f"l{i}", cadre_id="c1", youth_id=y,
                                                                 org_path="/root/o1"), T0)
    # Same day twice with y1: only the first scores. Offline = 3.
    await contacts.emit("interaction-i1", _interaction("i1", ["y1", "y2"], False, T0))
    await contacts.emit("interaction-i2", _interaction("i2", ["y1"], True, T0 + timedelta(hours=1)))
    # Four more days with y1 in March: with i1 that makes four scoring contacts; the fifth earns nothing.
    for d in range(1, 5):
        await contacts.emit(f"interaction-j{d}", _interaction(f"j{d}", ["y1"], True, T0 + timedelta(days=d)))
    # y2 confirms i1 (×2: +3 more), y1 disputes i1 (0: −3).
    await contacts.emit("interaction-i1", c.InteractionConfirmed(interaction_id="i1", cadre_id="c1", youth_id="y2",
                                                                 org_path="/root/o1"))
    await contacts.emit("interaction-i1", c.InteractionDisputed(interaction_id="i1", cadre_id="c1", youth_id="y1",
                                                                org_path="/root/o1"))
    # Correction of j1: it was offline with y3, the next day.
    await contacts.emit("interaction-j1", c.InteractionCorrected(
        interaction_id="j1", cadre_id="c1", org_path="/root/o1", youth_ids=["y3"], channel=c.Channel.visit,
        online=False, occurred_at=T0 + timedelta(days=2), summary_length=5, summary_hash="x", reason="typo"))
    await scoring.applied(2 + 1 + 3 + 2 + 4 + 3)

    ledger = await scoring.get("/cadres/c1/ledger")
    by_rule: dict[str, int] = {}
    for e in ledger:
        by_rule[e["rule"]] = by_rule.get(e["rule"], 0) + e["points"]
        assert e["ruleset_version"] == "default-2026.1"
        assert e["source_event_ids"]
    assert by_rule["link_accepted"] == 2  # third youth is past the quota of 2
    # i1: y1 3 + y2 3; j1..j4: 1 each (i2 same day as i1 for y1: 0)
    assert by_rule["interaction_offline"] == 6 + 3  # + corrected j1 (offline, y3)
    assert by_rule["interaction_online"] == 3  # j1..j3; i2 same day as i1, j4 the fifth
    assert by_rule["interaction_confirmed"] == 3
    assert by_rule["interaction_disputed"] == -3
    assert by_rule["interaction_corrected"] == -1
    total = sum(e["points"] for e in ledger)
    assert total == 2 + 6 + 3 + 3 - 3 + 3 - 1
    board = await scoring.get("/leaderboards/cadres", org_path="/root", period_kind="month", period="2026-03")
    assert board["entries"][0]["points"] == total
    assert board["entries"][0]["linked_youths"] == 3
    # Redelivery changes nothing: the same events again are duplicates.
    async with scoring.runtime.db.connection() as conn:
        rows = await conn.fetchval("SELECT count(*) FROM scoring_proj.ledger")
    assert rows == len(ledger)


async def test_fifth_scoring_contact_in_a_month_earns_nothing(scoring: Scoring, contacts: Producer) -> None:
    await _org_and_cadre(contacts)
    for d in range(6):
        await contacts.emit(f"interaction-k{d}", _interaction(f"k{d}", ["y9"], True, T0 + timedelta(days=d)))
    await scoring.applied(2 + 6)
    ledger = await scoring.get("/cadres/c1/ledger")
    assert [e["points"] for e in ledger] == [1, 1, 1, 1]


async def test_five_ones_bonus_wishes_voice_ratings_and_spot_checks(
    scoring: Scoring, contacts: Producer, wishes: Producer
) -> None:
    await _org_and_cadre(contacts, kind=c.CadreKind.full_time)
    kinds = [c.ActivityKind.exchange, c.ActivityKind.practical_service, c.ActivityKind.culture_sports,
             c.ActivityKind.league_lecture, c.ActivityKind.social_org, c.ActivityKind.exchange]
    for i, k in enumerate(kinds):
        await contacts.emit(f"activity-a{i}", c.ActivityRecorded(
            activity_id=f"a{i}", kind=k, organiser_cadre_id="c1", organiser_org_id="o1", org_path="/root/o1",
            collective=False, occurred_on=date(2026, 3, 2 + i)))
    await contacts.emit("spot-s1", c.SpotCheckItemRecorded(spot_check_id="s1", cadre_id="c1", org_path="/root/o1",
                                                          item="interaction:zz",
                                                          outcome=c.SpotCheckOutcome.fabricated), T0)
    await wishes.emit("wish-w1", w.WishConfirmed(wish_id="w1", youth_id="y1", cadre_id="c1", org_path="/root/o1",
                                                 from_pool=False, days_to_fulfil=3), T0)
    await wishes.emit("wish-w2", w.WishConfirmed(wish_id="w2", youth_id="y2", cadre_id="c0", org_path="/root/o1",
                                                 from_pool=True, claimant_kind=w.ClaimantKind.cadre,
                                                 claimant_id="c1", days_to_fulfil=9), T0)
    await wishes.emit("voice-v1", w.VoiceAnswered(post_id="v1", youth_id="y1", cadre_id="c1", answered_by="c1",
                                                  org_path="/root/o1", in_time=True, response_seconds=60), T0)
    await wishes.emit("voice-v2", w.VoiceAnswered(post_id="v2", youth_id="y1", cadre_id="c1", answered_by="c1",
                                                  org_path="/root/o1", in_time=False, response_seconds=6e5), T0)
    for i, s in enumerate([5, 3, 1]):
        await wishes.emit(f"rating-r{i}", w.CadreRated(rating_id=f"r{i}", cadre_id="c1", org_path="/root/o1",
                                                       score=s, period="2026Q1"), T0)
    await scoring.applied(2 + 6 + 1 + 2 + 2 + 3)
    ledger = await scoring.get("/cadres/c1/ledger")
    rules = [(e["rule"], e["points"]) for e in ledger]
    assert rules.count(("five_ones_activity", 5)) == 6
    assert rules.count(("five_ones_all_kinds", 5)) == 1
    assert ("spot_check_fabricated", -20) in rules
    assert ("wish_fulfilled_confirmed", 5) in rules and ("wish_pool_claimed_fulfilled", 8) in rules
    assert ("voice_answered_in_time", 2) in rules and ("voice_answered_late", 1) in rules
    assert sorted(p for r, p in rules if r == "rating") == [-1, 1]


async def test_the_kinds_that_count_as_five_ones_are_the_orgs_rules(scoring: Scoring, contacts: Producer) -> None:
    """001 三.2 counts 谈心谈话 and 志愿服务 among a cadre's five; 000's five do not. The same five
    activities: all count in o1 (001's kinds) with the all-kinds bonus, three in o2 (the default)."""
    k = c.ActivityKind
    await _org_and_cadre(contacts)
    await _org_and_cadre(contacts, cadre="c2", org="o2", path="/root/o2")
    yangzhou = c.OrgRules(five_ones_kinds=(k.practical_service, k.league_lecture, k.heart_to_heart,
                                           k.volunteer_service, k.culture_sports))
    await contacts.emit("org-o1", c.OrgRulesSet(org_id="o1", org_path="/root/o1", effective_from=date(2026, 1, 1),
                                                preset="001", rules=yangzhou), T0)
    done = [k.heart_to_heart, k.volunteer_service, k.practical_service, k.league_lecture, k.culture_sports]
    for cadre, org in (("c1", "o1"), ("c2", "o2")):
        for i, kind in enumerate(done):
            await contacts.emit(f"activity-{cadre}{i}", c.ActivityRecorded(
                activity_id=f"{cadre}-{i}", kind=kind, organiser_cadre_id=cadre, organiser_org_id=org,
                org_path=f"/root/{org}", collective=False, occurred_on=date(2026, 3, 2 + i)))
    await scoring.applied(4 + 1 + 10)

    def earned(ledger: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted((e["rule"], e["ref"]) for e in ledger if e["points"])

    assert earned(await scoring.get("/cadres/c1/ledger")) == sorted(
        [("five_ones_activity", f"c1-{i}") for i in range(5)] + [("five_ones_all_kinds", "2026-Q1")])
    assert earned(await scoring.get("/cadres/c2/ledger")) == [("five_ones_activity", f"c2-{i}") for i in (2, 3, 4)]

    def five_ones(doc: dict[str, Any]) -> int:
        return next(check["actual"] for check in doc["checks"] if check["name"] == "five_ones")

    # Compliance counts them as the ledger does: five against three in the same quarter.
    q1 = {"period_kind": "quarter", "period": "2026-Q1"}
    assert five_ones(await scoring.get("/cadres/c1/compliance", **q1)) == 5
    assert five_ones(await scoring.get("/cadres/c2/compliance", **q1)) == 3


async def test_leaderboard_ties_filters_rank_change_and_scope(scoring: Scoring, contacts: Producer) -> None:
    await contacts.emit("org-o2", c.OrgCreated(org_id="o2", parent_id="root", name="二支部", org_type=c.OrgType.branch,
                                               depth=2, is_leadership_organ=False, org_path="/root/o2"), T0)
    await _org_and_cadre(contacts, "c1", c.CadreKind.part_time)
    await contacts.emit("cadre-c2", c.CadreRegistered(cadre_id="c2", org_id="o2", org_path="/root/o2",
                                                      kind=c.CadreKind.full_time, in_leadership_organ=False), T0)
    await contacts.emit("cadre-c3", c.CadreRegistered(cadre_id="c3", org_id="o2", org_path="/root/o2",
                                                      kind=c.CadreKind.full_time, in_leadership_organ=False), T0)
    feb = T0 - timedelta(days=20)
    # February: c1 leads with 3; March: c2 and c3 tie on 3, c1 has 1.
    await contacts.emit("interaction-f1", _interaction("f1", ["y1"], False, feb, "c1"))
    await contacts.emit("interaction-m1", _interaction("m1", ["y1"], True, T0, "c1"))
    await contacts.emit("interaction-m2", _interaction("m2", ["y2"], False, T0, "c2", "/root/o2"))
    await contacts.emit("interaction-m3", _interaction("m3", ["y3"], False, T0, "c3", "/root/o2"))
    await scoring.applied(1 + 2 + 2 + 4)
    board = await scoring.get("/leaderboards/cadres", org_path="/root", period_kind="month", period="2026-03")
    assert [(e["cadre_id"], e["rank"]) for e in board["entries"]] == [("c2", 1), ("c3", 1), ("c1", 3)]
    assert board["entries"][2]["rank_change"] == -2  # first in February, third now
    full = await scoring.get("/leaderboards/cadres", org_path="/root", period_kind="month", period="2026-03",
                             cadre_kind="part_time")
    assert [e["cadre_id"] for e in full["entries"]] == ["c1"]
    orgs = await scoring.get("/leaderboards/orgs", org_path="/root", org_type="branch", period_kind="month",
                             period="2026-03")
    assert [(e["org_id"], e["rank"]) for e in orgs["entries"]] == [("o2", 1), ("o1", 2)]
    # Without a level: that of /root's sub-organisations (both branches), said in the answer.
    assert await scoring.get("/leaderboards/orgs", org_path="/root", period_kind="month",
                             period="2026-03") == orgs
    # A level that is no level is refused with the ones there are; nothing below a branch: the
    # level must be named.
    r = await scoring.http.get("/leaderboards/orgs", params={"org_path": "/root", "org_type": "branchh"},
                               headers=scoring.auth(Role.system))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "org_type"]
    assert "dorm_group" in r.json()["detail"][0]["msg"]
    r = await scoring.http.get("/leaderboards/orgs", params={"org_path": "/root/o2"}, headers=scoring.auth(Role.system))
    assert r.status_code == 422 and "no open sub-organisations" in r.json()["detail"][0]["msg"]
    # An admin of o1 sees o1 only, and not the whole tree.
    r = await scoring.http.get("/leaderboards/cadres", params={"org_path": "/root"},
                               headers=scoring.auth(Role.org_admin, "a", "/root/o1"))
    assert r.status_code == 403
    r = await scoring.http.get("/leaderboards/cadres", params={"org_path": "/root", "period_kind": "month",
                                                               "period": "2026-13"}, headers=scoring.auth(Role.system))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "period"]
    # A period without its kind would rank all time: refused, with the reason.
    r = await scoring.http.get("/leaderboards/cadres", params={"org_path": "/root", "period": "2026-03"},
                               headers=scoring.auth(Role.system))
    assert r.status_code == 422 and "needs its period_kind" in r.json()["detail"][0]["msg"]
    # A cadre sees their own ledger, not another's.
    r = await scoring.http.get("/cadres/c2/ledger", headers=scoring.auth(Role.cadre, "c1", "/root/o1"))
    assert r.status_code == 403
    r = await scoring.http.get("/cadres/nobody/ledger", headers=scoring.auth(Role.system))
    assert r.status_code == 404


async def test_org_move_rewrites_paths(scoring: Scoring, contacts: Producer) -> None:
    await _org_and_cadre(contacts)
    await contacts.emit("interaction-i1", _interaction("i1", ["y1"], False, T0))
    await contacts.emit("org-o1", c.OrgMoved(org_id="o1", old_parent_id="root", new_parent_id="p2",
                                             old_path="/root/o1", new_path="/root/p2/o1", depth=3))
    await scoring.applied(4)
    board = await scoring.get("/leaderboards/cadres", org_path="/root/p2")
    assert [e["cadre_id"] for e in board["entries"]] == ["c1"]
    assert board["entries"][0]["org_path"] == "/root/p2/o1"


async def test_circular_is_numbered_immutable_announced_and_equal_as_of(
    scoring: Scoring, contacts: Producer, js: object
) -> None:
    await _city_and_branch(contacts)
    await contacts.emit("link-l1", c.ContactLinkAccepted(link_id="l1", cadre_id="c1", youth_id="y1",
                                                         org_path="/root/o1"), T0)
    await contacts.emit("interaction-i1", _interaction("i1", ["y1"], False, T0))
    await scoring.applied(5)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    r = await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "month", "period": "2026-03"},
                                headers=admin)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["number"] == "2026-03-001"
    row = doc["rows"][0]
    assert (row["org_id"], row["cadres"], row["youths_linked"], row["points"], row["rank"]) == ("o1", 1, 1, 4, 1)
    assert row["cadres_meeting_quota_pct"] == 0.0  # 1 of 10 for a part-time cadre
    assert row["interactions_per_cadre"] == 1.0  # the face-to-face one
    # Later facts for March do not change what was published; as-of recomputation agrees.
    await contacts.emit("interaction-i2", _interaction("i2", ["y1"], True, T0 + timedelta(days=1)))
    await scoring.applied(6)
    check = await scoring.get(f"/circulars/{doc['number']}/as-of")
    assert check["equal"] is True
    # A branch renamed and another created after it: recomputed, it is still the one published
    # (it read today's orgs: an extra row and the new name).
    await contacts.emit("org-o1", c.OrgRenamed(org_id="o1", org_path="/root/o1", old_name="一支部", name="第一支部"))
    await contacts.emit("org-o2", c.OrgCreated(org_id="o2", parent_id="root", name="二支部", org_type=c.OrgType.branch,
                                                depth=2, is_leadership_organ=False, org_path="/root/o2"), T0)
    await scoring.applied(8)
    check = await scoring.get(f"/circulars/{doc['number']}/as-of")
    assert check["equal"] is True, check["recomputed"]["rows"]
    # So does the organisations' ranking asked as of then: one branch, under its name then.
    month = {"org_path": "/root", "org_type": "branch", "period_kind": "month", "period": "2026-03"}
    then = await scoring.get("/leaderboards/orgs", **month, as_of=doc["as_of"])
    assert [(e["org_id"], e["name"], e["points"]) for e in then["entries"]] == [("o1", "一支部", 4)]
    now = await scoring.get("/leaderboards/orgs", **month)
    assert [(e["org_id"], e["name"]) for e in now["entries"]] == [("o1", "第一支部"), ("o2", "二支部")]
    again = await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "month",
                                                        "period": "2026-03"}, headers=admin)
    assert again.json()["number"] == "2026-03-002" and again.json()["rows"][0]["points"] == 5
    assert [r["org"] for r in again.json()["rows"]] == ["第一支部", "二支部"]
    assert again.json()["rows"][0]["interactions_per_cadre"] == 2.0  # online and face-to-face both count
    for fmt, marker in (("csv", "排名".encode()), ("html", b"<svg"), ("xlsx", b"PK")):
        r = await scoring.http.get(f"/circulars/{doc['number']}", params={"format": fmt}, headers=admin)
        assert r.status_code == 200 and marker in r.content
    # Announced through the outbox on the scoring stream.
    from tuanlian.shared.testing import stream_messages, wait_until

    msgs = await wait_until(lambda: stream_messages(js, "SCORING"), until=lambda m: len(m) == 2,  # type: ignore[arg-type]
                            message="two CircularPublished on SCORING")
    assert all(m.subject == "scoring.events.circular.CircularPublished" for m in msgs)
    outsider = scoring.auth(Role.org_admin, "b", "/elsewhere")
    r = await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "month"}, headers=outsider)
    assert r.status_code == 403
    r = await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "day"}, headers=admin)
    assert r.status_code == 422


async def _recomputed_without(scoring: Scoring, number: str, key: str) -> Any:
    """The as-of check of a circular as if published before its document carried ``key``."""
    async with scoring.runtime.db.transaction() as conn:
        await conn.execute("SET LOCAL session_replication_role = replica")  # past the immutability trigger
        await conn.execute("UPDATE scoring.circulars SET document = document - $2::text WHERE number = $1", number, key)
    return await scoring.get(f"/circulars/{number}/as-of")


async def test_a_circular_counts_the_youths_linked_at_its_periods_end(scoring: Scoring, contacts: Producer) -> None:
    await _city_and_branch(contacts)
    await contacts.emit("link-l1", c.ContactLinkAccepted(link_id="l1", cadre_id="c1", youth_id="y1",
                                                         org_path="/root/o1"), T0)
    await contacts.emit("link-l2", c.ContactLinkAccepted(link_id="l2", cadre_id="c1", youth_id="y2",
                                                         org_path="/root/o1"), T0 + timedelta(days=26))  # 5 April
    await scoring.applied(5)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    r = await scoring.http.post("/circulars", json={"org_id": "root", "period_kind": "month", "period": "2026-03"},
                                headers=admin)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["rows"][0]["youths_linked"] == 1  # April's link is not March's
    assert (await scoring.get(f"/circulars/{doc['number']}/as-of"))["equal"] is True
    # A circular published before links were counted at the period's end is recomputed as it
    # was computed: with the links known when it was.
    old = await _recomputed_without(scoring, doc["number"], "youths_linked_at")
    assert old["recomputed"]["rows"][0]["youths_linked"] == 2 and old["equal"] is False


async def test_a_circular_counts_the_cadres_who_had_joined_by_its_periods_end(
    scoring: Scoring, contacts: Producer
) -> None:
    await _city_and_branch(contacts)
    await contacts.emit("cadre-c2", c.CadreRegistered(cadre_id="c2", org_id="o1", org_path="/root/o1",
                                                      kind=c.CadreKind.part_time, in_leadership_organ=False),
                        T0 + timedelta(days=26))  # 5 April
    await scoring.applied(4)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    march = {"org_id": "root", "period_kind": "month", "period": "2026-03"}
    doc = (await scoring.http.post("/circulars", json=march, headers=admin)).json()
    assert doc["rows"][0]["cadres"] == 1  # April's cadre did nothing in March to be counted on
    april = {**march, "period": "2026-04"}
    assert (await scoring.http.post("/circulars", json=april, headers=admin)).json()["rows"][0]["cadres"] == 2
    assert (await scoring.get(f"/circulars/{doc['number']}/as-of"))["equal"] is True
    # One published before (every cadre there when computed) is recomputed so.
    old = await _recomputed_without(scoring, doc["number"], "cadres_joined_by")
    assert old["recomputed"]["rows"][0]["cadres"] == 2 and old["equal"] is False


async def test_a_circular_shows_the_leadership_organs_collective_five_ones(
    scoring: Scoring, contacts: Producer
) -> None:
    """000 五.1: a circular rests on the cadres' points and on the leadership organs' "five ones"
    (each quarter five collective activities: an open day, a face-to-face, volunteering, a 1+100
    sharing session, one of its own design). Each row counts the organs in its subtree."""
    await contacts.emit("org-root", c.OrgCreated(org_id="root", parent_id=None, name="市团委", org_type=c.OrgType.city,
                                                 depth=1, is_leadership_organ=True, org_path="/root"), T0)
    for org, name in (("d1", "东区团委"), ("d2", "西区团委")):
        await contacts.emit(f"org-{org}", c.OrgCreated(org_id=org, parent_id="root", name=name,
                                                       org_type=c.OrgType.county, depth=2, is_leadership_organ=True,
                                                       org_path=f"/root/{org}"), T0)
    await contacts.emit("org-b1", c.OrgCreated(org_id="b1", parent_id="d1", name="一支部", org_type=c.OrgType.branch,
                                               depth=3, is_leadership_organ=False, org_path="/root/d1/b1"), T0)
    await contacts.emit("cadre-c1", c.CadreRegistered(cadre_id="c1", org_id="b1", org_path="/root/d1/b1",
                                                      kind=c.CadreKind.part_time, in_leadership_organ=False), T0)

    async def collective(aid: str, org: str, path: str, kind: c.ActivityKind, day: date) -> None:
        await contacts.emit(f"activity-{aid}", c.ActivityRecorded(
            activity_id=aid, kind=kind, organiser_cadre_id=None, organiser_org_id=org, org_path=path, collective=True,
            occurred_on=day))

    # d1's organ: three of its five in the first quarter, one in April (the next quarter's).
    for i, kind in enumerate((c.ActivityKind.open_day, c.ActivityKind.face_to_face_session,
                              c.ActivityKind.sharing_session)):
        await collective(f"a{i}", "d1", "/root/d1", kind, date(2026, 3, 2 + i))
    await collective("a3", "d1", "/root/d1", c.ActivityKind.self_designed, date(2026, 4, 2))
    # A branch is no leadership organ: what it organises owes and counts nothing here.
    await collective("a4", "b1", "/root/d1/b1", c.ActivityKind.collective_volunteering, date(2026, 3, 9))
    await scoring.applied(5 + 5)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    q1 = {"org_id": "root", "period_kind": "quarter", "period": "2026-Q1"}
    doc = (await scoring.http.post("/circulars", json=q1, headers=admin)).json()
    rows = {r["org_id"]: r for r in doc["rows"]}
    assert (rows["d1"]["leadership_organs"], rows["d1"]["collective_five_ones_pct"]) == (1, 60.0)
    assert (rows["d2"]["leadership_organs"], rows["d2"]["collective_five_ones_pct"]) == (1, 0.0)
    assert (await scoring.get(f"/circulars/{doc['number']}/as-of"))["equal"] is True
    csv = (await scoring.http.get(f"/circulars/{doc['number']}", params={"format": "csv"}, headers=admin)).text
    assert "领导机关五个一完成率%" in csv.splitlines()[0]
    # d1's own circular ranks its branch, with no organ below it: nothing owed, no percentage.
    year = (await scoring.http.post("/circulars", json={**q1, "org_id": "d1", "period_kind": "year",
                                                       "period": "2026"}, headers=admin)).json()
    assert year["rows"][0]["org_id"] == "b1" and year["rows"][0]["leadership_organs"] == 0
    assert year["rows"][0]["collective_five_ones_pct"] is None
    # A circular published before the organs were counted is recomputed without them.
    old = await _recomputed_without(scoring, doc["number"], "org_work")
    assert "collective_five_ones_pct" not in old["recomputed"]["rows"][0] and old["equal"] is False


async def test_a_circular_counts_the_campaigns_each_org_took_part_in(scoring: Scoring, contacts: Producer) -> None:
    """000 五.1: a circular rests on how the League-wide campaigns were carried out too (全团集中
    活动落实情况). Each row counts the campaigns run from above it in the period that a cadre or an
    org of its subtree recorded an activity for; a correction taking an activity off a campaign
    takes the org's part with it."""
    await _city_and_branch(contacts)  # root (市团委), its branch o1 and o1's cadre c1
    await contacts.emit("org-o2", c.OrgCreated(org_id="o2", parent_id="root", name="二支部", org_type=c.OrgType.branch,
                                               depth=2, is_leadership_organ=False, org_path="/root/o2"), T0)

    async def campaign(cid: str, org: str, path: str, starts: date, ends: date, at: datetime = T0) -> None:
        await contacts.emit(f"campaign-{cid}", c.CampaignOpened(campaign_id=cid, org_id=org, org_path=path,
                                                               key="may4_open_day", name=f"活动{cid}",
                                                               starts_on=starts, ends_on=ends), at)

    await campaign("k1", "root", "/root", date(2026, 3, 1), date(2026, 3, 20))
    await campaign("k2", "root", "/root", date(2026, 3, 10), date(2026, 4, 10))
    await campaign("k3", "root", "/root", date(2026, 5, 1), date(2026, 5, 7))  # not March's
    await campaign("k4", "o2", "/root/o2", date(2026, 3, 1), date(2026, 3, 31))  # o2's own: not run from above

    async def activity(aid: str, campaign_id: str | None, *, cadre: str | None = "c1", org: str = "o1",
                       path: str = "/root/o1", kind: c.ActivityKind = c.ActivityKind.exchange,
                       corrected: bool = False) -> None:
        fields: dict[str, Any] = {"activity_id": aid, "kind": kind, "organiser_cadre_id": cadre,
                                  "organiser_org_id": org, "org_path": path, "collective": cadre is None,
                                  "occurred_on": date(2026, 3, 12), "campaign_id": campaign_id}
        event = c.ActivityCorrected(**fields, reason="not for it") if corrected else c.ActivityRecorded(**fields)
        await contacts.emit(f"activity-{aid}", event, T0)

    await activity("a1", "k1")  # c1 for k1
    await activity("a2", "k2")  # c1 for k2 …
    await activity("a2", None, corrected=True)  # … taken off it
    await activity("a3", "k2", cadre=None, org="o2", path="/root/o2", kind=c.ActivityKind.open_day)  # o2's own
    await activity("a4", "k4", cadre=None, org="o2", path="/root/o2", kind=c.ActivityKind.open_day)
    await scoring.applied(4 + 4 + 5)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    march = {"org_id": "root", "period_kind": "month", "period": "2026-03"}
    doc = (await scoring.http.post("/circulars", json=march, headers=admin)).json()
    assert [k["campaign_id"] for k in doc["campaigns_run"]] == ["k1", "k2"]
    rows = {r["org_id"]: r for r in doc["rows"]}
    assert rows["o1"]["campaigns"] == {"run": 2, "joined": 1}  # k1; k2's activity was corrected off it
    assert rows["o2"]["campaigns"] == {"run": 2, "joined": 1}  # k2 by the org itself; k4 is not counted
    assert (await scoring.get(f"/circulars/{doc['number']}/as-of"))["equal"] is True
    # A campaign opened after the circular was published is not its: as of then, still two run.
    await campaign("k5", "root", "/root", date(2026, 3, 25), date(2026, 3, 30), at=datetime.now(UTC))
    await activity("a5", "k5")
    await scoring.applied(4 + 4 + 5 + 2)
    again = await scoring.get(f"/circulars/{doc['number']}/as-of")
    assert again["equal"] is True and [k["campaign_id"] for k in again["recomputed"]["campaigns_run"]] == ["k1", "k2"]
    now = (await scoring.http.post("/circulars", json=march, headers=admin)).json()
    assert {r["org_id"]: r["campaigns"] for r in now["rows"]}["o1"] == {"run": 3, "joined": 2}


async def test_a_circulars_signals_and_ballots_recompute_as_they_stood_when_it_was_published(
    scoring: Scoring, contacts: Producer, wishes: Producer
) -> None:
    await _city_and_branch(contacts)
    # Ten contacts logged within minutes, none confirmed: a burst, and never confirmed.
    for i in range(10):
        await contacts.emit(f"interaction-a{i}", _interaction(f"a{i}", [f"y{i}"], True, T0 + timedelta(hours=i),
                                                              summary=f"s{i}"))
    await scoring.applied(3 + 10)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    march = {"org_id": "root", "period_kind": "month", "period": "2026-03"}
    doc = (await scoring.http.post("/circulars", json=march, headers=admin)).json()
    assert doc["rows"][0]["signals"] == {"burst": 1, "never_confirmed": 1}
    # Afterwards eight youths confirm, and ten late logs for March come in with one summary.
    for i in range(8):
        await contacts.emit(f"interaction-a{i}", c.InteractionConfirmed(interaction_id=f"a{i}", cadre_id="c1",
                                                                         youth_id=f"y{i}", org_path="/root/o1"))
    for i in range(10):
        await contacts.emit(f"interaction-b{i}", _interaction(f"b{i}", [f"z{i}"], False, T0 + timedelta(days=1),
                                                              summary="same"))
    # And the branch secretary's satisfaction ballot closes.
    await wishes.emit("ballot-b1", w.BallotClosed(ballot_id="b1", branch_org_id="o1", org_path="/root/o1",
                                                  secretary_cadre_id="c1", year=2026, eligible=40, turnout=30,
                                                  published=True, satisfied=20, basically_satisfied=8,
                                                  unsatisfied=2))
    await scoring.applied(3 + 10 + 8 + 10 + 1)
    later = (await scoring.http.post("/circulars", json=march, headers=admin)).json()
    assert later["rows"][0]["signals"] == {"burst": 1, "identical_summaries": 1}  # 12 of 20 unconfirmed: 60%
    assert later["rows"][0]["satisfaction"]["ballots"] == 1 and doc["rows"][0]["satisfaction"]["ballots"] == 0
    check = await scoring.get(f"/circulars/{doc['number']}/as-of")
    assert check["equal"] is True, check["recomputed"]["rows"][0]["signals"]


async def test_a_progress_circular_recomputes_with_the_rules_it_was_computed_with(
    scoring: Scoring, contacts: Producer
) -> None:
    """Published mid-month (a progress circular), then o1's rules replaced and raised again from
    the month's last day: the as-of check reads the rules known when it was published."""
    await _city_and_branch(contacts)
    await contacts.emit("org-o1", c.OrgRulesSet(org_id="o1", org_path="/root/o1", effective_from=date(2026, 1, 1),
                                                rules=c.OrgRules(contact_quotas=c.ContactQuotas(part_time=1))), T0)
    await contacts.emit("link-l1", c.ContactLinkAccepted(link_id="l1", cadre_id="c1", youth_id="y1",
                                                         org_path="/root/o1"), T0)
    await scoring.applied(5)
    this_month = period_of(china_day(datetime.now(UTC)), PeriodKind.month)
    body = {"org_id": "root", "period_kind": "month", "period": this_month.key}
    admin = scoring.auth(Role.org_admin, "a", "/root")
    doc = (await scoring.http.post("/circulars", json=body, headers=admin)).json()
    assert doc["rows"][0]["cadres_meeting_quota_pct"] == 100.0
    for effective, quota in ((date(2026, 1, 1), 3), (this_month.end, 5)):
        await contacts.emit("org-o1", c.OrgRulesSet(org_id="o1", org_path="/root/o1", effective_from=effective,
                                                    rules=c.OrgRules(contact_quotas=c.ContactQuotas(part_time=quota))))
    await scoring.applied(7)
    now = (await scoring.http.post("/circulars", json=body, headers=admin)).json()
    assert now["rows"][0]["cadres_meeting_quota_pct"] == 0.0
    check = await scoring.get(f"/circulars/{doc['number']}/as-of")
    assert check["equal"] is True, check["recomputed"]["rows"][0]
    # o1 moved since: recomputed, its rules are still found (its row is filed under its new path).
    await contacts.emit("org-p2", c.OrgCreated(org_id="p2", parent_id="root", name="二总支",
                                               org_type=c.OrgType.general_branch, depth=2, is_leadership_organ=False,
                                               org_path="/root/p2"), T0)
    await contacts.emit("org-o1", c.OrgMoved(org_id="o1", old_parent_id="root", new_parent_id="p2",
                                             old_path="/root/o1", new_path="/root/p2/o1", depth=3))
    await scoring.applied(9)
    check = await scoring.get(f"/circulars/{doc['number']}/as-of")
    assert check["equal"] is True, check["recomputed"]["rows"][0]


async def test_a_circular_recomputes_a_merged_orgs_row_with_the_rules_it_had(
    scoring: Scoring, contacts: Producer
) -> None:
    """o2 asked one youth of its cadre and had it; merged into o1 (ten by default) after March's
    circular, its rules row is gone, yet recomputed the circular still judges o2 by them."""
    await _city_and_branch(contacts)
    await _org_and_cadre(contacts, "c2", org="o2", path="/root/o2")
    await contacts.emit("org-o2", c.OrgRulesSet(org_id="o2", org_path="/root/o2", effective_from=date(2026, 1, 1),
                                                rules=c.OrgRules(contact_quotas=c.ContactQuotas(part_time=1))), T0)
    await contacts.emit("link-l2", c.ContactLinkAccepted(link_id="l2", cadre_id="c2", youth_id="y2",
                                                         org_path="/root/o2"), T0)
    await scoring.applied(7)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    march = {"org_id": "root", "period_kind": "month", "period": "2026-03"}
    doc = (await scoring.http.post("/circulars", json=march, headers=admin)).json()
    assert {r["org_id"]: r["cadres_meeting_quota_pct"] for r in doc["rows"]} == {"o1": 0.0, "o2": 100.0}
    await contacts.emit("org-o2", c.OrgMerged(org_id="o2", into_org_id="o1", old_path="/root/o2",
                                              into_path="/root/o1"))
    await contacts.emit("org-o2", c.OrgClosed(org_id="o2", org_path="/root/o2", reason="merged into o1"))
    await scoring.applied(9)
    now = (await scoring.http.post("/circulars", json=march, headers=admin)).json()
    assert [(r["org_id"], r["cadres"], r["cadres_meeting_quota_pct"]) for r in now["rows"]] == [("o1", 2, 0.0)]
    check = await scoring.get(f"/circulars/{doc['number']}/as-of")
    assert check["equal"] is True, check["recomputed"]["rows"]


async def test_a_leaderboard_as_of_an_instant_filters_by_the_cadres_org_level_then(
    scoring: Scoring, contacts: Producer
) -> None:
    await _org_and_cadre(contacts, "c1", c.CadreKind.part_time)
    await contacts.emit("org-u1", c.OrgCreated(org_id="u1", parent_id="root", name="某大学团委",
                                               org_type=c.OrgType.university, depth=2, is_leadership_organ=True,
                                               org_path="/root/u1"), T0)
    await contacts.emit("interaction-i1", _interaction("i1", ["y1"], False, T0))
    await scoring.applied(4)
    async with scoring.runtime.db.connection() as conn:
        then = await conn.fetchval("SELECT clock_timestamp()")
    # Later the cadre is transferred to the university committee (调动).
    await contacts.emit("cadre-c1", c.CadreTransferred(cadre_id="c1", from_org_id="o1", to_org_id="u1",
                                                       old_path="/root/o1", org_path="/root/u1",
                                                       in_leadership_organ=True))
    await scoring.applied(5)
    month = {"org_path": "/root", "period_kind": "month", "period": "2026-03"}

    async def ids(**params: str) -> list[str]:
        return [e["cadre_id"] for e in (await scoring.get("/leaderboards/cadres", **month, **params))["entries"]]

    # Now: a part-time cadre of a university committee.
    assert await ids(cadre_kind="part_time", org_type="university") == ["c1"]
    assert await ids(org_type="branch") == []
    # As of before the transfer: a cadre of a branch, filed under the branch.
    assert await ids(cadre_kind="part_time", org_type="branch", as_of=then.isoformat()) == ["c1"]
    assert await ids(org_type="university", as_of=then.isoformat()) == []
    assert await ids(cadre_kind="full_time", as_of=then.isoformat()) == []
    board = await scoring.get("/leaderboards/cadres", **month, as_of=then.isoformat())
    assert (board["entries"][0]["kind"], board["entries"][0]["org_path"]) == ("part_time", "/root/o1")


async def test_an_activity_dated_year_one_is_refused_and_the_boards_go_on(scoring: Scoring, contacts: Producer) -> None:
    # asyncpg writes date.min as -infinity: such a credit had no period key, and every fold after
    # it failed, so no leaderboard moved again. The contract bounds the date: the event is
    # unreadable, dead-lettered, and the next one is folded as usual.
    await _org_and_cadre(contacts)
    bad = await contacts.emit("activity-old", c.ActivityRecorded.model_construct(
        activity_id="old", kind=c.ActivityKind.exchange, organiser_cadre_id="c1", organiser_org_id="o1",
        org_path="/root/o1", collective=False, occurred_on=date(1, 1, 1), youth_ids=[], headcount=0,
        campaign_id=None, description_length=0))
    await contacts.emit("activity-ok", c.ActivityRecorded(
        activity_id="ok", kind=c.ActivityKind.exchange, organiser_cadre_id="c1", organiser_org_id="o1",
        org_path="/root/o1", collective=False, occurred_on=date(2026, 3, 2)))
    await scoring.applied(4)  # the boards hold every credit: the fold did not stop
    async with scoring.runtime.db.connection() as conn:
        outcome = await conn.fetchval("SELECT outcome FROM scoring.consumer_inbox WHERE event_id = $1", bad.event_id)
        refs = [r["ref"] for r in await conn.fetch("SELECT ref FROM scoring_proj.ledger WHERE rule = 'five_ones_activity'")]
    assert outcome == "dead_lettered" and refs == ["ok"]
    board = await scoring.get("/leaderboards/cadres", scope="/root", org_path="/root", period_kind="month",
                              period="2026-03")
    assert [(e["cadre_id"], e["points"]) for e in board["entries"]] == [("c1", 5)]


async def test_periods_and_instants_out_of_range_are_a_422(scoring: Scoring, contacts: Producer) -> None:
    await _org_and_cadre(contacts)
    await scoring.applied(2)
    admin = scoring.auth(Role.org_admin, "a", "/root")
    for params in ({"period_kind": "day", "period": "0001-01-01"},  # the day before it: OverflowError
                   {"period_kind": "month", "period": "9999-11", "as_of": "2026-01-01T00:00:00Z"},
                   {"period_kind": "month", "period": "1-01"},
                   {"period_kind": "month", "period": "2026-03", "as_of": "0001-01-01T00:00:00+14:00"},
                   {"period_kind": "month", "period": "2026-03", "as_of": "9999-12-31T23:59:59-12:00"}):
        for url in ("/leaderboards/cadres", "/leaderboards/orgs"):
            r = await scoring.http.get(url, params={"org_path": "/root", "org_type": "branch", **params},
                                       headers=admin)
            assert r.status_code == 422, (url, params, r.status_code, r.text)
    for period, why in (("9999-11", "outside"), ("1-01", "outside"), ("2026-13", "not a month key"),
                        ("2099-01", "has not begun")):
        r = await scoring.http.post("/circulars", json={"org_id": "o1", "period_kind": "month", "period": period},
                                    headers=admin)
        assert r.status_code == 422 and why in r.json()["detail"][0]["msg"], r.text
        assert r.json()["detail"][0]["loc"] == ["body", "period"]
    r = await scoring.http.post("/circulars", json={"org_id": "o1", "period_kind": "month", "period": "2026-03"},
                                headers=admin)
    assert r.status_code == 201


async def test_a_circular_lists_the_direct_children_after_a_move_changed_their_levels(
    scoring: Scoring, contacts: Producer
) -> None:
    # A county with its branch moved under another county: the branch's depth stays as it was in
    # the projection (a move rewrites paths), so children found by depth took the branch as a
    # child of its new grandparent too, and counted its cadre twice.
    def org(oid: str, path: str, typ: c.OrgType, depth: int) -> c.OrgCreated:
        return c.OrgCreated(org_id=oid, parent_id=path.rsplit("/", 2)[-2] or None, name=oid, org_type=typ,
                            depth=depth, is_leadership_organ=False, org_path=path)

    await contacts.emit("org-r", org("r", "/r", c.OrgType.city, 1), T0)
    await contacts.emit("org-k1", org("k1", "/r/k1", c.OrgType.county, 2), T0)
    await contacts.emit("org-k2", org("k2", "/r/k2", c.OrgType.county, 2), T0)
    await contacts.emit("org-b1", org("b1", "/r/k1/b1", c.OrgType.branch, 3), T0)
    await contacts.emit("cadre-c1", c.CadreRegistered(cadre_id="c1", org_id="b1", org_path="/r/k1/b1",
                                                      kind=c.CadreKind.part_time, in_leadership_organ=False), T0)
    await contacts.emit("org-k1", c.OrgMoved(org_id="k1", old_parent_id="r", new_parent_id="k2", old_path="/r/k1",
                                             new_path="/r/k2/k1", depth=3), T0)
    await scoring.applied(6)
    admin = scoring.auth(Role.org_admin, "a", "/r")
    r = await scoring.http.post("/circulars", json={"org_id": "k2", "period_kind": "month", "period": "2026-03"},
                                headers=admin)
    assert r.status_code == 201, r.text
    assert [(row["org_id"], row["cadres"]) for row in r.json()["rows"]] == [("k1", 1)]
    assert (await scoring.get(f"/circulars/{r.json()['number']}/as-of"))["equal"] is True
