"""The scoring consumer against real PostgreSQL and a real broker: replays and duplicates
change nothing, late events count at occurred_at, `scores.changed` only on meaningful moves,
and the silence sweep lowers CS with no new event while reading only the accounts due."""

import asyncio
import dataclasses
import functools
import math
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from kizashi.contracts.decay import MEAN_LIFE_7D_S
from kizashi.contracts.events import input_event_adapter
from kizashi.contracts.topics import EVENT_TOPICS
from kizashi.runtime.consumer import BatchConsumer
from kizashi.runtime.db import raw_transaction
from kizashi.scoring import repository
from kizashi.scoring.consumer import handle_events
from kizashi.scoring.pipeline import rescore
from kizashi.scoring.sweep import sweep_once
from tests.integration.scoring_support import (
    account_row,
    changes_for,
    event,
    records,
    usage,
)


def _account(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def test_duplicates_in_a_batch_and_across_batches_count_once(service) -> None:
    once, twice = _account("once"), _account("twice")
    now = _now()
    stream = [usage(once, now - timedelta(hours=h), quantity=2.0) for h in (1, 5, 30, 80)]
    # The same four events under another account, with every event sent more than once:
    # twice inside one batch, and again in a later batch.
    copies = [{**e, "account_id": twice, "event_id": e["event_id"] + "-b"} for e in stream]
    await handle_events(service, records([*copies[:3], copies[1], copies[0]]))
    await handle_events(service, records([copies[2], copies[3], copies[1]]))
    await handle_events(service, records(stream))

    single, doubled = await account_row(service, once), await account_row(service, twice)
    assert doubled["processed"] == single["processed"] == 4
    assert doubled["state"]["counts"] == {"product_usage": 4}
    # Same events once each gives the same state, whatever the duplicates and batching.
    assert doubled["state"]["days"] == single["state"]["days"]
    assert doubled["state"]["usage"][1] == pytest.approx(single["state"]["usage"][1], rel=1e-9)
    assert doubled["state"]["usage"][2] == pytest.approx(single["state"]["usage"][2], rel=1e-9)


async def test_a_replay_after_a_crash_before_the_offset_commit_changes_nothing(
    service, servers
) -> None:
    account = _account("replay")
    now = _now()
    stream = [usage(account, now - timedelta(hours=h), user_id=f"u{h}") for h in range(6)]
    topic = EVENT_TOPICS["product_usage"]
    producer = AIOKafkaProducer(bootstrap_servers=servers["bootstrap"], acks="all")
    await producer.start()
    try:
        sent = [
            await (await producer.send(topic, orjson.dumps(e), key=account.encode()))
            for e in stream
        ]
    finally:
        await producer.stop()
    ends: dict[TopicPartition, int] = {}
    for meta in sent:
        tp = TopicPartition(meta.topic, meta.partition)
        ends[tp] = max(ends.get(tp, 0), meta.offset + 1)

    # The crash: the handler's transaction committed, the process died before the offsets did.
    await handle_events(service, records(stream))
    before = await account_row(service, account)
    assert before["processed"] == 6

    # The restart: the real consumer loop reads the same records again and commits them.
    consumer = BatchConsumer(
        service="scoring",
        topics=[topic],
        bootstrap_servers=servers["bootstrap"],
        handler=functools.partial(handle_events, service),
        dead_letters=service.producer,
        group_id=f"replay-{account}",
    )
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(60):
            while True:
                if await _committed(consumer, ends):
                    break
                await asyncio.sleep(0.1)
    finally:
        consumer.stop()
        await task
    after = await account_row(service, account)
    assert after == before  # state, scores, computed_at: untouched
    changes = await changes_for(servers["bootstrap"], account)
    assert len(changes) == 1 and changes[0].before is None


async def _committed(consumer: BatchConsumer, ends: dict[TopicPartition, int]) -> bool:
    if not consumer.status.started:
        return False
    for tp, end in ends.items():
        if (await consumer._consumer.committed(tp) or 0) < end:
            return False
    return True


async def test_late_events_count_at_their_occurred_at(service) -> None:
    in_order, late_last = _account("ordered"), _account("late")
    now = _now()
    recent = {"at": now - timedelta(days=1), "quantity": 4.0, "user_id": "a"}
    old = {"at": now - timedelta(days=20), "quantity": 10.0, "user_id": "b"}
    ancient = {"at": now - timedelta(days=60), "quantity": 50.0, "user_id": "c"}

    def usage_of(account: str, spec: dict, suffix: str) -> dict:
        return usage(
            account,
            spec["at"],
            quantity=spec["quantity"],
            user_id=spec["user_id"],
            event_id=f"{account}-{suffix}",
        )

    for spec, suffix in ((ancient, "x"), (old, "o"), (recent, "r")):
        await handle_events(service, records([usage_of(in_order, spec, suffix)]))
    # The same events arriving newest first: the old ones are late.
    for spec, suffix in ((recent, "r"), (old, "o"), (ancient, "x")):
        await handle_events(service, records([usage_of(late_last, spec, suffix)]))

    ordered, late = await account_row(service, in_order), await account_row(service, late_last)
    assert late["state"]["usage"] == pytest.approx(ordered["state"]["usage"], rel=1e-9)
    assert late["state"]["days"] == ordered["state"]["days"]
    features = late["features"]
    # Counted when they happened, not when they arrived: the newest usage is a day old, the
    # 60-day-old event adds no active day, and the 20-day-old one barely counts in 7 days.
    assert features["last_usage_at"] == pytest.approx(recent["at"].timestamp())
    assert features["active_days_28d"] == 2
    assert features["active_users_28d"] == 2
    expected_7d = sum(
        s["quantity"] * math.exp(-(now - s["at"]).total_seconds() / MEAN_LIFE_7D_S)
        for s in (recent, old, ancient)
    )
    assert features["usage_7d"] == pytest.approx(expected_7d, rel=0.01)
    assert features["usage_7d"] < 4.0 + 1.0


async def test_scores_changed_only_on_meaningful_moves_with_before_and_after(
    service, servers
) -> None:
    account = _account("moves")
    now = _now()
    await handle_events(
        service,
        records(
            [
                event("account_update", account, now, name="Moves Inc", seats=10, arr=90_000.0),
                *[usage(account, now - timedelta(days=d), user_id=f"u{d}") for d in range(8)],
            ]
        ),
    )
    # An email open feeds no CS or OP component: nothing meaningful moved.
    await handle_events(
        service,
        records([event("email_engagement", account, now, action="open", campaign_id="c1")]),
    )
    # A detractor's NPS moves CS by several points.
    await handle_events(
        service, records([event("survey_response", account, now, survey_id="q", nps=0)])
    )
    changes = await changes_for(servers["bootstrap"], account)
    assert [c.cause for c in changes] == ["events", "events"]
    first, second = changes
    assert first.before is None and first.account.name == "Moves Inc"
    assert second.before == first.after
    assert second.after.cs <= second.before.cs - 1.0
    assert [e.type for e in second.events] == ["survey_response"]
    nps = next(line for line in second.breakdown if line.component == "nps")
    assert nps.raw == 0 and "NPS 0 (detractor)" in nps.explanation
    row = await account_row(service, account)
    assert row["state"]["counts"]["email_engagement"] == 1  # applied, just not published
    assert row["cs"] == second.after.cs


async def test_the_silence_sweep_lowers_cs_and_reads_only_due_accounts(service, servers) -> None:
    now = _now()
    busy = _account("busy")
    idle = [_account("idle") for _ in range(300)]
    # Idle accounts: CRM facts only, nothing that time can move.
    await handle_events(
        service,
        records([event("account_update", a, now, name=a, seats=5) for a in idle]),
    )
    await handle_events(
        service,
        records(
            [
                event("account_update", busy, now, seats=5),
                *[
                    usage(busy, now - timedelta(days=d, hours=h), user_id=f"u{h}", quantity=3.0)
                    for d in range(10)
                    for h in range(5)
                ],
            ]
        ),
    )
    active = await account_row(service, busy)
    assert active["next_check_at"] is not None
    for account in idle[:5]:
        assert (await account_row(service, account))["next_check_at"] is None

    later = now + timedelta(days=16)
    async with raw_transaction(service.engine) as connection:
        due = await connection.fetchval(
            "SELECT count(*) FROM scores WHERE next_check_at <= $1", later
        )
        total = await connection.fetchval("SELECT count(*) FROM scores")
        # The sweep's read can use the index on next_check_at: its cost follows the due rows.
        await connection.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            row[0]
            for row in await connection.fetch(
                "EXPLAIN SELECT account_id FROM scores WHERE next_check_at <= $1 "
                "ORDER BY next_check_at LIMIT 500",
                later,
            )
        )
        claimed, _ = await repository.lock_due_accounts(conn=connection, now=later, limit=10_000)
    assert "scores_next_check_at" in plan
    assert total >= 301 and due < 50
    assert busy in claimed and not set(idle) & set(claimed)

    swept = await sweep_once(service, now=later)
    assert swept == due  # exactly the due accounts were re-scored, no idle one

    silent = await account_row(service, busy)
    assert silent["computed_at"] == later
    assert silent["cs"] < active["cs"] - 20
    assert silent["features"]["days_since_usage"] == pytest.approx(16.0, abs=0.01)
    untouched = await account_row(service, idle[0])
    assert untouched["computed_at"] < later
    sweep_changes = [c for c in await changes_for(servers["bootstrap"], busy) if c.cause == "sweep"]
    assert sweep_changes and sweep_changes[-1].after.cs == silent["cs"]
    assert sweep_changes[-1].before.cs == active["cs"]


