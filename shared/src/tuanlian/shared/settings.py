"""Configuration from the environment (``TUANLIAN_*``), one object per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORTS = {"contacts": 8101, "wishes": 8102, "scoring": 8103, "notify": 8104}


class Settings(BaseSettings):
    """Everything a Tuanlian process reads from its environment.

    ``database_url`` and ``nats_url`` point at external servers; when they are unset the
    ``tuanlian run`` launcher starts embedded ones under ``home`` and fills them in.
    """

    model_config = SettingsConfigDict(env_prefix="TUANLIAN_", extra="ignore")

    home: Path = Field(default=Path(".tuanlian"))
    database_url: str | None = None
    nats_url: str | None = None
    host: str = "127.0.0.1"
    contacts_port: int = DEFAULT_PORTS["contacts"]
    wishes_port: int = DEFAULT_PORTS["wishes"]
    scoring_port: int = DEFAULT_PORTS["scoring"]
    notify_port: int = DEFAULT_PORTS["notify"]
    contacts_url: str | None = None
    log_level: str = "INFO"
    log_json: bool = True
    # Postgres connections per process: ``db_pool_size`` kept open once used, up to
    # ``db_max_overflow`` more under bursts (closed again on return). A command holds one from
    # its first query to its last, so the pool should cover the commands a process has in
    # flight: with 64 clients, 20 connections left most of the latency in the pool's queue.
    # Every service and worker process has its own: Postgres's max_connections must cover
    # processes × (pool + overflow) (embedded and compose Postgres: 300).
    db_pool_size: int = 32
    db_max_overflow: int = 32
    # uvicorn worker processes per service (``tuanlian serve``). Each runs the whole service
    # (API, consumers, relay; the relay publishes from one process at a time by advisory lock).
    http_workers: int = 1
    # Consumer runtime: how often a failing event is tried before it is dead-lettered.
    max_deliveries: int = 5
    retry_base_delay: float = 0.5
    consumer_batch: int = 256
    # Projections that apply a whole batch in memory and write it a few statements per table
    # (scoring) take bigger batches: per-batch statements dominate at 256 (benchmarks/bench_scoring.py).
    projector_batch: int = 4000
    # How often scoring looks for circulars and assessments due at a period's close, in seconds.
    period_close_check_seconds: float = 300.0
    relay_batch: int = 1000
    # JetStream storage for streams this deployment declares ("file" in production).
    stream_storage: str = "file"
    stream_replicas: int = 1
    # Secret for keyed hashes of personal data (phone lookup); set per deployment.
    pii_hash_key: str = "dev-only-change-me"

    def port_of(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def url_of(self, service: str) -> str:
        return f"http://{self.host}:{self.port_of(service)}"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SystemExit("TUANLIAN_DATABASE_URL is not set: which Postgres should I use?")
        return self.database_url

    def require_nats_url(self) -> str:
        if not self.nats_url:
            raise SystemExit("TUANLIAN_NATS_URL is not set: which NATS server should I use?")
        return self.nats_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
