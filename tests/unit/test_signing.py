"""The signed ack/snooze links in alerts (kizashi.runtime.signing): what a token binds, which
secrets verify it during a key rollover, and which altered tokens are refused."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from kizashi.runtime.settings import ActionLinkSettings
from kizashi.runtime.signing import (
    ExpiredActionToken,
    InvalidActionToken,
    sign_action,
    verify_action,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=7)


def test_a_token_binds_signal_action_and_expiry() -> None:
    token = sign_action("sig-1", "snooze", EXPIRES, "s3cret")
    assert token.isascii() and all(c.isalnum() or c in "-_." for c in token)
    assert verify_action(token, "s3cret", NOW) == ("sig-1", "snooze")
    assert verify_action(token, ["s3cret"], EXPIRES - timedelta(seconds=1)) == ("sig-1", "snooze")
    with pytest.raises(ExpiredActionToken):
        verify_action(token, "s3cret", EXPIRES)
    with pytest.raises(ExpiredActionToken):
        verify_action(token, "s3cret", NOW + timedelta(days=8))
    with pytest.raises(InvalidActionToken):
        verify_action(token, "other", NOW)


def test_an_old_secret_keeps_verifying_during_a_rollover() -> None:
    before = sign_action("sig-1", "ack", EXPIRES, "old-secret")
    after = sign_action("sig-1", "ack", EXPIRES, "new-secret")
    assert before != after
    rollover = ["new-secret", "old-secret"]  # the current one first, then the previous
    assert verify_action(before, rollover, NOW) == ("sig-1", "ack")
    assert verify_action(after, rollover, NOW) == ("sig-1", "ack")
    # Once the old secret is removed, what it signed is refused; the current one still works.
    with pytest.raises(InvalidActionToken):
        verify_action(before, ["new-secret"], NOW)
    assert verify_action(after, ["new-secret"], NOW) == ("sig-1", "ack")
    # A token signed only with a removed secret fails whatever else is configured.
    removed = sign_action("sig-1", "ack", EXPIRES, "removed-secret")
    with pytest.raises(InvalidActionToken):
        verify_action(removed, ["new-secret", "old-secret"], NOW)


def test_settings_sign_with_the_current_secret_and_verify_with_previous_ones() -> None:
    settings = ActionLinkSettings(action_secret="new", action_secret_previous=" old , older,")
    assert settings.signing_secret() == "new"
    assert settings.verifying_secrets() == ["new", "old", "older"]
    assert ActionLinkSettings(action_secret="new").verifying_secrets() == ["new"]
    token = sign_action("sig-1", "ack", EXPIRES, "older")
    assert verify_action(token, settings.verifying_secrets(), NOW) == ("sig-1", "ack")


def _altered(token: str) -> dict[str, str]:
    payload, signature = token.split(".")
    last = signature[-1]
    other = {"g": "h"}.get(last, "B" if last == "A" else "A")
    return {
        "last signature character changed": f"{payload}.{signature[:-1]}{other}",
        "'!!' inserted in the signature": f"{payload}.{signature[:5]}!!{signature[5:]}",
        "'!!' appended to the signature": f"{token}!!",
        "'!!' inserted in the payload": f"{payload[:3]}!!{payload[3:]}.{signature}",
        "signature truncated": token[:-1],
        "signature cut off": f"{payload}.",
        "signature missing": payload,
        "padding added": f"{token}=",
        "whitespace added": f"{token} ",
        "empty": "",
        "garbage": "garbage",
        "three parts": f"v1.{payload}.{signature}",
    }


@pytest.mark.parametrize("signal_id", ["sig-1", "sig-2", "a-longer-signal-id-0123456789"])
def test_altered_tokens_are_refused(signal_id: str) -> None:
    token = sign_action(signal_id, "ack", EXPIRES, "s3cret")
    for how, bad in _altered(token).items():
        with pytest.raises(InvalidActionToken):
            verify_action(bad, "s3cret", NOW)
            pytest.fail(f"accepted with the {how}")


def test_a_final_g_changed_to_h_is_refused() -> None:
    """The home-made v1 tokens accepted this: the last base64 character's unused bits."""
    signal_id = next(
        f"sig-{n}"
        for n in range(10_000)
        if sign_action(f"sig-{n}", "ack", EXPIRES, "s3cret").endswith("g")
    )
    token = sign_action(signal_id, "ack", EXPIRES, "s3cret")
    with pytest.raises(InvalidActionToken):
        verify_action(token[:-1] + "h", "s3cret", NOW)


def test_swapped_payload_signal_or_action_is_refused() -> None:
    token = sign_action("sig-1", "snooze", EXPIRES, "s3cret")
    _, signature = token.split(".")
    for other in (
        sign_action("sig-2", "snooze", EXPIRES, "s3cret"),  # another signal
        sign_action("sig-1", "ack", EXPIRES, "s3cret"),  # another action
        sign_action("sig-1", "snooze", EXPIRES + timedelta(days=30), "s3cret"),  # later expiry
    ):
        forged = f"{other.split('.')[0]}.{signature}"
        with pytest.raises(InvalidActionToken):
            verify_action(forged, "s3cret", NOW)
    # A token for an expired link does not verify with a fresher signature either.
    expired = sign_action("sig-1", "snooze", NOW - timedelta(seconds=1), "s3cret")
    with pytest.raises(ExpiredActionToken):
        verify_action(expired, "s3cret", NOW)
    with pytest.raises(InvalidActionToken):
        verify_action(f"{expired.split('.')[0]}.{signature}", "s3cret", NOW)


def test_tokens_of_the_old_v1_format_are_refused() -> None:
    """Links sent before the switch to itsdangerous stop working (docs/deploy.md)."""
    body = base64.urlsafe_b64encode(b'{"s":"sig-1","a":"ack","e":1736294400}').rstrip(b"=")
    signed = b"v1." + body
    mac = hmac.new(b"s3cret", signed, hashlib.sha256).digest()
    old = (signed + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    with pytest.raises(InvalidActionToken):
        verify_action(old, "s3cret", NOW)


def test_signing_needs_a_secret_and_an_aware_expiry() -> None:
    with pytest.raises(ValueError):
        sign_action("sig-1", "ack", EXPIRES, "")
    with pytest.raises(ValueError):
        sign_action("sig-1", "ack", datetime(2025, 1, 8), "s3cret")
    with pytest.raises(ValueError):
        sign_action("", "ack", EXPIRES, "s3cret")
