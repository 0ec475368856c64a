"""Identity (账号与登录): accounts handed out, password and one-time-code logins, signed tokens.

Every attempt is recorded (table ``login_attempts`` and a log line) in its own transaction, so a
refused login is on record even though the refusal rolls nothing else forward.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field
from tuanlian.contacts.application.commands import PHONE_PATTERN
from tuanlian.contacts.application.handlers import ContactsService
from tuanlian.contacts.domain.identity import (
    Account,
    DeliveryUnavailable,
    LockoutPolicy,
    LoginRefused,
    check_not_locked,
    initial_password,
    login_code,
)
from tuanlian.contacts.settings import ContactsSettings
from tuanlian.shared.aggregate import Repository
from tuanlian.shared.auth import Principal, Role
from tuanlian.shared.contracts.contacts import AccountRole
from tuanlian.shared.contracts.notify import DIRECT_SUBJECT, DirectMessage, DirectReply
from tuanlian.shared.errors import DomainError, NotFound, RuleViolation
from tuanlian.shared.events import short_id, utcnow
from tuanlian.shared.http import require
from tuanlian.shared.logging import mask_phone
from tuanlian.shared.service import Runtime

log = structlog.get_logger("tuanlian.contacts.identity")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("an account that does not exist")


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PasswordLogin(_Cmd):
    login: str = Field(min_length=1, max_length=60)
    password: str = Field(min_length=1, max_length=200)


class ChangePassword(_Cmd):
    old_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=10, max_length=200)


class RequestCode(_Cmd):
    phone: str = Field(pattern=PHONE_PATTERN)


class VerifyCode(_Cmd):
    phone: str = Field(pattern=PHONE_PATTERN)
    code: str = Field(pattern=r"^\d{6}$")


class IssueAccount(_Cmd):
    """An account for an org admin, a leader (read-only) or a partner, scoped to an org."""

    role: AccountRole
    org_id: str
    login: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{3,40}$")


class TooManyCodes(DomainError):
    status = 429


class AccountExists(DomainError):
    """One account per person (unique ``accounts.subject_id``): a second one is refused (409)."""

    status = 409

    def __init__(self) -> None:
        super().__init__(
            "this person has an account already",
            conflict="account_exists",
            hint="hand out a new password for the existing account instead",
        )


@dataclass
class IdentityService:
    core: ContactsService
    runtime: Runtime
    settings: ContactsSettings

    def __post_init__(self) -> None:
        self.accounts = Repository(self.core.store, Account)

    @property
    def s(self) -> str:
        return self.core.schema

    def _code_hash(self, subject_id: str, code: str) -> bytes:
        key = self.runtime.settings.pii_hash_key.encode()
        return hmac.new(key, f"login-code:{subject_id}:{code}".encode(), hashlib.sha256).digest()

    async def _record(self, method: str, login: str | None, subject: str | None, ok: bool, reason: str) -> None:
        async with self.core.db.transaction() as conn:
            await conn.execute(
                f"INSERT INTO {self.s}.login_attempts (method, login_masked, subject_id, success, reason) "
                "VALUES ($1, $2, $3, $4, $5)",
                method,
                mask_phone(login) if login else None,
                subject,
                ok,
                reason,
            )
        log.info("login attempt", method=method, login_masked=mask_phone(login or ""), subject=subject,
                 success=ok, reason=reason)

    def _token(self, principal: Principal) -> dict[str, Any]:
        assert self.runtime.issuer is not None
        ttl = timedelta(hours=self.settings.token_ttl_hours)
        return {
            "access_token": self.runtime.issuer.issue(principal, ttl),
            "token_type": "bearer",
            "expires_in": int(ttl.total_seconds()),
            "subject": principal.subject,
            "role": principal.role.value,
            "org_path": principal.org_path,
        }

    # -- accounts ---------------------------------------------------------------------------

    async def login_taken(self, conn: asyncpg.Connection, login: str) -> bool:
        return bool(await conn.fetchval(f"SELECT 1 FROM {self.s}.accounts WHERE login = $1", login.lower()))

    async def issue(
        self,
        conn: asyncpg.Connection,
        who: Principal,
        subject_id: str,
        role: AccountRole,
        org_id: str | None,
        org_path: str | None,
        login: str | None,
        cid: UUID | None,
    ) -> tuple[str | None, str | None]:
        """Hand out an account; returns (login, initial password) — the password is shown once."""
        account = Account.issue(short_id(), subject_id, role, org_path)
        password = None
        if role is not AccountRole.youth:
            login = (login or f"{role.value[0]}{account.id}").lower()
            if await self.login_taken(conn, login):
                raise RuleViolation(f"login {login} is taken", field="login")
            password = initial_password()
        pw_hash = await asyncio.to_thread(_hasher.hash, password) if password else None
        try:
            await conn.execute(
                f"INSERT INTO {self.s}.accounts (account_id, subject_id, role, org_id, login, password_hash, "
                "must_change_password, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())",
                account.id,
                subject_id,
                role.value,
                org_id,
                login if password else None,
                pw_hash,
                password is not None,
            )
        except asyncpg.UniqueViolationError as exc:
            # The look-up above cannot see a request inserting the same login at this moment: the
            # unique index decides, and the loser gets the answer a later request would.
            if exc.constraint_name == "accounts_login_key":
                raise RuleViolation(f"login {login} is taken", field="login") from None
            if exc.constraint_name == "accounts_one_per_subject":  # migration 0005
                raise AccountExists() from None
            raise
        await self.core._save(conn, self.accounts, account, who, org_path, cid)
        return (login if password else None), password

    async def issue_account(self, who: Principal, cmd: IssueAccount, cid: UUID | None = None) -> dict[str, Any]:
        if cmd.role in (AccountRole.youth, AccountRole.cadre):
            raise RuleViolation("youth and cadre accounts come with the person", field="role")
        async with self.core.db.transaction() as conn:
            org = await self.core.orgs.get(conn, cmd.org_id)
            require(who, Role.org_admin, org_path=org.path, why="hand out accounts")
            login, password = await self.issue(conn, who, f"{cmd.role.value}-{short_id()}", cmd.role, org.id,
                                               org.path, cmd.login, cid)
        return {"login": login, "initial_password": password, "role": cmd.role.value, "org_id": org.id}

    async def reset_cadre_account(self, who: Principal, cadre_id: str, cid: UUID | None = None) -> dict[str, Any]:
        """Hand out (or hand out again) a cadre's account: a fresh initial password, shown once."""
        async with self.core.db.transaction() as conn:
            # Requests for one cadre queue on the cadre's row (before anything is read): the later
            # ones find the account the first made and reset it, as they would one after another,
            # instead of each issuing another account; a deactivation in flight is seen too.
            await conn.execute(f"SELECT 1 FROM {self.s}.cadres WHERE cadre_id = $1 FOR UPDATE", cadre_id)
            cadre = await self.core.cadres.get(conn, cadre_id)
            require(who, Role.org_admin, org_path=cadre.org_path, why="hand out this cadre's account")
            cadre.ensure_active()
            row = await conn.fetchrow(f"SELECT account_id, login FROM {self.s}.accounts WHERE subject_id = $1", cadre_id)
            if row is None:
                login, password = await self.issue(conn, who, cadre.id, AccountRole.cadre, cadre.org_id,
                                                   cadre.org_path, None, cid)
            else:
                login, password = row["login"], initial_password()
                await conn.execute(
                    f"UPDATE {self.s}.accounts SET password_hash = $2, must_change_password = true, "
                    "failed_attempts = 0, locked_until = NULL WHERE account_id = $1",
                    row["account_id"],
                    await asyncio.to_thread(_hasher.hash, password),
                )
        return {"cadre_id": cadre_id, "login": login, "initial_password": password}

    async def _principal(self, conn: asyncpg.Connection, account: asyncpg.Record) -> Principal:
        role = Role(account["role"])
        if role is Role.cadre:
            path = await conn.fetchval(f"SELECT org_path FROM {self.s}.cadres WHERE cadre_id = $1", account["subject_id"])
            return Principal(account["subject_id"], role, path)
        path = await conn.fetchval(f"SELECT org_path FROM {self.s}.orgs WHERE org_id = $1", account["org_id"])
        return Principal(account["subject_id"], role, path)

    async def _activate(self, conn: asyncpg.Connection, account_id: str, principal: Principal) -> None:
        account = await self.accounts.get(conn, account_id)
        if not account.activated:
            account.activate(principal.org_path)
            await self.core._save(conn, self.accounts, account, principal, principal.org_path, None)
            await conn.execute(f"UPDATE {self.s}.accounts SET activated_at = now() WHERE account_id = $1", account_id)

    # -- password login ---------------------------------------------------------------------

    async def login(self, cmd: PasswordLogin, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        policy = LockoutPolicy(self.settings.lockout_threshold, timedelta(minutes=self.settings.lockout_minutes))
        refusal: DomainError | None = None
        async with self.core.db.transaction() as conn:
            account = await conn.fetchrow(
                f"SELECT * FROM {self.s}.accounts WHERE login = $1 FOR UPDATE", cmd.login.lower()
            )
            if account is None or account["disabled_at"] is not None or account["password_hash"] is None:
                await asyncio.to_thread(_verify, _DUMMY_HASH, cmd.password)  # same time as a real check
                refusal = LoginRefused("wrong login or password")
                reason, subject = ("unknown login" if account is None else "account disabled"), None
            else:
                subject = account["subject_id"]
                try:
                    check_not_locked(account["locked_until"], now)
                except DomainError as exc:
                    refusal, reason = exc, "locked"
                else:
                    if await asyncio.to_thread(_verify, account["password_hash"], cmd.password):
                        await conn.execute(
                            f"UPDATE {self.s}.accounts SET failed_attempts = 0, locked_until = NULL WHERE account_id = $1",
                            account["account_id"],
                        )
                        principal = await self._principal(conn, account)
                        await self._activate(conn, account["account_id"], principal)
                        reason = "ok"
                    else:
                        failures, until = policy.after_failure(account["failed_attempts"], now)
                        await conn.execute(
                            f"UPDATE {self.s}.accounts SET failed_attempts = $2, locked_until = $3 WHERE account_id = $1",
                            account["account_id"],
                            failures,
                            until,
                        )
                        refusal = LoginRefused("wrong login or password")
                        reason = "wrong password" + (", locked" if until else "")
        await self._record("password", cmd.login, subject, refusal is None, reason)
        if refusal is not None:
            raise refusal
        out = self._token(principal)
        out["must_change_password"] = bool(account["must_change_password"])
        return out

    async def change_password(self, who: Principal, cmd: ChangePassword) -> None:
        async with self.core.db.transaction() as conn:
            account = await conn.fetchrow(
                f"SELECT * FROM {self.s}.accounts WHERE subject_id = $1 AND password_hash IS NOT NULL "
                "AND disabled_at IS NULL FOR UPDATE",
                who.subject,
            )
            if account is None:
                raise NotFound("you have no password account")
            if not await asyncio.to_thread(_verify, account["password_hash"], cmd.old_password):
                raise LoginRefused("the old password is wrong")
            if cmd.new_password == cmd.old_password:
                raise RuleViolation("choose a new password", field="new_password")
            await conn.execute(
                f"UPDATE {self.s}.accounts SET password_hash = $2, must_change_password = false WHERE account_id = $1",
                account["account_id"],
                await asyncio.to_thread(_hasher.hash, cmd.new_password),
            )

    # -- one-time codes for youths ------------------------------------------------------------

    async def request_code(self, cmd: RequestCode, now: datetime | None = None) -> dict[str, Any]:
        """Send a login code through notify. Unknown numbers get the same answer (no enumeration).

        At most ``otp_per_hour`` codes per number in any hour: the next is refused (429) with the
        seconds until the oldest of them leaves the window (``Retry-After``)."""
        now = now or utcnow()
        answer = {"sent": True, "expires_in": self.settings.otp_ttl_seconds}
        async with self.core.db.connection() as conn:
            subject = await self.core.vault.find_by_phone(conn, cmd.phone)
            kind = subject and await conn.fetchval(f"SELECT kind FROM {self.s}.people WHERE subject_id = $1", subject)
            recent = subject and await conn.fetch(
                f"SELECT created_at FROM {self.s}.login_codes WHERE subject_id = $1 "
                "AND created_at > $2::timestamptz - interval '1 hour' ORDER BY created_at",
                subject,
                now,
            )
        if not subject or kind != "youth":
            await self._record("otp_request", cmd.phone, None, False, "unknown phone")
            return answer
        if recent and len(recent) >= self.settings.otp_per_hour:
            await self._record("otp_request", cmd.phone, subject, False, "too many codes")
            opens = recent[len(recent) - self.settings.otp_per_hour]["created_at"] + timedelta(hours=1)
            wait = max(1, math.ceil((opens - now).total_seconds()))
            raise TooManyCodes(
                f"at most {self.settings.otp_per_hour} login codes an hour for one number; try again in "
                f"{math.ceil(wait / 60)} minutes",
                reason="too_many_codes",
                retry_after_seconds=wait,
            )
        code = login_code()
        message = DirectMessage(recipient_id=subject, template="login_code", params={"code": code}, address=cmd.phone)
        failure = await self._deliver(message)
        if failure:
            await self._record("otp_request", cmd.phone, subject, False, f"not delivered: {failure}")
            raise DeliveryUnavailable(f"the login code could not be sent ({failure}); try again shortly")
        async with self.core.db.transaction() as conn:
            await conn.execute(
                f"UPDATE {self.s}.login_codes SET void = true WHERE subject_id = $1 AND used_at IS NULL", subject
            )
            await conn.execute(
                f"INSERT INTO {self.s}.login_codes (subject_id, code_hash, expires_at, created_at) "
                "VALUES ($1, $2, $4::timestamptz + make_interval(secs => $3), $4)",
                subject,
                self._code_hash(subject, code),
                float(self.settings.otp_ttl_seconds),
                now,
            )
        await self._record("otp_request", cmd.phone, subject, True, "sent")
        return answer

    async def _deliver(self, message: DirectMessage) -> str | None:
        """Ask notify to deliver now; the reason it did not, or ``None``."""
        nc = self.runtime.nc
        if nc is None or not nc.is_connected:
            return "messaging is not connected"
        try:
            reply = await nc.request(
                DIRECT_SUBJECT, message.model_dump_json().encode(), timeout=self.settings.otp_reply_timeout
            )
        except Exception as exc:  # no responder, timeout: the code must not be usable
            return f"notify did not answer: {type(exc).__name__}"
        try:
            answer = DirectReply.model_validate_json(reply.data)
        except ValueError:
            return "notify gave an unreadable answer"
        return answer.error

    async def verify_code(self, cmd: VerifyCode, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        refusal: DomainError | None = None
        principal: Principal | None = None
        async with self.core.db.transaction() as conn:
            subject = await self.core.vault.find_by_phone(conn, cmd.phone)
            row = subject and await conn.fetchrow(
                f"SELECT * FROM {self.s}.login_codes WHERE subject_id = $1 AND used_at IS NULL AND NOT void "
                "AND expires_at > $2 ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
                subject,
                now,
            )
            if not row:
                refusal, reason = LoginRefused("no valid code for this number: ask for a new one"), "no valid code"
            else:
                attempts = row["attempts"] + 1
                ok = hmac.compare_digest(row["code_hash"], self._code_hash(subject, cmd.code))
                spent = ok or attempts >= self.settings.otp_max_attempts
                await conn.execute(
                    f"UPDATE {self.s}.login_codes SET attempts = $2, used_at = CASE WHEN $3 THEN $5::timestamptz END, "
                    "void = $4 WHERE code_id = $1",
                    row["code_id"],
                    attempts,
                    ok,
                    spent and not ok,
                    now,
                )
                if ok:
                    principal = Principal(subject, Role.youth)
                    account_id = await conn.fetchval(
                        f"SELECT account_id FROM {self.s}.accounts WHERE subject_id = $1", subject
                    )
                    if account_id is None:
                        await self.issue(conn, principal, subject, AccountRole.youth, None, None, None, None)
                        account_id = await conn.fetchval(
                            f"SELECT account_id FROM {self.s}.accounts WHERE subject_id = $1", subject
                        )
                    await self._activate(conn, account_id, principal)
                    reason = "ok"
                else:
                    refusal = LoginRefused("wrong code" + ("; it is void now, ask for a new one" if spent else ""))
                    reason = "wrong code" + (", void" if spent else "")
        await self._record("otp_verify", cmd.phone, subject or None, refusal is None, reason)
        if refusal is not None:
            raise refusal
        assert principal is not None
        return self._token(principal)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
