"""`kizashi backtest-example --out DIR`: a synthetic history with a known truth, for
`kizashi backtest --outcomes` (issue #19, item 5). Writes DIR/planted-events.jsonl and
DIR/planted-outcomes.jsonl; the shipped examples/ copies are made with the defaults.

January to June 2026. Every account uses the product on every weekday (one event a day, so a
week is as busy as the month before it), reads the docs now and then, and has its renewal in
2027. From its story day (20 February to 10 March) each account of a group does what the group
says, and 45 to 85 days after that day the outcome planted for it happens:

- silent_churn: usage thins out over ten days, then stops; churns.
- detractor_churn: answers NPS 2 and goes on using the product; churns or contracts.
- detractor_renews: answers NPS 3, then renews (a detractor that was saved).
- silent_returns: three weeks of silence, then back as before; no outcome.
- seat_expand: from 6 to all 10 seats in use; expands.
- upsell_expand: says 9/10 to "would you consider the premium plan?"; expands.
- pricing_expand: four pricing-page visits in three days; expands.
- pricing_browses: the same visits; buys nothing.
- quiet_churn, quiet_expand: nothing to see in the events; churns, expands.
- steady: nothing happens; some renew.

So usage_drop and inactivity should catch the silent churners and be fooled by the returners,
detractor the detractors (the saved ones are its misses), seat_pressure, upsell_intent and
pricing_interest their groups (the browsers are pricing_interest's misses); the quiet ones
no rule can see. Rules on the scores fire where the scores take them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from kizashi.tools.settings import ToolSettings

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 6, 30, tzinfo=UTC)
STORY_FROM, STORY_DAYS = datetime(2026, 2, 20, tzinfo=UTC), 18
LEAD_DAYS = (45, 85)
RENEWAL = date(2027, 3, 31)
SEATS, USERS = 10, 6
FEATURES = ("reports", "dashboards", "alerts", "exports", "api", "workflows")
EVENTS_FILE, OUTCOMES_FILE = "planted-events.jsonl", "planted-outcomes.jsonl"

# How many accounts of each group the shipped example has.
GROUPS: dict[str, int] = {
    "silent_churn": 12,
    "detractor_churn": 10,
    "detractor_renews": 4,
    "silent_returns": 4,
    "seat_expand": 10,
    "upsell_expand": 8,
    "pricing_expand": 8,
    "pricing_browses": 5,
    "quiet_churn": 4,
    "quiet_expand": 4,
    "steady": 31,
}


@dataclass
class History:
    events: list[dict] = field(default_factory=list)
    outcomes: list[dict] = field(default_factory=list)
    # account id -> its group
    groups: dict[str, str] = field(default_factory=dict)


def build(groups: dict[str, int] | None = None, seed: int = 19) -> History:
    """The history, deterministic for a seed: events in time order, outcomes in time order."""
    rng = random.Random(seed)
    history = History()
    for group, count in (groups or GROUPS).items():
        for index in range(1, count + 1):
            account = f"{group.replace('_', '-')}-{index:02d}"
            history.groups[account] = group
            _account(history, rng, account, group)
    history.events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    history.outcomes.sort(key=lambda o: (o["occurred_at"], o["account_id"]))
    return history


def _stamp(at: datetime) -> str:
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _account(history: History, rng: random.Random, account: str, group: str) -> None:
    serial = 0

    def add(kind: str, at: datetime, **fields) -> None:
        nonlocal serial
        serial += 1
        history.events.append(
            {
                "type": kind,
                "account_id": account,
                "event_id": f"{account}-{serial:04d}",
                "occurred_at": _stamp(at),
                **fields,
            }
        )

    arr = float(rng.randrange(20, 120) * 1000)
    add(
        "account_update",
        START - timedelta(days=10),
        name=account.replace("-", " ").title(),
        plan="team",
        arr=arr,
        seats=SEATS,
        renewal_date=RENEWAL.isoformat(),
        owner_email=f"rep{rng.randrange(1, 6)}@vendor.example",
    )
    story = STORY_FROM + timedelta(days=rng.randrange(STORY_DAYS))
    outcome_at = story + timedelta(days=rng.randint(*LEAD_DAYS), hours=rng.randint(9, 17))
    kind = _planted(group, rng)
    gone = outcome_at if kind == "churn" else None  # a contracted account stays

    def used(day: datetime) -> bool:
        if day.weekday() >= 5 or (gone is not None and day >= gone):
            return False
        since = (day - story).days
        if group == "silent_churn" and since >= 0:
            return since < 10 and since % 2 == 0  # thins out, then nothing
        if group == "silent_returns" and 0 <= since < 21:
            return False
        return True

    day, used_days = START, 0
    while day <= END:
        if used(day):
            users = SEATS if group == "seat_expand" and day >= story else USERS
            add(
                "product_usage",
                day + timedelta(hours=rng.uniform(8, 18)),
                user_id=f"{account}-u{used_days % users}",
                action="feature_used",
                feature=rng.choice(FEATURES),
            )
            used_days += 1
        if rng.random() < 0.08 and (gone is None or day < gone):
            page = rng.choice(("docs/getting-started", "docs/api", "blog/news"))
            add(
                "web_visit",
                day + timedelta(hours=rng.uniform(9, 17)),
                url=f"https://vendor.example/{page}",
            )
        day += timedelta(days=1)

    at_story = story + timedelta(hours=14)
    if group in ("detractor_churn", "detractor_renews"):
        add(
            "survey_response",
            at_story,
            survey_id="pulse",
            nps=2 if group == "detractor_churn" else 3,
        )
    elif group == "upsell_expand":
        add("survey_response", at_story, survey_id="pulse", upsell_intent=9)
    elif group in ("pricing_expand", "pricing_browses"):
        for offset in (0, 0, 2, 2):
            add("web_visit", at_story + timedelta(days=offset, minutes=rng.randrange(120)),
                url="https://vendor.example/pricing")  # fmt: skip
    elif group == "steady" and rng.random() < 0.5:
        add("survey_response", START + timedelta(days=rng.randrange(20, 40)), survey_id="pulse",
            nps=rng.randint(8, 10))  # fmt: skip

    if kind is not None:
        amount = arr if kind in ("churn", "renewal") else round(arr * rng.uniform(0.2, 0.5), -2)
        if group == "steady":  # the renewals of quiet, happy accounts: any time in the spring
            outcome_at = START + timedelta(days=rng.randrange(60, 170), hours=10)
        history.outcomes.append(
            {
                "account_id": account,
                "kind": kind,
                "occurred_at": _stamp(outcome_at),
                "amount": amount,
            }
        )


def _planted(group: str, rng: random.Random) -> str | None:
    if group in ("silent_churn", "quiet_churn"):
        return "churn"
    if group == "detractor_churn":
        return "churn" if rng.random() < 0.6 else "contraction"
    if group == "detractor_renews":
        return "renewal"
    if group.endswith("_expand"):
        return "expansion"
    if group == "steady" and rng.random() < 0.3:
        return "renewal"
    return None


def write(history: History, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = out / EVENTS_FILE, out / OUTCOMES_FILE
    for path, rows in zip(paths, (history.events, history.outcomes), strict=True):
        path.write_text("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write")
    parser.add_argument("--seed", type=int, default=19, help="the random seed (default 19)")


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    history = build(seed=args.seed)
    for path, rows in zip(
        write(history, args.out), (history.events, history.outcomes), strict=True
    ):
        size = path.stat().st_size / 1024
        print(f"wrote {len(rows):,} lines to {path} ({size:,.0f} KiB)", file=sys.stderr)
    return 0
