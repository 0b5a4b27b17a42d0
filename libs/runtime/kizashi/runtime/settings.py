"""Settings from the environment (prefix `KIZASHI_`), shared by every service and the CLI."""

import hashlib
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_PORTS: dict[str, int] = {
    "ingest": 8001,
    "scoring": 8002,
    "triggers": 8003,
    "notifier": 8004,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KIZASHI_", extra="ignore")

    # Unset means embedded (DESIGN §3): `kizashi up` starts both and hands the URLs down.
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None

    ingest_keys: SecretStr = SecretStr("")
    api_token: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    smtp_url: SecretStr | None = None
    email_from: str = "kizashi@localhost"
    # Signs the ack/snooze links in alerts; defaults to a value derived from the API token.
    action_secret: SecretStr | None = None
    # Secrets that signed links before a rollover, comma-separated: still accepted, never used
    # to sign. Remove one once the links it signed have expired (14 days).
    action_secret_previous: SecretStr | None = None
    # Where the services' own APIs are reachable by a rep's browser (for ack/snooze links).
    public_url: str = "http://127.0.0.1:8003"

    config_dir: Path | None = None
    data_dir: Path = Path(".kizashi")

    host: str = "127.0.0.1"
    ingest_port: int = SERVICE_PORTS["ingest"]
    scoring_port: int = SERVICE_PORTS["scoring"]
    triggers_port: int = SERVICE_PORTS["triggers"]
    notifier_port: int = SERVICE_PORTS["notifier"]

    # The embedded default's own servers (`kizashi up` with no database or broker configured).
    embedded_postgres_port: int = 54329
    embedded_broker_port: int = 19092
    # Local stand-ins for Slack and SMTP when neither is configured (see kizashi.tools.devinbox).
    dev_webhook_port: int = 8025
    dev_smtp_port: int = 1025

    # Tansu answers a fetch long-poll by sleeping half the time left, so latency wants this low.
    kafka_fetch_max_wait_ms: int = Field(default=20, ge=1, le=5000)
    kafka_send_timeout_s: float = Field(default=10.0, gt=0, le=120)
    consumer_max_batch: int = Field(default=2000, ge=1, le=50_000)
    # Scoring re-scores each account once per batch, so under backlog a bigger batch means
    # fewer re-scorings per event; a batch is only this big when that many records wait.
    scoring_max_batch: int = Field(default=50_000, ge=1, le=200_000)
    sweep_interval_s: float = Field(default=30.0, gt=0, le=60)
    db_pool_size: int = Field(default=5, ge=1, le=100)
    # Notification delivery (the notifier): how often to try, and how long a `sending` row left
    # by a dead process waits before another claims it. The lease must outlast one send.
    delivery_max_attempts: int = Field(default=6, ge=1, le=50)
    delivery_retry_base_s: float = Field(default=1.0, gt=0, le=3600)
    delivery_retry_cap_s: float = Field(default=300.0, gt=0, le=86_400)
    delivery_lease_s: float = Field(default=120.0, gt=0, le=86_400)
    log_level: str = "INFO"

    @field_validator("config_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    def ingest_key_names(self) -> dict[str, str]:
        """secret → key name. Entries are `name:secret` or a bare secret (named `default`)."""
        keys: dict[str, str] = {}
        for index, entry in enumerate(filter(None, self.ingest_keys.get_secret_value().split(","))):
            name, sep, secret = entry.strip().partition(":")
            if not sep:
                name, secret = ("default" if index == 0 else f"key{index}"), name
            keys[secret.strip()] = name.strip()
        return keys

    def signing_secret(self) -> str:
        """The key for the signed ack/snooze links in alerts (notifier signs, triggers checks)."""
        if self.action_secret:
            return self.action_secret.get_secret_value()
        if self.api_token:
            # Derived, not equal: an action link never carries anything that opens the API.
            seed = b"kizashi-actions:" + self.api_token.get_secret_value().encode()
            return hashlib.sha256(seed).hexdigest()
        raise RuntimeError("set KIZASHI_ACTION_SECRET (or KIZASHI_API_TOKEN) to sign alert links")

    def verifying_secrets(self) -> list[str]:
        """The keys an ack/snooze link may be signed with: the current one, then the previous."""
        previous = (
            self.action_secret_previous.get_secret_value() if self.action_secret_previous else ""
        )
        return [self.signing_secret(), *filter(None, (s.strip() for s in previous.split(",")))]

    def port_of(self, service: str) -> int:
        return getattr(self, f"{service}_port")

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "KIZASHI_DATABASE_URL is not set: run `kizashi up` for the embedded default, "
                "or point it at a PostgreSQL server"
            )
        return self.database_url

    def require_bootstrap_servers(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise RuntimeError(
                "KIZASHI_KAFKA_BOOTSTRAP_SERVERS is not set: run `kizashi up` for the embedded "
                "default, or point it at a Kafka cluster"
            )
        return self.kafka_bootstrap_servers


@lru_cache
def get_settings() -> Settings:
    return Settings()
