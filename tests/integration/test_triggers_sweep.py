"""The triggers sweep against a real PostgreSQL and a real broker, with the clock moved by
hand: silence fires inactivity with no event, the account's return resolves it, only due
accounts are read, and rows the consumer holds are skipped rather than waited for. And a
snoozed signal that gets worse reopens and alerts once (snooze unless worse, issue #20).

Its own database and broker: a sweep run at a future time must not touch the shared stack's
accounts, and its signals must not reach the shared stack's notifier.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from kizashi.contracts.events import EventEnvelope, input_event_adapter
from kizashi.contracts.observations import rep_observation_adapter
from kizashi.contracts.topics import SCORES_CHANGED, SIGNAL_TOPICS
from kizashi.runtime.db import raw_transaction
from kizashi.scoring.config import load_scoring_config
from kizashi.scoring.pipeline import rescore
from kizashi.scoring.repository import StoredAccount
from kizashi.tools.replay import published
from kizashi.triggers.consumer import handle_changes
from kizashi.triggers.lifecycle import apply_action
from kizashi.triggers.state import TriggersState
from kizashi.triggers.sweep import sweep_once

SCORING = load_scoring_config(None)
DAY = timedelta(days=1)


class Scoring:
    """Scoring's pure step, with its stored state kept here: what the scoring service would
    publish for these events at that time."""

    def __init__(self) -> None:
        self.stored: dict[str, StoredAccount] = {}

    def change(self, account: str, events: list[EventEnvelope], at: datetime) -> ConsumerRecord:
        stored = self.stored.get(account) or StoredAccount(account, None, None)
        outcome = rescore(stored, events, config=SCORING, now=at)
        self.stored[account] = StoredAccount.after(outcome.scored)
        change = published(outcome)
        assert change is not None
        value = change.model_dump_json().encode()
        return ConsumerRecord(
            SCORES_CHANGED, 0, 0, 0, 0, account.encode(), value, None, 0, len(value), ()
        )


def facts(account: str, at: datetime, renewal: datetime | None = None) -> EventEnvelope:
    return input_event_adapter.validate_python(
        {
            "type": "account_update",
            "account_id": account,
            "occurred_at": at,
            "name": account,
            "seats": 10,
            "renewal_date": renewal.date().isoformat() if renewal else None,
        }
    )


def used(account: str, days: list[datetime]) -> list[EventEnvelope]:
    return [
        input_event_adapter.validate_python(
            {
                "type": "product_usage",
                "account_id": account,
                "occurred_at": day + timedelta(hours=i),
                "user_id": f"u{i}",
                "action": "login",
            }
        )
        for day in days
        for i in range(3)
    ]


async def account_row(url: str, account: str) -> asyncpg.Record:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchrow(
            "SELECT next_sweep_at, updated_at FROM trigger_accounts WHERE account_id = $1",
            account,
        )
    finally:
        await connection.close()


async def signals_of(url: str, account: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(
            """
            SELECT s.signal_id, s.rule, s.status, s.fired_at, s.status_changed_by,
                   s.payload::text AS payload,
                   array(SELECT a.action || ':' || a.actor FROM signal_actions a
                         WHERE a.signal_id = s.signal_id ORDER BY a.id) AS actions
            FROM signals s WHERE s.account_id = $1 ORDER BY s.fired_at
            """,
            account,
        )
    finally:
        await connection.close()


async def published_signal_ids(bootstrap: str, topic: str) -> set[str]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        return {orjson.loads(r.value)["signal_id"] for rs in batches.values() for r in rs}
    finally:
        await consumer.stop()


async def test_silence_fires_inactivity_at_the_sweep_and_the_return_resolves_it(
    triggers: TriggersState, own_database: str, own_broker: str
) -> None:
    scoring = Scoring()
    now = datetime.now(UTC).replace(microsecond=0)
    silent, idle, busy = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("silent", "idle", "busy"))
    last_use = now - 13 * DAY
    records = [
        scoring.change(
            silent,
            [facts(silent, now - 40 * DAY), *used(silent, [last_use - 7 * DAY, last_use])],
            now,
        ),
        # Never used, no renewal date: nothing time can change, so never swept.
        scoring.change(idle, [facts(idle, now - 40 * DAY)], now),
        # Used yesterday: due when its own silence would reach 14 days.
        scoring.change(busy, [facts(busy, now - 40 * DAY), *used(busy, [now - DAY])], now),
    ]
    await handle_changes(triggers, records)
    assert await signals_of(own_database, silent) == []
    # The silent account's events are all history (the newest 13 days old): inactivity held
    # its state on them, and the sweep judges it once that history has settled: 13 days is
    # not yet 14, so it then waits for the 14th day.
    settled = now + triggers.rules.backfill.settle
    assert (await account_row(own_database, silent))["next_sweep_at"] == settled
    assert await sweep_once(triggers, now=settled) == 1
    assert await signals_of(own_database, silent) == []
    due = await account_row(own_database, silent)
    last_event = last_use + timedelta(hours=2)
    assert due["next_sweep_at"] == last_event + 14 * DAY
    assert (await account_row(own_database, idle))["next_sweep_at"] is None
    busy_before = await account_row(own_database, busy)
    assert busy_before["next_sweep_at"] == now - DAY + timedelta(hours=2) + 14 * DAY

    # Nothing arrives; the clock passes the 14th day of silence.
    swept_at = due["next_sweep_at"] + timedelta(minutes=1)
    swept = await sweep_once(triggers, now=swept_at)
    assert swept == 1
    [signal] = await signals_of(own_database, silent)
    assert (signal["rule"], signal["status"], signal["fired_at"]) == (
        "inactivity",
        "open",
        swept_at,
    )
    payload = orjson.loads(signal["payload"])
    assert payload["reasons"] == [f"No product usage for 14 days (last on {last_event:%Y-%m-%d})"]
    assert payload["account"]["account_id"] == silent and payload["scores"]["cs"] >= 0
    assert signal["signal_id"] in await published_signal_ids(
        own_broker, SIGNAL_TOPICS["churn_risk"]
    )
    assert await account_row(own_database, busy) == busy_before
    # The same sweep again fires nothing more: the rule waits for the account to re-arm.
    assert await sweep_once(triggers, now=swept_at + timedelta(minutes=5)) == 0
    assert len(await signals_of(own_database, silent)) == 1

    # The account comes back; inactivity clears and resolves itself 3 days later.
    back_at = swept_at + DAY
    await handle_changes(triggers, [scoring.change(silent, used(silent, [back_at]), back_at)])
    row = await account_row(own_database, silent)
    assert row["next_sweep_at"] == back_at + 3 * DAY
    await sweep_once(triggers, now=back_at + 2 * DAY)
    assert (await signals_of(own_database, silent))[0]["status"] == "open"
    await sweep_once(triggers, now=row["next_sweep_at"])
    [resolved] = await signals_of(own_database, silent)
    assert resolved["status"] == "resolved"
    assert resolved["status_changed_by"] == "kizashi:auto-resolve"
    assert resolved["actions"] == ["resolved:kizashi:auto-resolve"]


async def test_the_sweep_skips_an_account_the_consumer_holds(
    triggers: TriggersState, own_database: str
) -> None:
    scoring = Scoring()
    now = datetime.now(UTC).replace(microsecond=0)
    account = f"held-{uuid.uuid4().hex[:6]}"
    record = scoring.change(
        account, [facts(account, now - 40 * DAY), *used(account, [now - 13 * DAY])], now
    )
    await handle_changes(triggers, [record])
    # History arriving: judged once settled (13 days of silence, nothing yet), then due at 14.
    await sweep_once(triggers, now=now + triggers.rules.backfill.settle)
    due_at = (await account_row(own_database, account))["next_sweep_at"]
    assert due_at is not None and due_at > now + DAY

    holder = await asyncpg.connect(own_database)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(
            "SELECT 1 FROM trigger_accounts WHERE account_id = $1 FOR UPDATE", account
        )
        # Returns at once (no wait on the lock) and leaves the account due.
        await asyncio.wait_for(sweep_once(triggers, now=due_at + timedelta(minutes=1)), 10)
        assert await signals_of(own_database, account) == []
        await transaction.rollback()
    finally:
        await holder.close()
    await sweep_once(triggers, now=due_at + timedelta(minutes=2))
    assert [s["rule"] for s in await signals_of(own_database, account)] == ["inactivity"]


async def test_a_due_date_a_rep_logged_fires_renewal_timing_at_the_sweep(
    triggers: TriggersState, own_database: str
) -> None:
    scoring = Scoring()
    now = datetime.now(UTC).replace(microsecond=0)
    account = f"due-{uuid.uuid4().hex[:6]}"
    due = (now + 200 * DAY).date()
    heard = rep_observation_adapter.validate_python(
        {
            "type": "rep_observation",
            "account_id": account,
            "occurred_at": now - DAY,
            "author": "ann@reps.example",
            "kind": "renewal_timing",
            "due_date": due.isoformat(),
        }
    )
    await handle_changes(triggers, [scoring.change(account, [heard], now)])
    assert await signals_of(own_database, account) == []
    # The window (122 to 60 days before the due date) opens at a UTC midnight: the sweep's time.
    opens = datetime.combine(due - timedelta(days=122), datetime.min.time(), tzinfo=UTC)
    assert (await account_row(own_database, account))["next_sweep_at"] == opens
    assert await sweep_once(triggers, now=opens + timedelta(minutes=1)) >= 1
    [signal] = await signals_of(own_database, account)
    assert (signal["rule"], signal["status"]) == ("renewal_timing", "open")
    payload = orjson.loads(signal["payload"])
    assert payload["reasons"] == [
        f"Due on {due.isoformat()}, in 122 days",
        f"Logged by 'ann@reps.example' on {(now - DAY).date().isoformat()}",
    ]
    assert payload["phase"] == 0


async def published_signals(bootstrap: str, topic: str, signal_id: str) -> list[dict]:
    """Every message of `topic` for `signal_id`, in order."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        found = [orjson.loads(r.value) for rs in batches.values() for r in rs]
        return [m for m in found if m["signal_id"] == signal_id]
    finally:
        await consumer.stop()


