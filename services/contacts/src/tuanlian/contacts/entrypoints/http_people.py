"""HTTP API for people: cadres (团干部) and youths (青年), their imports, profiles and erasure."""

import html
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from tuanlian.contacts.adapters.importer import ImportReport
from tuanlian.contacts.application.people import (
    DeactivateCadre,
    PeopleService,
    TagIndustry,
    TransferCadre,
    UpdateYouthProfile,
)
from tuanlian.shared.auth import Principal
from tuanlian.shared.service import Runtime
from tuanlian.shared.spreadsheet import CSV_MEDIA, csv_bytes

_ACCOUNT_COLUMNS = ("name", "org_id", "login", "initial_password")


def account_list(report: ImportReport, fmt: str) -> Response | dict[str, Any]:
    """The printable account list (账号发放表): initial passwords appear here once, never again."""
    rows = report.created
    if fmt == "csv":
        return Response(
            csv_bytes(_ACCOUNT_COLUMNS, ([r[c] for c in _ACCOUNT_COLUMNS] for r in rows)),
            media_type=CSV_MEDIA,
            headers={"Content-Disposition": 'attachment; filename="accounts.csv"', "Cache-Control": "no-store"},
        )
    if fmt == "html":
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in _ACCOUNT_COLUMNS) + "</tr>" for r in rows
        )
        page = (
            '<!doctype html><html lang="zh"><meta charset="utf-8"><title>团干部账号发放表</title>'
            "<style>table{border-collapse:collapse}td,th{border:1px solid #444;padding:4px 8px}</style>"
            "<h1>团干部账号发放表</h1><p>初始密码仅显示一次，首次登录须修改。"
            "Initial passwords are shown this once and must be changed at first login.</p>"
            "<table><tr><th>姓名</th><th>组织</th><th>登录名</th><th>初始密码</th></tr>" + body + "</table></html>"
        )
        return Response(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
    return report.as_dict()


def build_people_router(runtime: Runtime, people: PeopleService) -> APIRouter:
    router = APIRouter(tags=["people"])
    Who = Annotated[Principal, Depends(runtime.current_principal())]
    Upload = Annotated[UploadFile, File()]
    AllOrNothing = Annotated[bool, Query()]

    def cid(request: Request) -> Any:
        return request.state.correlation_id

    @router.post("/cadres/{cadre_id}/transfer", summary="Transfer a cadre to another org (调动)")
    async def transfer(cadre_id: str, body: TransferCadre, who: Who, request: Request) -> dict[str, Any]:
        cadre = await people.transfer_cadre(who, cadre_id, body, cid(request))
        return {"cadre_id": cadre.id, "org_id": cadre.org_id, "org_path": cadre.org_path}

    @router.get("/cadres/{cadre_id}/activities", summary="The activities a cadre organised, in a period")
    async def cadre_activities(
        cadre_id: str,
        who: Who,
        start: Annotated[date | None, Query(alias="from")] = None,
        end: Annotated[date | None, Query(alias="to")] = None,
    ) -> list[dict[str, Any]]:
        return await people.cadre_activities(who, cadre_id, start, end)

    @router.post("/cadres/{cadre_id}/deactivate", summary="Deactivate a cadre; their links end")
    async def deactivate(cadre_id: str, body: DeactivateCadre, who: Who, request: Request) -> dict[str, Any]:
        cadre, ended = await people.deactivate_cadre(who, cadre_id, body, cid(request))
        return {"cadre_id": cadre.id, "active": cadre.active, "links_ended": ended}

    @router.post("/cadres/import", summary="Import cadres and hand out their accounts (批量开通账号)")
    async def import_cadres(
        who: Who,
        request: Request,
        file: Upload,
        all_or_nothing: AllOrNothing = True,
        format: Literal["json", "csv", "html"] = "json",
    ) -> Any:
        data = await file.read()
        report = await people.import_cadres(who, file.filename or "", data, all_or_nothing, cid(request))
        return account_list(report, format)

    @router.post("/youths/import", summary="Import youths (青年批量导入); duplicates found by phone")
    async def import_youths(
        who: Who, request: Request, file: Upload, all_or_nothing: AllOrNothing = True
    ) -> dict[str, Any]:
        data = await file.read()
        report = await people.import_youths(who, file.filename or "", data, all_or_nothing, cid(request))
        return report.as_dict()

    @router.post("/youths/industry", summary="Industry tags (行业标签): a cadre its linked youths, an admin its subtree in bulk")
    async def tag_industry(body: TagIndustry, who: Who, request: Request) -> dict[str, Any]:
        return {"updated": await people.tag_industry(who, body, cid(request))}

    @router.get("/youths/search", summary="Find a youth by phone (keyed hash; never stored in clear)")
    async def search(who: Who, phone: Annotated[str, Query(pattern=r"^1[3-9]\d{9}$")]) -> dict[str, Any]:
        return await people.find_youth_by_phone(who, phone)

    @router.get("/youths/{youth_id}")
    async def get_youth(youth_id: str, who: Who) -> dict[str, Any]:
        return await people.youth(who, youth_id)

    @router.patch("/youths/{youth_id}", summary="Change a youth's profile")
    async def update_youth(youth_id: str, body: UpdateYouthProfile, who: Who, request: Request) -> dict[str, Any]:
        youth = await people.update_youth(who, youth_id, body, cid(request))
        return {"youth_id": youth.id, "version": youth.version}

    @router.post("/youths/{youth_id}/erase", summary="Erase a youth on request (PIPL 删除)")
    async def erase(youth_id: str, who: Who, request: Request) -> dict[str, Any]:
        return await people.erase_youth(who, youth_id, cid(request))

    return router
