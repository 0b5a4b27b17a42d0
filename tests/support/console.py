"""The console's test helpers: Debian's Chromium driven by Playwright (never a downloaded
browser), people added with the real `kizashi users` command, and signals made by sending a
real event through the whole stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"  # noqa: S105 - the tests' own people


def chromium_path() -> str:
    """Fails (never skips) when Chromium is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is not installed: run deploy/install-test-tools.sh", pytrace=False
        )
    return str(CHROMIUM)


def users_cli(stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`kizashi users …` as a person would run it next to the running stack (same data
    folder, same database settings)."""
    env = {
        **os.environ,
        "KIZASHI_DATA_DIR": str(stack.data_dir),
        "KIZASHI_DATABASE_URL": stack.database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "kizashi.tools.cli", "users", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def add_person(stack, role: str, *, name: str | None = None) -> str:
    email = f"{role}-{uuid.uuid4().hex[:8]}@reps.example"
    extra = ["--name", name] if name else []
    done = await asyncio.to_thread(
        users_cli, stack, "add", email, "--role", role, *extra, "--password-stdin", stdin=PASSWORD
    )
    assert done.returncode == 0, done.stderr
    return email


async def signal_for(
    stack, owner: str, *, name: str | None = None, contact_name: str | None = None
) -> dict:
    """A real detractor signal on a new account that `owner` owns (with a customer contact
    of that name when one is given)."""
    account = f"con-{uuid.uuid4().hex[:8]}"
    contact = (
        {"contact_name": contact_name, "contact_email": f"contact@{account}.example"}
        if contact_name
        else {}
    )
    await stack.post_events(
        [
            {
                "type": "account_update",
                "account_id": account,
                "event_id": uuid.uuid4().hex,
                "name": name or f"Console {account}",
                "arr": 40000,
                "owner_email": owner,
                **contact,
            },
            {
                "type": "survey_response",
                "account_id": account,
                "event_id": uuid.uuid4().hex,
                "survey_id": "pulse",
                "nps": 2,
            },
        ]
    )

    async def probe():
        response = await stack.get("triggers", "/v1/signals", account_id=account)
        assert response.status_code == 200, response.text
        return response.json()[0] if response.json() else None

    return await stack.wait_for(probe, within=60)


async def sign_in(page, stack, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{stack.urls['console']}/signin")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


@contextlib.asynccontextmanager
async def served_console(env: dict[str, str], log_path: Path) -> AsyncIterator[str]:
    """The console as deployed (`kizashi serve console`) with `env` laid over this process's
    (the database URL, the API token, ...), on a free port; its base URL once ready."""
    from kizashi.tools.embedded import free_port

    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "kizashi.tools.cli", "serve", "console"),
        env={
            **os.environ,
            "KIZASHI_HOST": "127.0.0.1",
            "KIZASHI_CONSOLE_PORT": str(port),
            "KIZASHI_LOG_LEVEL": "WARNING",
            **env,
        },
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as probe:
            while True:
                try:
                    if (await probe.get(f"{base}/readyz", timeout=1)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.returncode is None, f"the console exited: see {log_path}"
                assert time.monotonic() < deadline, "the console never got ready"
                await asyncio.sleep(0.2)
        yield base
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
