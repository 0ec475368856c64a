"""HTTP API of activities (活动), campaigns (集中活动) and spot checks (真实度抽查) (contacts-work)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from tuanlian.contacts.application import work_commands as w
from tuanlian.contacts.application.activities import ActivityWork
from tuanlian.shared.auth import Principal
from tuanlian.shared.service import Runtime


def build_work_router(runtime: Runtime, work: ActivityWork) -> APIRouter:
    router = APIRouter()
    Who = Annotated[Principal, Depends(runtime.current_principal())]

    def cid(request: Request) -> Any:
        return request.state.correlation_id

    @router.post("/activities", status_code=201, tags=["activities"], summary="Record an activity (活动)")
    async def record(body: w.RecordActivity, who: Who, request: Request) -> dict[str, Any]:
        activity, counts = await work.record_activity(who, body, cid(request))
        assert activity.kind is not None
        return {
            "activity_id": activity.id,
            "kind": activity.kind.value,
            # The five-ones kind it counts as under the org's rules (五个一工作内容), or none.
            "five_ones_kind": activity.kind.value if counts else None,
        }

    @router.post("/activities/{activity_id}/corrections", tags=["activities"], summary="更正")
    async def correct(
        activity_id: str, body: w.CorrectActivity, who: Who, request: Request
    ) -> dict[str, Any]:
        activity = await work.correct_activity(who, activity_id, body, cid(request))
        return {"activity_id": activity.id, "version": activity.version}

    @router.get("/activities/{activity_id}", tags=["activities"])
    async def get_activity(activity_id: str, who: Who) -> dict[str, Any]:
        return await work.activity(who, activity_id)

    @router.post("/campaigns", status_code=201, tags=["campaigns"], summary="Open a campaign (集中活动)")
    async def open_campaign(body: w.OpenCampaign, who: Who, request: Request) -> dict[str, Any]:
        campaign = await work.open_campaign(who, body, cid(request))
        return {"campaign_id": campaign.id, "key": campaign.key}

    @router.post(
        "/campaigns/presets",
        status_code=201,
        tags=["campaigns"],
        summary="Open a year's campaigns from the seeds",
    )
    async def presets(body: w.OpenPresetCampaigns, who: Who, request: Request) -> list[dict[str, Any]]:
        return await work.open_presets(who, body, cid(request))

    @router.get("/orgs/{org_id}/campaigns", tags=["campaigns"], summary="Campaigns that apply to an org")
    async def campaigns(org_id: str, who: Who) -> list[dict[str, Any]]:
        return await work.campaigns_for(who, org_id)

    @router.post(
        "/campaigns/{campaign_id}/nominations",
        status_code=201,
        tags=["campaigns"],
        summary="推荐 (最美青春故事)",
    )
    async def nominate(campaign_id: str, body: w.Nominate, who: Who, request: Request) -> dict[str, Any]:
        return {"nomination_id": await work.nominate(who, campaign_id, body, cid(request))}

    @router.get("/campaigns/{campaign_id}/nominations", tags=["campaigns"])
    async def nominations(campaign_id: str, who: Who) -> list[dict[str, Any]]:
        return await work.nominations(who, campaign_id)

    @router.post(
        "/spot-checks", status_code=201, tags=["spot checks"], summary="Draw a spot check (真实度抽查)"
    )
    async def draw(body: w.DrawSpotCheck, who: Who, request: Request) -> dict[str, Any]:
        return await work.draw(who, body, cid(request))

    @router.post(
        "/spot-checks/{spot_check_id}/outcomes", tags=["spot checks"], summary="Record a call's outcome"
    )
    async def outcome(
        spot_check_id: str, body: w.RecordSpotCheckItem, who: Who, request: Request
    ) -> dict[str, Any]:
        await work.record_outcome(who, spot_check_id, body, cid(request))
        return await work.spot_check(who, spot_check_id)

    @router.get("/spot-checks/{spot_check_id}", tags=["spot checks"])
    async def spot_check(spot_check_id: str, who: Who) -> dict[str, Any]:
        return await work.spot_check(who, spot_check_id)

    return router
