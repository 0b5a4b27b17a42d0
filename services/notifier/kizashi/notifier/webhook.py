"""The `webhook` receiver's request: a signal as versioned JSON, signed per the Standard
Webhooks specification (docs/notifications.md "Webhooks"; architecture §5.7); for a signal
retracted after it was sent, its correction, a `kizashi.signal.retracted` event.

Each request carries `webhook-id` (the delivery id: the same on every retry, so a receiver
drops a repeat), `webhook-timestamp` (Unix seconds when this attempt was sent) and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), computed by the
`standardwebhooks` library that receivers verify with. The key is a `whsec_<base64>` secret
from the environment; it never appears in a repr, a log line or GET /v1/routes.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from standardwebhooks import Webhook

from kizashi.contracts.signals import SignalBase
from kizashi.notifier.routing_config import WebhookReceiverConfig, _check_url
from kizashi.notifier.transport import SendResult, WebhookSender, redact_url
from kizashi.notifier.view import signal_view

logger = logging.getLogger(__name__)

# Bumped only for a change that breaks a receiver (a field removed or its meaning changed);
# fields may be added within a version (`reopened_at` was), and new event types too.
PAYLOAD_VERSION = 1
EVENT_TYPE = "kizashi.signal"
# A signal sent before turned out not to hold (issue #20): the receiver closes what it opened.
RETRACTED_TYPE = "kizashi.signal.retracted"
SECRET_PREFIX = "whsec_"
# The spec's bounds for a signing key, in bytes once decoded.
SECRET_MIN_BYTES, SECRET_MAX_BYTES = 24, 64


def check_secret(value: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret; ValueError says what is wrong (never the
    value). The library alone would take any string (it drops what is not base64)."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r} (a Standard Webhooks secret)")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {SECRET_PREFIX!r} followed by base64") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ValueError(
            f"must decode to {SECRET_MIN_BYTES}-{SECRET_MAX_BYTES} bytes, not {len(key)}"
        )
    return key


class WebhookSigner:
    """Signs request bodies with one secret. Its repr names no secret."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(check_secret(secret))

    def __repr__(self) -> str:
        return "WebhookSigner(whsec_***)"

    def headers(self, message_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
        """The three Standard Webhooks headers for `body` as sent now."""
        at = (now or datetime.now(UTC)).replace(microsecond=0)
        signature = self._webhook.sign(message_id, at, body.decode("utf-8"))
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature,
        }


@dataclass(frozen=True)
class WebhookReceiver:
    """Signed JSON to one URL. The URL and the signer stay out of the repr (secrets)."""

    name: str
    url: str | None = field(default=None, repr=False)
    signer: WebhookSigner | None = field(default=None, repr=False)
    disabled_reason: str | None = None
    type: Literal["webhook"] = "webhook"

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "url": redact_url(self.url) if self.url else None,
            "signed": "standard-webhooks v1" if self.signer else None,
        }


def build_webhook(config: WebhookReceiverConfig, environ: Mapping[str, str]) -> WebhookReceiver:
    """ValueError (naming the variable, never its value) for a URL or secret that is set but
    invalid, or a URL without a secret."""
    url = environ.get(config.url_env) or None
    secret = environ.get(config.secret_env) or None
    if url is None:
        reason = f"{config.url_env} is not set"
        logger.warning("webhook receiver %r disabled: %s", config.name, reason)
        return WebhookReceiver(config.name, disabled_reason=reason)
    try:
        _check_url(url)
    except ValueError:
        raise ValueError(f"url_env: {config.url_env} is not an http(s) URL") from None
    if secret is None:
        raise ValueError(
            f"secret_env: {config.secret_env} is not set; a webhook receiver never sends"
            " unsigned (docs/notifications.md shows how to make a secret)"
        )
    try:
        signer = WebhookSigner(secret)
    except ValueError as exc:
        raise ValueError(f"secret_env: {config.secret_env} {exc}") from None
    return WebhookReceiver(config.name, url, signer)


