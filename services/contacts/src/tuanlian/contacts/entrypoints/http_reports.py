"""HTTP API for work reports upward (工作情况报送)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from tuanlian.contacts.application.reports import ReportsService, ReturnReport, SubmitReport
from tuanlian.shared.auth import Principal
from tuanlian.shared.service import Runtime
from tuanlian.shared.spreadsheet import CSV_MEDIA, XLSX_MEDIA, csv_bytes, xlsx_bytes

PERIOD = r"^\d{4}-(Q[1-4]|H[12]|annual)$"
Period = Annotated[str, Query(pattern=PERIOD, description="2026-Q4, 2026-H2 or 2026-annual")]
_SUMMARY_COLUMNS = ("org_id", "name", "org_type", "state", "due_on", "revision", "first_sent_at", "sent_at")


def build_reports_router(runtime: Runtime, reports: ReportsService) -> APIRouter:
    router = APIRouter(tags=["reports"])
    Who = Annotated[Principal, Depends(runtime.current_principal())]

    @router.put("/orgs/{org_id}/reports/{period}", summary="Send the org's work report (报送), or a new revision")
    async def submit(org_id: str, period: str, body: SubmitReport, who: Who, request: Request) -> dict[str, Any]:
        return await reports.submit(who, org_id, period, body, request.state.correlation_id)

    @router.post("/orgs/{org_id}/reports/{period}/return", summary="Return a report for rework (退回), with why")
    async def return_(org_id: str, period: str, body: ReturnReport, who: Who, request: Request) -> dict[str, Any]:
        return await reports.return_for_rework(who, org_id, period, body, request.state.correlation_id)

    @router.get("/orgs/{org_id}/reports/{period}", summary="A report as last sent, with its revisions")
    async def report(org_id: str, period: str, who: Who) -> dict[str, Any]:
        return await reports.report(who, org_id, period)

    @router.get("/orgs/{org_id}/reports", summary="报送情况: who under the org has sent the period's report")
    async def summary(org_id: str, who: Who, period: Period,
                      format: Literal["json", "csv", "xlsx"] = Query("json")) -> Any:
        out = await reports.summary(who, org_id, period)
        if format == "json":
            return out
        rows = [[r[c] for c in _SUMMARY_COLUMNS] for r in out["orgs"]]
        name = f"reports-{org_id}-{period}.{format}"
        body, media = ((csv_bytes(_SUMMARY_COLUMNS, rows), CSV_MEDIA) if format == "csv"
                       else (xlsx_bytes(period, _SUMMARY_COLUMNS, rows), XLSX_MEDIA))
        return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return router
