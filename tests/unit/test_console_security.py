"""The console's building blocks that need no server: argon2id hashes, the growing delay
after failed sign-ins, what a person may act on, and the safe redirect after sign-in."""

from datetime import UTC, datetime, timedelta

import pytest

from kizashi.console import security
from kizashi.console.deps import User
from kizashi.console.pages import safe_next
from kizashi.runtime.auth import Caller, hash_token, new_personal_token


def test_passwords_are_argon2id_salted_and_checked() -> None:
    first, second = (
        security.hash_password("a long password"),
        security.hash_password("a long password"),
    )
    assert first.startswith("$argon2id$") and first != second  # salted
    assert security.verify_password(first, "a long password")
    assert not security.verify_password(first, "a long passwore")
    assert not security.verify_password(None, "anything")  # unknown user: still a full check
    assert not security.verify_password("not a hash", "anything")
    assert not security.needs_rehash(first)


def test_the_delay_grows_after_the_free_failures_and_is_capped() -> None:
    delays = [security.delay_after(n).total_seconds() for n in range(1, 12)]
    assert delays[: security.FREE_FAILURES] == [0, 0, 0]
    assert delays[3:8] == [2, 4, 8, 16, 32]
    assert security.delay_after(100) == security.MAX_DELAY
    # A client address (maybe a whole office) gets more room than one email.
    free = security.CLIENT_FREE_FAILURES
    assert security.delay_after(free, free).total_seconds() == 0
    assert security.delay_after(free + 1, free).total_seconds() == 2
    now = datetime(2026, 1, 1, tzinfo=UTC)
    message = security.wait_message(now + timedelta(seconds=7.2), now)
    assert "8 seconds" in message and "Too many failed sign-ins" in message


def test_emails_roles_and_passwords_are_checked() -> None:
    assert security.normalise_email("  Alice@Example.COM ") == "alice@example.com"
    for bad in ("", "alice", "a b@c", "@example.com"):
        with pytest.raises(security.BadInput):
            security.normalise_email(bad)
    with pytest.raises(security.BadInput, match="rep, manager, admin"):
        security.check_role("owner")
    with pytest.raises(security.BadInput, match="at least"):
        security.check_password("short")
    assert len(security.generate_password()) >= security.MIN_PASSWORD_LENGTH


@pytest.mark.parametrize(
    ("role", "owner", "allowed"),
    [
        ("rep", "rita@reps.example", True),
        ("rep", "RITA@Reps.Example", True),
        ("rep", "other@reps.example", False),
        ("rep", None, False),
        ("manager", "other@reps.example", True),
        ("admin", None, True),
    ],
)
def test_who_may_act_on_an_account(role: str, owner: str | None, allowed: bool) -> None:
    caller = Caller(actor="rita@reps.example", email="rita@reps.example", role=role)
    assert caller.may_act_on(owner) is allowed
    assert User(1, "rita@reps.example", "Rita", role, "x").may_act_on(owner) is allowed
    assert Caller(actor="api").may_act_on(owner)  # the service token acts on any


def test_personal_tokens_are_random_and_stored_as_their_hash() -> None:
    token = new_personal_token()
    assert token.startswith("kzp_") and len(token) > 40 and token != new_personal_token()
    assert hash_token(token) == hash_token(token) and token not in hash_token(token)


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/signals?owner=mine", "/signals?owner=mine"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ],
)
def test_after_sign_in_only_a_path_on_this_site(target: str, safe: str) -> None:
    assert safe_next(target) == safe
