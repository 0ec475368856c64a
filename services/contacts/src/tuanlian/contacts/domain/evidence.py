"""佐证材料: files backing an interaction or activity, checked by content, not by their label.

A declared ``Content-Type`` is the uploader's claim; the bytes are the file's
(``shared.uploads``). Only a few harmless formats are taken.
"""

from __future__ import annotations

import hashlib

from tuanlian.shared import uploads
from tuanlian.shared.aggregate import Aggregate
from tuanlian.shared.contracts.contacts import EvidenceAttached
from tuanlian.shared.errors import RuleViolation
from tuanlian.shared.uploads import JPEG, PDF, PNG, WEBP

TYPES = frozenset({JPEG, PNG, WEBP, PDF})  # photos and PDF scans of sign-in sheets
SUBJECT_TYPES = frozenset({"interaction", "activity"})


def sniff(data: bytes) -> str | None:
    """The content type the bytes themselves show, or ``None`` for anything not taken here."""
    return uploads.sniff(data, TYPES)


class Evidence(Aggregate):
    """佐证材料."""

    stream_type = "evidence"
    label = "evidence"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.content_type = ""
        self.size_bytes = 0
        self.sha256 = ""

    @classmethod
    def attach(
        cls,
        evidence_id: str,
        subject_type: str,
        subject_id: str,
        data: bytes,
        declared_type: str | None,
        max_bytes: int,
    ) -> Evidence:
        if subject_type not in SUBJECT_TYPES:
            raise RuleViolation("evidence backs an interaction or an activity", field="subject_type")
        if not data:
            raise RuleViolation("the file is empty", field="file")
        if len(data) > max_bytes:
            raise RuleViolation(f"the file is larger than {max_bytes // (1024 * 1024)} MB", field="file")
        actual = sniff(data)
        if actual is None:
            raise RuleViolation("only JPEG, PNG, WebP images and PDF files are accepted", field="file")
        declared = (declared_type or "").split(";")[0].strip().lower()
        if declared and declared not in ("application/octet-stream", actual):
            raise RuleViolation(f"the file says {declared} but its content is {actual}", field="file")
        evidence = cls(evidence_id)
        evidence._record(
            EvidenceAttached(
                evidence_id=evidence_id,
                subject_type=subject_type,
                subject_id=subject_id,
                content_type=actual,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
        return evidence

    def when_EvidenceAttached(self, e: EvidenceAttached) -> None:
        self.content_type, self.size_bytes, self.sha256 = e.content_type, e.size_bytes, e.sha256
