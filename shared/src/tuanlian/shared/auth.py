"""Signed tokens every service verifies locally, and the principal they carry.

Contacts owns identity and the Ed25519 signing key; it publishes the public key as a JWKS. Every
other service loads that public key once and checks tokens without calling anyone, so a login
peak does not become a contacts peak.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm
from tuanlian.shared.events import utcnow

ISSUER = "tuanlian-contacts"
AUDIENCE = "tuanlian"


class Role(StrEnum):
    youth = "youth"
    cadre = "cadre"
    org_admin = "org_admin"
    leader = "leader"
    partner = "partner"
    system = "system"


def path_covers(scope: str, org_path: str | None) -> bool:
    """True when ``org_path`` is ``scope`` itself or lies below it in the org tree."""
    if org_path is None:
        return False
    return org_path == scope or org_path.startswith(scope.rstrip("/") + "/")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user id, a role and, for scoped roles, the org subtree they act on."""

    subject: str
    role: Role
    org_path: str | None = None

    def covers(self, org_path: str | None) -> bool:
        if self.role is Role.system:
            return True
        if self.org_path is None:
            return False
        return path_covers(self.org_path, org_path)

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.subject}"


class AuthError(Exception):
    """The request carries no valid token (HTTP 401)."""


class Forbidden(Exception):
    """The principal may not do this here (HTTP 403)."""


class TokenIssuer:
    def __init__(self, private_key: Ed25519PrivateKey, kid: str) -> None:
        self._key = private_key
        self.kid = kid

    def issue(self, principal: Principal, ttl: timedelta = timedelta(hours=12)) -> str:
        now = utcnow()
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": principal.subject,
            "role": principal.role.value,
            "org": principal.org_path,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid})

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(OKPAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "EdDSA"})
        return {"keys": [jwk]}


class TokenVerifier:
    #: Tokens already verified, kept until they expire: a client sends the same token with every
    #: request, and checking an Ed25519 signature costs more CPU than the rest of a small request.
    CACHE_SIZE = 4096

    def __init__(self, public_keys: dict[str, Ed25519PublicKey]) -> None:
        self._keys = public_keys
        self._verified: dict[str, tuple[Principal, float]] = {}

    @classmethod
    def from_jwks(cls, jwks: dict[str, Any]) -> TokenVerifier:
        keys = {}
        for jwk in jwks.get("keys", []):
            key = OKPAlgorithm.from_jwk(json.dumps(jwk))
            if isinstance(key, Ed25519PublicKey):
                keys[jwk["kid"]] = key
        return cls(keys)

    def verify(self, token: str) -> Principal:
        hit = self._verified.get(token)
        if hit is not None:
            if time.time() < hit[1]:
                return hit[0]
            del self._verified[token]  # expired: the full check below says so
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid or "")
            if key is None:
                raise AuthError("token signed by an unknown key")
            claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER)
            principal = Principal(subject=claims["sub"], role=Role(claims["role"]), org_path=claims.get("org"))
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        if isinstance(claims.get("exp"), int | float):
            if len(self._verified) >= self.CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = (principal, float(claims["exp"]))
        return principal


def load_or_create_signing_key(keys_dir: Path) -> TokenIssuer:
    """The deployment's signing key, created on first start (kept under ``TUANLIAN_HOME/keys``)."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = keys_dir / "token_signing_ed25519.pem"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
    else:
        key = Ed25519PrivateKey.generate()
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    import hashlib

    return TokenIssuer(key, kid=hashlib.sha256(raw).hexdigest()[:16])
