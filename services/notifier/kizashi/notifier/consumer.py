"""The notifier consumer: a signal in, one recorded delivery intent per (signal, receiver).

Recording the intent is all the consumer does before committing offsets, so a signal is never
lost once consumed; the delivery worker sends what was recorded.

A delivery of an immediate route to an owner is counted against that owner's daily budget on
its receiver (kizashi.contracts.budget): in the same transaction as the rows, under a lock per
(receiver, owner, day) that every replica takes, the day so far is read from the rows and each
alert, in arrival order, either goes at once or joins the owner's next digest. The decision is
stored on the row, so a restart or a replay changes nothing."""

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.budget import (
    DailyBudget,
    Ledger,
    Tally,
    alert_rank,
    budget_day,
    budget_key,
    owner_key,
    window_end,
)
from kizashi.contracts.signals import SignalBase, signal_adapter
from kizashi.notifier import repository
from kizashi.notifier.correction import CORRECTION_SUFFIX
from kizashi.notifier.customer import CUSTOMER_CHANNEL, current_contacts, customer_intent
from kizashi.notifier.metrics import ALERTS_DEFERRED, ALERTS_WITHIN_BUDGET
from kizashi.notifier.repository import corrections as corrections_sql
from kizashi.notifier.state import NotifierState
from kizashi.notifier.transport import SendResult
from kizashi.runtime import tracing
from kizashi.runtime.consumer import PermanentRecordError, Rejected
from kizashi.runtime.db import raw_transaction

# A webhook receiver's deliveries (WebhookReceiver.type): a machine's, never a person's.
WEBHOOK_CHANNEL = "webhook"
DELIVERY_NAMESPACE = uuid.UUID("5f1d3c3e-9b7a-4c61-8d0e-6a2b7f4e9c10")


def delivery_id_for(signal_id: str, receiver: str, reopened_at: datetime | None = None) -> str:
    """One per (signal, receiver); a signal reopened because it got worse while snoozed is
    delivered once more, per reopening (its `reopened_at`)."""
    if reopened_at is None:
        key = signal_id
    else:
        key = f"{signal_id}\x1freopened {reopened_at.astimezone(UTC).isoformat()}"
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{key}\x1f{receiver}"))


def digest_owner(account: AccountFacts) -> str:
    """Whom a digest is for: the owner's email (as mail systems compare it), else Slack handle."""
    return owner_key(account) or "-"


def digest_slot(
    receiver: str, owner: str, interval: timedelta, now: datetime
) -> tuple[str, datetime]:
    """The digest a signal joins: one per (receiver, owner) per interval, sent at its end.

    Windows are aligned to the epoch (a `1d` digest closes at 00:00 UTC), so every process and
    every replay agrees on them."""
    end = window_end(interval, now)
    return f"{receiver}|{owner}|{end.timestamp():.0f}", end


@dataclass(frozen=True)
class Budgeted:
    """An immediate delivery counted against an owner's budget, before the decision."""

    intent: repository.Intent
    budget: DailyBudget
    owner: str


def plan(
    service: NotifierState, signal: SignalBase, now: datetime, parent: str | None
) -> tuple[list[repository.Intent], list[Budgeted]]:
    """The signal's deliveries: those whose route decides alone (a digest route, or no owner),
    and those of immediate routes to an owner, which the budget decides."""
    intents: list[repository.Intent] = []
    budgeted: list[Budgeted] = []
    owner = owner_key(signal.account)
    rank = alert_rank(signal)
    policy = service.routing.budget
    for match in service.routing.route(signal):
        intent = repository.Intent(
            delivery_id=delivery_id_for(signal.signal_id, match.receiver.name, signal.reopened_at),
            signal_id=signal.signal_id,
            receiver=match.receiver.name,
            channel=match.receiver.type,
            payload=signal.model_dump(mode="json"),
            traceparent=parent,
            alert_rank=rank,
        )
        if match.digest is not None:
            key, not_before = digest_slot(
                match.receiver.name, digest_owner(signal.account), match.digest, now
            )
            intents.append(replace(intent, digest_key=key, not_before=not_before))
            continue
        # A webhook feeds a machine (a CRM), not a person's attention: never budgeted, and it
        # takes no digest to defer into.
        to_person = owner is not None and match.receiver.type != WEBHOOK_CHANNEL
        budget = policy.for_owner(match.receiver.name, signal.account) if to_person else None
        if budget is None or budget.limit is None:
            intents.append(intent)  # no rep, or no limit: nothing to count
        else:
            key = budget_key(match.receiver.name, owner, budget_day(now))
            budgeted.append(Budgeted(replace(intent, budget_key=key), budget, owner))
    return intents, budgeted


async def decide_budgets(
    service: NotifierState, connection, candidates: list[Budgeted], now: datetime
) -> list[repository.Intent]:
    """Each candidate, in arrival order, sent at once or deferred to the owner's next digest.
    Runs in the transaction that records the rows; the locks it takes last until the commit."""
    if not candidates:
        return []
    # The locks first: a replica deciding for the same owner commits before we read.
    days = await repository.lock_budget_days(
        conn=connection, budget_keys=[c.intent.budget_key for c in candidates]
    )
    recorded = await repository.recorded_ids(
        conn=connection, delivery_ids=[c.intent.delivery_id for c in candidates]
    )
    # A replayed signal (recorded already, or twice in this batch) is decided once.
    unique = {c.intent.delivery_id: c for c in reversed(candidates)}
    fresh = [
        c
        for c in candidates
        if c.intent.delivery_id not in recorded
        and unique.pop(c.intent.delivery_id, None) is not None
    ]
    ledger = Ledger({key: Tally(immediate, best) for key, (immediate, best) in days.items()})
    policy = service.routing.budget
    decided = []
    for candidate in fresh:
        intent = candidate.intent
        if ledger.offer(intent.budget_key, candidate.budget, intent.alert_rank or 0.0):
            decided.append(replace(intent, budgeted="immediate"))
            continue
        key, not_before = digest_slot(intent.receiver, candidate.owner, policy.digest, now)
        decided.append(replace(intent, budgeted="deferred", digest_key=key, not_before=not_before))
    return decided


