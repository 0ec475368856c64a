"""The demo League: a city committee with its counties, schools, branches and dorm groups, ~30
cadres, ~2,000 youths and four months of contact history, loaded once through contacts' own
command handlers (so every number has its events and passes every rule); then this month's
activities, wishes, Youth Voice, ratings and a circular through the services' HTTP APIs
(``demo_activity``)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from tuanlian.cli.demo_activity import load_demo_activity
from tuanlian.contacts.adapters.pii import PiiVault
from tuanlian.contacts.application import commands as c
from tuanlian.contacts.application.handlers import ContactsService
from tuanlian.shared.auth import Principal, Role, load_or_create_signing_key
from tuanlian.shared.contracts.contacts import CONTACTS, CadreKind, Channel, Field, OrgType
from tuanlian.shared.db import Database
from tuanlian.shared.eventstore import EventStore
from tuanlian.shared.settings import Settings

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏浩宇轩子涵欣怡梓萱一诺"
SUMMARIES = [
    "微信聊了最近的学习计划，提醒按时参加团课，了解到家里农忙需要帮手",
    "电话询问就业意向，推荐了区里青年人才招聘会的信息，约定下周再联系",
    "走访宿舍，了解同学们对食堂和自习室开放时间的意见，记下三条建议",
    "谈心谈话，聊了考研压力和作息问题，建议参加学校心理中心的团体辅导",
    "QQ群里答复了关于志愿服务时长认定的问题，并发了报名链接",
    "面对面交流社区志愿服务安排，确定了周末关爱留守儿童活动的分工",
    "在青年之声回复了关于创业补贴申请流程的提问，附上了政策文件",
    "微博私信沟通读书会活动的时间地点，邀请带室友一起参加",
]


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


async def load_demo_league(database_url: str, settings: Settings, home: Path) -> str:
    """Load the demo once; returns a city-admin token. Running again loads nothing more."""
    issuer = load_or_create_signing_key(home / "keys")
    marker = home / "demo.json"
    db = Database(database_url, bulk=True)
    try:
        async with db.connection() as conn:
            existing = await conn.fetchval("SELECT count(*) FROM contacts.orgs")
        if existing:
            if marker.exists():
                demo = json.loads(marker.read_text())
                return issuer.issue(Principal("demo-admin", Role.org_admin, demo["city_path"]))
            return issuer.issue(Principal("operator", Role.system))
        svc = ContactsService(
            db, EventStore("contacts", "contacts", CONTACTS), PiiVault("contacts", settings.pii_hash_key)
        )
        demo = await _load(svc, random.Random(2017))
    finally:
        await db.close()
    demo["activity"] = await load_demo_activity(settings, issuer, demo, random.Random(2018))
    demo.pop("pairs")
    marker.write_text(json.dumps(demo, ensure_ascii=False, indent=2))
    return issuer.issue(Principal("demo-admin", Role.org_admin, demo["city_path"]))


async def _load(svc: ContactsService, rng: random.Random) -> dict[str, object]:
    system = Principal("demo-loader", Role.system)
    now = datetime.now(UTC)
    start = now - timedelta(days=120)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )
    with progress:
        # -- the org tree ------------------------------------------------------------------
        t = progress.add_task("organisations", total=None)
        at = start - timedelta(days=30)

        async def org(name: str, kind: OrgType, parent: str | None, organ: bool = False) -> tuple[str, str]:
            o = await svc.create_org(
                system,
                c.CreateOrg(name=name, org_type=kind, parent_id=parent, is_leadership_organ=organ),
                at=at,
            )
            progress.advance(t)
            return o.id, o.path

        city, city_path = await org("江城市团委", OrgType.city, None, True)
        units: list[tuple[str, str]] = []  # (org_id, kind of place) where youths live
        cadre_slots: list[tuple[str, CadreKind, bool]] = [(city, CadreKind.full_time, True)] * 4
        counties: list[str] = []
        committees: list[str] = []
        for county in ("东湖区团委", "西山县团委"):
            cid, _ = await org(county, OrgType.county, city, True)
            counties.append(cid)
            cadre_slots += [
                (cid, CadreKind.full_time, True),
                (cid, CadreKind.seconded, True),
                (cid, CadreKind.part_time, True),
                (cid, CadreKind.part_time, True),
            ]
            for g in ("街道团工委", "工业园区团委"):
                gid, _ = await org(f"{county[:3]}{g}", OrgType.grassroots_committee, cid)
                committees.append(gid)
                cadre_slots += [(gid, CadreKind.part_time, False)] * 2
                for b in range(1, 3):
                    bid, _ = await org(f"{county[:3]}{g}第{b}团支部", OrgType.branch, gid)
                    units.append((bid, "enterprise" if "园区" in g else "street"))
        uni, _ = await org("江城大学团委", OrgType.university, city, False)
        cadre_slots += [(uni, CadreKind.full_time, False)] * 3
        for dept in ("机械学院团委", "外国语学院团委"):
            did, _ = await org(dept, OrgType.department, uni)
            cadre_slots += [(did, CadreKind.part_time, False)] * 3
            for b in range(1, 3):
                bid, _ = await org(f"{dept[:-2]}{2023 + b}级团支部", OrgType.branch, did)
                units.append((bid, "school"))
                for d in range(1, 3):
                    gid, _ = await org(f"{dept[:-2]}{2023 + b}级{d}号楼宿舍团小组", OrgType.dorm_group, bid)
                    units.append((gid, "school"))
        progress.update(t, total=progress.tasks[t].completed)

        # -- cadres and youths -------------------------------------------------------------
        t = progress.add_task("cadres", total=len(cadre_slots))
        cadres = []
        for i, (oid, kind, organ) in enumerate(cadre_slots):
            cadre = await svc.register_cadre(
                system,
                c.RegisterCadre(
                    org_id=oid,
                    name=_name(rng),
                    phone=f"139{10000000 + i:08d}",
                    kind=kind,
                    in_leadership_organ=organ,
                ),
                at=at,
            )
            cadres.append(cadre)
            progress.advance(t)
        t = progress.add_task("youths", total=2000)
        youths = []
        fields = list(Field)
        for i in range(2000):
            oid, place = rng.choice(units)
            youth = await svc.register_youth(
                system,
                c.RegisterYouth(
                    name=_name(rng),
                    phone=f"186{20000000 + i:08d}",
                    org_id=oid,
                    field=Field(place) if place in fields else rng.choice(fields),
                    grade=rng.choice(("2023", "2024", "2025", "2026", None)),
                    political_status=rng.choice(("团员", "团员", "团员", "群众", "党员")),
                    family_situation=rng.choice(("一般", "一般", "一般", "困难", "单亲")),
                    special_care=rng.sample(
                        ["non_hukou", "poor_family", "left_behind", "disabled"], k=rng.choice((0, 0, 0, 1))
                    ),
                ),
                at=at,
            )
            youths.append(youth.id)
            progress.advance(t)

        # -- links: invitations over the first two months, most accepted ---------------------
        plan = []
        for cadre in cadres:
            full = cadre.kind != CadreKind.part_time or cadre.in_leadership_organ
            size = rng.randint(95, 115) if full else rng.randint(8, 20)
            for y in rng.sample(youths, k=size):
                plan.append((cadre, y))
        t = progress.add_task("contact links", total=len(plan))
        linked: dict[str, list[tuple[str, datetime]]] = {}
        for cadre, y in plan:
            invited = start + timedelta(minutes=rng.randint(0, 60 * 24 * 60))
            link = await svc.invite(
                Principal(cadre.id, Role.cadre, cadre.org_path),
                c.InviteYouth(cadre_id=cadre.id, youth_id=y),
                at=invited,
            )
            if rng.random() < 0.9:
                accepted = invited + timedelta(hours=rng.randint(1, 72))
                await svc.accept(Principal(y, Role.youth), link.id, at=accepted)
                linked.setdefault(cadre.id, []).append((y, accepted))
            progress.advance(t)

        # -- four months of interactions ----------------------------------------------------
        total = sum(len(v) for v in linked.values()) * 4
        t = progress.add_task("interactions", total=total)
        for cadre in cadres:
            diligence = rng.uniform(0.3, 1.0)
            who = Principal(cadre.id, Role.cadre, cadre.org_path)
            for y, since in linked.get(cadre.id, []):
                for _ in range(4):
                    progress.advance(t)
                    if rng.random() > diligence:
                        continue
                    span = max((now - since).total_seconds() - 3600, 60)
                    when = since + timedelta(seconds=rng.uniform(60, span))
                    await svc.log_interaction(
                        who,
                        c.LogInteraction(
                            cadre_id=cadre.id,
                            youth_ids=[y],
                            channel=rng.choice(list(Channel)),
                            occurred_at=when,
                            summary=rng.choice(SUMMARIES),
                        ),
                        now=now,
                    )
    top = max(cadres, key=lambda cd: len(linked.get(cd.id, [])))
    return {
        "city_id": city,
        "city_path": city_path,
        "top_cadre": top.id,
        "cadres": len(cadres),
        "youths": len(youths),
        "links": sum(len(v) for v in linked.values()),
        "pairs": [(cd.id, cd.org_path, y) for cd in cadres for y, _ in linked.get(cd.id, [])],
        "counties": counties,
        "committees": committees,
    }
