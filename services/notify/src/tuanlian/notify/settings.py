"""Notify's own settings (``TUANLIAN_NOTIFY_*``): channels, limits, the scheduler's pace."""

from __future__ import annotations

from datetime import time

from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUANLIAN_NOTIFY_", extra="ignore")

    # Webhook channel: stands in for WeChat template messages or an SMS gateway.
    webhook_url: str | None = None
    webhook_secret: str = "dev-only-change-me"
    webhook_timeout: float = 5.0
    # Email channel (SMTP).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_sender: str = "tuanlian@localhost"
    smtp_timeout: float = 10.0
    # Sends per second and burst, per channel (the gateway's contract, not ours to exceed).
    webhook_rate: float = 50.0
    webhook_burst: float = 100.0
    email_rate: float = 10.0
    email_burst: float = 20.0
    # Retries: base * 2^(n-1) seconds, capped; dead after max_attempts.
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 3600.0
    max_attempts: int = 6
    claim_batch: int = 200
    # Quiet hours (免打扰) unless a user sets their own; Beijing time.
    quiet_start: time = time(22, 0)
    quiet_end: time = time(8, 0)
    # Background pace; tests drive the workers with their own clock instead.
    run_workers: bool = True
    scheduler_seconds: float = 60.0
    delivery_seconds: float = 1.0
    fanout_seconds: float = 0.5
    fanout_batch: int = 10_000
    sse_poll_seconds: float = 1.0
    # How often to look for a stream whose owner is not deployed yet (SCORING).
    late_bind_poll_seconds: float = 1.0
    # Dev-only page listing recent messages of every recipient (login codes included).
    dev_inbox: bool = False

    def enabled_channels(self) -> list[str]:
        return [c for c, on in (("webhook", self.webhook_url), ("email", self.smtp_host)) if on]
