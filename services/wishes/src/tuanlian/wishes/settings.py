"""Settings of the wishes service only (``TUANLIAN_WISHES_*``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class WishesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUANLIAN_WISHES_", extra="ignore")

    # The scheduler of time-driven transitions; deadlines are days or hours, so a minute is plenty.
    scheduler_enabled: bool = True
    scheduler_interval_seconds: float = 60.0

    # Photos of a wish (multipart upload, type checked by magic bytes).
    photo_max_bytes: int = 5 * 1024 * 1024
    photo_max_per_wish: int = 6
