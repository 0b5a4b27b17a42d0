"""The notifier consumer: a signal in, one recorded delivery intent per (signal, receiver).

Recording the intent is all the consumer does before committing offsets, so a signal is never
lost once consumed; the delivery worker sends what was recorded."""

import uuid

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from kizashi.contracts.signals import signal_adapter
from kizashi.kit.db import raw_transaction
from kizashi.kit.kafka import PermanentRecordError, Rejected
from kizashi.notifier import store
from kizashi.notifier.service import NotifierService

DELIVERY_NAMESPACE = uuid.UUID("5f1d3c3e-9b7a-4c61-8d0e-6a2b7f4e9c10")


def delivery_id_for(signal_id: str, receiver: str) -> str:
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{signal_id}\x1f{receiver}"))


async def handle_signals(service: NotifierService, records: list[ConsumerRecord]) -> Rejected:
    rejected: Rejected = []
    intents = []
    for record in records:
        try:
            signal = signal_adapter.validate_json(record.value)
        except (ValidationError, ValueError) as error:
            rejected.append((record, PermanentRecordError(f"schema violation: {error}")))
            continue
        for match in service.routing.route(signal):
            intents.append(
                store.Intent(
                    delivery_id=delivery_id_for(signal.signal_id, match.receiver.name),
                    signal_id=signal.signal_id,
                    receiver=match.receiver.name,
                    channel=match.receiver.type,
                    payload=signal.model_dump(mode="json"),
                    digest_s=match.digest.total_seconds() if match.digest else None,
                )
            )
    if intents:
        async with raw_transaction(service.engine) as connection:
            await store.record_intents(connection, intents)
        service.wake.set()
    return rejected
