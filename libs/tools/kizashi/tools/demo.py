"""`kizashi demo`: a few accounts with distinct stories, sent to a running stack, and the
alerts they produce. The accounts' reps are made console users (when the demo can reach the
stack's database), and log what they heard: Bob that Globex's decision maker left, Alice the
phase evidence that puts Acme in phase 2 ("Trust built")."""

import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx

from kizashi.tools.settings import ToolSettings
from kizashi.tools.stack import client_credentials, read_stack
from kizashi.tools.users import database_url, ensure_people

STORIES = {
    "acme": "Acme Corp: busy and happy, buying more each year at its fiscal year end; today it "
    "says it wants more and reads the pricing page",
    "globex": "Globex: a support-ticket surge with slow answers, then quiet for three weeks; "
    "today it answered NPS 2",
    "initech": "Initech: a steady team using 48 of its 50 seats",
}


# The reps who own the demo's accounts, made console users so they may author observations.
REPS = {
    "alice@acme-rep.example": ("Alice", "rep"),
    "bob@acme-rep.example": ("Bob", "rep"),
    "carol@acme-rep.example": ("Carol", "rep"),
}
# Alice's facts about Acme, with how many days ago each happened: phases 1 and 2 of the
# default ladder (phases.yaml), so Acme stands at 2 and the panel lists phase 3's criteria.
ACME_EVIDENCE = {
    "contact_replied": 50,
    "meeting_agreed": 45,
    "met_in_person": 30,
    "customer_shared_plans": 12,
    "customer_introduced_colleague": 4,
}


def _event(event_type: str, account: str, at: datetime, **fields) -> dict:
    return {
        "type": event_type,
        "account_id": account,
        "event_id": uuid.uuid4().hex,
        "occurred_at": at.isoformat(),
        **fields,
    }


