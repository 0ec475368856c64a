"""Wish photos: what an upload must be, decided from its bytes (never from the declared type)."""

from __future__ import annotations

from tuanlian.shared.errors import RuleViolation

JPEG, PNG, WEBP = "image/jpeg", "image/png", "image/webp"


def sniff(data: bytes) -> str | None:
    """The image type the magic bytes say, ``None`` when they are not JPEG, PNG or WebP."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return None


def check_photo(name: str, data: bytes, max_bytes: int) -> str:
    """The content type of an acceptable photo, or a field-level refusal naming the file."""
    if not data:
        raise RuleViolation(f"{name} is empty", field="files")
    if len(data) > max_bytes:
        raise RuleViolation(f"{name} is {len(data)} bytes; a photo may have at most {max_bytes}", field="files")
    kind = sniff(data)
    if kind is None:
        raise RuleViolation(f"{name} is not a JPEG, PNG or WebP image", field="files")
    return kind