async def alert_rep_instead(
    service: NotifierState, signal: SignalBase, held: SendResult, parent: str | None
) -> SendResult:
    """A customer email held back at send time (unsubscribed, over the frequency cap, no
    contact): the signal, still open, alerts its rep through its own routes instead, but for
    its webhooks (they had it with the customer email). Each delivery has the id its route
    gives it, so a retry, a replay or another replica records it once; immediate routes count
    against the rep's budget like any alert. The rep's message says why, as its last reason.
    Returns the customer delivery's result: skipped, saying so, or a retry when PostgreSQL
    could not record the rep's alerts (the customer email's checks run again then)."""
    now = service.clock()
    note = f"Customer email held back ({held.reason}): you are alerted instead."
    noted = signal.model_copy(update={"reasons": [*signal.reasons, note]})
    alone, budgeted = plan(service, noted, now, parent)
    alone = [i for i in alone if i.channel != WEBHOOK_CHANNEL]
    if not alone and not budgeted:
        return SendResult("skipped", f"{held.reason}; no route alerts a rep instead")
    try:
        async with raw_transaction(service.engine) as connection:
            decided = await decide_budgets(service, connection, budgeted, now)
            await repository.record_intents(conn=connection, intents=[*alone, *decided])
    except Exception as error:
        why = f"{held.reason}; could not record the rep's alert: {type(error).__name__}"
        return SendResult("retry", why)
    _count(decided)
    service.wake.set()
    receivers = ", ".join(sorted({i.receiver for i in [*alone, *decided]}))
    return SendResult("skipped", f"{held.reason}; the rep is alerted instead ({receivers})")


def _count(intents: list[repository.Intent]) -> None:
    for intent in intents:
        if intent.budgeted == "immediate":
            ALERTS_WITHIN_BUDGET.labels(intent.receiver).inc()
        elif intent.budgeted == "deferred":
            ALERTS_DEFERRED.labels(intent.receiver).inc()


async def handle_signals(service: NotifierState, records: list[ConsumerRecord]) -> Rejected:
    rejected: Rejected = []
    intents: list[repository.Intent] = []
    candidates: list[Budgeted] = []
    # Retracted signals (issue #20): a correction for each of their alerts already sent.
    corrections: list[tuple[str, dict]] = []
    now = service.clock()
    # Tracing on only: a span per signal routed, ended once its deliveries are committed; the
    # rows keep its traceparent, so the worker's send joins the same trace.
    spans = tracing.record_spans("notifier route", records)
    signals: list[tuple[ConsumerRecord, SignalBase]] = []
    for record in records:
        try:
            signal = signal_adapter.validate_json(record.value)
        except (ValidationError, ValueError) as error:
            rejected.append((record, PermanentRecordError(f"schema violation: {error}")))
            continue
        if signal.retracted is not None:
            corrections.append((signal.signal_id, signal.model_dump(mode="json")))
            continue
        signals.append((record, signal))
    # The contacts the customer playbooks need and the signals lack: one read for the batch.
    contacts = await current_contacts(service, [signal for _, signal in signals])
    for record, signal in signals:
        parent = None
        if spans is not None:
            context = tracing.record_context(record)
            parent = tracing.traceparent(spans.start(context, signal_id=signal.signal_id))
        alone, budgeted = plan(service, signal, now, parent)
        # A customer playbook's email instead of the rep's alert (kizashi.notifier.customer):
        # it replaces the deliveries to people; the webhooks (machines, a CRM) still get it.
        customer = customer_intent(service, signal, contacts)
        if customer is not None:
            receiver, carried = customer
            intents.append(
                repository.Intent(
                    delivery_id=delivery_id_for(signal.signal_id, receiver, signal.reopened_at),
                    signal_id=signal.signal_id,
                    receiver=receiver,
                    channel=CUSTOMER_CHANNEL,
                    payload=carried.model_dump(mode="json"),
                    traceparent=parent,
                )
            )
            intents += [i for i in alone if i.channel == WEBHOOK_CHANNEL]
            continue
        intents += alone
        candidates += budgeted
    async with tracing.closing(spans):
        if intents or candidates or corrections:
            async with raw_transaction(service.engine) as connection:
                decided = await decide_budgets(service, connection, candidates, now)
                await repository.record_intents(conn=connection, intents=[*intents, *decided])
                # After the intents: a signal and its retraction in one batch cancel out.
                await corrections_sql.record_corrections(
                    conn=connection,
                    signals=corrections,
                    suffix=CORRECTION_SUFFIX,
                    # A customer never saw the internal signal: no correction to them.
                    uncorrected_channel=CUSTOMER_CHANNEL,
                )
            _count(decided)
            service.wake.set()
    return rejected
