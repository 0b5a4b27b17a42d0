"""Reps' observations in scoring, on real PostgreSQL and a real broker (issue #18): stored in
`observations` once however often they are delivered, an unseen account created with them,
the relationship phase on scores, score_history and phase_changes, and the sweep lowering the
phase when evidence expires, with no new event."""

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from kizashi.runtime.db import raw_transaction
from kizashi.scoring.consumer import handle_events
from kizashi.scoring.sweep import sweep_once
from tests.integration.scoring_support import (
    account_row,
    changes_for,
    event,
    records,
)

REP = "rep@example.com"


def _account(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def observation(kind: str, account: str, at: datetime, **fields) -> dict:
    fields.setdefault("author", REP)
    return {**event("rep_observation", account, at, **fields), "kind": kind}


def evidence(account: str, criterion: str, at: datetime) -> dict:
    return observation("phase_evidence", account, at, criterion=criterion, note="")


async def fetch(service, sql: str, *args) -> list[dict]:
    async with raw_transaction(service.engine) as connection:
        return [dict(row) for row in await connection.fetch(sql, *args)]


async def test_observations_are_stored_once_and_create_the_account(service, servers) -> None:
    account = _account("obs")
    now = _now()
    left = observation(
        "key_person_change",
        account,
        now - timedelta(hours=2),
        person="Dana Reyes",
        role="CFO",
        change="joined",
        is_decision_maker=True,
        note="Met her at the trade fair.",
    )
    pain = observation("customer_pain", account, now - timedelta(hours=1), pain="urgent")
    # Twice in one batch, then the whole batch again (a redelivery).
    await handle_events(service, records([left, pain, left]))
    await handle_events(service, records([pain, left]))

    rows = await fetch(
        service,
        "SELECT observation_id, author, kind, note, fields::text AS fields, occurred_at"
        " FROM observations WHERE account_id = $1 ORDER BY occurred_at",
        account,
    )
    assert [(r["observation_id"], r["kind"]) for r in rows] == [
        (left["event_id"], "key_person_change"),
        (pain["event_id"], "customer_pain"),
    ]
    assert rows[0]["author"] == REP and rows[0]["note"] == "Met her at the trade fair."
    assert orjson.loads(rows[0]["fields"]) == {
        "person": "Dana Reyes",
        "role": "CFO",
        "change": "joined",
        "is_decision_maker": True,
    }
    assert rows[0]["occurred_at"] == now - timedelta(hours=2)
    stored = await account_row(service, account)
    assert stored is not None and stored["processed"] == 2  # the account was created
    assert stored["state"]["counts"] == {"rep_observation": 2}

    [change] = await changes_for(servers["bootstrap"], account)
    assert change.phase == 0 and change.phase_before is None
    assert [(o.kind, o.observation_id) for o in change.observations] == [
        ("customer_pain", pain["event_id"]),
        ("key_person_change", left["event_id"]),
    ]
    line = next(b for b in change.breakdown if b.component == "key_person")
    assert line.explanation == (
        f"A new decision maker, Dana Reyes (CFO, a decision maker), joined, logged by {REP} on "
        f"{(now - timedelta(hours=2)).date().isoformat()}"
    )
    assert line.points > 0
    # Parts nothing was logged for are left out of the index and the breakdown.
    assert not {b.component for b in change.breakdown} & {"rep_satisfaction", "policy_change"}


async def test_the_phase_moves_up_and_expiry_lowers_it_through_the_sweep(service, servers):
    account = _account("phase")
    now = _now()
    # Phase 1 needs contact_replied and meeting_agreed (phases.yaml); evidence expires after
    # 365 days: the reply was logged 365 days less one hour ago.
    replied_at = now - timedelta(days=365) + timedelta(hours=1)
    await handle_events(
        service,
        records(
            [
                evidence(account, "meeting_agreed", now - timedelta(days=3)),
                evidence(account, "contact_replied", replied_at),
            ]
        ),
    )
    [row] = await fetch(
        service, "SELECT phase, next_check_at FROM scores WHERE account_id = $1", account
    )
    assert row["phase"] == 1
    # The sweep must come back when the reply's evidence expires.
    expiry = replied_at + timedelta(days=365)
    assert now < row["next_check_at"] <= expiry + timedelta(seconds=1)
    history = await fetch(
        service, "SELECT phase FROM score_history WHERE account_id = $1 ORDER BY at", account
    )
    assert history[-1]["phase"] == 1
    moves = await fetch(
        service,
        "SELECT from_phase, to_phase FROM phase_changes WHERE account_id = $1 ORDER BY at",
        account,
    )
    assert moves == [{"from_phase": 0, "to_phase": 1}]

    # Two hours later the reply has expired: the sweep alone lowers the phase.
    later = now + timedelta(hours=2)
    assert await sweep_once(service, later) >= 1
    [row] = await fetch(service, "SELECT phase FROM scores WHERE account_id = $1", account)
    assert row["phase"] == 0
    moves = await fetch(
        service,
        "SELECT at, from_phase, to_phase FROM phase_changes WHERE account_id = $1 ORDER BY at",
        account,
    )
    assert [(m["from_phase"], m["to_phase"]) for m in moves] == [(0, 1), (1, 0)]
    assert moves[-1]["at"] == later
    changes = await changes_for(servers["bootstrap"], account)
    assert (changes[-1].phase, changes[-1].phase_before, changes[-1].cause) == (0, 1, "sweep")
    history = await fetch(
        service, "SELECT at, phase FROM score_history WHERE account_id = $1 ORDER BY at", account
    )
    assert (history[-1]["at"], history[-1]["phase"]) == (later, 0)


async def test_evidence_in_any_order_gives_the_same_phase(service) -> None:
    now = _now()
    pieces = [
        ("contact_replied", now - timedelta(days=40)),
        ("meeting_agreed", now - timedelta(days=30)),
        ("met_in_person", now - timedelta(days=20)),
        ("customer_shared_plans", now - timedelta(days=10)),
        ("customer_introduced_colleague", now - timedelta(days=5)),
        # Phase 3 evidence without the rest of phase 3: kept, not counted yet.
        ("designated_vendor", now - timedelta(days=2)),
    ]
    one, other = _account("order-a"), _account("order-b")
    # One account in time order, one batch each; the other backwards, all in one batch.
    for criterion, at in pieces:
        await handle_events(service, records([evidence(one, criterion, at)]))
    await handle_events(service, records([evidence(other, c, at) for c, at in reversed(pieces)]))
    phases = await fetch(
        service,
        "SELECT account_id, phase FROM scores WHERE account_id = ANY($1::text[])",
        [one, other],
    )
    assert {r["phase"] for r in phases} == {2}
