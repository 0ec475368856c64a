"""HTTP API for identity: logins, one-time codes, accounts handed out."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from tuanlian.contacts.application.identity import (
    ChangePassword,
    IdentityService,
    IssueAccount,
    PasswordLogin,
    RequestCode,
    VerifyCode,
)
from tuanlian.shared.auth import Principal
from tuanlian.shared.events import utcnow
from tuanlian.shared.service import Runtime


def identity_clock() -> datetime:
    """The time login decisions are taken at (lockouts, code limits and expiry). Injectable: tests
    replace it through ``app.dependency_overrides[identity_clock]``."""
    return utcnow()


Now = Annotated[datetime, Depends(identity_clock)]


def build_auth_router(runtime: Runtime, identity: IdentityService) -> APIRouter:
    router = APIRouter(tags=["auth"])
    Who = Annotated[Principal, Depends(runtime.current_principal())]

    def cid(request: Request) -> Any:
        return request.state.correlation_id

    @router.post("/auth/login", summary="Admins and cadres log in with a password")
    async def login(body: PasswordLogin, now: Now) -> dict[str, Any]:
        return await identity.login(body, now)

    @router.post("/auth/password", status_code=204, summary="Change one's password (required at first login)")
    async def change_password(body: ChangePassword, who: Who) -> None:
        await identity.change_password(who, body)

    @router.post("/auth/otp", status_code=202, summary="Youths ask for a one-time login code by SMS")
    async def request_code(body: RequestCode, now: Now) -> dict[str, Any]:
        return await identity.request_code(body, now)

    @router.post("/auth/otp/verify", summary="Youths log in with phone and one-time code")
    async def verify_code(body: VerifyCode, now: Now) -> dict[str, Any]:
        return await identity.verify_code(body, now)

    @router.post("/accounts", status_code=201, summary="Hand out an org admin, leader or partner account")
    async def issue(body: IssueAccount, who: Who, request: Request) -> dict[str, Any]:
        return await identity.issue_account(who, body, cid(request))

    @router.post("/cadres/{cadre_id}/account", status_code=201, summary="(Re)issue a cadre's account")
    async def cadre_account(cadre_id: str, who: Who, request: Request) -> dict[str, Any]:
        return await identity.reset_cadre_account(who, cadre_id, cid(request))

    return router
