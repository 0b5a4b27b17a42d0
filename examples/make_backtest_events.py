"""Write examples/backtest-events.jsonl: February and March 2026 for a dozen accounts, one
input event per line, as `POST /v1/events` takes them. Deterministic (seeded).

    python examples/make_backtest_events.py            # rewrites the file
    kizashi backtest --events examples/backtest-events.jsonl

February is the baseline; in March each account tells a story (see STORIES).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

START = datetime(2026, 2, 1, tzinfo=UTC)
MARCH = datetime(2026, 3, 1, tzinfo=UTC)
OUT = Path(__file__).with_name("backtest-events.jsonl")
FEATURES = ["reports", "dashboards", "alerts", "exports", "api", "sso", "workflows"]

STORIES = {
    "acme-corp": "heavy use; says 9/10 to the premium plan on 13 March, reads product pages",
    "globex": "uses the product until 10 March, then nothing",
    "initech": "pricing pages on 4-6 March, a quiet fortnight, pricing again on 24-25 March",
    "umbrella": "NPS 8 in February, NPS 2 on 10 March",
    "hooli": "little use of 50 seats, renewal on 5 June",
    "stark-industries": "15 of 20 seats in use, four more people from 16 March",
    "wayne-enterprises": "steady, healthy, nothing to say",
    "wonka": "healthy, renewal on 10 July",
    "cyberdyne": "clicks the add-on and new-product links in the March newsletter",
    "soylent": "silent since 18 February, back on 16 March",
    "tyrell": "a pricing page or two nearly every day",
    "oscorp": "imported on 6 March with its history; last used on 13 February",
}


class Writer:
    def __init__(self, seed: int = 7) -> None:
        self.random = random.Random(seed)
        self.lines: list[dict] = []
        self.count = 0

    def add(self, kind: str, account: str, at: datetime, **fields) -> dict:
        self.count += 1
        event = {
            "type": kind,
            "account_id": account,
            "event_id": f"{account[:4]}-{self.count:05d}",
            "occurred_at": at.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            **fields,
        }
        self.lines.append(event)
        return event

    def crm(self, account: str, *, seats: int, arr: float, plan: str, renewal: date) -> None:
        self.add(
            "account_update",
            account,
            START - timedelta(days=10),
            name=account.replace("-", " ").title(),
            plan=plan,
            arr=arr,
            seats=seats,
            renewal_date=renewal.isoformat(),
            owner_email=f"rep.{account}@vendor.example",
            employees=seats * 12,
        )

    def usage(
        self, account: str, first: int, last: int, *, users: int, per_day: int, every: int = 1
    ) -> None:
        """Usage on weekdays from day `first` to `last` (days from 1 February)."""
        for day in range(first, last + 1, every):
            moment = START + timedelta(days=day)
            if every == 1 and moment.weekday() >= 5:
                continue
            for _ in range(self.random.randint(per_day - 1, per_day + 1)):
                at = moment + timedelta(hours=self.random.uniform(8, 18))
                self.add(
                    "product_usage",
                    account,
                    at,
                    user_id=f"{account[:3]}-u{self.random.randrange(users)}",
                    action="feature_used",
                    feature=self.random.choice(FEATURES),
                )

    def visit(self, account: str, day: int, page: str, count: int = 1) -> None:
        category = {"pricing": "pricing", "product": "product"}.get(page, "docs")
        for _ in range(count):
            at = START + timedelta(days=day, hours=self.random.uniform(9, 17))
            self.add(
                "web_visit",
                account,
                at,
                url=f"https://vendor.example/{page}",
                page_category=category,
            )

    def click(self, account: str, day: int, tag: str) -> None:
        at = START + timedelta(days=day, hours=self.random.uniform(9, 12))
        self.add(
            "email_engagement",
            account,
            at,
            action="click",
            campaign_id="march-newsletter",
            link_url=f"https://vendor.example/{tag}",
            tags=[tag],
        )

    def survey(self, account: str, day: int, **answers) -> None:
        at = START + timedelta(days=day, hours=15)
        self.add("survey_response", account, at, survey_id="pulse", **answers)


def march(day: int) -> int:
    """A March day of the month as days from 1 February."""
    return (MARCH - START).days + day - 1


def build() -> list[dict]:
    w = Writer()
    end = march(31)
    renewal = date(2027, 1, 15)
    for account, seats, arr, plan in (
        ("acme-corp", 15, 120_000, "starter"),
        ("globex", 20, 40_000, "team"),
        ("initech", 20, 40_000, "team"),
        ("umbrella", 20, 40_000, "team"),
        ("stark-industries", 20, 60_000, "team"),
        ("wayne-enterprises", 20, 45_000, "pro"),
        ("cyberdyne", 20, 40_000, "team"),
        ("soylent", 20, 40_000, "team"),
        ("tyrell", 20, 40_000, "team"),
    ):
        w.crm(account, seats=seats, arr=arr, plan=plan, renewal=renewal)
    w.crm("hooli", seats=50, arr=30_000, plan="business", renewal=date(2026, 6, 5))
    w.crm("wonka", seats=20, arr=50_000, plan="pro", renewal=date(2026, 7, 10))

    w.usage("acme-corp", 0, end, users=11, per_day=8)
    w.survey("acme-corp", march(13), upsell_intent=9, nps=9)
    w.visit("acme-corp", march(14), "product", 2)
    w.usage("globex", 0, march(10), users=10, per_day=4)
    w.usage("initech", 0, end, users=10, per_day=4)
    w.visit("initech", march(4), "pricing")
    w.visit("initech", march(6), "pricing", 2)
    w.visit("initech", march(24), "pricing", 2)
    w.visit("initech", march(25), "pricing")
    w.usage("umbrella", 0, end, users=10, per_day=4)
    w.survey("umbrella", 10, nps=8)
    w.survey("umbrella", march(10), nps=2, comment="Exports keep timing out")
    w.usage("hooli", 0, end, users=4, per_day=1, every=4)
    w.survey("hooli", 12, csat=3)
    w.usage("stark-industries", 0, march(15), users=15, per_day=4)
    w.usage("stark-industries", march(16), end, users=19, per_day=4)
    w.usage("wayne-enterprises", 0, end, users=12, per_day=5)
    w.usage("wonka", 0, end, users=17, per_day=4)
    w.survey("wonka", 20, nps=9, csat=5)
    w.usage("cyberdyne", 0, end, users=10, per_day=4)
    w.click("cyberdyne", march(15), "cross_sell")
    w.click("cyberdyne", march(17), "new_product")
    w.usage("soylent", 0, 17, users=10, per_day=4)
    w.usage("soylent", march(16), end, users=10, per_day=4)
    w.usage("tyrell", 0, end, users=10, per_day=4)
    for day in range(march(3), march(28)):
        w.visit("tyrell", day, "pricing", (day * 7) % 3)
    # Docs and blog reading everywhere: noise no rule should react to.
    for account in STORIES:
        for day in range(0, end, 3):
            if w.random.random() < 0.4:
                w.visit(account, day, w.random.choice(["docs/getting-started", "blog/news"]))

    # oscorp: a CRM import and its usage history, all received on 6 March at noon.
    backfill_from = len(w.lines)
    w.crm("oscorp", seats=20, arr=40_000, plan="team", renewal=renewal)
    w.usage("oscorp", 0, 12, users=10, per_day=4)
    received = (START + timedelta(days=march(6), hours=12)).isoformat().replace("+00:00", "Z")
    for event in w.lines[backfill_from:]:
        event["received_at"] = received

    return sorted(w.lines, key=lambda e: e.get("received_at") or e["occurred_at"])


def main() -> None:
    lines = build()
    OUT.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in lines))
    print(f"wrote {len(lines)} events to {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
