"""Signed, expiring tokens for the Acknowledge / Snooze links in alerts.

A link in a Slack message or an email is clicked by whoever can see it, without our bearer
token, so the link itself carries the authority: an itsdangerous URL-safe token,
`<payload>.<signature>`, the payload naming the signal, the action and the expiry (so a token
cannot be replayed for another signal or action, nor after it expires), the signature an
HMAC-SHA256 under a key derived from the secret and this purpose's salt.

Keys rotate: a token is signed with the current secret and accepted under the current one or
any previous one still configured (KIZASHI_ACTION_SECRET_PREVIOUS), so links sent before a
rollover keep working until the old secret is removed.

itsdangerous decodes base64 leniently (characters outside the alphabet are dropped, the
unused low bits of the last character ignored), so a signature is also refused unless it is
exactly the canonical encoding of the bytes it decodes to: one token, one spelling.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from itsdangerous import BadData, URLSafeSerializer
from itsdangerous.encoding import base64_decode, base64_encode

# Keys derived for these links sign nothing else, and vice versa.
SALT = "kizashi.alert-action"
# `<payload>.<signature>`, URL-safe base64 without padding (a compressed payload starts with ".").
_TOKEN = re.compile(r"\.?[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)")

Secret = str | bytes


class InvalidActionToken(ValueError):
    """Malformed, tampered with, or signed with a secret that is not (or no longer) ours."""


class ExpiredActionToken(InvalidActionToken):
    pass


def _key(secret: Secret) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise ValueError("the signing secret must not be empty")
    return key


def _serializer(secrets: Sequence[Secret], salt: str = SALT) -> URLSafeSerializer:
    """`secrets[0]` signs; every one of them verifies. Another `salt` (another purpose, such
    as the customer emails' unsubscribe links) derives other keys: its tokens are not ours."""
    if not secrets:
        raise ValueError("at least one signing secret is required")
    # itsdangerous signs with the last key of its list and verifies with each.
    keys = [_key(secret) for secret in reversed(secrets)]
    return URLSafeSerializer(keys, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


def _timestamp(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("use a timezone-aware datetime")
    return int(moment.timestamp())


def sign_action(
    signal_id: str,
    action: str,
    expires_at: datetime,
    secret: Secret,
    recipient: str | None = None,
    *,
    salt: str = SALT,
) -> str:
    """`recipient`, the person the alert is sent to, is bound into the token: whoever clicks
    the link acts as them, and the action is recorded under their name."""
    if not signal_id or not action:
        raise ValueError("signal_id and action are required")
    payload: dict = {"s": signal_id, "a": action, "e": _timestamp(expires_at)}
    if recipient:
        payload["r"] = recipient
    return _serializer([secret], salt).dumps(payload)


def _canonical(signature: str) -> bool:
    try:
        return base64_encode(base64_decode(signature)).decode("ascii") == signature
    except BadData:
        return False


def verify_action(
    token: str, secrets: Secret | Sequence[Secret], now: datetime | None = None
) -> tuple[str, str]:
    """(signal_id, action) of a genuine, unexpired token signed with one of `secrets` (the
    current secret, then any previous ones); raises InvalidActionToken otherwise."""
    signal_id, action, _ = verify_action_for(token, secrets, now)
    return signal_id, action


def verify_action_for(
    token: str,
    secrets: Secret | Sequence[Secret],
    now: datetime | None = None,
    *,
    salt: str = SALT,
) -> tuple[str, str, str | None]:
    """(signal_id, action, recipient) as `verify_action`; recipient is None for a token
    signed without one (links sent before recipients were bound)."""
    if isinstance(secrets, str | bytes):
        secrets = [secrets]
    match = _TOKEN.fullmatch(token)
    if match is None or not _canonical(match[1]):
        raise InvalidActionToken("malformed token")
    try:
        payload = _serializer(secrets, salt).loads(token)
    except BadData as exc:
        raise InvalidActionToken("bad signature") from exc
    try:
        signal_id, action, expires = payload["s"], payload["a"], payload["e"]
    except (KeyError, TypeError) as exc:
        raise InvalidActionToken("malformed payload") from exc
    if (
        not isinstance(signal_id, str)
        or not isinstance(action, str)
        or not isinstance(expires, int)
        or isinstance(expires, bool)
    ):
        raise InvalidActionToken("malformed payload")
    recipient = payload.get("r")
    if recipient is not None and (not isinstance(recipient, str) or not recipient):
        raise InvalidActionToken("malformed payload")
    if _timestamp(now or datetime.now(UTC)) >= expires:
        raise ExpiredActionToken("token expired")
    return signal_id, action, recipient
