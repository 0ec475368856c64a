"""HTTP API for organisations (团组织) and their rules (实施细则)."""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from tuanlian.contacts.application.orgs import (
    CloseOrg,
    CompleteOrgDetails,
    MergeOrg,
    MoveOrg,
    OrgsService,
    RenameOrg,
    SetOrgRules,
)
from tuanlian.contacts.domain.orgs import Org
from tuanlian.contacts.domain.presets import PRESETS
from tuanlian.shared.auth import Principal
from tuanlian.shared.service import Runtime


def _org(org: Org) -> dict[str, Any]:
    return {"org_id": org.id, "name": org.name, "org_path": org.path, "status": org.status, "version": org.version}


def build_orgs_router(runtime: Runtime, orgs: OrgsService) -> APIRouter:
    router = APIRouter(tags=["orgs"])
    Who = Annotated[Principal, Depends(runtime.current_principal())]

    def cid(request: Request) -> Any:
        return request.state.correlation_id

    @router.post("/orgs/{org_id}/details", summary="The org's own admin completes it (组织信息完善)")
    async def complete(org_id: str, body: CompleteOrgDetails, who: Who, request: Request) -> dict[str, Any]:
        return _org(await orgs.complete_details(who, org_id, body, cid(request)))

    @router.post("/orgs/{org_id}/rename", summary="Rename (更名)")
    async def rename(org_id: str, body: RenameOrg, who: Who, request: Request) -> dict[str, Any]:
        return _org(await orgs.rename(who, org_id, body, cid(request)))

    @router.post("/orgs/{org_id}/move", summary="Move under another parent, with its subtree")
    async def move(org_id: str, body: MoveOrg, who: Who, request: Request) -> dict[str, Any]:
        return _org(await orgs.move(who, org_id, body, cid(request)))

    @router.post("/orgs/{org_id}/merge", summary="Merge into another org (合并); this one closes")
    async def merge(org_id: str, body: MergeOrg, who: Who, request: Request) -> dict[str, Any]:
        return _org(await orgs.merge(who, org_id, body, cid(request)))

    @router.post("/orgs/{org_id}/close", summary="Close (撤销) an empty org; its history stays")
    async def close(org_id: str, body: CloseOrg, who: Who, request: Request) -> dict[str, Any]:
        return _org(await orgs.close(who, org_id, body, cid(request)))

    @router.get("/orgs/{org_id}", summary="An organisation; read within one's subtree (or above one, for cadres)")
    async def get_org(org_id: str, who: Who) -> dict[str, Any]:
        return await orgs.org(who, org_id)

    @router.get("/orgs/{org_id}/history", summary="Every event of the org, in order")
    async def history(org_id: str, who: Who) -> list[dict[str, Any]]:
        return await orgs.history(who, org_id)

    @router.get("/orgs/{org_id}/children")
    async def children(org_id: str, who: Who) -> list[dict[str, Any]]:
        return await orgs.children(who, org_id)

    @router.put("/orgs/{org_id}/rules", summary="Adopt a rule set (实施细则) from a date on")
    async def set_rules(org_id: str, body: SetOrgRules, who: Who, request: Request) -> dict[str, Any]:
        return _org(await orgs.set_rules(who, org_id, body, cid(request)))

    @router.get("/orgs/{org_id}/rules", summary="Rules in force on a date, inherited or the org's own")
    async def get_rules(org_id: str, who: Who, on: date | None = None) -> dict[str, Any]:
        return await orgs.rules(who, org_id, on)

    @router.get("/rules/presets", summary="Rule-set presets from the League notices")
    async def presets() -> dict[str, Any]:
        return {key: {"title": title, "rules": rules.model_dump(mode="json")} for key, (title, rules) in PRESETS.items()}

    @router.post("/orgs/import", summary="Import an org tree from CSV or XLSX (组织架构导入)")
    async def import_tree(
        who: Who,
        request: Request,
        file: Annotated[UploadFile, File(description="columns: org_id, parent_id, name, org_type, is_leadership_organ")],
        all_or_nothing: Annotated[bool, Query()] = True,
    ) -> dict[str, Any]:
        data = await file.read()
        report = await orgs.import_tree(who, file.filename or "", data, all_or_nothing, cid(request))
        return report.as_dict()

    return router
