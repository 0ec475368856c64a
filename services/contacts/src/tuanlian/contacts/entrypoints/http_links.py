"""HTTP API of cards (亮身份), join codes, group links, spread, the youths' answers, corrections and
evidence (contacts-work)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from tuanlian.contacts.application import work_commands as w
from tuanlian.contacts.application.work import LinkWork
from tuanlian.shared.auth import Principal
from tuanlian.shared.service import Runtime


def build_links_router(runtime: Runtime, work: LinkWork) -> APIRouter:
    router = APIRouter()
    Who = Annotated[Principal, Depends(runtime.current_principal())]

    def cid(request: Request) -> Any:
        return request.state.correlation_id

    @router.put("/cadres/{cadre_id}/card", tags=["cards"], summary="Publish the cadre's card (亮身份)")
    async def publish_card(cadre_id: str, body: w.PublishCard, who: Who, request: Request) -> dict[str, Any]:
        await work.publish_card(who, cadre_id, body, cid(request))
        return await work.card(who, cadre_id)

    @router.get("/cadres/{cadre_id}/card", tags=["cards"], summary="A cadre's public card")
    async def card(cadre_id: str, who: Who) -> dict[str, Any]:
        return await work.card(who, cadre_id)

    @router.get("/join/{join_code}", tags=["cards"], summary="The card behind a join code (联系码)")
    async def card_by_code(join_code: str, who: Who) -> dict[str, Any]:
        return await work.card(who, code=join_code.upper())

    @router.post("/cadres/{cadre_id}/join-code", tags=["cards"], summary="Issue a new join code")
    async def reissue(cadre_id: str, who: Who, request: Request) -> dict[str, Any]:
        return {"cadre_id": cadre_id, "join_code": await work.reissue_join_code(who, cadre_id, cid(request))}

    @router.get(
        "/cadres/{cadre_id}/card/qr.{fmt}",
        tags=["cards"],
        summary="The card's QR code (PNG or SVG)",
        response_class=Response,
    )
    async def qr(cadre_id: str, fmt: Literal["png", "svg"], who: Who) -> Response:
        data, media_type = await work.qr(who, cadre_id, fmt)
        return Response(content=data, media_type=media_type)

    @router.post(
        "/links/requests",
        status_code=201,
        tags=["links"],
        summary="A youth asks to be linked through a join code (the cadre then accepts)",
    )
    async def request_link(body: w.RequestLink, who: Who, request: Request) -> dict[str, Any]:
        link = await work.request_link(who, body, cid(request))
        return {"link_id": link.id, "state": link.state, "initiated_by": link.initiated_by}

    @router.post(
        "/cadres/{cadre_id}/groups", status_code=201, tags=["links"], summary="Cover an org (联系团组织)"
    )
    async def add_group(cadre_id: str, body: w.AddGroupLink, who: Who, request: Request) -> dict[str, Any]:
        return await work.add_group(who, cadre_id, body, cid(request))

    @router.delete("/cadres/{cadre_id}/groups/{org_id}", status_code=204, tags=["links"])
    async def end_group(cadre_id: str, org_id: str, who: Who, request: Request) -> Response:
        await work.end_group(who, cadre_id, org_id, cid(request))
        return Response(status_code=204)

    @router.get("/cadres/{cadre_id}/groups", tags=["links"], summary="Covered orgs by type")
    async def groups(cadre_id: str, who: Who) -> dict[str, Any]:
        return await work.groups(who, cadre_id)

    @router.get("/cadres/{cadre_id}/spread", tags=["links"], summary="Spread of the list (联系面)")
    async def spread(cadre_id: str, who: Who) -> dict[str, Any]:
        return await work.spread(who, cadre_id)

    @router.get("/cadres/{cadre_id}/interactions", tags=["interactions"])
    async def interactions(cadre_id: str, who: Who) -> list[dict[str, Any]]:
        return await work.interactions_of(who, cadre_id)

    @router.get("/my/interactions", tags=["interactions"], summary="A youth's interactions to confirm")
    async def my_interactions(who: Who) -> list[dict[str, Any]]:
        return await work.my_interactions(who)

    @router.post("/interactions/{interaction_id}/confirm", tags=["interactions"], summary="青年确认")
    async def confirm(
        interaction_id: str, who: Who, request: Request, body: w.AnswerInteraction | None = None
    ) -> dict[str, Any]:
        return await work.answer(who, interaction_id, True, body or w.AnswerInteraction(), cid(request))

    @router.post("/interactions/{interaction_id}/dispute", tags=["interactions"], summary="青年异议")
    async def dispute(
        interaction_id: str, who: Who, request: Request, body: w.AnswerInteraction | None = None
    ) -> dict[str, Any]:
        return await work.answer(who, interaction_id, False, body or w.AnswerInteraction(), cid(request))

    @router.post("/interactions/{interaction_id}/corrections", tags=["interactions"], summary="更正")
    async def correct(
        interaction_id: str, body: w.CorrectInteraction, who: Who, request: Request
    ) -> dict[str, Any]:
        interaction = await work.correct(who, interaction_id, body, cid(request))
        return {"interaction_id": interaction.id, "version": interaction.version}

    async def _upload(
        subject_type: str, subject_id: str, file: UploadFile, who: Principal, request: Request
    ) -> dict[str, Any]:
        # Read one byte past the limit: enough to refuse, never the whole of a huge upload.
        data = await file.read(work.settings.evidence_max_bytes + 1)
        evidence = await work.attach(who, subject_type, subject_id, data, file.content_type, cid(request))
        return {
            "evidence_id": evidence.id,
            "content_type": evidence.content_type,
            "size_bytes": evidence.size_bytes,
            "sha256": evidence.sha256,
        }

    @router.post(
        "/interactions/{interaction_id}/evidence", status_code=201, tags=["evidence"], summary="佐证材料"
    )
    async def attach_to_interaction(
        interaction_id: str, who: Who, request: Request, file: UploadFile = File(...)
    ) -> dict[str, Any]:
        return await _upload("interaction", interaction_id, file, who, request)

    @router.post("/activities/{activity_id}/evidence", status_code=201, tags=["evidence"])
    async def attach_to_activity(
        activity_id: str, who: Who, request: Request, file: UploadFile = File(...)
    ) -> dict[str, Any]:
        return await _upload("activity", activity_id, file, who, request)

    @router.get("/evidence/{evidence_id}", tags=["evidence"], response_class=Response)
    async def evidence(evidence_id: str, who: Who) -> Response:
        data, media_type = await work.evidence(who, evidence_id)
        return Response(
            content=data,
            media_type=media_type,
            headers={"X-Content-Type-Options": "nosniff", "Content-Disposition": "attachment"},
        )

    return router
