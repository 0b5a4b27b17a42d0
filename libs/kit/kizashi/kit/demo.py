"""`kizashi demo`: a few accounts with distinct stories, sent to a running stack, and the
alerts they produce."""

import time
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx

from kizashi.kit.settings import Settings
from kizashi.kit.stack import client_credentials, read_stack

STORIES = {
    "acme": "Acme Corp: busy, happy, says it wants more, and keeps reading the pricing page",
    "globex": "Globex: went quiet three weeks ago and just answered NPS 2",
    "initech": "Initech: a steady team using 48 of its 50 seats",
}


def _event(kind: str, account: str, at: datetime, **fields) -> dict:
    return {
        "type": kind,
        "account_id": account,
        "event_id": uuid.uuid4().hex,
        "occurred_at": at.isoformat(),
        **fields,
    }


def story_events(now: datetime) -> tuple[list[dict], list[dict]]:
    """(account facts, then everything else): facts go first so alerts can name the owner."""
    renewal = (now + timedelta(days=100)).date()
    facts = [
        _event(
            "account_update",
            "acme",
            now,
            name="Acme Corp",
            plan="Growth",
            arr=48_000,
            seats=60,
            renewal_date=renewal.isoformat(),
            owner_email="alice@acme-rep.example",
            owner_slack="@alice",
            industry="Manufacturing",
            employees=800,
        ),
        _event(
            "account_update",
            "globex",
            now,
            name="Globex",
            plan="Starter",
            arr=12_000,
            seats=20,
            renewal_date=(now + timedelta(days=45)).date().isoformat(),
            owner_email="bob@acme-rep.example",
            owner_slack="@bob",
        ),
        _event(
            "account_update",
            "initech",
            now,
            name="Initech",
            plan="Team",
            arr=30_000,
            seats=50,
            renewal_date=date(now.year + 1, 1, 15).isoformat(),
            owner_email="carol@acme-rep.example",
        ),
    ]
    events: list[dict] = []
    features = ["reports", "dashboards", "alerts", "exports", "api", "sso"]
    for day in range(28):
        at = now - timedelta(days=day, hours=2)
        for user in range(12 if day < 14 else 8):
            events.append(
                _event(
                    "product_usage",
                    "acme",
                    at,
                    user_id=f"acme-u{user}",
                    action="feature_used",
                    feature=features[(day + user) % 6],
                )
            )
        if day >= 21:  # Globex was active a month ago, then stopped.
            for user in range(6):
                events.append(
                    _event("product_usage", "globex", at, user_id=f"globex-u{user}", action="login")
                )
        for user in range(48):
            if (day + user) % 2 == 0:
                events.append(
                    _event(
                        "product_usage",
                        "initech",
                        at,
                        user_id=f"initech-u{user}",
                        action="feature_used",
                        feature=features[user % 4],
                    )
                )
    for hours in (30, 20, 6, 2):
        events.append(
            _event(
                "web_visit",
                "acme",
                now - timedelta(hours=hours),
                url="https://kizashi.example/pricing",
                user_id="acme-u1",
            )
        )
    for hours in (50, 3):
        events.append(
            _event(
                "email_engagement",
                "acme",
                now - timedelta(hours=hours),
                action="click",
                campaign_id="analytics-addon",
                tags=["cross_sell"],
                link_url="https://kizashi.example/addons",
            )
        )
    events.append(
        _event(
            "survey_response",
            "acme",
            now - timedelta(hours=1),
            survey_id="q4-nps",
            nps=9,
            upsell_intent=9,
            comment="We need the analytics add-on.",
        )
    )
    events.append(
        _event(
            "survey_response",
            "globex",
            now - timedelta(minutes=30),
            survey_id="q4-nps",
            nps=2,
            comment="Nobody here uses it anymore.",
        )
    )
    return facts, events


def _post(client: httpx.Client, url: str, key: str, events: list[dict]) -> int:
    accepted = 0
    for start in range(0, len(events), 500):
        response = client.post(
            f"{url}/v1/events",
            json={"events": events[start : start + 500]},
            headers={"Authorization": f"Bearer {key}"},
        )
        if response.status_code != 202:
            raise SystemExit(f"ingest answered {response.status_code}: {response.text}")
        accepted += response.json()["accepted"]
    return accepted


