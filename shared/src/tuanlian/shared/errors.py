"""Errors the domain raises and the HTTP status each one means."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule of the domain refused the command (HTTP 409 for state, 422 for input)."""

    status = 409

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class IllegalTransition(DomainError):
    """The aggregate is not in a state that allows this command; ``current`` says which."""

    status = 409


class RuleViolation(DomainError):
    """Input is well-formed but breaks a League rule (quota, date, consent…)."""

    status = 422


class NotFound(DomainError):
    status = 404
