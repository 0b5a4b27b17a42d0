"""People on a real PostgreSQL: the growing delay after failed sign-ins (shared by replicas,
per email and per client), personal tokens and the acting-user header in the runtime's API
auth, and the `kizashi users` command with its errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from kizashi.console import repository, security
from kizashi.console.sessions import REFUSED, sign_in
from kizashi.console.settings import ConsoleSettings
from kizashi.runtime.auth import ACTING_USER_HEADER, CallerDep, hash_token, new_personal_token
from kizashi.runtime.db import create_engine, raw_transaction

PASSWORD = "a fine long password"  # noqa: S105
SERVICE_TOKEN = "service-token-for-tests"  # noqa: S105


@pytest.fixture(scope="module")
async def engine(database_url):
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _person(engine, role: str = "rep") -> tuple[int, str]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@reps.example"
    async with raw_transaction(engine) as connection:
        row = await repository.add_user(
            conn=connection,
            email=email,
            name=email,
            slack=None,
            role=role,
            password_hash=security.hash_password(PASSWORD),
        )
    return row["id"], email


async def test_failed_sign_ins_close_sign_in_for_a_growing_while_then_it_opens(
    engine, database_url
) -> None:
    _, email = await _person(engine)
    settings = ConsoleSettings()
    now = datetime.now(UTC)
    client = f"10.0.{uuid.uuid4().int % 250}.1"
    for _ in range(security.FREE_FAILURES):
        result = await sign_in(
            engine, settings, email=email, password="wrong", client=client, now=now
        )
        assert result.refusal == REFUSED and not result.throttled
    result = await sign_in(engine, settings, email=email, password="wrong", client=client, now=now)
    assert result.refusal == REFUSED  # the 4th failure closes sign-in for 2 s
    # Closed even with the right password, and for another replica (its own engine) too.
    other_replica = create_engine(database_url)
    try:
        result = await sign_in(
            other_replica, settings, email=email, password=PASSWORD, client="10.9.9.9", now=now
        )
    finally:
        await other_replica.dispose()
    assert result.throttled and "2 seconds" in result.refusal and result.cookie is None
    # The next failure after the wait closes it for twice as long.
    later = now + timedelta(seconds=3)
    await sign_in(engine, settings, email=email, password="wrong", client=client, now=later)
    result = await sign_in(engine, settings, email=email, password=PASSWORD, client="x", now=later)
    assert result.throttled and "4 seconds" in result.refusal
    # Once the wait is over, the right password signs in, and the email's count starts again.
    much_later = later + timedelta(seconds=5)
    result = await sign_in(
        engine, settings, email=email, password=PASSWORD, client="10.8.8.8", now=much_later
    )
    assert result.cookie is not None
    async with raw_transaction(engine) as connection:
        assert (
            await repository.blocked_until(conn=connection, keys=[f"email:{email}"], now=much_later)
            is None
        )


async def test_one_client_guessing_many_emails_is_slowed_down_too(engine) -> None:
    client = f"10.1.{uuid.uuid4().int % 250}.2"
    now = datetime.now(UTC)
    settings = ConsoleSettings()
    for n in range(security.CLIENT_FREE_FAILURES + 1):
        await sign_in(
            engine, settings, email=f"guess{n}@x.example", password="x", client=client, now=now
        )
    _, email = await _person(engine)
    result = await sign_in(engine, settings, email=email, password=PASSWORD, client=client, now=now)
    assert result.throttled


def _api(engine) -> FastAPI:
    """A service's API as the runtime protects it: the service token or a personal token."""
    app = FastAPI()
    app.state.settings = ConsoleSettings(api_token=SecretStr(SERVICE_TOKEN))
    app.state.service = SimpleNamespace(runtime=SimpleNamespace(engine=engine))

    @app.get("/who")
    async def who(caller: CallerDep) -> dict:
        return {"actor": caller.actor, "role": caller.role}

    return app


