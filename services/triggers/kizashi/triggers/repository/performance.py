"""The SQL of a rule's record and of outcomes (issue #19): outcomes stored once each, an
account's outcomes, and each rule's figures over a period: fired, feedback, outcomes (won,
confirmed, averted), first actions. Set-based; every value a bound parameter."""

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from kizashi.contracts.outcomes import (
    AVERTED_BY,
    CONFIRMED_BY,
    DEFAULT_OUTCOME_WINDOW,
    WON_BY,
    OutcomeFact,
)

# Steps a person took (kizashi.triggers.lifecycle names them by the status they lead to); the
# first one after a signal fired is its "first action". The service's own steps (kizashi:…,
# auto-resolve and snoozes ending) are no one's action.
FIRST_ACTIONS = ["acknowledged", "snoozed", "resolved", "feedback"]


async def insert_outcomes(
    *,
    conn: asyncpg.Connection,
    account_ids: Sequence[str],
    outcomes: Sequence[OutcomeFact],
    source: str,
    recorded_by: str | None = None,
    note: str | None = None,
) -> set[str]:
    """Store outcomes (account_ids[i] is outcomes[i]'s account) in one statement; one already
    stored (a replay: the same deterministic id) is left as it is. The ids stored now."""
    if not outcomes:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO outcomes (outcome_id, account_id, kind, occurred_at, amount, source,
                              recorded_by, note)
        SELECT id, account, kind, occurred_at, amount, $6, $7, $8
        FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::float8[])
             AS u(id, account, kind, occurred_at, amount)
        ORDER BY id
        ON CONFLICT (outcome_id) DO NOTHING
        RETURNING outcome_id
        """,
        [o.outcome_id for o in outcomes],
        list(account_ids),
        [o.kind for o in outcomes],
        [o.occurred_at for o in outcomes],
        [o.amount for o in outcomes],
        source,
        recorded_by,
        note,
    )
    return {row["outcome_id"] for row in rows}


async def account_owner(*, conn: asyncpg.Connection, account_id: str) -> tuple[str | None] | None:
    """(owner_email,) of an account triggers knows (from its latest change), lower-case; None
    when it has seen no change of the account."""
    row = await conn.fetchrow(
        """SELECT lower(latest -> 'account' ->> 'owner_email') AS owner
           FROM trigger_accounts WHERE account_id = $1""",
        account_id,
    )
    return None if row is None else (row["owner"],)


async def get_outcome(*, conn: asyncpg.Connection, outcome_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT outcome_id, account_id, kind, occurred_at, amount, source, recorded_by, note,
               recorded_at
        FROM outcomes WHERE outcome_id = $1
        """,
        outcome_id,
    )


async def account_outcomes(
    *, conn: asyncpg.Connection, account_id: str, limit: int = 100
) -> list[asyncpg.Record]:
    """An account's outcomes, newest first."""
    return await conn.fetch(
        """
        SELECT outcome_id, account_id, kind, occurred_at, amount, source, recorded_by, note,
               recorded_at
        FROM outcomes WHERE account_id = $1
        ORDER BY occurred_at DESC, outcome_id DESC LIMIT $2
        """,
        account_id,
        limit,
    )


async def rule_performance(
    *,
    conn: asyncpg.Connection,
    rules: Sequence[str],
    since: datetime | None,
    until: datetime,
    window: timedelta = DEFAULT_OUTCOME_WINDOW,
) -> list[asyncpg.Record]:
    """Per rule, and per rule and calendar month (UTC) of firing, over signals fired in
    [since, until): signals fired, their current feedback (useful / not useful), their
    outcomes within `window` of firing (an opportunity `won` when an expansion followed; a
    churn risk `confirmed` when churn or a contraction followed, else `averted` when the
    account renewed), how many had a first action and the median seconds from firing to it.
    One pass over the rules' signals (index signals_rule_fired), their actions and their
    accounts' outcomes (index outcomes_account_occurred); a row whose `month` is NULL is the
    rule's whole period. Months with no signal have no row. Which outcome kinds win, confirm
    or avert are kizashi.contracts.outcomes' (bound, so the backtest and this agree)."""
    return await conn.fetch(
        """
        WITH fired AS (
            SELECT signal_id, account_id, kind, rule, fired_at, feedback_useful,
                   to_char(fired_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month
            FROM signals
            WHERE rule = ANY($1::text[]) AND ($2::timestamptz IS NULL OR fired_at >= $2)
              AND fired_at < $3
        ), first_action AS (
            SELECT a.signal_id, min(a.at) AS at
            FROM signal_actions a JOIN fired f ON f.signal_id = a.signal_id
            WHERE a.action = ANY($4::text[]) AND a.actor NOT LIKE 'kizashi:%'
            GROUP BY a.signal_id
        ), followed AS (
            SELECT f.signal_id,
                   bool_or(o.kind = ANY($6::text[])) AS expanded,
                   bool_or(o.kind = ANY($7::text[])) AS lost,
                   bool_or(o.kind = ANY($8::text[])) AS renewed
            FROM fired f JOIN outcomes o
              ON o.account_id = f.account_id
             AND o.occurred_at >= f.fired_at AND o.occurred_at < f.fired_at + $5::interval
            GROUP BY f.signal_id
        )
        SELECT f.rule, f.month, count(*) AS fired,
               count(*) FILTER (WHERE f.feedback_useful) AS useful,
               count(*) FILTER (WHERE NOT f.feedback_useful) AS not_useful,
               count(*) FILTER (WHERE f.kind = 'opportunity' AND o.expanded) AS won,
               count(*) FILTER (WHERE f.kind = 'churn_risk' AND o.lost) AS confirmed,
               count(*) FILTER (WHERE f.kind = 'churn_risk' AND o.renewed AND NOT o.lost)
                   AS averted,
               count(fa.at) AS acted,
               percentile_cont(0.5) WITHIN GROUP
                   (ORDER BY extract(epoch FROM fa.at - f.fired_at)) AS median_first_action_s
        FROM fired f
             LEFT JOIN first_action fa ON fa.signal_id = f.signal_id
             LEFT JOIN followed o ON o.signal_id = f.signal_id
        GROUP BY GROUPING SETS ((f.rule), (f.rule, f.month))
        ORDER BY f.rule, f.month NULLS FIRST
        """,
        list(rules),
        since,
        until,
        FIRST_ACTIONS,
        window,
        list(WON_BY),
        list(CONFIRMED_BY),
        list(AVERTED_BY),
    )