async def test_a_snoozed_signal_that_gets_worse_reopens_and_alerts_once(
    triggers: TriggersState, own_database: str, own_broker: str
) -> None:
    """health_drop fires at CS 58, the rep snoozes it for a week; CS 50 (8 points worse) keeps
    it snoozed, CS 46 (12 worse, past the rule's 10) reopens it with the reason and publishes
    it once more; CS 40 the day after publishes nothing: once per snooze."""
    now = datetime.now(UTC).replace(microsecond=0)
    account = f"worse-{uuid.uuid4().hex[:6]}"
    first = published(
        rescore(
            StoredAccount(account, None, None),
            [facts(account, now - 40 * DAY), *used(account, [now - 20 * DAY, now - DAY])],
            config=SCORING,
            now=now,
        )
    )
    assert first is not None

    def at_cs(cs: float, at: datetime, before: float | None) -> ConsumerRecord:
        after = first.after.model_copy(update={"cs": cs, "segment": "at_risk", "confidence": 1.0})
        change = first.model_copy(
            update={
                "computed_at": at,
                "after": after,
                "before": None if before is None else after.model_copy(update={"cs": before}),
                "events": [],
            }
        )
        value = change.model_dump_json().encode()
        key = account.encode()
        return ConsumerRecord(SCORES_CHANGED, 0, 0, 0, 0, key, value, None, 0, len(value), ())

    await handle_changes(triggers, [at_cs(75, now, None)])
    await handle_changes(triggers, [at_cs(58, now + DAY, 75)])
    [fired] = await signals_of(own_database, account)
    assert (fired["rule"], fired["status"]) == ("health_drop", "open")
    signal_id = fired["signal_id"]

    snoozed_at = now + DAY + timedelta(hours=1)
    async with raw_transaction(triggers.engine) as connection:
        await apply_action(
            connection,
            signal_id=signal_id,
            action="snooze",
            actor="ann@reps.example",
            now=snoozed_at,
            until=snoozed_at + 7 * DAY,
        )
    await handle_changes(triggers, [at_cs(50, now + 2 * DAY, 58)])
    assert (await signals_of(own_database, account))[0]["status"] == "snoozed"

    worse_at = now + 3 * DAY
    await handle_changes(triggers, [at_cs(46, worse_at, 50)])
    await handle_changes(triggers, [at_cs(40, now + 4 * DAY, 46)])  # worse still: not again
    [reopened] = await signals_of(own_database, account)
    reason = f"CS 58 → 46 since snoozed on {snoozed_at:%Y-%m-%d}"
    assert (reopened["status"], reopened["status_changed_by"]) == (
        "open",
        "kizashi:worse-since-snooze",
    )
    assert reopened["actions"] == [
        "snoozed:ann@reps.example",
        "reopened:kizashi:worse-since-snooze",
    ]
    assert orjson.loads(reopened["payload"])["reasons"][0] == reason
    messages = await published_signals(own_broker, SIGNAL_TOPICS["churn_risk"], signal_id)
    assert [m["reopened_at"] for m in messages] == [
        None,
        worse_at.isoformat().replace("+00:00", "Z"),
    ]
    again = messages[1]
    assert again["reasons"][0] == reason and again["headline"] == "CS 58 → 46 since snoozed"
    assert again["reasons"][1:] == messages[0]["reasons"]
