"""The notifier service's settings: the shared ones, the key that signs the ack/snooze links,
where alerts go (Slack, SMTP) and how deliveries are retried."""

from functools import lru_cache

from pydantic import Field, SecretStr

from kizashi.runtime.settings import ActionLinkSettings


class NotifierSettings(ActionLinkSettings):
    slack_webhook_url: SecretStr | None = None
    smtp_url: SecretStr | None = None
    email_from: str = "kizashi@localhost"
    # Where customers' browsers reach this service: the customer emails' unsubscribe links
    # (GET shows a confirmation, POST unsubscribes; docs/notifications.md). Required when a
    # playbook is on and SMTP is set (the app refuses to start without it); `kizashi up` sets
    # it to this host's notifier port on 127.0.0.1 for a local trial.
    notifier_public_url: str | None = None

    def unsubscribe_base_url(self) -> str:
        return self.notifier_public_url or f"http://127.0.0.1:{self.notifier_port}"

    # How often to try a delivery, and how long a `sending` row left by a dead process waits
    # before another claims it. The lease must outlast one send.
    delivery_max_attempts: int = Field(default=6, ge=1, le=50)
    delivery_retry_base_s: float = Field(default=1.0, gt=0, le=3600)
    delivery_retry_cap_s: float = Field(default=300.0, gt=0, le=86_400)
    delivery_lease_s: float = Field(default=120.0, gt=0, le=86_400)


@lru_cache
def get_settings() -> NotifierSettings:
    return NotifierSettings()
