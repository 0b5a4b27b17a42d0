"""Signal lifecycle: open → acknowledged | snoozed(until) → resolved, each step recorded."""

from datetime import datetime

import asyncpg

from kizashi.triggers import store
from kizashi.triggers.metrics import SIGNAL_ACTIONS

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
    current = await connection.fetchrow(
        "SELECT status FROM signals WHERE signal_id = $1 FOR UPDATE", signal_id
    )
    if current is None:
        raise NotFound(signal_id)
    if current["status"] not in allowed_from:
        raise InvalidTransition(f"cannot {action} a signal that is {current['status']}")
    row = await connection.fetchrow(
        """
        UPDATE signals SET status = $2, snoozed_until = $3, status_changed_at = $4,
               status_changed_by = $5
        WHERE signal_id = $1
        RETURNING signal_id, status, snoozed_until, status_changed_at, status_changed_by
        """,
        signal_id,
        target,
        until if action == "snooze" else None,
        now,
        actor,
    )
    detail = {"until": until.isoformat()} if until else None
    await store.record_actions(connection, [signal_id], target, actor, detail)
    SIGNAL_ACTIONS.labels(action).inc()
    return dict(row)


async def reopen_due_snoozes(connection: asyncpg.Connection, now: datetime) -> list[str]:
    rows = await connection.fetch(
        """
        UPDATE signals SET status = 'open', snoozed_until = NULL, status_changed_at = $1,
               status_changed_by = 'kizashi:snooze-ended'
        WHERE status = 'snoozed' AND snoozed_until <= $1
        RETURNING signal_id
        """,
        now,
    )
    ids = [row["signal_id"] for row in rows]
    await store.record_actions(connection, ids, "reopened", "kizashi:snooze-ended", None)
    SIGNAL_ACTIONS.labels("reopen").inc(len(ids))
    return ids