def run_demo(settings: Settings, *, wait_s: float = 60) -> int:
    stack = read_stack(settings.data_dir) or {}
    urls = {
        name: stack.get("services", {}).get(name, {}).get("url")
        or f"http://{settings.host}:{settings.port_of(name)}"
        for name in ("ingest", "scoring", "triggers", "notifier")
    }
    key, token = client_credentials(settings)
    if not key or not token:
        raise SystemExit(
            "no ingest key or API token: set KIZASHI_INGEST_KEYS and KIZASHI_API_TOKEN"
        )
    started = datetime.now(UTC)
    facts, events = story_events(started)
    print("Sending three account stories to", urls["ingest"])
    for account, story in STORIES.items():
        print(f"  - {account}: {story}")
    with httpx.Client(timeout=30) as client:
        try:
            _post(client, urls["ingest"], key, facts)
        except httpx.ConnectError:
            raise SystemExit(
                f"nothing answers at {urls['ingest']}: is `kizashi up` running?"
            ) from None
        time.sleep(1.0)  # let the account facts land before the events that trigger alerts
        accepted = _post(client, urls["ingest"], key, events)
        print(f"  {len(facts) + accepted} events accepted (usage backdated over 28 days)\n")
        print(f"Waiting up to {wait_s:.0f} s for signals …")
        signals = _wait_for_signals(client, urls["triggers"], token, started, wait_s)
        deliveries = _deliveries(client, urls["notifier"], token, signals)
        for account in STORIES:
            score = client.get(
                f"{urls['scoring']}/v1/accounts/{account}",
                headers={"Authorization": f"Bearer {token}"},
            )
            if score.status_code == 200:
                body = score.json()
                print(
                    f"  {account:<8} CS {body['cs']:5.1f}  OP {body['op']:5.1f}  "
                    f"segment {body['segment']:<8} priority {body['priority']}"
                )
    print()
    for signal in signals:
        sent = [d for d in deliveries if d["signal_id"] == signal["signal_id"]]
        channels = ", ".join(f"{d['channel']} {d['status']}" for d in sent) or "delivering…"
        print(f"  [{signal['kind']}] {signal['account_id']} · {signal['rule']} ({channels})")
        for reason in signal["reasons"]:
            print(f"      - {reason}")
    kinds = {s["kind"] for s in signals}
    print()
    if {"opportunity", "churn_risk"} <= kinds:
        print("Both kinds of alert arrived. Look at:")
    else:
        print("Not every alert has arrived yet (re-running within a rule's cooldown adds none).")
    inbox = stack.get("inbox")
    if inbox:
        print(f"  - the Slack messages: {inbox['slack']}\n  - the emails: {inbox['email']}")
    print(f"  - signals: GET {urls['triggers']}/v1/signals  (Authorization: Bearer <API token>)")
    print(f"  - an account: GET {urls['scoring']}/v1/accounts/acme")
    return 0 if {"opportunity", "churn_risk"} <= kinds else 1


def _wait_for_signals(
    client: httpx.Client, url: str, token: str, since: datetime, wait_s: float
) -> list[dict]:
    deadline = time.monotonic() + wait_s
    headers = {"Authorization": f"Bearer {token}"}
    signals: list[dict] = []
    while time.monotonic() < deadline:
        signals = [
            s
            for account in STORIES
            for s in client.get(
                f"{url}/v1/signals", params={"account_id": account}, headers=headers
            ).json()
        ]
        fresh = [s for s in signals if datetime.fromisoformat(s["fired_at"]) >= since]
        if {"opportunity", "churn_risk"} <= {s["kind"] for s in fresh}:
            time.sleep(2)  # the other rules of the same batch land together
            return fresh
        time.sleep(1)
    return signals


def _deliveries(client: httpx.Client, url: str, token: str, signals: list[dict]) -> list[dict]:
    headers = {"Authorization": f"Bearer {token}"}
    found: list[dict] = []
    for signal in signals:
        response = client.get(
            f"{url}/v1/deliveries", params={"signal_id": signal["signal_id"]}, headers=headers
        )
        if response.status_code == 200:
            found.extend(response.json())
    return found
