"""Personal data vault (个人信息): per-person keys, keyed phone hashes, erasure by key destruction."""

from __future__ import annotations

import hashlib
import hmac
import os

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class PiiVault:
    def __init__(self, schema: str, hash_key: str) -> None:
        self.schema = schema
        self._hash_key = hash_key.encode()

    def phone_hash(self, phone: str) -> bytes:
        return hmac.new(self._hash_key, phone.strip().encode(), hashlib.sha256).digest()

    @staticmethod
    def _seal(key: bytes, text: str | None) -> bytes | None:
        if text is None:
            return None
        nonce = os.urandom(12)
        return nonce + AESGCM(key).encrypt(nonce, text.encode(), None)

    @staticmethod
    def _open(key: bytes, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        return AESGCM(key).decrypt(blob[:12], blob[12:], None).decode()

    async def store(
        self, conn: asyncpg.Connection, subject_id: str, kind: str, name: str, phone: str | None
    ) -> None:
        key = AESGCM.generate_key(bit_length=256)
        s = self.schema
        await conn.execute(f"INSERT INTO {s}.subject_keys (subject_id, key) VALUES ($1, $2)", subject_id, key)
        await conn.execute(
            f"INSERT INTO {s}.people (subject_id, kind, name_enc, phone_enc, phone_hash) "
            "VALUES ($1, $2, $3, $4, $5)",
            subject_id,
            kind,
            self._seal(key, name),
            self._seal(key, phone),
            self.phone_hash(phone) if phone else None,
        )

    async def find_by_phone(self, conn: asyncpg.Connection, phone: str) -> str | None:
        return await conn.fetchval(
            f"SELECT subject_id FROM {self.schema}.people WHERE phone_hash = $1", self.phone_hash(phone)
        )

    async def reveal(self, conn: asyncpg.Connection, subject_id: str) -> dict[str, str | None]:
        row = await conn.fetchrow(
            f"SELECT p.name_enc, p.phone_enc, k.key FROM {self.schema}.people p "
            f"LEFT JOIN {self.schema}.subject_keys k USING (subject_id) WHERE p.subject_id = $1",
            subject_id,
        )
        if row is None or row["key"] is None:
            return {"name": None, "phone": None}
        return {
            "name": self._open(row["key"], row["name_enc"]),
            "phone": self._open(row["key"], row["phone_enc"]),
        }