async def test_a_batch_counts_its_events_and_changes_in_the_metrics(service) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    first, second = _account("metrics-a"), _account("metrics-b")
    now = _now()
    before = {
        "usage": sample("kizashi_scoring_events_applied_total", type="product_usage"),
        "survey": sample("kizashi_scoring_events_applied_total", type="survey_response"),
        "duplicates": sample("kizashi_scoring_events_duplicate_total"),
        "emitted": sample("kizashi_scoring_scores_changed_total", cause="events"),
        "updates": sample("kizashi_scoring_score_updates_total", cause="events"),
    }
    stream = [usage(first, now - timedelta(hours=h)) for h in (1, 2, 3)]
    stream += [usage(second, now - timedelta(hours=1))]
    stream += [event("survey_response", second, now, survey_id="s", nps=2)]
    await handle_events(service, records([*stream, stream[0]]))  # one duplicate

    assert sample("kizashi_scoring_events_applied_total", type="product_usage") == (
        before["usage"] + 4
    )
    assert sample("kizashi_scoring_events_applied_total", type="survey_response") == (
        before["survey"] + 1
    )
    assert sample("kizashi_scoring_events_duplicate_total") == before["duplicates"] + 1
    # Two new accounts, each scored once for the batch: both first scores are published.
    assert sample("kizashi_scoring_score_updates_total", cause="events") == before["updates"] + 2
    assert sample("kizashi_scoring_scores_changed_total", cause="events") == (before["emitted"] + 2)


