"""Signing in and out: the password check behind the growing delay (kizashi.console.security),
server-side sessions (`user_sessions`, so sign-out and disabling end them at once) and their
cookies (HttpOnly, SameSite=Lax, Secure over https)."""

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.console import repository, security
from kizashi.console.metrics import SIGNINS
from kizashi.console.settings import ConsoleSettings
from kizashi.runtime.db import raw_transaction

SESSION_COOKIE = "kizashi_session"
# Before sign-in there is no session to keep a CSRF token in: the sign-in form's token is
# also set in this cookie, and the two must match (double submit).
SIGNIN_CSRF_COOKIE = "kizashi_signin_csrf"


def session_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def secure(request: Request, settings: ConsoleSettings) -> bool:
    """Secure cookies when the console's public address is https, or the request came over
    https (directly, or through a proxy uvicorn trusts for X-Forwarded-Proto)."""
    return settings.secure_cookies() or request.url.scheme == "https"


def set_cookie(
    response: Response,
    request: Request,
    settings: ConsoleSettings,
    name: str,
    value: str,
    max_age: int | None,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure(request, settings),
        path="/",
    )


@dataclass
class SignInResult:
    cookie: str | None = None
    # Why not, in words for the person signing in.
    refusal: str | None = None
    throttled: bool = False


REFUSED = "That email and password do not match an active account."


async def sign_in(
    engine: AsyncEngine,
    settings: ConsoleSettings,
    *,
    email: str,
    password: str,
    client: str | None,
    now: datetime | None = None,
) -> SignInResult:
    now = now or datetime.now(UTC)
    keys = security.attempt_keys(email, client)
    async with raw_transaction(engine) as connection:
        until = await repository.blocked_until(conn=connection, keys=keys, now=now)
    if until is not None:
        SIGNINS.labels("throttled").inc()
        return SignInResult(refusal=security.wait_message(until, now), throttled=True)
    try:
        address = security.normalise_email(email)
    except security.BadInput:
        address = None
    async with raw_transaction(engine) as connection:
        user = await repository.user_for_signin(conn=connection, email=address) if address else None
    stored = user["password_hash"] if user is not None else None
    # The hash check runs (on a thread: argon2 takes tens of ms) for unknown emails too.
    matches = await asyncio.to_thread(security.verify_password, stored, password)
    if not matches or user is None or user["disabled"]:
        await _count_failure(engine, keys, now)
        SIGNINS.labels("refused").inc()
        return SignInResult(refusal=REFUSED)
    cookie = security.new_secret()
    async with raw_transaction(engine) as connection:
        await repository.clear_failures(conn=connection, key=keys[0])
        if security.needs_rehash(stored):
            await repository.rehash_password(
                conn=connection, user_id=user["id"], password_hash=security.hash_password(password)
            )
        await repository.create_session(
            conn=connection,
            session_hash=session_hash(cookie),
            user_id=user["id"],
            csrf_token=security.new_secret(),
            expires_at=now + timedelta(hours=settings.session_hours),
        )
    SIGNINS.labels("ok").inc()
    return SignInResult(cookie=cookie)


async def _count_failure(engine: AsyncEngine, keys: list[str], now: datetime) -> None:
    async with raw_transaction(engine) as connection:
        for key in keys:
            failures = await repository.record_failure(
                conn=connection, key=key, now=now, forget_before=now - security.FORGET_AFTER
            )
            free = security.CLIENT_FREE_FAILURES if key.startswith("client:") else None
            delay = security.delay_after(failures, free or security.FREE_FAILURES)
            if delay:
                await repository.block(conn=connection, key=key, until=now + delay)


async def sign_out(engine: AsyncEngine, cookie: str | None) -> None:
    if cookie:
        async with raw_transaction(engine) as connection:
            await repository.delete_session(conn=connection, session_hash=session_hash(cookie))
