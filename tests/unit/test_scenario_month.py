"""A synthetic month for a dozen account personas, replayed through the real scoring and rule
code (kizashi.tools.replay, as `kizashi backtest` does), with exactly the expected signals.

Each persona is a few weeks of history (from late January) and March 2026. Days below are
counted from 1 March (day 0); negative days are February. Usage is on weekdays, a few events
a day, from a pool of users and features.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta

import pytest

from kizashi.contracts.budget import DailyBudget, alert_rank, by_rank
from kizashi.contracts.events import EventEnvelope, input_event_adapter
from kizashi.scoring.config import load_scoring_config
from kizashi.tools.attention import simulate_budget
from kizashi.tools.replay import Replay, ReplayResult, processing_time
from kizashi.triggers.rules import load_rules_config

MONTH = datetime(2026, 3, 1, tzinfo=UTC)
END = MONTH + timedelta(days=31)
FEATURES = ("reports", "alerts", "exports", "api", "dashboards")
_ids = itertools.count()


def at(day: float, hour: float = 10.0) -> datetime:
    return MONTH + timedelta(days=day, hours=hour)


def day_of(moment: datetime) -> int:
    return (moment.date() - MONTH.date()).days


def event(kind: str, account: str, day: float, hour: float = 10.0, **fields) -> EventEnvelope:
    return input_event_adapter.validate_python(
        {
            "type": kind,
            "account_id": account,
            "event_id": f"{account}-{next(_ids)}",
            "occurred_at": at(day, hour),
            **fields,
        }
    )


# Three reps share the cast (issue #20, item 7): Ana has the churn-prone book, so her day 5
# (a backfill's two churn risks and a pricing signal) goes over the month's budget.
REPS = {
    "ana@reps.example": (
        "silent-churner",
        "pricing-shopper",
        "backfilled",
        "comeback",
        "noisy-browser",
    ),
    "ben@reps.example": ("happy-expander", "renewal-at-risk", "happy-renewal", "seat-constrained"),
    "cho@reps.example": (
        "quiet-healthy",
        "detractor",
        "add-on-clicker",
        "support-surge",
        "fiscal-buyer",
    ),
}
OWNER = {account: rep for rep, accounts in REPS.items() for account in accounts}


def crm(account: str, *, renewal_in: int = 300, seats: int = 20, **more) -> list[EventEnvelope]:
    owner = more.pop("owner_email", None) or OWNER[account]
    facts = {"plan": "team", "arr": 40000, **more}
    renewal = (MONTH.date() + timedelta(days=renewal_in)).isoformat()
    return [
        event(
            "account_update",
            account,
            -40,
            8,
            name=account.title(),
            seats=seats,
            renewal_date=renewal,
            owner_email=owner,
            **facts,
        )
    ]


def usage(
    account: str,
    days: range,
    *,
    users: int = 10,
    per_day: int = 4,
    features: tuple[str, ...] = FEATURES,
    weekdays_only: bool = True,
) -> list[EventEnvelope]:
    out = []
    for d in days:
        if weekdays_only and at(d).weekday() >= 5:
            continue
        for i in range(per_day):
            out.append(
                event(
                    "product_usage",
                    account,
                    d,
                    9 + i * 0.5,
                    user_id=f"u{(d * per_day + i) % users}",
                    action="feature_used",
                    feature=features[(d + i) % len(features)],
                )
            )
    return out


def visits(account: str, day: int, n: int, category: str = "pricing") -> list[EventEnvelope]:
    url = f"https://vendor.example/{category}"
    return [
        event("web_visit", account, day, 14 + i / 10, url=url, page_category=category)
        for i in range(n)
    ]


def clicks(account: str, day: int, n: int, tag: str = "cross_sell") -> list[EventEnvelope]:
    return [
        event(
            "email_engagement",
            account,
            day,
            11 + i / 10,
            action="click",
            campaign_id="addons",
            link_url="https://vendor.example/addons",
            tags=[tag],
        )
        for i in range(n)
    ]


def survey(account: str, day: int, **answers) -> list[EventEnvelope]:
    return [event("survey_response", account, day, 15, survey_id="pulse", **answers)]


def tickets(account: str, day: int, n: int, *, solved_after: int | None = None) -> list:
    """`n` tickets opened on `day`; each solved `solved_after` days later, in 2 hours."""
    out = []
    for i in range(n):
        ticket_id = f"{account}-t{day}-{i}"
        out.append(
            event("support_ticket", account, day, 9 + i, ticket_id=ticket_id, status="opened")
        )
        if solved_after is not None:
            out.append(
                event(
                    "support_ticket",
                    account,
                    day + solved_after,
                    9 + i,
                    ticket_id=ticket_id,
                    status="solved",
                    first_response_s=7200.0,
                )
            )
    return out


def purchase(account: str, when: datetime, amount: float, product: str = "core") -> EventEnvelope:
    return input_event_adapter.validate_python(
        {
            "type": "purchase",
            "account_id": account,
            "event_id": f"{account}-{next(_ids)}",
            "occurred_at": when,
            "order_id": f"{account}-{when:%Y%m%d}",
            "amount": amount,
            "currency": "USD",
            "product": product,
            "kind": "renewal",
        }
    )


def received(events: list[EventEnvelope], day: int) -> list[EventEnvelope]:
    """A backfill: old events that reach Kizashi on `day`."""
    return [e.model_copy(update={"received_at": at(day, 12)}) for e in events]


def personas() -> dict[str, list[EventEnvelope]]:
    always = range(-40, 31)
    p = {
        # Steady weekday use, nothing else: no signal at all.
        "quiet-healthy": [*crm("quiet-healthy"), *usage("quiet-healthy", always)],
        # Uses the product until 10 March, then nothing: health, usage and silence, in turn.
        "silent-churner": [*crm("silent-churner"), *usage("silent-churner", range(-40, 10))],
        # Looks at pricing twice, a week apart from a quiet week in between.
        "pricing-shopper": [
            *crm("pricing-shopper"),
            *usage("pricing-shopper", always),
            *visits("pricing-shopper", 4, 1),
            *visits("pricing-shopper", 5, 2),
            *visits("pricing-shopper", 8, 2),  # the same episode: no second signal
            *visits("pricing-shopper", 24, 3),  # re-armed by the quiet week, cooldown over
        ],
        # Heavy use, then says yes to the premium plan and reads product pages, day after
        # day: OP holds past its cut-off's enter_margin for segments.min_dwell (one day of
        # reading would be a blip the segment does not follow).
        "happy-expander": [
            *crm("happy-expander", seats=15, arr=120000, plan="starter", employees=400),
            *usage("happy-expander", always, users=11, per_day=8),
            *survey("happy-expander", 12, upsell_intent=9, nps=9),
            *(e for day in range(13, 18) for e in visits("happy-expander", day, 2, "product")),
        ],
        # NPS 8 in February, 2 on 10 March, 9 on 21 March (clears; resolves after 14 days).
        "detractor": [
            *crm("detractor"),
            *usage("detractor", always),
            *survey("detractor", -20, nps=8),
            *survey("detractor", 9, nps=2),
            *survey("detractor", 20, nps=9),
        ],
        # Little use of 50 seats, renewal on 9 June: the 90-day window opens on 11 March.
        "renewal-at-risk": [
            *crm("renewal-at-risk", renewal_in=100, seats=50),
            *usage(
                "renewal-at-risk",
                range(-40, 31, 4),
                users=4,
                per_day=1,
                features=("reports",),
                weekdays_only=False,
            ),
            *survey("renewal-at-risk", -15, csat=3),
        ],
        # 15 of 20 seats active, then four more people join from 16 March.
        "seat-constrained": [
            *crm("seat-constrained", seats=20),
            *usage("seat-constrained", range(-40, 15), users=15),
            *usage("seat-constrained", range(15, 31), users=19),
        ],
        # Healthy, renewal on 9 July: the 120-day window opens on 11 March.
        "happy-renewal": [
            *crm("happy-renewal", renewal_in=130),
            *usage("happy-renewal", always, users=17),
            *survey("happy-renewal", -10, nps=9, csat=5),
        ],
        # Clicks an add-on link, then a new-product link two days later.
        "add-on-clicker": [
            *crm("add-on-clicker"),
            *usage("add-on-clicker", always),
            *clicks("add-on-clicker", 14, 1),
            *clicks("add-on-clicker", 16, 1, "new_product"),
        ],
        # Silent since 18 February, back on 16 March: its churn-risk signals resolve.
        "comeback": [
            *crm("comeback"),
            *usage("comeback", range(-40, -10)),
            *usage("comeback", range(15, 31)),
        ],
        # Pricing visits nearly every day, 0 to 2 at a time: noise around the threshold.
        "noisy-browser": [
            *crm("noisy-browser"),
            *usage("noisy-browser", always),
            *[v for d in range(2, 28) for v in visits("noisy-browser", d, (d * 7) % 3)],
        ],
        # A ticket every week or so, then seven in three days from 12 March (issue #21).
        "support-surge": [
            *crm("support-surge"),
            *usage("support-surge", always),
            *[t for d in range(-40, 10, 8) for t in tickets("support-surge", d, 1, solved_after=1)],
            *tickets("support-surge", 12, 2),
            *tickets("support-surge", 13, 2),
            *tickets("support-surge", 14, 3),
        ],
        # Buys at the end of March two years running (its shop's orders arrive in a backfill
        # on 20 January): its fiscal year is inferred to end on 31 March, and the rule fires
        # 8 weeks before, on 3 February, from the sweep (issue #21).
        "fiscal-buyer": [
            *crm("fiscal-buyer"),
            *usage("fiscal-buyer", always),
            *received(
                [
                    purchase("fiscal-buyer", datetime(2024, 3, 20, tzinfo=UTC), 30000.0),
                    purchase("fiscal-buyer", datetime(2025, 3, 25, tzinfo=UTC), 36000.0),
                    purchase("fiscal-buyer", datetime(2025, 9, 2, tzinfo=UTC), 2000.0, "api"),
                ],
                -40,
            ),
        ],
        # Its history arrives in one backfill on 6 March; its last use was 13 February.
        "backfilled": received([*crm("backfilled"), *usage("backfilled", range(-40, -15))], 5),
    }
    return p


# (rule, day) per persona, over the whole replay (warm-up included).
EXPECTED: dict[str, list[tuple[str, int]]] = {
    "quiet-healthy": [],
    "silent-churner": [("health_drop", 14), ("usage_drop", 17), ("inactivity", 23)],
    "pricing-shopper": [("pricing_interest", 5), ("pricing_interest", 24)],
    # Three product-page visits in 7 days by day 14; expand held from day 16 (OP past
    # 50 + enter_margin since day 14, for min_dwell). Ben resolves the upsell intent "no need"
    # at OP 41 that evening; the next day's reading takes OP past 41 + op_rise: it is back.
    "happy-expander": [
        ("upsell_intent", 12),
        ("recycled", 13),
        ("pricing_interest", 14),
        ("expansion_ready", 16),
    ],
    "detractor": [("detractor", 9)],
    "renewal-at-risk": [("renewal_at_risk", 10)],
    "seat-constrained": [("seat_pressure", 18)],
    "happy-renewal": [("renewal_window", 10)],
    "add-on-clicker": [("cross_sell_click", 16)],
    "comeback": [("health_drop", -5), ("usage_drop", 0), ("inactivity", 3)],
    "noisy-browser": [("pricing_interest", 4)],
    "backfilled": [("inactivity", 5), ("usage_drop", 5), ("health_drop", 12)],
    "support-surge": [("support_surge", 13)],  # 5 in 7 days with day 8's ticket
    # Cho parks it on 9 February, "timing, 1 month": it comes back on 9 March (issue #21).
    "fiscal-buyer": [("fiscal_year_end", -26), ("recycled", 8)],
}

# What the reps do (kizashi.tools.replay's `resolve`): (account, rule, day, hour, reason,
# months), resolved by the account's owner.
REP_RESOLUTIONS: list[tuple[str, str, int, float, str, int | None]] = [
    ("fiscal-buyer", "fiscal_year_end", -20, 16.0, "timing", 1),
    ("happy-expander", "upsell_intent", 12, 17.0, "no_need", None),
]


def replay(events: list[EventEnvelope], **options) -> ReplayResult:
    engine = Replay(scoring=load_scoring_config(None), rules=load_rules_config(None), **options)
    for account, rule, day, hour, reason, months in REP_RESOLUTIONS:
        engine.resolve(
            account, rule, at=at(day, hour), reason=reason, months=months, by=OWNER[account]
        )
    return engine.run(sorted(events, key=processing_time), until=END)


def by_persona(result: ReplayResult) -> dict[str, list[tuple[str, int]]]:
    fired: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for signal in result.signals:
        fired[signal.account_id].append((signal.rule, day_of(signal.fired_at)))
    return {
        name: sorted(rules, key=lambda item: (item[1], item[0])) for name, rules in fired.items()
    }


@pytest.fixture(scope="module")
def month() -> ReplayResult:
    return replay([e for events in personas().values() for e in events])


@pytest.mark.parametrize("persona", sorted(EXPECTED))
def test_each_persona_gets_exactly_its_signals(month: ReplayResult, persona: str) -> None:
    assert by_persona(month).get(persona, []) == sorted(
        EXPECTED[persona], key=lambda item: (item[1], item[0])
    )


def test_no_signal_for_an_account_outside_the_cast(month: ReplayResult) -> None:
    assert set(by_persona(month)) <= set(EXPECTED)
    assert month.accounts == len(EXPECTED)


def test_reasons_carry_the_numbers(month: ReplayResult) -> None:
    reasons = {(s.account_id, s.rule): s.reasons for s in month.signals}
    assert reasons[("detractor", "detractor")] == ["NPS 2 on 2026-03-10 (was 8)"]
    assert reasons[("noisy-browser", "pricing_interest")] == ["3 pricing visits in the last 7 days"]
    assert reasons[("silent-churner", "inactivity")] == [
        "No product usage for 14 days (last on 2026-03-10)"
    ]
    assert reasons[("renewal-at-risk", "renewal_at_risk")][0] == (
        "Renewal in 90 days (on 2026-06-09)"
    )
    assert reasons[("seat-constrained", "seat_pressure")] == [
        "18 active users on 20 seats (90% of seats) in 28 days"
    ]
    assert reasons[("happy-expander", "upsell_intent")][0] == (
        "Upsell intent 9/10 in a survey on 2026-03-13"
    )


def test_support_and_fiscal_signals_say_why(month: ReplayResult) -> None:
    reasons = {(s.account_id, s.rule): s.reasons for s in month.signals}
    assert reasons[("support-surge", "support_surge")][0] == (
        "5 support tickets opened in the last 7 days, 10.7x its usual 0.5 a week"
    )
    fiscal = next(s for s in month.signals if s.rule == "fiscal_year_end")
    assert fiscal.fired_at == at(-26, 0)  # the UTC midnight 8 weeks before 31 March
    assert fiscal.reasons[0] == (
        "Fiscal year ends on 2026-03-31, in 56 days (inferred from the months it buys in)"
    )


def test_a_parked_opportunity_comes_back_when_its_time_comes(month: ReplayResult) -> None:
    """The recycle process (issue #21): Cho resolves fiscal-buyer's opportunity "timing, 1
    month" on 9 February; it comes back, from the sweep, on 9 March at the hour she set it,
    as a `recycled` opportunity that says why, to her."""
    fiscal = next(s for s in month.signals if s.rule == "fiscal_year_end")
    assert [
        (r.reason, r.by, r.at) for r in month.resolutions if r.signal_id == fiscal.signal_id
    ] == [("timing", "cho@reps.example", at(-20, 16))]
    entry = next(e for e in month.parked if e["signal_id"] == fiscal.signal_id)
    assert entry["returns_at"] == at(8, 16) and entry["months"] == 1
    [back] = [s for s in month.signals if s.rule == "recycled" and s.account_id == "fiscal-buyer"]
    assert back.kind == "opportunity"
    assert back.fired_at == at(8, 16)
    assert back.reasons == [
        "came back: timing was 1 month, set on 2026-02-09 by cho@reps.example",
        f"Parked from the fiscal_year_end opportunity ({fiscal.signal_id})",
    ]
    assert back.headline == "back after timing"
    assert back.account.owner_email == "cho@reps.example"
    assert back.episode == f"recycled:{fiscal.signal_id}"


def test_a_no_need_comes_back_when_its_op_has_risen(month: ReplayResult) -> None:
    """Ben resolves happy-expander's upsell intent "no need" at OP 40.6; it comes back on the
    first scores.changed at OP 50.6 (rules.yaml's op_rise: 10) or more, and not before."""
    upsell = next(s for s in month.signals if s.rule == "upsell_intent")
    entry = next(e for e in month.parked if e["signal_id"] == upsell.signal_id)
    assert entry["reason"] == "no_need" and entry["returns_at"] is None
    assert entry["op_at_set"] == pytest.approx(40.63, abs=0.01)
    assert entry["op_target"] == pytest.approx(entry["op_at_set"] + 10)
    [back] = [s for s in month.signals if s.rule == "recycled" and s.account_id == "happy-expander"]
    assert back.fired_at == at(13, 14.1)  # the second product page of 14 March
    assert back.scores.op >= entry["op_target"]
    before = [op for when, _, op in month.scores["happy-expander"] if entry["set_at"] < when]
    assert max(op for op in before[: before.index(back.scores.op)]) < entry["op_target"]
    assert back.reasons == [
        "came back: no need, set on 2026-03-13 by ben@reps.example; OP rose from 41 to 51"
        " (asked: 51)",
        f"Parked from the upsell_intent opportunity ({upsell.signal_id})",
    ]


def test_time_driven_rules_fire_from_the_sweep_with_no_event(month: ReplayResult) -> None:
    """Nothing happens to these accounts on those days: the clock alone fires the rule."""
    fired = {(s.account_id, s.rule): s for s in month.signals}
    inactivity = fired[("silent-churner", "inactivity")]
    assert inactivity.fired_at == at(23, 10.5)  # 14 days after the last use, to the second
    renewal = fired[("happy-renewal", "renewal_window")]
    assert renewal.fired_at == at(10, 0)  # the UTC midnight the window opens
    assert renewal.caused_at is None


def test_each_signal_keeps_a_snapshot_of_the_account_and_its_scores(month: ReplayResult) -> None:
    signal = next(s for s in month.signals if s.rule == "expansion_ready")
    assert signal.account.name == "Happy-Expander" and signal.account.seats == 15
    assert signal.scores.segment == "expand"
    assert signal.scores_before is not None and signal.scores_before.segment == "nurture"


def test_churn_risks_resolve_themselves_once_clear_long_enough(month: ReplayResult) -> None:
    resolved = {(r.account_id, r.rule): day_of(r.at) for r in month.resolutions}
    # Back on day 15: inactivity clears at once and resolves after 3 days; the usage trend
    # and CS recover over the following days and resolve after their 7.
    assert resolved[("comeback", "inactivity")] == 18
    assert resolved[("comeback", "health_drop")] == 22
    assert resolved[("comeback", "usage_drop")] == 22
    # The detractor's NPS 9 on day 20 clears it; 14 days later is past the month's end.
    assert ("detractor", "detractor") not in resolved
    assert ("silent-churner", "inactivity") not in resolved


def test_a_replay_with_every_event_twice_changes_nothing(month: ReplayResult) -> None:
    events = [e for evs in personas().values() for e in evs]
    renamed = {e.event_id: e for e in events}
    doubled = replay([*events, *events])
    assert doubled.duplicates == len(renamed)
    assert [s.signal_id for s in doubled.signals] == [s.signal_id for s in month.signals]


def test_the_sweep_schedule_misses_nothing_a_sweep_of_everyone_would_catch(
    month: ReplayResult,
) -> None:
    """Oracle: the triggers sweep on every account every hour, ignoring next_sweep_at, finds
    the same signals, each within the hour the exact schedule found it."""
    events = [e for evs in personas().values() for e in evs]
    brute = replay(events, tick=timedelta(hours=1), sweep_all=True)
    exact = {s.signal_id: s.fired_at for s in month.signals}
    hourly = {s.signal_id: s.fired_at for s in brute.signals}
    assert set(hourly) == set(exact)
    for signal_id, fired_at in exact.items():
        assert timedelta(0) <= hourly[signal_id] - fired_at <= timedelta(hours=1)


# A tight budget for a cast of a dozen accounts (a rep's book is ~80; the default is 10 a day):
# two alerts a day at once, the second kept for one that tops the day.
MONTH_BUDGET = DailyBudget(limit=2, reserve=1)


def test_the_daily_budget_per_rep_defers_to_the_next_digest_and_loses_nothing(
    month: ReplayResult,
) -> None:
    """Each rep's alerts per day with and without the budget (printed: `pytest -s`), chosen by
    the notifier's own code (kizashi.contracts.budget through kizashi.tools.attention)."""
    run = simulate_budget(month.signals, lambda signal: MONTH_BUDGET)
    print("\n" + run.table())
    # Every rep's day within the budget, at least one rep over it on some day.
    assert all(n <= MONTH_BUDGET.limit for n in run.immediate.values())
    over = run.over_budget()
    assert ("ana@reps.example", (MONTH + timedelta(days=5)).date()) in over
    assert sum(run.alerts.values()) == len(month.signals)
    assert sum(run.immediate.values()) < len(month.signals)
    # None lost: every signal went at once or is in exactly one digest, its owner's, which goes
    # out at the next 00:00 UTC after it fired, listing its alerts by rank.
    ids = [s.signal_id for s in run.sent_at_once] + [s.signal_id for s in run.deferred]
    assert sorted(ids) == sorted(s.signal_id for s in month.signals)
    assert len(set(ids)) == len(ids)
    for (owner, at), carried in run.digests.items():
        for signal in carried:
            assert signal.account.owner_email == owner
            assert at == datetime.combine(signal.fired_at.date() + timedelta(days=1), time(), UTC)
        ranks = [alert_rank(s) for s in carried]
        assert ranks == sorted(ranks, reverse=True)
    # Without the budget Ana has 3 alerts on 6 March (the backfill's inactivity and usage
    # drop, then a pricing signal). With it, the day's top one goes at once; the reserve slot
    # waits for one that outranks it, none comes, so the two lower ranks wait for the next
    # morning's digest, highest first (the reserve's cost: docs/notifications.md).
    day5 = (MONTH + timedelta(days=5)).date()
    fired = [s for s in month.signals if s.account.owner_email == "ana@reps.example"]
    fired = by_rank([s for s in fired if s.fired_at.date() == day5])
    assert run.alerts[("ana@reps.example", day5)] == len(fired) == 3
    assert run.immediate[("ana@reps.example", day5)] == 1
    assert fired[0] in run.sent_at_once
    digest = run.digests[
        ("ana@reps.example", datetime.combine(day5, time(), UTC) + timedelta(days=1))
    ]
    assert [s.signal_id for s in digest] == [s.signal_id for s in fired[1:]]
    assert [s.rule for s in fired] == ["inactivity", "usage_drop", "pricing_interest"]
    # Ben's 11 March: the renewal window opens at midnight (free slot), the renewal at risk
    # comes later and outranks it, so it takes the reserve slot: both at once.
    day10 = (MONTH + timedelta(days=10)).date()
    bens = [s for s in run.sent_at_once if s.account.owner_email == "ben@reps.example"]
    bens = [s for s in bens if s.fired_at.date() == day10]
    assert [s.rule for s in bens] == ["renewal_window", "renewal_at_risk"]
    assert alert_rank(bens[1]) > alert_rank(bens[0])


def test_no_budget_comes_back_when_the_accounts_fiscal_year_starts() -> None:
    """Outside the cast: an account whose CRM says its fiscal year ends in February shows
    pricing interest on 9 February; its owner resolves it "no budget" two days later, and it
    comes back at 00:00 UTC on 1 March, the first day of its new fiscal year, from the sweep
    and with no event that day (here alone: the month's cast keeps its own signals)."""
    account = "budget-holder"
    events = [
        *crm(account, fiscal_year_end=2, owner_email="ana@reps.example"),
        *usage(account, range(-40, 5)),
        *visits(account, -20, 3),
    ]
    engine = Replay(scoring=load_scoring_config(None), rules=load_rules_config(None))
    engine.resolve(
        account, "pricing_interest", at=at(-18, 9), reason="no_budget", by="ana@reps.example"
    )
    result = engine.run(sorted(events, key=processing_time), until=at(4))
    opened = next(s for s in result.signals if s.rule == "pricing_interest")
    assert [e["returns_at"] for e in result.parked] == [MONTH]
    assert [(r.reason, r.by) for r in result.resolutions] == [("no_budget", "ana@reps.example")]
    [back] = [s for s in result.signals if s.rule == "recycled"]
    assert back.fired_at == MONTH
    assert back.reasons == [
        "came back: no budget, set on 2026-02-11 by ana@reps.example;"
        " its new fiscal year starts now",
        f"Parked from the pricing_interest opportunity ({opened.signal_id})",
    ]


def test_a_scripted_resolution_of_a_signal_that_is_not_open_is_refused() -> None:
    """A script's mistake is loud: no open signal to resolve, or a reason that does not fit."""
    events = [*crm("quiet-healthy"), *usage("quiet-healthy", range(-40, 2))]
    engine = Replay(scoring=load_scoring_config(None), rules=load_rules_config(None))
    engine.resolve("quiet-healthy", "pricing_interest", at=at(0), reason="won")
    with pytest.raises(ValueError, match="no open pricing_interest signal"):
        engine.run(sorted(events, key=processing_time), until=at(1))
    engine = Replay(scoring=load_scoring_config(None), rules=load_rules_config(None))
    engine.resolve("fiscal-buyer", "fiscal_year_end", at=at(-20), reason="timing")
    with pytest.raises(ValueError, match="needs 'months'"):
        engine.run(sorted(personas()["fiscal-buyer"], key=processing_time), until=at(-19))