def story_events(now: datetime) -> tuple[list[dict], list[dict]]:
    """(the accounts' history, then today's news). The history (CRM facts and four weeks of
    usage) is what a team would backfill; the news is what should reach a rep today."""
    history = [
        _event(
            "account_update",
            "acme",
            now - timedelta(days=60),
            name="Acme Corp",
            plan="Growth",
            arr=48_000,
            seats=60,
            owner_email="alice@acme-rep.example",
            owner_slack="@alice",
            industry="Manufacturing",
            employees=800,
            decision_makers=["acme-cfo"],
        ),
        _event(
            "account_update",
            "globex",
            now - timedelta(days=60),
            name="Globex",
            plan="Starter",
            arr=12_000,
            seats=20,
            owner_email="bob@acme-rep.example",
            owner_slack="@bob",
        ),
        _event(
            "account_update",
            "initech",
            now - timedelta(days=60),
            name="Initech",
            plan="Team",
            arr=30_000,
            seats=50,
            renewal_date=date(now.year + 1, 6, 30).isoformat(),
            owner_email="carol@acme-rep.example",
        ),
    ]
    features = ["reports", "dashboards", "alerts", "exports", "api", "sso"]
    for day in range(1, 29):
        at = now - timedelta(days=day, hours=2)
        for user in range(12 if day < 14 else 8):
            history.append(
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
                history.append(
                    _event("product_usage", "globex", at, user_id=f"globex-u{user}", action="login")
                )
        for user in range(48):
            if (day + user) % 2 == 0:
                history.append(
                    _event(
                        "product_usage",
                        "initech",
                        at,
                        user_id=f"initech-u{user}",
                        action="feature_used",
                        feature=features[user % 4],
                    )
                )
    history += support_and_purchases(now)
    # Oldest first, as a backfill should go: score history gets a point at the end of each
    # past day only while the account holds nothing newer (docs/scoring.md#score-history).
    history.sort(key=lambda event: event["occurred_at"])
    news = [
        _event(
            "web_visit",
            "acme",
            now - timedelta(hours=hours),
            url="https://kizashi.example/pricing",
            user_id="acme-cfo",  # a decision maker: OP's fit counts that
        )
        for hours in (30, 20, 6, 2)
    ]
    news.append(
        _event(
            "survey_response",
            "acme",
            now - timedelta(minutes=20),
            survey_id="q4-nps",
            nps=9,
            upsell_intent=9,
            comment="We need the analytics add-on.",
        )
    )
    news.append(
        _event(
            "survey_response",
            "globex",
            now - timedelta(minutes=10),
            survey_id="q4-nps",
            nps=2,
            comment="Nobody here uses it anymore.",
        )
    )
    return history, news


def support_and_purchases(now: datetime) -> list[dict]:
    """Globex's helpdesk: a ticket now and then, then a surge four weeks ago answered slowly
    (support load lowers its CS). Acme's shop: the same month two years running, more the
    second time, so its fiscal year end is inferred (about three months away) and it buys
    for high amounts and growing (priority high)."""
    events = []
    for i, days_ago in enumerate((80, 62, 45, 27.9, 27.5, 27, 26.5, 26, 25.5, 25, 24.5)):
        opened = now - timedelta(days=days_ago)
        ticket = {"ticket_id": f"GLX-{1000 + i}", "priority": "normal", "channel": "email"}
        events.append(_event("support_ticket", "globex", opened, status="opened", **ticket))
        events.append(
            _event(
                "support_ticket",
                "globex",
                opened + timedelta(hours=40),
                status="solved",
                first_response_s=30 * 3600.0,
                **ticket,
            )
        )
    year_end = (now + timedelta(days=100)).date()
    for years_ago, amount, product in ((2, 30_000.0, "platform"), (1, 45_000.0, "platform")):
        when = datetime(year_end.year - years_ago, year_end.month, 10, 15, tzinfo=UTC)
        events.append(
            _event(
                "purchase",
                "acme",
                when,
                order_id=f"ACME-{when:%Y%m}",
                amount=amount,
                currency="USD",
                product=product,
                kind="renewal" if years_ago == 1 else "new",
            )
        )
    add_on = now - timedelta(days=70)
    events.append(
        _event(
            "purchase",
            "acme",
            add_on,
            order_id=f"ACME-{add_on:%Y%m%d}",
            amount=9_000.0,
            currency="USD",
            product="analytics",
            kind="cross_sell",
        )
    )
    return events


def observations(now: datetime) -> list[dict]:
    """What the reps log: Bob hears that Globex's head of IT, a decision maker, has left;
    Alice enters the facts that put Acme in phase 2."""
    logged = [
        _event(
            "rep_observation",
            "globex",
            now - timedelta(hours=3),
            kind="key_person_change",
            author="bob@acme-rep.example",
            person="Greta Globex",
            role="Head of IT",
            change="left",
            is_decision_maker=True,
            note="Told at the quarterly call: Greta moves to a competitor at month end.",
        )
    ]
    logged += [
        _event(
            "rep_observation",
            "acme",
            now - timedelta(days=days),
            kind="phase_evidence",
            author="alice@acme-rep.example",
            criterion=criterion,
        )
        for criterion, days in ACME_EVIDENCE.items()
    ]
    return logged


def _reps_as_users(settings: ToolSettings) -> bool:
    """Whether the reps are console users now (an observation's author must be one)."""
    try:
        added = asyncio.run(ensure_people(database_url(settings), REPS))
    except Exception as error:  # noqa: BLE001 - whatever the reason: say so, and go on
        print(f"  (the reps' observations are left out: no database to add them to: {error})")
        return False
    if added:
        print(f"  made console users of the reps: {', '.join(added)}")
    return True


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


def run_demo(settings: ToolSettings, *, wait_s: float = 60) -> int:
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
    history, news = story_events(started)
    print("Sending three account stories to", urls["ingest"])
    for account, story in STORIES.items():
        print(f"  - {account}: {story}")
    with httpx.Client(timeout=30) as client:
        try:
            accepted = _post(client, urls["ingest"], key, history)
        except httpx.ConnectError:
            raise SystemExit(
                f"nothing answers at {urls['ingest']}: is `kizashi up` running?"
            ) from None
        print(f"  {accepted} events of history accepted (four weeks of usage, CRM facts)")
        _wait_for_history(client, urls["scoring"], token, len(history), wait_s)
        accepted = _post(client, urls["ingest"], key, news)
        print(f"  {accepted} events of today's news accepted (a survey, pricing visits)")
        observed = _reps_as_users(settings)
        if observed:
            logged = _post(client, urls["ingest"], key, observations(started))
            print(
                f"  {logged} observations logged: Bob, a key-person change at globex; Alice, "
                "phase evidence at acme"
            )
        print()
        print(f"Waiting up to {wait_s:.0f} s for signals and their deliveries …")
        deadline = time.monotonic() + wait_s
        expected = frozenset({"key_person_left"} if observed else ())
        signals = _wait_for_signals(client, urls["triggers"], token, started, wait_s, expected)
        deliveries = _wait_for_deliveries(client, urls["notifier"], token, signals, deadline)
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
                for line in _input_lines(body):
                    print(f"           {line}")
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
    console = stack.get("services", {}).get("console", {}).get("url")
    if console:
        print(f"  - acme's phase and what the reps logged: {console}/accounts/acme")
    return 0 if {"opportunity", "churn_risk"} <= kinds else 1


def _input_lines(account: dict) -> list[str]:
    """What the support tickets and purchases say about an account, in the breakdown's words,
    and its fiscal year end."""
    lines = [
        line["explanation"]
        for line in account.get("breakdown", [])
        if line["component"] in ("support_load", "purchase_growth")
    ]
    features = account.get("features", {})
    month, days = features.get("fiscal_year_end_month"), features.get("days_to_fiscal_year_end")
    if month is not None and days is not None:
        how = "inferred from its purchases" if features.get("fiscal_year_end_inferred") else "CRM"
        lines.append(f"Fiscal year ends in month {month:.0f}, in {days:.0f} days ({how})")
    return lines


def _wait_for_history(
    client: httpx.Client, url: str, token: str, expected: int, wait_s: float
) -> None:
    """The news should land on scored accounts, as it would on a live system."""
    deadline = time.monotonic() + wait_s
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < deadline:
        applied = 0
        for account in STORIES:
            response = client.get(f"{url}/v1/accounts/{account}", headers=headers)
            if response.status_code == 200:
                applied += sum(response.json()["event_counts"].values())
        if applied >= expected:
            return
        time.sleep(0.5)


def _wait_for_signals(
    client: httpx.Client,
    url: str,
    token: str,
    since: datetime,
    wait_s: float,
    rules: frozenset[str] = frozenset(),
) -> list[dict]:
    """Until both kinds of signal and the given rules' have fired, and nothing new for a
    moment."""
    deadline = time.monotonic() + wait_s
    headers = {"Authorization": f"Bearer {token}"}
    signals: list[dict] = []
    settled = -1
    while time.monotonic() < deadline:
        signals = [
            s
            for account in STORIES
            for s in client.get(
                f"{url}/v1/signals", params={"account_id": account}, headers=headers
            ).json()
        ]
        fresh = [s for s in signals if datetime.fromisoformat(s["fired_at"]) >= since]
        if {"opportunity", "churn_risk"} <= {s["kind"] for s in fresh} and rules <= {
            s["rule"] for s in fresh
        }:
            if len(fresh) == settled:  # nothing new for a moment: the story has played out
                return fresh
            settled = len(fresh)
        time.sleep(1.5)
    return signals


def _wait_for_deliveries(
    client: httpx.Client, url: str, token: str, signals: list[dict], deadline: float
) -> list[dict]:
    """Until every signal's deliveries are done (sent or failed), so that the output shows
    where each alert went. The notifier paces each Slack webhook to about a message a second,
    so the last of a burst of alerts can take several seconds."""
    while True:
        deliveries = _deliveries(client, url, token, signals)
        delivered = {d["signal_id"] for d in deliveries}
        done = all(s["signal_id"] in delivered for s in signals) and all(
            d["status"] in ("sent", "failed") for d in deliveries
        )
        if done or time.monotonic() >= deadline:
            return deliveries
        time.sleep(0.5)


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
