"""Uploaded files: what they are is read from their bytes (by ``filetype``), never taken from the
type the uploader declared. Each service says which types it takes; anything else is refused, so
nothing served back can run in a reader's browser."""

from __future__ import annotations

import filetype

JPEG, PNG, WEBP, PDF = "image/jpeg", "image/png", "image/webp", "application/pdf"


def sniff(data: bytes, allowed: frozenset[str]) -> str | None:
    """The content type the bytes show, when it is one of ``allowed``; ``None`` otherwise."""
    kind = filetype.guess_mime(data)
    return kind if kind in allowed else None
