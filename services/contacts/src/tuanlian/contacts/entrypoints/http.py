"""Contacts' HTTP API."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from tuanlian.contacts.application import commands as c
from tuanlian.contacts.application.handlers import ContactsService
from tuanlian.shared.auth import Principal
from tuanlian.shared.service import Runtime


def build_router(runtime: Runtime, service: ContactsService) -> APIRouter:
    router = APIRouter()
    Who = Annotated[Principal, Depends(runtime.current_principal())]

    def cid(request: Request) -> Any:
        return request.state.correlation_id

    @router.get("/.well-known/jwks.json", tags=["auth"])
    async def jwks() -> dict[str, Any]:
        assert runtime.issuer is not None
        return runtime.issuer.jwks()

    @router.post("/orgs", status_code=201, tags=["orgs"], summary="Create an organisation (团组织)")
    async def create_org(body: c.CreateOrg, who: Who, request: Request) -> dict[str, Any]:
        org = await service.create_org(who, body, cid(request))
        return {"org_id": org.id, "org_path": org.path, "version": org.version}

    @router.post("/cadres", status_code=201, tags=["people"], summary="Register a cadre (团干部)")
    async def register_cadre(body: c.RegisterCadre, who: Who, request: Request) -> dict[str, Any]:
        cadre = await service.register_cadre(who, body, cid(request))
        return {"cadre_id": cadre.id, "org_path": cadre.org_path}

    @router.post("/youths", status_code=201, tags=["people"], summary="Register a youth (青年)")
    async def register_youth(body: c.RegisterYouth, who: Who, request: Request) -> dict[str, Any]:
        youth = await service.register_youth(who, body, cid(request))
        return {"youth_id": youth.id}

    @router.post(
        "/links/invitations",
        status_code=201,
        tags=["links"],
        summary="A cadre invites a youth to a contact link (联系)",
    )
    async def invite(body: c.InviteYouth, who: Who, request: Request) -> dict[str, Any]:
        link = await service.invite(who, body, cid(request))
        return {"link_id": link.id, "state": link.state}

    @router.post("/links/{link_id}/accept", tags=["links"], summary="The youth accepts (consent)")
    async def accept(link_id: str, who: Who, request: Request) -> dict[str, Any]:
        link = await service.accept(who, link_id, cid(request))
        return {"link_id": link.id, "state": link.state}

    @router.post("/links/{link_id}/decline", tags=["links"])
    async def decline(link_id: str, who: Who, request: Request) -> dict[str, Any]:
        link = await service.decline(who, link_id, cid(request))
        return {"link_id": link.id, "state": link.state}

    @router.post("/links/{link_id}/end", tags=["links"])
    async def end(link_id: str, who: Who, request: Request) -> dict[str, Any]:
        link = await service.end_link(who, link_id, cid(request))
        return {"link_id": link.id, "state": link.state}

    @router.get("/cadres/{cadre_id}/links", tags=["links"])
    async def cadre_links(cadre_id: str, who: Who) -> list[dict[str, Any]]:
        return await service.cadre_links(who, cadre_id)

    @router.post(
        "/interactions", status_code=201, tags=["interactions"], summary="Log an interaction (联系记录)"
    )
    async def log_interaction(body: c.LogInteraction, who: Who, request: Request) -> dict[str, Any]:
        interaction = await service.log_interaction(who, body, cid(request))
        return {"interaction_id": interaction.id}

    return router
