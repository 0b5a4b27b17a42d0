"""An idempotent producer whose sequence state broke is replaced, not kept: aiokafka's sender
dies on OutOfOrderSequenceNumber and that producer refuses every later send (ingest answered
503 for good after Apache Kafka's three nodes restarted under load)."""

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber

from kizashi.runtime.kafka import BrokerUnavailable, OutgoingRecord, Producer


class FakeProducer:
    def __init__(self) -> None:
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


async def test_a_broken_idempotent_producer_is_replaced_and_the_next_send_uses_the_new_one():
    producer = Producer("127.0.0.1:1", service="tests", idempotent=True)
    made: list[FakeProducer] = []

    def new_producer() -> FakeProducer:
        made.append(FakeProducer())
        return made[-1]

    producer._new_producer = new_producer  # type: ignore[method-assign]
    producer._producer = new_producer()  # type: ignore[assignment]
    await producer.start()
    sent_with = []

    async def send_batches(records):
        sent_with.append(producer._producer)
        if len(sent_with) == 1:
            raise OutOfOrderSequenceNumber()
        return []

    producer._send_batches = send_batches  # type: ignore[method-assign]
    producer._check_topics = False
    records = [OutgoingRecord("kizashi.events.product_usage", "acme", b"{}")]
    with pytest.raises(BrokerUnavailable):
        await producer.send_all(records)
    producer._check_topics = False  # no broker here to create topics on
    await producer.send_all(records)
    assert len(made) == 2 and sent_with == [made[0], made[1]]
    assert made[1].started
    for task in list(producer._retired):
        await task
    assert made[0].stopped
