"""账号与登录: accounts, lockout after repeated failures, one-time login codes. Pure: no I/O.

Secrets (password hashes, code hashes) are credentials, not League facts: they live in the
``accounts`` and ``login_codes`` tables, never in events. Handing out and first use of an
account are facts (``AccountIssued``, ``AccountActivated``).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import AccountActivated, AccountIssued, AccountRole
from tuanlian.shared.errors import DomainError, IllegalTransition

# Easy to read aloud or copy from a printed sheet: no 0/O, 1/l/I.
_PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")


class LoginRefused(DomainError):
    """Wrong credentials, an expired or used code (HTTP 401; never says which part was wrong)."""

    status = 401


class AccountLocked(DomainError):
    """Too many failed attempts in a row (HTTP 423 with the time it opens again)."""

    status = 423


class DeliveryUnavailable(DomainError):
    """Notify did not confirm delivery of a login code in time (HTTP 503); the code is void."""

    status = 503


def initial_password(length: int = 12) -> str:
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


def login_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int = 5
    lock_for: timedelta = timedelta(minutes=15)

    def after_failure(self, failures: int, now: datetime) -> tuple[int, datetime | None]:
        """(failures to store, locked until) after one more failed attempt."""
        failures += 1
        if failures >= self.threshold:
            return 0, now + self.lock_for
        return failures, None


def check_not_locked(locked_until: datetime | None, now: datetime) -> None:
    if locked_until is not None and locked_until > now:
        raise AccountLocked(
            "too many failed attempts: the account is locked", locked_until=locked_until.isoformat()
        )


class Account(Aggregate):
    """An account handed out to a cadre, youth, admin, leader or partner (开通账号)."""

    stream_type = "account"
    label = "account"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.subject_id = ""
        self.role = AccountRole.cadre
        self.org_path: str | None = None
        self.activated = False

    @classmethod
    def issue(cls, account_id: str, subject_id: str, role: AccountRole, org_path: str | None) -> Account:
        account = cls(account_id)
        account._record(AccountIssued(account_id=account_id, subject_id=subject_id, role=role, org_path=org_path))
        return account

    def activate(self, org_path: str | None) -> None:
        if self.activated:
            raise IllegalTransition("the account is already active", current="active")
        self._record(
            AccountActivated(account_id=self.id, subject_id=self.subject_id, role=self.role, org_path=org_path)
        )

    def when_AccountIssued(self, e: AccountIssued) -> None:
        self.subject_id, self.role, self.org_path = e.subject_id, e.role, e.org_path

    def when_AccountActivated(self, e: AccountActivated) -> None:
        self.activated = True
