"""`kizashi up` on the embedded default, as a newcomer runs it: nothing configured, then
`kizashi demo` in another terminal. Also: the supervisor restarts a dead service, and Ctrl-C
leaves no process behind."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from kizashi.tools.bench.harness import PORT_SETTINGS
from kizashi.tools.embedded import free_port
from kizashi.tools.stack import read_env_file
from tests.support.stack import read_jsonl

pytestmark = pytest.mark.e2e


def _newcomer_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIZASHI_")}
    env["KIZASHI_DATA_DIR"] = str(data_dir)
    env.update({f"KIZASHI_{name}": str(free_port()) for name in PORT_SETTINGS})
    env["KIZASHI_PUBLIC_URL"] = f"http://127.0.0.1:{env['KIZASHI_TRIGGERS_PORT']}"
    return env


def _wait_ready(env: dict[str, str], up: subprocess.Popen, log: Path, within: float = 90) -> None:
    deadline = time.monotonic() + within
    urls = [
        f"http://127.0.0.1:{env[f'KIZASHI_{s}_PORT']}/readyz"
        for s in ("INGEST", "SCORING", "TRIGGERS", "NOTIFIER", "CONSOLE")
    ]
    while time.monotonic() < deadline:
        assert up.poll() is None, log.read_text()
        try:
            if all(httpx.get(url, timeout=1).status_code == 200 for url in urls):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"stack not ready:\n{log.read_text()[-5000:]}")


def _sign_in_as_the_first_admin(env: dict[str, str], data_dir: Path, log: Path) -> None:
    """`kizashi up` made admin@localhost, kept its password in credentials.env (0600) and said
    where, never printing the password itself."""
    creds = data_dir / "credentials.env"
    assert creds.stat().st_mode & 0o777 == 0o600
    values = read_env_file(creds)
    password = values["CONSOLE_ADMIN_PASSWORD"]
    console = f"http://127.0.0.1:{env['KIZASHI_CONSOLE_PORT']}"
    text = log.read_text()
    assert f"sign in at {console} as admin@localhost" in text
    assert "CONSOLE_ADMIN_PASSWORD" in text and password not in text
    with httpx.Client(base_url=console, timeout=15) as browser:
        form = browser.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]
        signed_in = browser.post(
            "/signin", data={"email": "admin@localhost", "password": password, "csrf": csrf}
        )
        assert signed_in.status_code == 303, signed_in.text
        assert "Hello, Admin" in browser.get("/").text
    # `kizashi users` finds the embedded database with no settings beyond the data folder.
    users = [sys.executable, "-m", "kizashi.tools.cli", "users"]
    added = subprocess.run(
        [*users, "add", "rita@reps.example", "--role", "rep"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    listed = subprocess.run(
        [*users, "list"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "admin@localhost" in listed.stdout and "rita@reps.example" in listed.stdout


def test_up_then_demo_shows_alerts_and_stops_cleanly(tmp_path: Path):
    data_dir = tmp_path / "data"
    env = _newcomer_env(data_dir)
    log = tmp_path / "up.log"
    up = subprocess.Popen(
        [sys.executable, "-m", "kizashi.tools.cli", "up"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(env, up, log)
        demo = subprocess.run(
            [sys.executable, "-m", "kizashi.tools.cli", "demo", "--wait", "90"],
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr + log.read_text()[-3000:]
        assert "[opportunity] acme" in demo.stdout, demo.stdout
        assert "[churn_risk] globex" in demo.stdout, demo.stdout
        assert "detractor" in demo.stdout and "upsell_intent" in demo.stdout, demo.stdout
        # Bob's observation: Globex's decision maker left (not held by the daily cap).
        assert "key_person_left" in demo.stdout, demo.stdout
        # The demo tells the truth: acme's early CS on thin evidence is no high point to fall
        # from (issue #19): no health_drop.
        assert "health_drop" not in demo.stdout, demo.stdout
        # Nor does its four weeks of history, read oldest first, make it look silent or fallen
        # midway (docs/signals.md#history-arriving): the busy, happy account has no churn risk.
        assert "[churn_risk] acme" not in demo.stdout, demo.stdout

        # The alerts really arrived at the stand-in Slack and mail server, and were printed.
        inbox = data_dir / "inbox"
        slack = read_jsonl(inbox / "slack.jsonl")
        emails = read_jsonl(inbox / "email.jsonl")
        assert any("Acme Corp" in m["payload"]["text"] for m in slack), slack
        assert any("Globex" in m["payload"]["text"] for m in slack), slack
        assert any(e["to"] == ["bob@acme-rep.example"] for e in emails), emails
        assert "[slack] " in log.read_text()

        _sign_in_as_the_first_admin(env, data_dir, log)

        # A service that dies is started again by the supervisor.
        state = (data_dir / "stack.json").read_text()
        scoring_pid = psutil.Process(up.pid).children()
        victim = next(p for p in scoring_pid if "serve" in p.cmdline() and "scoring" in p.cmdline())
        victim.kill()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = (data_dir / "stack.json").read_text()
            if '"restarts": 1' in state:
                break
            time.sleep(0.5)
        assert '"restarts": 1' in state, state
        _wait_ready(env, up, log)

        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 7  # five services, PostgreSQL, the broker
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
    assert code == 0, log.read_text()[-3000:]
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert not (data_dir / "stack.json").exists()
