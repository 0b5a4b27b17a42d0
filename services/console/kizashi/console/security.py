"""Passwords, the growing delay after failed sign-ins, and CSRF tokens: the console's (and
`kizashi users`') one place for each.

- Passwords are hashed with argon2id (argon2-cffi's defaults: RFC 9106's second recommended
  option, 64 MiB, 3 passes); a hash made with older parameters is re-made at the next sign-in.
- After `FREE_FAILURES` failed sign-ins for one email (`CLIENT_FREE_FAILURES` from one
  client address), each further one closes sign-in for that email (or client) for twice as
  long as the last, up to `MAX_DELAY`. The state is in PostgreSQL (`signin_attempts`), so
  every replica sees it; the server never sleeps: a closed sign-in is answered at once with
  how long to wait.
- A CSRF token is a random value kept with the session (or, before sign-in, in a cookie of
  its own) and sent back in a hidden field of every form; a POST without the right one is a 403.
"""

import hmac
import re
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("rep", "manager", "admin")
FREE_FAILURES = 3
# One client address may be a whole office behind one NAT: it gets more room before its
# failures close sign-in for everyone there.
CLIENT_FREE_FAILURES = 20
FIRST_DELAY = timedelta(seconds=2)
MAX_DELAY = timedelta(minutes=15)
# Failures older than this are forgotten: a person who mistyped last week starts afresh.
FORGET_AFTER = timedelta(hours=1)
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()
# Checked against when the email is unknown, so the answer takes as long as for a known one.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


class BadInput(ValueError):
    """A value a person typed that cannot be used; the message says why."""


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    if not _EMAIL.fullmatch(value) or len(value) > 320:
        raise BadInput(f"{email!r} is not an email address")
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise BadInput("a password may have at most 1024 characters")
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; always does the work of one check (unknown user too)."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def delay_after(failures: int, free: int = FREE_FAILURES) -> timedelta:
    """How long sign-in stays closed after the `failures`-th failure in a row."""
    if failures <= free:
        return timedelta(0)
    doublings = min(failures - free - 1, 20)  # 2 s × 2^20 is far past the cap
    return min(FIRST_DELAY * 2**doublings, MAX_DELAY)


def attempt_keys(email: str, client: str | None) -> list[str]:
    keys = [f"email:{email.strip().lower()[:320]}"]
    if client:
        keys.append(f"client:{client[:64]}")
    return keys


def wait_message(blocked_until: datetime, now: datetime) -> str:
    seconds = max(1, int((blocked_until - now).total_seconds() + 0.999))
    return (
        f"Too many failed sign-ins. Sign-in is closed for {seconds} second"
        f"{'s' if seconds != 1 else ''}; try again after that."
    )


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def same_secret(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
