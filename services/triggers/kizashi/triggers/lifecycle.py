"""Signal lifecycle: open → acknowledged | snoozed(until) → resolved, each step recorded.

A snooze records the measures its rule may watch (kizashi.triggers.worse): a snoozed signal
reopens before its time, once, if its rule's measure gets worse by the rule's amount."""

from datetime import datetime

import asyncpg

from kizashi.triggers import repository
from kizashi.triggers.metrics import SIGNAL_ACTIONS
from kizashi.triggers.worse import measures_at

# action → (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "ack": (("open", "snoozed"), "acknowledged"),
    "snooze": (("open", "acknowledged", "snoozed"), "snoozed"),
    "resolve": (("open", "acknowledged", "snoozed"), "resolved"),
}


class NotFound(LookupError):
    pass


class InvalidTransition(ValueError):
    pass


async def apply_action(
    connection: asyncpg.Connection,
    *,
    signal_id: str,
    action: str,
    actor: str,
    now: datetime,
    until: datetime | None = None,
) -> dict:
    allowed_from, target = TRANSITIONS[action]
    current = await repository.lock_signal_status(conn=connection, signal_id=signal_id)
    if current is None:
        raise NotFound(signal_id)
    if current not in allowed_from:
        raise InvalidTransition(f"cannot {action} a signal that is {current}")
    measures = None
    if action == "snooze":
        # What the signal's rule may watch while it sleeps (snooze unless worse).
        latest = await repository.signal_account_latest(conn=connection, signal_id=signal_id)
        measures = measures_at(latest, now)
    row = await repository.set_signal_status(
        conn=connection,
        signal_id=signal_id,
        status=target,
        snoozed_until=until if action == "snooze" else None,
        now=now,
        actor=actor,
        snooze_measures=measures,
    )
    await repository.record_actions(
        conn=connection,
        signal_ids=[signal_id],
        action=target,
        actor=actor,
        detail={"until": until.isoformat()} if until else None,
    )
    SIGNAL_ACTIONS.labels(action).inc()
    return row


async def reopen_due_snoozes(connection: asyncpg.Connection, now: datetime) -> list[str]:
    ids = await repository.reopen_due_snoozes(conn=connection, now=now)
    await repository.record_actions(
        conn=connection,
        signal_ids=ids,
        action="reopened",
        actor="kizashi:snooze-ended",
        detail=None,
    )
    SIGNAL_ACTIONS.labels("reopen").inc(len(ids))
    return ids
