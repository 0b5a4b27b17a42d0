"""Signed, expiring tokens for the Acknowledge / Snooze links in alerts.

A link in a Slack message or an email is clicked by whoever can see it, without our bearer
token, so the link itself carries the authority: `v1.<payload>.<mac>`, both URL-safe base64
without padding, the MAC being HMAC-SHA256 over "v1." + payload. The payload names the
signal, the action and the expiry, so a token cannot be replayed for another signal or
action, nor after it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime

VERSION = "v1"


class InvalidActionToken(ValueError):
    """Malformed, tampered with, or signed with another secret."""


class ExpiredActionToken(InvalidActionToken):
    pass


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidActionToken("malformed token") from exc


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise ValueError("the signing secret must not be empty")
    return key


def _mac(secret: str | bytes, signed: str) -> bytes:
    return hmac.new(_key(secret), signed.encode("ascii"), hashlib.sha256).digest()


def _timestamp(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("use a timezone-aware datetime")
    return int(moment.timestamp())


def sign_action(signal_id: str, action: str, expires_at: datetime, secret: str | bytes) -> str:
    if not signal_id or not action:
        raise ValueError("signal_id and action are required")
    payload = json.dumps(
        {"s": signal_id, "a": action, "e": _timestamp(expires_at)},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    body = _b64encode(payload.encode())
    signed = f"{VERSION}.{body}"
    return f"{signed}.{_b64encode(_mac(secret, signed))}"


def verify_action(token: str, secret: str | bytes, now: datetime | None = None) -> tuple[str, str]:
    """(signal_id, action) of a genuine, unexpired token; raises InvalidActionToken otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise InvalidActionToken("malformed token")
    signed = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_b64decode(parts[2]), _mac(secret, signed)):
        raise InvalidActionToken("bad signature")
    try:
        payload = json.loads(_b64decode(parts[1]))
        signal_id, action, expires = payload["s"], payload["a"], payload["e"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidActionToken("malformed payload") from exc
    if (
        not isinstance(signal_id, str)
        or not isinstance(action, str)
        or not isinstance(expires, int)
    ):
        raise InvalidActionToken("malformed payload")
    if _timestamp(now or datetime.now(UTC)) >= expires:
        raise ExpiredActionToken("token expired")
    return signal_id, action
