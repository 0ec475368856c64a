"""What every service's HTTP API shares: health, errors as 4xx with reasons, correlation ids."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID, uuid4

import structlog
from asyncpg.exceptions import (
    CharacterNotInRepertoireError,
    UniqueViolationError,
    UntranslatableCharacterError,
)
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, clear_contextvars
from tuanlian.shared.auth import AuthError, Forbidden, Principal, Role, path_covers
from tuanlian.shared.errors import DomainError
from tuanlian.shared.eventstore import ConcurrencyConflict

log = structlog.get_logger("tuanlian.http")
CORRELATION_HEADER = "X-Correlation-Id"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_req: Request, exc: DomainError) -> JSONResponse:
        retry = exc.details.get("retry_after_seconds")
        headers = {"Retry-After": str(int(retry))} if retry is not None else None
        return JSONResponse({"detail": exc.message, **exc.details}, status_code=exc.status, headers=headers)

    @app.exception_handler(ConcurrencyConflict)
    async def _conflict(_req: Request, exc: ConcurrencyConflict) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "hint": "the record changed while you edited it: reload and retry"},
            status_code=409,
        )

    @app.exception_handler(AuthError)
    async def _auth(_req: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Forbidden)
    async def _forbidden(req: Request, exc: Forbidden) -> JSONResponse:
        log.warning("authorisation refused", path=req.url.path, method=req.method, reason=str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each bad value back: a NaN, 1e400 or a lone surrogate
        # then failed to encode (a 500 in place of the 422), and a 50 MB body came back whole.
        return JSONResponse(
            {"detail": [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]},
            status_code=422,
        )

    @app.exception_handler(CharacterNotInRepertoireError)
    @app.exception_handler(UntranslatableCharacterError)
    async def _nul(_req: Request, _exc: Exception) -> JSONResponse:
        # Postgres text holds no NUL (U+0000): an id or a text with one reached the database.
        return JSONResponse({"detail": "text may not contain the NUL character (U+0000)"}, status_code=400)

    @app.exception_handler(UniqueViolationError)
    async def _duplicate(_req: Request, exc: UniqueViolationError) -> JSONResponse:
        # A check-then-insert lost a race with a request creating the same thing at that moment.
        log.warning("unique violation answered 409", constraint=exc.constraint_name)
        return JSONResponse(
            {
                "detail": "this was created by another request at the same moment: reload and retry",
                "constraint": exc.constraint_name,
            },
            status_code=409,
        )


def install_correlation(app: FastAPI) -> None:
    """Every request gets a correlation id (the caller's ``X-Correlation-Id`` or a new one) in
    ``request.state.correlation_id``, in the log context and on the response.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` runs each request in an extra task
    and re-streams the response, which costs more CPU than the rest of a small request."""
    app.add_middleware(_Correlation)


class _Correlation:
    _header = CORRELATION_HEADER.lower().encode()

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clear_contextvars()
        raw = next((v for k, v in scope["headers"] if k == self._header), None)
        try:
            cid = UUID(raw.decode("latin-1")) if raw else uuid4()
        except ValueError:
            cid = uuid4()
        scope.setdefault("state", {})["correlation_id"] = cid
        bind_contextvars(correlation_id=str(cid))
        echo = (self._header, str(cid).encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        await self.app(scope, receive, send_with_id)


_bearer = HTTPBearer(auto_error=False)


def principal_dependency(get_verifier: Callable[[], Awaitable[Any]]) -> Callable[..., Awaitable[Principal]]:
    async def current_principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise AuthError("missing bearer token")
        verifier = await get_verifier()
        principal: Principal = verifier.verify(credentials.credentials)
        bind_contextvars(actor=principal.actor)
        return principal

    return current_principal


class _Unscoped:
    """``require``'s default: the caller asks for a role only, not for a place in the tree."""


UNSCOPED = _Unscoped()


def require(
    principal: Principal, *roles: Role, org_path: str | _Unscoped | None = UNSCOPED, why: str = ""
) -> None:
    """Refuse (403) unless the principal has one of ``roles`` and, if asked, covers ``org_path``.

    ``org_path=None`` is a record in no org (a youth not in one): no admin's or leader's subtree
    covers it, so they are refused; a caller that lets them reach it some other way checks that
    itself. (None used to mean "no check": any admin anywhere read and erased such youths.)"""
    if principal.role is Role.system:
        return
    if principal.role not in roles:
        raise Forbidden(f"role {principal.role.value} may not {why or 'do this'}")
    if isinstance(org_path, _Unscoped) or principal.role not in (Role.org_admin, Role.leader):
        return
    if org_path is None:
        raise Forbidden(f"this record belongs to no organisation: you may not {why or 'do this'}")
    if not principal.covers(org_path):
        raise Forbidden(f"{org_path} is outside your organisation's subtree")


def require_view(principal: Principal, org_path: str, *roles: Role, why: str = "") -> None:
    """``require`` for a subtree's figures (rankings, circulars). An admin or a leader sees its
    own subtree; a cadre, the subtrees it is in (where it is ranked among its peers, what a
    circular to its org tells it) and those under its org, not a sibling's or another city's."""
    require(principal, *roles, org_path=org_path, why=why)
    if principal.role is Role.cadre and not (
        path_covers(org_path, principal.org_path) or principal.covers(org_path)
    ):
        raise Forbidden(f"{org_path} is neither an organisation you belong to nor one under it")
