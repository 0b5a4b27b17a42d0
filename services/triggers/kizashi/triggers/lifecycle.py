"""Signal lifecycle: open → acknowledged | snoozed(until) → resolved, each step recorded.

Resolving an opportunity takes a reason (kizashi.contracts.resolutions): it is kept on the
signal and in the step's detail, and a "not now" one parks the account on the recycle list
(kizashi.triggers.recycle).

A snooze records the measures its rule may watch (kizashi.triggers.worse): a snoozed signal
reopens before its time, once, if its rule's measure gets worse by the rule's amount."""

from datetime import datetime

import asyncpg
import orjson

from kizashi.contracts.resolutions import resolution_problem
from kizashi.triggers import recycle, repository
from kizashi.triggers.metrics import RECYCLE_PARKED, SIGNAL_ACTIONS
from kizashi.triggers.repository import recycle as recycle_sql
from kizashi.triggers.rules.catalogue import RecycleConfig
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


class BadResolution(ValueError):
    """A resolution's reason or months do not fit the signal (a 422)."""


async def apply_action(
    connection: asyncpg.Connection,
    *,
    signal_id: str,
    action: str,
    actor: str,
    now: datetime,
    until: datetime | None = None,
    reason: str | None = None,
    months: int | None = None,
    recycling: RecycleConfig | None = None,
) -> dict:
    allowed_from, target = TRANSITIONS[action]
    if action == "resolve":
        signal = await recycle_sql.lock_for_resolve(conn=connection, signal_id=signal_id)
        current = None if signal is None else signal["status"]
    else:
        current = await repository.lock_signal_status(conn=connection, signal_id=signal_id)
    if current is None:
        raise NotFound(signal_id)
    if current not in allowed_from:
        raise InvalidTransition(f"cannot {action} a signal that is {current}")
    detail: dict | None = {"until": until.isoformat()} if until else None
    if action == "resolve":
        if problem := resolution_problem(signal["kind"], reason, months):
            raise BadResolution(problem)
        if reason is not None:
            detail = {"reason": reason, "months": months}
            await resolve_with_reason(
                connection, signal, signal_id, reason, months, actor, now, recycling
            )
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
        detail=detail,
    )
    SIGNAL_ACTIONS.labels(action).inc()
    return row


async def resolve_with_reason(
    connection: asyncpg.Connection,
    signal: asyncpg.Record,
    signal_id: str,
    reason: str,
    months: int | None,
    actor: str,
    now: datetime,
    recycling: RecycleConfig | None,
) -> None:
    """Keep the reason on the signal; park the account when it is a "not now"."""
    await recycle_sql.set_resolution(
        conn=connection, signal_id=signal_id, reason=reason, months=months
    )
    parked = recycle.park(
        reason,
        months,
        now=now,
        account={
            **(orjson.loads(signal["account"]) if signal["account"] else {}),
            "fiscal_year_end_month": signal["fiscal_month"],
        },
        op=signal["op"],
        owner=signal["owner"],
        config=recycling or RecycleConfig(),
    )
    if parked is None:
        return
    await recycle_sql.park(
        conn=connection,
        signal_id=signal_id,
        account_id=signal["account_id"],
        rule=signal["rule"],
        parked=parked,
        set_at=now,
        set_by=actor,
        owner=signal["owner"],
    )
    RECYCLE_PARKED.labels(reason).inc()


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
