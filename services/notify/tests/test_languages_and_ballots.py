"""Messages in the recipient's language (Chinese first, English for those who chose it), the
youth-facing wish messages, and the satisfaction ballot reaching every member of the branch."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from support import SCHEMA, apply, deliveries, inbox, set_preferences
from tuanlian.notify.application.fanout import FanoutWorker
from tuanlian.notify.application.scheduler import Scheduler, default_rules
from tuanlian.shared.contracts import contacts as c
from tuanlian.shared.contracts import scoring as sc
from tuanlian.shared.contracts import wishes as w
from tuanlian.shared.db import Database

T = datetime(2026, 6, 1, 2, tzinfo=UTC)
CIRCULAR = sc.CircularPublished(
    circular_id="circ-lang", number="2026-05", org_id="c", org_path="/c", period_kind=sc.PeriodKind.month,
    period_start=date(2026, 5, 1), period_end=date(2026, 5, 31), title="五月通报", positions={})


def youth(youth_id: str, path: str = "/c/b") -> c.YouthRegistered:
    return c.YouthRegistered(youth_id=youth_id, org_id=path.rsplit("/", 1)[-1], org_path=path)


async def test_a_circular_is_english_for_those_who_chose_english_and_chinese_for_everyone_else(ndb: Database) -> None:
    await apply(ndb, *[c.CadreRegistered(cadre_id=f"c{i}", org_id="b", org_path="/c/b", kind=c.CadreKind.part_time,
                                         in_leadership_organ=False) for i in (1, 2, 3)])
    await set_preferences(ndb, "c1", [], lang="en")
    await set_preferences(ndb, "c2", [], lang="zh")  # c3 has no preferences at all: Chinese
    await apply(ndb, (CIRCULAR, T))
    await FanoutWorker(ndb, SCHEMA, batch=2).drain(T)
    got = {m["recipient_id"]: m for m in await inbox(ndb)}
    assert got["c1"]["title"] == "Circular: 五月通报"
    assert got["c1"]["body"] == "Circular 2026-05 was published: 五月通报 (2026-05-01 to 2026-05-31)."
    assert got["c2"]["title"] == got["c3"]["title"] == "通报：五月通报"
    assert "2026-05 号通报已发布" in got["c3"]["body"]


async def test_the_youth_hears_of_their_wish_released_claimed_fulfilled_and_expired_in_their_language(
    ndb: Database,
) -> None:
    await apply(ndb, youth("y-en"), youth("y-zh"))
    await set_preferences(ndb, "y-en", ["webhook"], lang="en")
    for y in ("y-en", "y-zh"):
        wid = f"wish-{y}"
        await apply(ndb, (w.WishRaised(wish_id=wid, youth_id=y, cadre_id="c1", org_path="/c/b",
                                       category=w.WishCategory.study), T),
                    (w.WishReleasedToPool(wish_id=wid, youth_id=y, cadre_id="c1", org_path="/c/b", automatic=True),
                     T + timedelta(days=1)),
                    (w.PoolWishClaimed(wish_id=wid, claim_id=f"k-{y}", org_path="/c/b",
                                       claimant_kind=w.ClaimantKind.partner, claimant_id="p1",
                                       deadline=T + timedelta(days=20)), T + timedelta(days=2)),
                    (w.WishFulfilled(wish_id=wid, youth_id=y, cadre_id="c1", org_path="/c/b", from_pool=True,
                                     claim_id=f"k-{y}", fulfilled_at=T + timedelta(days=3)),
                     T + timedelta(days=3)),
                    channels=("webhook",))
    await apply(ndb, (w.WishRaised(wish_id="old", youth_id="y-en", cadre_id="c1", org_path="/c/b",
                                   category=w.WishCategory.study), T),
                (w.WishExpired(wish_id="old", youth_id="y-en", org_path="/c/b", cadre_id="c1"), T + timedelta(days=60)))
    en = {m["kind"]: m["title"] for m in await inbox(ndb, "y-en")}
    assert en == {"wish_released": "Your wish is in the wish pool", "wish_claimed": "Your wish was claimed",
                  "wish_fulfilled": "Your wish came true", "wish_expired": "Your wish expired"}
    zh = {m["kind"]: m["title"] for m in await inbox(ndb, "y-zh")}
    assert zh == {"wish_released": "你的微心愿已进入心愿池", "wish_claimed": "你的微心愿已被认领",
                  "wish_fulfilled": "你的微心愿已实现"}
    # The English youth asked for the webhook too: one delivery per message, none for the other youth.
    assert sorted(d["recipient_id"] for d in await deliveries(ndb)) == ["y-en"] * 3


async def test_a_ballot_reaches_every_member_of_the_branch_even_one_notify_learns_of_late(ndb: Database) -> None:
    opened = T + timedelta(days=10)
    await apply(ndb, (youth("y1", "/c/b"), T), (youth("y2", "/c/b/dorm3"), T), (youth("y-other", "/c/b2"), T),
                (c.CadreRegistered(cadre_id="sec", org_id="b", org_path="/c/b", kind=c.CadreKind.part_time,
                                   in_leadership_organ=False), T))
    await set_preferences(ndb, "y2", ["webhook"], lang="en")
    ballot = w.BallotOpened(ballot_id="bal", branch_org_id="b", org_path="/c/b", secretary_cadre_id="sec", year=2026,
                            eligible=4, closes_at=opened + timedelta(days=7))
    await apply(ndb, (ballot, opened), channels=("webhook",))
    # y3 registered before the ballot opened, but the contacts stream reached notify after the wishes one.
    await set_preferences(ndb, "y3", ["webhook"], lang="en")
    await apply(ndb, (youth("y3", "/c/b"), T + timedelta(days=5)), channels=("webhook",))
    # y4 joined after the opening: not in the ballot's electorate, so not asked.
    await apply(ndb, (youth("y4", "/c/b"), opened + timedelta(days=1)), channels=("webhook",))
    asked = {m["recipient_id"]: m for m in await inbox(ndb) if m["kind"] == "ballot_opened"}
    assert sorted(asked) == ["y1", "y2", "y3"]
    assert asked["y1"]["title"] == "满意度测评已开始" and "2026-06-18" in asked["y1"]["body"]
    assert asked["y2"]["title"] == asked["y3"]["title"] == "Satisfaction ballot open"
    assert sorted(d["recipient_id"] for d in await deliveries(ndb)) == ["y2", "y3"]
    # A replayed registration asks nobody twice; once the ballot closes, a late youth is not asked.
    await apply(ndb, (youth("y3", "/c/b"), T + timedelta(days=5)), channels=("webhook",))
    await apply(ndb, w.BallotClosed(ballot_id="bal", branch_org_id="b", org_path="/c/b", secretary_cadre_id="sec",
                                    year=2026, eligible=4, turnout=3, published=True))
    await apply(ndb, (youth("y5", "/c/b"), T + timedelta(days=6)))
    assert len([m for m in await inbox(ndb) if m["kind"] == "ballot_opened"]) == 3


async def test_wishes_events_applied_after_a_move_they_preceded_are_filed_at_the_orgs_path_now(
    ndb: Database,
) -> None:
    """The contacts consumer applied the branch's move first; a wish, a post and a ballot the
    branch had before it arrive on the wishes consumer with the old path. They are filed at the
    new one, and the ballot still reaches the branch's youths (there now)."""
    await apply(ndb, (c.OrgCreated(org_id="mb", parent_id="c", name="一支部", org_type=c.OrgType.branch, depth=1,
                                   is_leadership_organ=False, org_path="/c/mb"), T),
                (youth("my1", "/c/mb"), T),
                (c.OrgMoved(org_id="mb", old_parent_id="c", new_parent_id="d", old_path="/c/mb", new_path="/d/mb",
                            depth=1), T + timedelta(days=1)))
    await apply(ndb, (w.WishRaised(wish_id="mw", youth_id="my1", cadre_id="mc", org_path="/c/mb",
                                   category=w.WishCategory.study), T),
                (w.VoicePosted(post_id="mp", youth_id="my1", cadre_id="mc", org_id="mb", org_path="/c/mb",
                               kind=w.VoiceKind.suggestion, due_at=T + timedelta(days=3)), T),
                (w.BallotOpened(ballot_id="mbal", branch_org_id="mb", org_path="/c/mb", secretary_cadre_id="mc",
                                year=2026, eligible=1, closes_at=T + timedelta(days=7)), T))
    async with ndb.connection() as conn:
        paths = [await conn.fetchval(f"SELECT org_path FROM {SCHEMA}.{table} WHERE {key} = $1", ref)
                 for table, key, ref in (("wishes", "wish_id", "mw"), ("voice_posts", "post_id", "mp"),
                                         ("ballots", "ballot_id", "mbal"))]
    assert paths == ["/d/mb"] * 3
    assert [m["recipient_id"] for m in await inbox(ndb) if m["kind"] == "ballot_opened"] == ["my1"]


async def test_a_reminder_is_in_the_recipients_language(ndb: Database) -> None:
    await apply(ndb, (c.CadreRegistered(cadre_id="c-en", org_id="b", org_path="/c/b", kind=c.CadreKind.part_time,
                                        in_leadership_organ=False), datetime(2026, 3, 1, 2, tzinfo=UTC)))
    await set_preferences(ndb, "c-en", [], lang="en")
    rules = [r for r in default_rules() if r.key == "contact_quota_weekly"]
    scheduler = Scheduler(ndb, SCHEMA, rules)
    await scheduler.tick(datetime(2026, 3, 30, tzinfo=UTC))
    assert (await scheduler.tick(datetime(2026, 3, 31, 2, tzinfo=UTC))).sent == 1
    [m] = await inbox(ndb, "c-en")
    assert (m["title"], m["body"]) == ("Contact quota not met", "You keep direct contact with 0 youths; the rule asks for 10.")
