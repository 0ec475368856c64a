"""Settings of the contacts service alone (``TUANLIAN_CONTACTS_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ContactsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUANLIAN_CONTACTS_", extra="ignore")

    # Password logins: this many failures in a row lock the account for lockout_minutes.
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    # One-time login codes for youths.
    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 5
    otp_per_hour: int = 5
    otp_reply_timeout: float = 3.0  # seconds notify has to confirm delivery
    token_ttl_hours: int = 12


@lru_cache
def get_contacts_settings() -> ContactsSettings:
    return ContactsSettings()
