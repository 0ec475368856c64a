"""The demo League's second part, through the running services' HTTP APIs: the city adopts the
2017 Shanghai rules (000), cadres record five-ones activities, youths confirm or dispute some
interactions, raise micro-wishes and Youth Voice posts and rate their cadres, cadres answer and
fulfil, a wish goes through the pool to a partner, and the city publishes its monthly circular.

It runs once, after the history of contacts is loaded and the services have caught up, as any
client would: every number it leaves behind has its events and passed every rule."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from tuanlian.shared.auth import Principal, Role, TokenIssuer
from tuanlian.shared.league_calendar import period_of
from tuanlian.shared.league_calendar import today as league_today
from tuanlian.shared.settings import Settings

WISHES = [
    ("study", "想借几本考研数学参考书，图书馆的总是被借走"),
    ("work", "希望能推荐一次电工技能培训，想考个证"),
    ("daily_life", "宿舍楼下的路灯坏了一个多月，晚上回来很黑"),
    ("health", "最近压力大睡不好，想预约一次心理咨询"),
    ("family_hardship", "家里老人生病，想了解大病救助怎么申请"),
    ("culture_sports", "想组织一场篮球友谊赛，缺一套队服"),
]
VOICE = [
    ("question", "创业补贴的申请材料有哪些？去哪里交？"),
    ("suggestion", "建议自习室周末也开放到晚上十点"),
    ("opinion", "团课的形式可以更活泼一些，多一些讨论"),
    ("complaint", "园区班车经常晚点，上班总是迟到"),
]
FIVE_ONES = ["exchange", "practical_service", "culture_sports", "league_lecture", "social_org"]


class _Client:
    """An HTTP client that signs as whoever it is told to, and fails with one line."""

    def __init__(self, http: httpx.AsyncClient, issuer: TokenIssuer, settings: Settings) -> None:
        self.http, self.issuer, self.settings = http, issuer, settings

    async def call(
        self, method: str, service: str, path: str, who: Principal, body: Any = None, ok: tuple[int, ...] = ()
    ) -> Any:
        token = self.issuer.issue(who)
        r = await self.http.request(
            method, f"{self.settings.url_of(service)}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        if r.status_code >= 400 and r.status_code not in ok:
            raise RuntimeError(f"demo: {method} {service}{path} answered {r.status_code}: {r.text[:200]}")
        return r.json() if r.content else None


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 120) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise RuntimeError(f"demo: {what} did not happen within {seconds:.0f} s")
        await asyncio.sleep(0.5)


async def load_demo_activity(
    settings: Settings, issuer: TokenIssuer, demo: dict[str, Any], rng: random.Random
) -> dict[str, int]:
    """Drive the services; returns what was done, for the welcome screen."""
    city_id, city_path = str(demo["city_id"]), str(demo["city_path"])
    pairs: list[tuple[str, str, str]] = [tuple(p) for p in demo["pairs"]]  # (cadre, cadre path, youth)
    admin = Principal("demo-admin", Role.org_admin, city_path)
    done = {"activities": 0, "confirmations": 0, "wishes": 0, "fulfilled": 0, "voice": 0, "ratings": 0}
    async with httpx.AsyncClient(timeout=30) as http:
        api = _Client(http, issuer, settings)
        await api.call("PUT", "contacts", f"/orgs/{city_id}/rules", admin,
                       {"effective_from": league_today().isoformat(), "preset": "000"}, ok=(409, 422))

        by_cadre: dict[str, list[str]] = {}
        paths: dict[str, str] = {}
        for cadre, path, youth in pairs:
            by_cadre.setdefault(cadre, []).append(youth)
            paths[cadre] = path

        # Five-ones activities this month, most cadres some kinds, a few all five.
        today = datetime.now(UTC).date()
        for cadre, youths in by_cadre.items():
            me = Principal(cadre, Role.cadre, paths[cadre])
            for kind in rng.sample(FIVE_ONES, k=rng.randint(1, 5)):
                await api.call("POST", "contacts", "/activities", me, {
                    "kind": kind, "organiser_cadre_id": cadre,
                    "occurred_on": today.replace(day=rng.randint(1, today.day)).isoformat(),
                    "youth_ids": rng.sample(youths, k=min(len(youths), rng.randint(3, 12))),
                    "description": "按五个一要求组织的活动：签到、照片和总结已归档",
                })
                done["activities"] += 1

        # Youths confirm (or now and then dispute) what was logged with them.
        for _cadre, _path, youth in rng.sample(pairs, k=min(len(pairs), 150)):
            me = Principal(youth, Role.youth)
            mine = await api.call("GET", "contacts", "/my/interactions", me)
            for item in (mine if isinstance(mine, list) else mine.get("interactions", []))[:1]:
                verb = "dispute" if rng.random() < 0.1 else "confirm"
                body = {"reason": "那天没有联系过我"} if verb == "dispute" else None
                await api.call("POST", "contacts", f"/interactions/{item['interaction_id']}/{verb}", me, body,
                               ok=(409,))
                done["confirmations"] += 1

        async def wishes_know_the_pairs() -> bool:
            cadre, _path, youth = pairs[-1]
            r = await api.call("GET", "wishes", f"/pairs/{cadre}/{youth}", Principal(youth, Role.youth))
            return bool(r["may_exchange_wishes"])

        await _until(wishes_know_the_pairs, "wishes learning the contact links")

        pooled: list[str] = []
        for cadre, path, youth in rng.sample(pairs, k=min(len(pairs), 120)):
            kid, cadre_p = Principal(youth, Role.youth), Principal(cadre, Role.cadre, path)
            category, text = rng.choice(WISHES)
            wish = await api.call("POST", "wishes", "/wishes", kid, {"cadre_id": cadre, "category": category,
                                                                       "text": text})
            done["wishes"] += 1
            wid, fate = wish["wish_id"], rng.random()
            if fate < 0.1:
                await api.call("POST", "wishes", f"/wishes/{wid}/release", cadre_p)
                pooled.append(wid)
                continue
            if fate < 0.25:
                continue  # still waiting for the cadre
            await api.call("POST", "wishes", f"/wishes/{wid}/accept", cadre_p)
            await api.call("POST", "wishes", f"/wishes/{wid}/start", cadre_p)
            if fate < 0.85:
                await api.call("POST", "wishes", f"/wishes/{wid}/fulfil", cadre_p, {"evidence": "已办结，附照片"})
                done["fulfilled"] += 1
                if fate < 0.75:
                    await api.call("POST", "wishes", f"/wishes/{wid}/confirm", kid)

        # The pool: the city reviews what cadres released; a partner claims one.
        for wid in pooled:
            await api.call("POST", "wishes", f"/pool/{wid}/review", admin, {"approved": True}, ok=(409, 422))
        if pooled:
            partner = await api.call("POST", "wishes", "/partners", admin,
                                     {"name": "江城青年志愿者协会", "kind": "volunteer_team", "org_id": city_id})
            me = Principal(str(partner["partner_id"]), Role.partner, city_path)
            await api.call("POST", "wishes", f"/pool/{pooled[0]}/claim", me, ok=(409, 422))

        for cadre, path, youth in rng.sample(pairs, k=min(len(pairs), 80)):
            kind, text = rng.choice(VOICE)
            post = await api.call("POST", "wishes", "/voice", Principal(youth, Role.youth),
                                  {"kind": kind, "text": text, "cadre_id": cadre})
            done["voice"] += 1
            if rng.random() < 0.7:
                await api.call("POST", "wishes", f"/voice/{post['post_id']}/answer", Principal(cadre, Role.cadre, path),
                               {"text": "收到，已经转给相关部门，本周内给你答复。"})

        for cadre, _path, youth in rng.sample(pairs, k=min(len(pairs), 300)):
            await api.call("POST", "wishes", "/ratings", Principal(youth, Role.youth),
                           {"cadre_id": cadre, "score": rng.choice((5, 5, 4, 4, 4, 3, 2))}, ok=(409,))
            done["ratings"] += 1

        # Work reports upward (工作情况报送): the first county sends this quarter's five-ones report,
        # the city returns it for more on its problems, and the county sends it again; the city's
        # GET /orgs/{city}/reports?period= shows the second county's as still to come.
        if demo.get("counties"):
            county = str(demo["counties"][0])
            county_admin = Principal(f"demo-admin-{county}", Role.org_admin, f"{city_path}/{county}")
            quarter = period_of("quarter", league_today()).label
            url = f"/orgs/{county}/reports/{quarter}"
            report = {"practice": "各团委按“五个一”要求开展活动，每月一次团课，覆盖辖区全部团支部。",
                      "experience": "线上交流与线下走访结合，青年参与度明显提高。",
                      "problems": "部分农村团支部青年外出务工，线下活动参与不足。",
                      "next_steps": "下季度推行线上团课，与外出青年结对联系。"}
            await api.call("PUT", "contacts", url, county_admin, report)
            await api.call("POST", "contacts", f"{url}/return", admin, {"reason": "存在问题请具体到团支部，并附数据。"})
            report["problems"] = "12个农村团支部中有5个青年外出务工过半，线下活动平均到场不足10人。"
            await api.call("PUT", "contacts", url, county_admin, report)
            done["reports"] = 1

        # A reorganisation: a cadre is transferred (调动) to another committee, and 东湖区's
        # industrial-park committee moves to 西山县 with its branches. Their boards follow them.
        counties, committees = demo.get("counties", []), demo.get("committees", [])
        moved: dict[str, Any] | None = None
        if len(counties) == 2 and len(committees) == 4:
            mover = next((cadre for cadre, path, _y in pairs if path.endswith(f"/{committees[0]}")), None)
            if mover is not None:
                await api.call("POST", "contacts", f"/cadres/{mover}/transfer", admin, {"to_org_id": committees[2]},
                               ok=(409, 422))
            moved = await api.call("POST", "contacts", f"/orgs/{committees[1]}/move", admin,
                                   {"new_parent_id": counties[1]}, ok=(409, 422))
            done["reorganised"] = 1

        # Scoring catches up, then the city publishes this month's circular (月度通报). The move is
        # the last contacts event: published before scoring had it, the circular counted the
        # committee's cadres in their old county.
        async def scored() -> bool:
            r = await api.call("GET", "scoring", f"/cadres/{pairs[0][0]}/ledger", admin)
            if not (any(str(e.get("rule", "")).startswith("wish") for e in r) or done["fulfilled"] == 0):
                return False
            if moved is None or "org_path" not in moved:
                return True
            board = await api.call("GET", "scoring", f"/leaderboards/orgs?org_path={moved['org_path']}"
                                   "&org_type=grassroots_committee&limit=1", admin)
            return [e["org_id"] for e in board["entries"]] == [committees[1]]

        await _until(scored, "scoring catching up with the demo", seconds=300)
        circular = await api.call("POST", "scoring", "/circulars", admin, {"org_id": city_id}, ok=(409,))
        if circular and "number" in circular:
            demo["circular"] = circular["number"]
    return done