async def test_personal_tokens_open_the_api_as_their_person_until_revoked_or_disabled(
    engine,
) -> None:
    user_id, email = await _person(engine, "manager")
    token = new_personal_token()
    async with raw_transaction(engine) as connection:
        token_id = await repository.add_token(
            conn=connection, user_id=user_id, name="t", token_hash=hash_token(token), prefix="kzp"
        )
    transport = httpx.ASGITransport(app=_api(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:

        async def who(bearer: str, **headers: str) -> httpx.Response:
            return await client.get(
                "/who", headers={"Authorization": f"Bearer {bearer}", **headers}
            )

        assert (await who(SERVICE_TOKEN)).json() == {"actor": "api", "role": None}
        assert (await who(token)).json() == {"actor": email, "role": "manager"}
        # The acting-user header counts only with the service token.
        _, rep = await _person(engine, "rep")
        acting = await who(SERVICE_TOKEN, **{ACTING_USER_HEADER: rep.upper()})
        assert acting.json() == {"actor": rep, "role": "rep"}
        assert (await who(token, **{ACTING_USER_HEADER: rep})).json()["actor"] == email
        unknown = await who(SERVICE_TOKEN, **{ACTING_USER_HEADER: "nobody@x.example"})
        assert unknown.status_code == 403
        for bad in ("kzp_not-a-token", "something-else", "kzp_" + "x" * 200):
            assert (await who(bad)).status_code == 401
        assert (await client.get("/who")).status_code == 401

        async with raw_transaction(engine) as connection:
            await repository.revoke_token(
                conn=connection, user_id=user_id, token_id=token_id, now=datetime.now(UTC)
            )
        assert (await who(token)).status_code == 401

        second = new_personal_token()
        async with raw_transaction(engine) as connection:
            await repository.add_token(
                conn=connection,
                user_id=user_id,
                name="u",
                token_hash=hash_token(second),
                prefix="k",
            )
        assert (await who(second)).status_code == 200
        async with raw_transaction(engine) as connection:
            assert await repository.disable_user(conn=connection, email=email)
        assert (await who(second)).status_code == 401
        acting = await who(SERVICE_TOKEN, **{ACTING_USER_HEADER: email})
        assert acting.status_code == 403


def _users(database_url: str | None, *args: str, stdin: str | None = None, tmp=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIZASHI_")}
    if database_url:
        env["KIZASHI_DATABASE_URL"] = database_url
    env["KIZASHI_DATA_DIR"] = str(tmp)
    return subprocess.run(
        [sys.executable, "-m", "kizashi.tools.cli", "users", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_the_users_command_and_its_errors(database_url, tmp_path) -> None:
    email = f"Cli-{uuid.uuid4().hex[:8]}@Reps.Example"

    def run(*args: str, stdin: str | None = None, url: str | None = database_url):
        return _users(url, *args, stdin=stdin, tmp=tmp_path)

    added = await asyncio.to_thread(run, "add", email, "--role", "rep", "--slack", "@cli")
    assert added.returncode == 0, added.stderr
    generated = added.stdout.split("password (shown once): ")[1].strip()
    assert len(generated) >= security.MIN_PASSWORD_LENGTH
    listed = await asyncio.to_thread(run, "list")
    assert email.lower() in listed.stdout and generated not in listed.stdout

    again = await asyncio.to_thread(run, "add", email.lower(), "--role", "rep")
    assert again.returncode == 1 and "already exists" in again.stderr
    bad_role = await asyncio.to_thread(run, "add", "x@y.example", "--role", "boss")
    assert bad_role.returncode == 2 and "rep, manager, admin" in bad_role.stderr
    short = await asyncio.to_thread(
        run, "add", "z@y.example", "--role", "rep", "--password-stdin", stdin="short\n"
    )
    assert short.returncode == 2 and "at least" in short.stderr
    unknown = await asyncio.to_thread(run, "disable", "nobody@nowhere.example")
    assert unknown.returncode == 1 and "no user" in unknown.stderr
    reset = await asyncio.to_thread(
        run, "reset-password", email, "--password-stdin", stdin="a brand new password\n"
    )
    assert reset.returncode == 0 and "a brand new password" not in reset.stdout
    disabled = await asyncio.to_thread(run, "disable", email)
    assert disabled.returncode == 0
    assert "disabled" in (await asyncio.to_thread(run, "list")).stdout
    nowhere = await asyncio.to_thread(run, "list", url=None)
    assert nowhere.returncode == 3 and "KIZASHI_DATABASE_URL" in nowhere.stderr
    for done in (again, bad_role, short, unknown, nowhere):
        assert "Traceback" not in done.stderr
