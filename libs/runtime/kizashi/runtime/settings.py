"""Settings from the environment (prefix `KIZASHI_`).

`Settings` holds what every service, the runtime (engine, producer, consumers, logging) and
the CLI read. What only one service reads lives in that service's own class, a subclass of
this one in `kizashi.<service>.settings` (IngestSettings, ScoringSettings, TriggersSettings,
NotifierSettings); what only the dev tools read is in `kizashi.tools.settings.ToolSettings`.
Every class reads the same environment, so a variable keeps its one name wherever it is read,
and a process given the whole environment (`kizashi up` hands its own to each service) finds
what it needs.
"""

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_PORTS: dict[str, int] = {
    "ingest": 8001,
    "scoring": 8002,
    "triggers": 8003,
    "notifier": 8004,
    "console": 8005,
}


class Settings(BaseSettings):
    """What every service and the runtime read."""

    model_config = SettingsConfigDict(env_prefix="KIZASHI_", extra="ignore")

    # Unset means embedded (architecture §6.1): `kizashi up` starts both and hands the URLs down.
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None

    # Opens each service's read and admin API (kizashi.runtime.auth).
    api_token: SecretStr | None = None

    # Where reps' browsers reach the triggers service (the signed ack/snooze links in alerts);
    # https here also makes the console's cookies Secure.
    public_url: str = "http://127.0.0.1:8003"
    # Where reps' browsers reach the console: alerts link to its signal and account pages when
    # set, and https here makes its cookies Secure.
    console_url: str | None = None

    config_dir: Path | None = None
    data_dir: Path = Path(".kizashi")

    host: str = "127.0.0.1"
    ingest_port: int = SERVICE_PORTS["ingest"]
    scoring_port: int = SERVICE_PORTS["scoring"]
    triggers_port: int = SERVICE_PORTS["triggers"]
    notifier_port: int = SERVICE_PORTS["notifier"]
    console_port: int = SERVICE_PORTS["console"]

    # "kafka": Apache Kafka (idempotent producer); "embedded": Tansu, with its workarounds
    # (architecture §6.3); "auto" tells them apart by the cluster id
    # (kizashi.runtime.kafka.flavour_of).
    kafka_flavour: Literal["auto", "kafka", "embedded"] = "auto"
    # Tansu answers a fetch long-poll by sleeping half the time left, so latency wants this low.
    kafka_fetch_max_wait_ms: int = Field(default=20, ge=1, le=5000)
    kafka_send_timeout_s: float = Field(default=10.0, gt=0, le=120)
    consumer_max_batch: int = Field(default=2000, ge=1, le=50_000)
    db_pool_size: int = Field(default=5, ge=1, le=100)
    log_level: str = "INFO"
    # Where spans go by OTLP/HTTP (a collector's base URL, e.g. http://127.0.0.1:4318; the
    # exporter posts to <url>/v1/traces). Unset: the standard OTEL_EXPORTER_OTLP_* variables
    # decide, and with none of them tracing is off (kizashi.runtime.tracing).
    otlp_endpoint: str | None = None

    # Slow or greedy HTTP clients (kizashi.runtime.server, architecture §5.11): the headers must
    # arrive within this time, the body within its own, and be at most this large; an idle
    # kept-alive connection closes after http_keep_alive_s.
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    http_body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    http_keep_alive_s: float = Field(default=5.0, gt=0, le=600)
    http_max_header_bytes: int = Field(default=32 * 1024, ge=4096, le=1024 * 1024)

    @field_validator("config_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

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


def ingest_key_entries(value: str) -> list[tuple[str, str]]:
    """KIZASHI_INGEST_KEYS as (name, secret) pairs, in order: entries are `name:secret`,
    comma-separated, or a bare secret (the first named `default`, the others `key<i>`). Ingest
    checks requests against them; the console sends its observations with one of them."""
    entries = []
    for index, entry in enumerate(filter(None, value.split(","))):
        name, sep, secret = entry.strip().partition(":")
        if not sep:
            name, secret = ("default" if index == 0 else f"key{index}"), name
        entries.append((name.strip(), secret.strip()))
    return entries


class ActionLinkSettings(Settings):
    """The key of the signed ack/snooze links in alerts: the notifier signs them, triggers
    checks them, so both services' settings derive from this class."""

    # Signs the ack/snooze links in alerts; defaults to a value derived from the API token.
    action_secret: SecretStr | None = None
    # Secrets that signed links before a rollover, comma-separated: still accepted, never used
    # to sign. Remove one once the links it signed have expired (14 days).
    action_secret_previous: SecretStr | None = None

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


class SweepSettings(Settings):
    """The interval of the periodic sweeps, read by the two services that sweep (scoring and
    triggers): one variable sets both."""

    sweep_interval_s: float = Field(default=30.0, gt=0, le=60)
