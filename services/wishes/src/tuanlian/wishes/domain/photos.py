"""Wish photos: what an upload must be, decided from its bytes (never from the declared type)."""

from __future__ import annotations

from tuanlian.shared import uploads
from tuanlian.shared.errors import RuleViolation
from tuanlian.shared.uploads import JPEG, PNG, WEBP

TYPES = frozenset({JPEG, PNG, WEBP})


def sniff(data: bytes) -> str | None:
    """The image type the bytes show, ``None`` when they are not JPEG, PNG or WebP."""
    return uploads.sniff(data, TYPES)


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