def _utc(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_payload(signal: SignalBase, links: Mapping[str, str | None]) -> dict[str, Any]:
    """The request body (docs/notifications.md documents every field)."""
    account = signal.account
    scores = signal.scores
    before = signal.scores_before
    return {
        "type": EVENT_TYPE,
        "version": PAYLOAD_VERSION,
        "timestamp": _utc(signal.fired_at),
        "data": {
            "signal_id": signal.signal_id,
            "kind": signal.kind,
            "rule": signal.rule,
            "priority": signal.priority,
            "headline": signal_view(signal).headline,
            "fired_at": _utc(signal.fired_at),
            "account": {
                "id": signal.account_id,
                "name": account.name,
                "plan": account.plan,
                "arr": account.arr,
                "renewal_date": account.renewal_date.isoformat() if account.renewal_date else None,
            },
            "owner": {"email": account.owner_email, "slack": account.owner_slack},
            "reasons": list(signal.reasons),
            "next_step": signal.suggested_play,
            "scores": {
                "cs": scores.cs,
                "op": scores.op,
                "segment": scores.segment,
                "priority": scores.priority,
                "confidence": scores.confidence,
            },
            "scores_before": None
            if before is None
            else {"cs": before.cs, "op": before.op, "segment": before.segment},
            "phase": signal.phase,
            # Set when a snoozed signal reopened because it got worse: a new webhook-id, the
            # same signal_id (a receiver keys its task by signal_id and updates it).
            "reopened_at": _utc(signal.reopened_at),
            "links": dict(links),
        },
    }


def retraction_payload(signal: SignalBase, corrects: str) -> dict[str, Any]:
    """The body of a retraction (a correction's, on a webhook receiver): the signal did not
    hold, why, and the `webhook-id` of the request it corrects."""
    retracted = signal.retracted
    assert retracted is not None
    return {
        "type": RETRACTED_TYPE,
        "version": PAYLOAD_VERSION,
        "timestamp": _utc(retracted.at),
        "data": {
            "signal_id": signal.signal_id,
            "kind": signal.kind,
            "rule": signal.rule,
            "fired_at": _utc(signal.fired_at),
            "reopened_at": _utc(signal.reopened_at),
            "account": {"id": signal.account_id, "name": signal.account.name},
            "retracted_at": _utc(retracted.at),
            "reason": retracted.reason,
            "corrects": corrects,
        },
    }


async def send_webhook(
    sender: WebhookSender,
    receiver: WebhookReceiver,
    signal: SignalBase,
    delivery_id: str,
    links: Mapping[str, str | None],
) -> SendResult:
    """One attempt: the signal as signed JSON, with the pace, the 429 pause and the outcome
    classes of every HTTP receiver. `webhook-id` is the delivery id, the same on every retry."""
    return await _send_signed(sender, receiver, webhook_payload(signal, links), delivery_id)


async def send_retraction(
    sender: WebhookSender,
    receiver: WebhookReceiver,
    signal: SignalBase,
    delivery_id: str,
    corrects: str,
) -> SendResult:
    """One attempt of a correction on a webhook receiver: `kizashi.signal.retracted`, signed
    like a signal, its `webhook-id` the correction's delivery id."""
    return await _send_signed(sender, receiver, retraction_payload(signal, corrects), delivery_id)


async def _send_signed(
    sender: WebhookSender, receiver: WebhookReceiver, payload: dict[str, Any], delivery_id: str
) -> SendResult:
    url, signer = receiver.url, receiver.signer
    if url is None or signer is None:  # a disabled receiver never gets here
        return SendResult("failed", f"webhook receiver {receiver.name!r} is not configured")
    return await sender.send(
        url,
        payload,
        headers={"X-Kizashi-Delivery-Id": delivery_id},
        sign=lambda body: signer.headers(delivery_id, body),
    )