async def test_claim_returns_exactly_the_ids_not_applied_before(service) -> None:
    account = _account("claim")
    old, new = ("tests", account, f"{account}-old"), ("tests", account, f"{account}-new")
    async with raw_transaction(service.engine) as connection:
        assert await repository.claim_new_events(conn=connection, keys=[old]) == set()
    async with raw_transaction(service.engine) as connection:
        # A repeated key (callers dedupe, but the claim must not drop it) and one applied before.
        applied_before = await repository.claim_new_events(conn=connection, keys=[new, old, new])
    assert applied_before == {old}


async def test_the_scores_last_published_are_stored_apart_from_the_computed_ones(service) -> None:
    """The API shows the computed scores; the next re-score measures its move from the
    published ones (tests/unit/test_scoring_pipeline.py shows why)."""
    account = _account("published")
    now = _now()
    first = rescore(
        repository.StoredAccount(account, None, None),
        [input_event_adapter.validate_python(usage(account, now))],
        config=service.config,
        now=now,
    )
    scored = dataclasses.replace(
        first.scored, cs=40.0, op=31.0, published_cs=42.0, published_op=30.5
    )
    async with raw_transaction(service.engine) as connection:
        await repository.save(conn=connection, scored=[scored])
    async with raw_transaction(service.engine) as connection:
        stored = await repository.lock_accounts(conn=connection, account_ids=[account])
    before = stored[account].scores
    assert before is not None
    assert (before["cs"], before["op"], before["segment"]) == (42.0, 30.5, scored.segment)
    row = await account_row(service, account)
    assert (row["cs"], row["op"]) == (40.0, 31.0)


async def test_a_batch_that_waited_for_the_lock_reads_the_scores_committed_meanwhile(
    service,
) -> None:
    """The sweep and the consumer on one account: the second to lock must measure its move
    from what the first one published, not from the scores before it."""
    account = _account("waited")
    now = _now()
    first = rescore(
        repository.StoredAccount(account, None, None),
        [input_event_adapter.validate_python(usage(account, now))],
        config=service.config,
        now=now,
    )
    async with raw_transaction(service.engine) as connection:
        await repository.save(conn=connection, scored=[first.scored])
    republished = dataclasses.replace(first.scored, cs=12.5, published_cs=12.5)

    holding, release = asyncio.Event(), asyncio.Event()

    async def first_writer() -> None:
        async with raw_transaction(service.engine) as connection:
            await repository.lock_accounts(conn=connection, account_ids=[account])
            await repository.save(conn=connection, scored=[republished])
            holding.set()
            await release.wait()

    async def second_reader() -> dict | None:
        await holding.wait()
        async with raw_transaction(service.engine) as connection:
            # waits for the first
            stored = await repository.lock_accounts(conn=connection, account_ids=[account])
        return stored[account].scores

    writer = asyncio.create_task(first_writer())
    reader = asyncio.create_task(second_reader())
    await holding.wait()
    await asyncio.sleep(0.3)  # the reader is now waiting on the row lock
    assert not reader.done()
    release.set()
    await writer
    scores = await reader
    assert scores is not None and scores["cs"] == 12.5
