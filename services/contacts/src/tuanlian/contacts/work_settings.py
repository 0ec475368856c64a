"""Settings of contacts-work's features (``TUANLIAN_CONTACTS_*``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUANLIAN_CONTACTS_", extra="ignore")

    # A youth linked to this many cadres of one org is reported as over-contacted (002, 004).
    spread_threshold: int = 3
    evidence_max_bytes: int = 5 * 1024 * 1024
    # What the QR code on a card encodes: this prefix followed by the join code.
    join_url_prefix: str = "https://tuanlian.example/join/"
