"""Each rule's record for the rules pages: triggers' signals and their actions, read-only
(architecture §11.2). The same figures as triggers' GET /v1/rules/{name}/performance
(kizashi.triggers.repository.rule_performance): a signal's current feedback, and its first
action by a person (acknowledged, snoozed, resolved or feedback; kizashi:… steps are the
service's own)."""

from collections.abc import Sequence
from datetime import datetime

import asyncpg

FIRST_ACTIONS = ["acknowledged", "snoozed", "resolved", "feedback"]


async def rule_performance(
    *,
    conn: asyncpg.Connection,
    rules: Sequence[str],
    since: datetime | None,
    until: datetime,
) -> list[asyncpg.Record]:
    """Per rule (`month` NULL) and per rule and calendar month (UTC) of signals fired in
    [since, until): fired, useful, not_useful, acted, median_first_action_s."""
    return await conn.fetch(
        """
        WITH fired AS (
            SELECT signal_id, rule, fired_at, feedback_useful,
                   to_char(fired_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month
            FROM signals
            WHERE rule = ANY($1::text[]) AND ($2::timestamptz IS NULL OR fired_at >= $2)
              AND fired_at < $3
        ), first_action AS (
            SELECT a.signal_id, min(a.at) AS at
            FROM signal_actions a JOIN fired f ON f.signal_id = a.signal_id
            WHERE a.action = ANY($4::text[]) AND a.actor NOT LIKE 'kizashi:%'
            GROUP BY a.signal_id
        )
        SELECT f.rule, f.month, count(*) AS fired,
               count(*) FILTER (WHERE f.feedback_useful) AS useful,
               count(*) FILTER (WHERE NOT f.feedback_useful) AS not_useful,
               count(fa.at) AS acted,
               percentile_cont(0.5) WITHIN GROUP
                   (ORDER BY extract(epoch FROM fa.at - f.fired_at)) AS median_first_action_s
        FROM fired f LEFT JOIN first_action fa ON fa.signal_id = f.signal_id
        GROUP BY GROUPING SETS ((f.rule), (f.rule, f.month))
        ORDER BY f.rule, f.month NULLS FIRST
        """,
        list(rules),
        since,
        until,
        FIRST_ACTIONS,
    )
