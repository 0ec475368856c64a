"""Wishes' HTTP API: 微心愿, 心愿池, 青年之声, 评价, 满意度测评."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, Response, UploadFile
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.http import require
from tuanlian.shared.service import Runtime
from tuanlian.shared.spreadsheet import CSV_MEDIA, XLSX_MEDIA
from tuanlian.wishes.application import commands as c
from tuanlian.wishes.application.queries import issues_csv, issues_xlsx
from tuanlian.wishes.application.service import WishesService
from tuanlian.wishes.domain.wish import Wish
from tuanlian.wishes.settings import WishesSettings


def _wish(w: Wish) -> dict[str, Any]:
    return {"wish_id": w.id, "state": w.state.value, "version": w.version, "org_path": w.org_path,
            "claim_id": w.claim_id, "claim_deadline": w.claim_deadline}


def build_router(runtime: Runtime, service: WishesService, settings: WishesSettings) -> APIRouter:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Runs after the runtime started (FastAPI nests router lifespans inside the app's).
        stop = asyncio.Event()
        task = (
            asyncio.create_task(service.scheduler.run(stop, settings.scheduler_interval_seconds))
            if settings.scheduler_enabled else None
        )
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, timeout=10)

    router = APIRouter(lifespan=lifespan)
    Who = Annotated[Principal, Depends(runtime.current_principal())]
    s = runtime.schema
    W, Q = service.wishes, service.queries

    def cid(request: Request) -> Any:
        return request.state.correlation_id

    # -- micro-wishes -------------------------------------------------------------------------

    @router.post("/wishes", status_code=201, tags=["wishes"], summary="A youth raises a micro-wish (微心愿)")
    async def raise_wish(body: c.RaiseWish, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.raise_wish(who, body, cid(request)))

    @router.get("/wishes", tags=["wishes"], summary="Own wishes (youth), queue (cadre), subtree (admin)")
    async def list_wishes(who: Who, state: str | None = None, org_path: str | None = None) -> list[dict[str, Any]]:
        return await Q.wishes(who, state, org_path)

    @router.get("/wishes/{wish_id}", tags=["wishes"])
    async def get_wish(wish_id: str, who: Who) -> dict[str, Any]:
        return await Q.wish(who, wish_id)

    @router.post("/wishes/{wish_id}/accept", tags=["wishes"])
    async def accept(wish_id: str, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.accept(who, wish_id, cid(request)))

    @router.post("/wishes/{wish_id}/decline", tags=["wishes"])
    async def decline(wish_id: str, body: c.Reason, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.decline(who, wish_id, body, cid(request)))

    @router.post("/wishes/{wish_id}/start", tags=["wishes"])
    async def start(wish_id: str, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.start(who, wish_id, cid(request)))

    @router.post("/wishes/{wish_id}/fulfil", tags=["wishes"], summary="Fulfilled, with evidence")
    async def fulfil(wish_id: str, body: c.Fulfil, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.fulfil(who, wish_id, body, cid(request)))

    @router.post("/wishes/{wish_id}/confirm", tags=["wishes"], summary="The youth confirms: closed")
    async def confirm(wish_id: str, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.confirm(who, wish_id, cid(request)))

    @router.post("/wishes/{wish_id}/dispute", tags=["wishes"])
    async def dispute(wish_id: str, body: c.OptionalReason, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.dispute(who, wish_id, body, cid(request)))

    @router.post("/wishes/{wish_id}/release", tags=["wishes"], summary="The cadre releases it to the pool")
    async def release(wish_id: str, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.release(who, wish_id, cid(request)))

    @router.post("/wishes/{wish_id}/withdraw", tags=["wishes"])
    async def withdraw(wish_id: str, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.withdraw(who, wish_id, cid(request)))

    @router.post("/wishes/{wish_id}/photos", status_code=201, tags=["wishes"],
                 summary="The youth attaches photos (multipart `files`; JPEG, PNG or WebP; all or none)")
    async def attach_photos(wish_id: str, who: Who, request: Request,
                            files: Annotated[list[UploadFile], File(description="photos")]) -> dict[str, Any]:
        limit = settings.photo_max_bytes
        # Read at most one byte past the limit: a larger file is refused without being buffered.
        read = [(f.filename or f"file {i + 1}", await f.read(limit + 1)) for i, f in enumerate(files)]
        return {"photo_ids": await W.attach_photos(who, wish_id, read, cid(request))}

    @router.get("/wishes/{wish_id}/photos/{photo_id}", tags=["wishes"], response_class=Response,
                summary="A photo, to those who may see the wish (pool viewers: kept photos only)")
    async def photo(wish_id: str, photo_id: str, who: Who) -> Response:
        content_type, data = await Q.photo(who, wish_id, photo_id)
        return Response(data, media_type=content_type, headers={
            "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"})

    # -- the wish pool ------------------------------------------------------------------------

    @router.get("/pool", tags=["pool"], summary="心愿池: approved wishes, without the youth's identity")
    async def pool(who: Who) -> list[dict[str, Any]]:
        return await Q.pool(who)

    @router.get("/pool/review", tags=["pool"], summary="Released wishes awaiting an admin's review")
    async def review_queue(who: Who, org_path: str | None = None) -> list[dict[str, Any]]:
        return await Q.review_queue(who, org_path)

    @router.post("/pool/{wish_id}/review", tags=["pool"], summary="Approve (edited) or reject with reason")
    async def review(wish_id: str, body: c.Review, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.review(who, wish_id, body, cid(request)))

    @router.post("/pool/{wish_id}/claim", tags=["pool"], summary="Claim (one active claim at a time)")
    async def claim(wish_id: str, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.claim(who, wish_id, cid(request)))

    @router.post("/pool/{wish_id}/give-up", tags=["pool"])
    async def give_up(wish_id: str, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.give_up(who, wish_id, cid(request)))

    @router.post("/pool/{wish_id}/pledges", tags=["pool"], summary="拼好愿: pledge toward a pool wish")
    async def pledge(wish_id: str, body: c.Pledge, who: Who, request: Request) -> dict[str, Any]:
        return _wish(await W.pledge(who, wish_id, body, cid(request)))

    @router.post("/partners", status_code=201, tags=["pool"], summary="Register a partner for a subtree")
    async def register_partner(body: c.RegisterPartner, who: Who, request: Request) -> dict[str, Any]:
        return {"partner_id": await W.register_partner(who, body, cid(request))}

    @router.get("/stats", tags=["wishes"], summary="Wish statistics of an org subtree, by category")
    async def stats(who: Who, org_path: str | None = None) -> dict[str, Any]:
        return await Q.stats(who, org_path)

    @router.get("/pairs/{cadre_id}/{youth_id}", tags=["wishes"], summary="May this youth raise wishes to this cadre?")
    async def pair(cadre_id: str, youth_id: str, who: Who) -> dict[str, Any]:
        async with runtime.db.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT org_path, linked, since FROM {s}.pairs WHERE cadre_id = $1 AND youth_id = $2",
                cadre_id, youth_id,
            )
        if who.subject not in (cadre_id, youth_id) or who.role not in (Role.cadre, Role.youth):
            require(who, Role.org_admin, Role.leader, org_path=row["org_path"] if row else "/", why="see this pair")
        linked = bool(row and row["linked"])
        return {"cadre_id": cadre_id, "youth_id": youth_id, "may_exchange_wishes": linked,
                "since": row["since"] if linked and row else None}

    # -- Youth Voice --------------------------------------------------------------------------

    @router.post("/voice", status_code=201, tags=["voice"], summary="青年之声: post to a cadre or an org")
    async def post_voice(body: c.PostVoice, who: Who, request: Request) -> dict[str, Any]:
        p = await service.voice.post(who, body, cid(request))
        return {"post_id": p.id, "state": p.state, "due_at": p.due_at}

    @router.get("/voice", tags=["voice"])
    async def list_voice(who: Who, org_path: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        return await Q.voice(who, org_path, state)

    @router.post("/voice/{post_id}/answer", tags=["voice"], summary="有问必答")
    async def answer(post_id: str, body: c.Answer, who: Who, request: Request) -> dict[str, Any]:
        p = await service.voice.answer(who, post_id, body, cid(request))
        return {"post_id": p.id, "state": p.state}

    @router.post("/voice/issues", status_code=201, tags=["voice"], summary="问题清单: group posts into an issue")
    async def group(body: c.GroupIssue, who: Who, request: Request) -> dict[str, Any]:
        i = await service.voice.group(who, body, cid(request))
        return {"issue_id": i.id, "status": i.status.value, "post_ids": i.post_ids}

    @router.post("/voice/issues/{issue_id}", tags=["voice"])
    async def update_issue(issue_id: str, body: c.UpdateIssue, who: Who, request: Request) -> dict[str, Any]:
        i = await service.voice.update_issue(who, issue_id, body, cid(request))
        return {"issue_id": i.id, "status": i.status.value, "post_ids": i.post_ids}

    @router.get("/voice/issues", tags=["voice"], summary="The problem list, as JSON, CSV or XLSX")
    async def issues(
        who: Who, org_path: str | None = None, format: Literal["json", "csv", "xlsx"] = Query("json")
    ) -> Any:
        rows = await Q.issues(who, org_path)
        if format == "csv":
            return Response(issues_csv(rows), media_type=CSV_MEDIA,
                            headers={"Content-Disposition": 'attachment; filename="issues.csv"'})
        if format == "xlsx":
            return Response(
                issues_xlsx(rows),
                media_type=XLSX_MEDIA,
                headers={"Content-Disposition": 'attachment; filename="issues.xlsx"'},
            )
        return rows

    # -- ratings and ballots ------------------------------------------------------------------

    @router.post("/ratings", status_code=201, tags=["ratings"], summary="Rate your cadre (once per period)")
    async def rate(body: c.Rate, who: Who) -> dict[str, Any]:
        return {"period": await service.ratings.rate(who, body)}

    @router.get("/cadres/{cadre_id}/ratings", tags=["ratings"], summary="Aggregates over the minimum count only")
    async def ratings(cadre_id: str, who: Who, period: str | None = None) -> dict[str, Any]:
        return await service.ratings.summary(who, cadre_id, period)

    @router.post("/ballots", status_code=201, tags=["ballots"], summary="满意度测评: open a ballot on a secretary")
    async def open_ballot(body: c.OpenBallot, who: Who, request: Request) -> dict[str, Any]:
        b = await service.ballots.open(who, body, cid(request))
        return {"ballot_id": b.id, "eligible": b.eligible, "state": b.state}

    @router.post("/ballots/{ballot_id}/votes", status_code=204, tags=["ballots"], summary="Vote once, anonymously")
    async def vote(ballot_id: str, body: c.Vote, who: Who) -> Response:
        await service.ballots.vote(who, ballot_id, body)
        return Response(status_code=204)

    @router.post("/ballots/{ballot_id}/close", tags=["ballots"])
    async def close(ballot_id: str, who: Who, request: Request) -> dict[str, Any]:
        await service.ballots.close(who, ballot_id, cid=cid(request))
        return await service.ballots.result(who, ballot_id)

    @router.get("/ballots/{ballot_id}", tags=["ballots"], summary="Results only after closing, above min turnout")
    async def ballot(ballot_id: str, who: Who) -> dict[str, Any]:
        return await service.ballots.result(who, ballot_id)

    return router
