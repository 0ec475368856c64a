"""The pure domain of contacts-work, without I/O."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from tuanlian.contacts.domain.activities import Activity, ActivityFacts, Organiser
from tuanlian.contacts.domain.campaigns import Campaign, presets_for
from tuanlian.contacts.domain.cards import add_group_link, end_group_link, publish_card
from tuanlian.contacts.domain.evidence import Evidence, sniff
from tuanlian.contacts.domain.interactions import Interaction
from tuanlian.contacts.domain.links import JOIN_CODE_ALPHABET, ContactLink, new_join_code
from tuanlian.contacts.domain.model import Cadre, Org
from tuanlian.contacts.domain.spot_checks import SpotCheck
from tuanlian.contacts.domain.spread import crowded, spread
from tuanlian.shared.contracts.contacts import (
    ActivityKind,
    CadreKind,
    Channel,
    InteractionCorrected,
    OrgType,
    SpotCheckOutcome,
)
from tuanlian.shared.errors import IllegalTransition, RuleViolation

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TODAY = date(2026, 6, 1)


def org(lo: bool = True) -> Org:
    o = Org.create("c1", "县团委", OrgType.county, None, lo)
    o.pending.clear()
    return o


def cadre(o: Org | None = None, id: str = "k1") -> Cadre:
    c = Cadre.register(id, o or org(), CadreKind.full_time, False)
    c.pending.clear()
    return c


def test_a_youths_request_is_answered_by_the_cadre_and_an_invitation_by_the_youth() -> None:
    link = ContactLink("k1.y1")
    link.invite(cadre(), "y1", initiated_by="youth")
    assert link.answered_by == "cadre"
    other = ContactLink("k1.y2")
    other.invite(cadre(), "y2", initiated_by="cadre")
    assert other.answered_by == "youth"
    link.accept()
    with pytest.raises(IllegalTransition):
        link.invite(cadre(), "y1", initiated_by="youth")


def test_join_codes_use_a_readable_alphabet() -> None:
    codes = {new_join_code() for _ in range(200)}
    assert len(codes) == 200 and all(set(c) <= set(JOIN_CODE_ALPHABET) for c in codes)


def _interaction() -> Interaction:
    since = {"y1": NOW - timedelta(days=3), "y2": NOW - timedelta(days=3)}
    i = Interaction.log("i1", cadre(), ["y1", "y2"], since, Channel.qq, NOW - timedelta(hours=1), "聊了聊最近的学习和生活情况", NOW)
    i.pending.clear()
    return i


def test_each_youth_answers_once_and_a_correction_starts_the_answers_over() -> None:
    i = _interaction()
    i.confirm("y1")
    with pytest.raises(IllegalTransition):
        i.dispute("y1", "changed my mind")
    with pytest.raises(RuleViolation):
        i.confirm("y9")
    i.dispute("y2", None)
    since = {"y1": NOW - timedelta(days=3)}
    with pytest.raises(RuleViolation, match="why"):
        i.correct(["y1"], since, Channel.visit, NOW - timedelta(hours=2), "上门看望了解家庭情况", " ", NOW)
    with pytest.raises(RuleViolation, match="not linked"):
        i.correct(["y2"], since, Channel.visit, NOW - timedelta(hours=2), "上门看望了解家庭情况", "改正", NOW)
    i.correct(["y1"], since, Channel.visit, NOW - timedelta(hours=2), "上门看望了解家庭情况", "渠道记错", NOW)
    event = i.pending[-1]
    assert isinstance(event, InteractionCorrected) and event.online is False and event.youth_ids == ["y1"]
    assert i.answer_of("y1") == "pending"


def test_activity_rules() -> None:
    k = cadre()
    facts = ActivityFacts(ActivityKind.league_lecture, TODAY, ["y1"], 0, "讲了一堂主题团课并讨论交流", None)
    a = Activity.record("a1", Organiser.of_cadre(k), facts, {"y1"}, TODAY)
    assert a.pending[0].collective is False  # type: ignore[attr-defined]
    with pytest.raises(RuleViolation, match="not linked"):
        Activity.record("a2", Organiser.of_cadre(k), facts, set(), TODAY)
    open_day = ActivityFacts(ActivityKind.open_day, TODAY, [], 50, "团县委机关开放日活动", None)
    organ = Organiser(org_id="c1", org_path="/c1", is_leadership_organ=True)
    assert Activity.record("a3", organ, open_day, set(), TODAY).pending[0].collective  # type: ignore[attr-defined]
    with pytest.raises(RuleViolation, match="leadership organs"):
        Activity.record("a4", Organiser(org_id="b", org_path="/c1/b"), open_day, set(), TODAY)
    with pytest.raises(RuleViolation, match="collective"):
        Activity.record("a5", Organiser.of_cadre(k), open_day, set(), TODAY)
    with pytest.raises(RuleViolation, match="future"):
        Activity.record("a6", Organiser.of_cadre(k), facts, {"y1"}, TODAY - timedelta(days=1))


def test_presets_follow_the_seeds() -> None:
    p = {x.key: x for x in presets_for(2027)}
    assert p["may4_open_day"].starts_on <= date(2027, 5, 4) <= p["may4_open_day"].ends_on
    assert p["may4_open_day"].starts_on.weekday() == 0
    assert p["most_beautiful_story"].deadline == date(2027, 10, 31)
    assert p["spring_service_month"].starts_on < date(2028, 1, 1)
    assert p["spring_service_month"].ends_on > date(2028, 1, 26)  # 春节 2028
    with pytest.raises(RuleViolation):
        presets_for(2090)


def test_nominations_only_inside_the_window_and_once() -> None:
    o = org()
    c = Campaign.open("s", o, "most_beautiful_story", "最美青春故事", date(2026, 7, 1), date(2026, 12, 31), date(2026, 10, 31))
    k = cadre(o)
    with pytest.raises(IllegalTransition, match="open on"):
        c.nominate("n0", k, "c1", date(2026, 6, 30))
    with pytest.raises(IllegalTransition, match="closed"):
        c.nominate("n0", k, "c1", date(2026, 11, 1))
    c.nominate("n1", k, "c1", date(2026, 10, 31))
    with pytest.raises(IllegalTransition, match="already"):
        c.nominate("n2", k, "c1", date(2026, 10, 1))
    elsewhere = Org.create("x", "别处", OrgType.county, None, True)
    with pytest.raises(RuleViolation, match="outside"):
        c.nominate("n3", cadre(elsewhere, "k2"), "c1", date(2026, 10, 1))


def test_spot_check_samples_without_repeats_and_only_unreachable_may_be_recorded_again() -> None:
    population = [f"interaction:{i}" for i in range(20)]
    check = SpotCheck.draw("s1", cadre(), population, 5, random.Random(7))
    assert len(set(check.items)) == 5 and set(check.items) <= set(population)
    assert SpotCheck.draw("s2", cadre(), population[:2], 5, random.Random(1)).items.__len__() == 2
    with pytest.raises(RuleViolation):
        SpotCheck.draw("s3", cadre(), [], 5, random.Random(1))
    first, second = check.items[:2]
    check.record(first, SpotCheckOutcome.unreachable)
    check.record(first, SpotCheckOutcome.fabricated)
    with pytest.raises(IllegalTransition):
        check.record(first, SpotCheckOutcome.verified)
    with pytest.raises(RuleViolation):
        check.record("activity:zzz", SpotCheckOutcome.verified)
    check.record(second, SpotCheckOutcome.not_confirmed)


def test_evidence_is_typed_by_its_bytes() -> None:
    assert sniff(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(b"GIF89a") is None
    e = Evidence.attach("e1", "activity", "a1", b"%PDF-1.7 x", "application/octet-stream", 100)
    assert e.content_type == "application/pdf" and e.size_bytes == 10
    with pytest.raises(RuleViolation, match="larger"):
        Evidence.attach("e2", "activity", "a1", b"%PDF-" + b"x" * 200, None, 100)
    with pytest.raises(RuleViolation, match="says"):
        Evidence.attach("e3", "activity", "a1", b"%PDF-1.7", "image/png", 100)


def test_cards_and_group_links() -> None:
    o = org()
    k = cadre(o)
    assert publish_card(k, {Channel.weibo: "w", Channel.wechat: "x"}).channels == [Channel.wechat, Channel.weibo]
    with pytest.raises(RuleViolation):
        publish_card(k, {Channel.phone: "13800000000"})
    add_group_link(k, "b1", OrgType.branch, "/c1/b1", set())
    with pytest.raises(IllegalTransition):
        add_group_link(k, "b1", OrgType.branch, "/c1/b1", {"b1"})
    with pytest.raises(RuleViolation, match="sub-committees"):
        add_group_link(k, "g", OrgType.grassroots_committee, "/c1/g", set())
    with pytest.raises(RuleViolation, match="below"):
        add_group_link(k, "b2", OrgType.branch, "/other/b2", set())
    with pytest.raises(IllegalTransition):
        end_group_link(k, "b9", {"b1"})


def test_spread_and_crowding() -> None:
    s = spread([{"field": "school", "grade": "大一"}, {"field": "school"}, {"field": "rural"}])
    assert s["field"] == {"school": 2, "rural": 1} and s["grade"] == {"unknown": 2, "大一": 1}
    assert crowded({"a": 3, "b": 2, "c": 5}, 3) == [
        {"youth_id": "c", "cadres_of_same_org": 5},
        {"youth_id": "a", "cadres_of_same_org": 3},
    ]
