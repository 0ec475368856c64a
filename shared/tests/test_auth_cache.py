"""Verified tokens are remembered until they expire, never past it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from tuanlian.shared.auth import AuthError, Principal, Role, TokenVerifier, load_or_create_signing_key


def test_a_verified_token_is_remembered_until_it_expires(tmp_path: Path) -> None:
    issuer = load_or_create_signing_key(tmp_path)
    verifier = TokenVerifier.from_jwks(issuer.jwks())
    who = Principal("c1", Role.cadre, "1.2")
    token = issuer.issue(who)
    assert verifier.verify(token) == who
    assert verifier.verify(token) == who  # from the cache
    principal, exp = verifier._verified[token]
    verifier._verified[token] = (principal, 0.0)  # as if its expiry had passed
    expired = issuer.issue(who, ttl=timedelta(seconds=-60))
    with pytest.raises(AuthError):
        verifier.verify(expired)
    assert expired not in verifier._verified
    # The remembered entry past its time is dropped and the token checked again in full.
    assert verifier.verify(token) == who and verifier._verified[token][1] == exp


def test_a_token_from_another_key_is_refused_even_after_a_good_one(tmp_path: Path) -> None:
    issuer = load_or_create_signing_key(tmp_path / "a")
    other = load_or_create_signing_key(tmp_path / "b")
    verifier = TokenVerifier.from_jwks(issuer.jwks())
    who = Principal("c1", Role.cadre, "1.2")
    assert verifier.verify(issuer.issue(who)) == who
    with pytest.raises(AuthError):
        verifier.verify(other.issue(who))
