"""Personal data vault (个人信息): per-person keys, keyed phone hashes, erasure by key destruction."""

from __future__ import annotations

import hashlib
import hmac
import json
import os

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tuanlian.shared.errors import DomainError


class PhoneTaken(DomainError):
    """The phone number belongs to another person (HTTP 409). Never says whose."""

    status = 409

    def __init__(self) -> None:
        super().__init__(
            "this phone number is already registered to another person",
            field="phone",
            conflict="phone_taken",
            hint="check the number; a person's own number can be changed only once the other record gives it up",
        )


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
        """Seal a new person's name and phone under a key of their own.

        Raises :class:`PhoneTaken` if another person holds the phone: the unique hash decides, also
        between two registrations racing for one number (a look-up before cannot)."""
        key = AESGCM.generate_key(bit_length=256)
        s = self.schema
        await conn.execute(f"INSERT INTO {s}.subject_keys (subject_id, key) VALUES ($1, $2)", subject_id, key)
        try:
            await conn.execute(
                f"INSERT INTO {s}.people (subject_id, kind, name_enc, phone_enc, phone_hash) "
                "VALUES ($1, $2, $3, $4, $5)",
                subject_id,
                kind,
                self._seal(key, name),
                self._seal(key, phone),
                self.phone_hash(phone) if phone else None,
            )
        except asyncpg.UniqueViolationError as exc:
            raise PhoneTaken() from exc

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

    async def change_contact_details(
        self, conn: asyncpg.Connection, subject_id: str, name: str | None, phone: str | None
    ) -> None:
        """Re-seal a new name and/or phone under the person's own key and replace the phone hash.

        Raises :class:`PhoneTaken` if another person holds the phone (the unique hash decides,
        also between two changes racing for the same number)."""
        key = await conn.fetchval(f"SELECT key FROM {self.schema}.subject_keys WHERE subject_id = $1", subject_id)
        if key is None:
            raise ValueError(f"{subject_id} has no key (erased?)")
        if name is not None:
            await conn.execute(
                f"UPDATE {self.schema}.people SET name_enc = $2 WHERE subject_id = $1", subject_id, self._seal(key, name)
            )
        if phone is not None:
            try:
                await conn.execute(
                    f"UPDATE {self.schema}.people SET phone_enc = $2, phone_hash = $3 WHERE subject_id = $1",
                    subject_id,
                    self._seal(key, phone),
                    self.phone_hash(phone),
                )
            except asyncpg.UniqueViolationError as exc:
                raise PhoneTaken() from exc

    async def seal_profile(self, conn: asyncpg.Connection, subject_id: str, profile: dict[str, str | None]) -> None:
        """Seal identifying profile details (major, native place) with the person's key."""
        key = await conn.fetchval(f"SELECT key FROM {self.schema}.subject_keys WHERE subject_id = $1", subject_id)
        if key is None:
            return
        await conn.execute(
            f"UPDATE {self.schema}.people SET profile_enc = $2 WHERE subject_id = $1",
            subject_id,
            self._seal(key, json.dumps(profile, ensure_ascii=False)),
        )

    async def profile(self, conn: asyncpg.Connection, subject_id: str) -> dict[str, str | None]:
        row = await conn.fetchrow(
            f"SELECT p.profile_enc, k.key FROM {self.schema}.people p "
            f"JOIN {self.schema}.subject_keys k USING (subject_id) WHERE p.subject_id = $1",
            subject_id,
        )
        if row is None or row["profile_enc"] is None:
            return {}
        return dict(json.loads(self._open(row["key"], row["profile_enc"]) or "{}"))

    async def erase(self, conn: asyncpg.Connection, subject_id: str) -> None:
        """Destroy the person's key and their keyed phone hash: nothing left can name them."""
        s = self.schema
        await conn.execute(f"DELETE FROM {s}.subject_keys WHERE subject_id = $1", subject_id)
        await conn.execute(
            f"UPDATE {s}.people SET name_enc = NULL, phone_enc = NULL, phone_hash = NULL, "
            "profile_enc = NULL, erased_at = now() WHERE subject_id = $1",
            subject_id,
        )
