"""Poison records on every consumed topic, duplicate deliveries, and skewed clocks."""

import asyncio
import time

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from kizashi.contracts.topics import EVENT_TOPICS, REP_OBSERVATIONS, SCORES_CHANGED, SIGNAL_TOPICS
from tests.faults.pipeline import (
    Client,
    FaultStack,
    Story,
    assert_one_alert_each,
    dead_letters,
    now_iso,
    wait_applied,
)

pytestmark = pytest.mark.faults

CONSUMED = {
    **{topic: "scoring" for topic in EVENT_TOPICS.values()},
    REP_OBSERVATIONS: "scoring",
    SCORES_CHANGED: "triggers",
    **{topic: "notifier" for topic in SIGNAL_TOPICS.values()},
}


async def _consumed(stack, service: str, topic: str) -> float:
    """Records the service consumed and committed from `topic` (its /metrics counter)."""
    async with httpx.AsyncClient(timeout=5) as client:
        page = (await client.get(f"{stack.urls[service]}/metrics")).text
    return sum(
        s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == "kizashi_consumer_records_total" and s.labels.get("topic") == topic
    )


async def _records_keyed(bootstrap: str, topic: str, key: str, idle_s: float = 1.0) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found, quiet_since = [], time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found += [r for r in records if r.key == key.encode()]
                quiet_since = time.monotonic()
        return found
    finally:
        await consumer.stop()


async def test_poison_on_every_topic_is_dead_lettered_exactly(fault_stack: FaultStack):
    bootstrap = fault_stack.broker.bootstrap_servers
    before = await dead_letters(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    poison: set[tuple[str, str, int, int]] = set()
    try:
        for topic, service in CONSUMED.items():
            for value in (
                b"\xff\xfe\x00 not json at all",
                orjson.dumps({"type": "survey_response", "account_id": "", "nps": 99}),
            ):
                meta = await producer.send_and_wait(topic, value, key=b"poison")
                poison.add((service, topic, meta.partition, meta.offset))
    finally:
        await producer.stop()
    assert len(poison) == 2 * len(CONSUMED)

    # The partitions are not blocked: an event sent after the poison still makes its alert.
    story, client = Story(), Client(fault_stack.stack)
    assert (await client.post([story.detractor("after-poison")])).status_code == 202
    await wait_applied(fault_stack, client.accepted)
    await assert_one_alert_each(fault_stack, [story.account("after-poison")])

    async def all_dead_lettered():
        return await dead_letters(bootstrap) - before == poison or None

    await fault_stack.stack.wait_for(all_dead_lettered, within=30)
    await asyncio.sleep(1)
    assert await dead_letters(bootstrap) - before == poison
    await client.close()


async def test_duplicate_deliveries_alert_once(fault_stack: FaultStack):
    bootstrap = fault_stack.broker.bootstrap_servers
    before = await dead_letters(bootstrap)
    story, client = Story(), Client(fault_stack.stack)
    events = [story.usage("dup") for _ in range(30)] + [story.detractor("dup")]
    for _ in range(2):  # the same events (same ids) posted twice: a client retry
        assert (await client.post(events)).status_code == 202
    again = await client.http.post("/v1/events", json={"events": events[:10]})
    assert again.status_code == 202
    assert client.accepted[story.account("dup")] == 31
    await wait_applied(fault_stack, client.accepted)
    await assert_one_alert_each(fault_stack, [story.account("dup")])

    # The broker delivers a scores.changed and a signal twice (a producer retry, a replay).
    account = story.account("dup")
    changes = await _records_keyed(bootstrap, SCORES_CHANGED, account)
    signals = await _records_keyed(bootstrap, SIGNAL_TOPICS["churn_risk"], account)
    assert changes and len(signals) == 1
    consumed_before = {
        topic: await _consumed(fault_stack.stack, CONSUMED[topic], topic)
        for topic in (SCORES_CHANGED, SIGNAL_TOPICS["churn_risk"])
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for record in [*changes, *signals]:
            await producer.send_and_wait(record.topic, record.value, key=record.key)
    finally:
        await producer.stop()
    expected = {SCORES_CHANGED: len(changes), SIGNAL_TOPICS["churn_risk"]: 1}

    async def duplicates_consumed():
        for topic, count in expected.items():
            now = await _consumed(fault_stack.stack, CONSUMED[topic], topic)
            if now < consumed_before[topic] + count:
                return False
        return True

    await fault_stack.stack.wait_for(duplicates_consumed, within=30)
    await assert_one_alert_each(fault_stack, [account])
    assert await dead_letters(bootstrap) == before
    await client.close()


async def test_skewed_clocks(fault_stack: FaultStack):
    bootstrap = fault_stack.broker.bootstrap_servers
    before = await dead_letters(bootstrap)
    story, client = Story(), Client(fault_stack.stack)
    days = 86_400
    past = [story.usage("old", occurred_at=now_iso(-40 * days)) for _ in range(5)]
    # An answer 40 days old is past the detractor rule's max_age (30d): counted, no alert.
    past.append(story.detractor("old", occurred_at=now_iso(-40 * days)))
    slightly_ahead = story.usage("ahead", occurred_at=now_iso(4 * 60))
    far_ahead = story.usage("ahead", occurred_at=now_iso(10 * 60))

    response = await client.post([*past, slightly_ahead, far_ahead])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == len(past) + 1
    [rejected] = body["rejected"]
    assert rejected["index"] == len(past) + 1 and rejected["field"] == "occurred_at"
    assert "future" in rejected["reason"]

    alone = await client.http.post("/v1/events", json={"events": [far_ahead]})
    assert alone.status_code == 422
    assert alone.json()["rejected"][0]["field"] == "occurred_at"

    await wait_applied(fault_stack, client.accepted)
    view = (await fault_stack.stack.get("scoring", f"/v1/accounts/{story.account('old')}")).json()
    assert view["event_counts"] == {"product_usage": 5, "survey_response": 1}
    # Counted at their own time: 40 days of decay, and "last used" 40 days ago.
    assert view["features"]["days_since_usage"] >= 39
    assert view["features"]["usage_7d"] < 0.01 * 5
    ahead = await fault_stack.stack.get("scoring", f"/v1/accounts/{story.account('ahead')}")
    assert ahead.json()["event_counts"] == {"product_usage": 1}
    # Judged at their time too: usage last seen 40 days ago is inactivity (one alert); the
    # 40-day-old NPS 2 is too old for `detractor`, and the event 4 minutes ahead alerts nothing.
    await assert_one_alert_each(
        fault_stack,
        [story.account("old")],
        rule="inactivity",
        quiet_accounts=[story.account("ahead")],
    )
    assert await dead_letters(bootstrap) == before
    await client.close()
