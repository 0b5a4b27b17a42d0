"""What `kizashi bench scale` loads: `kizashi bench console`'s accounts (one loader, set-based),
with the rows the services themselves would write for them.

Two template accounts go through the real code first: scoring's pipeline (`rescore`) folds
40 events of the scoring bench's mix into each, one with its events in the last 30 days
(active) and one whose last event is 60 days old (idle), and triggers' consumer
(`handle_changes`) reads each one's `scores.changed`. Their feature state, features,
breakdown, `trigger_accounts` row and rule states are then copied to every account, set-based:
the rows have the size and the schedule the services give them. The active accounts (1 %) are
due for both sweeps; the idle ones next at the template's own time plus n % 365 days (their
renewals spread over a year), or never. `storage` then measures what they take.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from kizashi.tools.bench.console import RowShape, load, say
from kizashi.tools.settings import ToolSettings

ACTIVE_EVERY = 100  # 1 % of the accounts are active
EVENTS_PER_ACCOUNT = 40
SIZED = (
    "accounts",
    "scores",
    "score_history",
    "trigger_accounts",
    "rule_states",
    "signals",
    "deliveries",
    "signal_actions",
)
PROFILES = {"active": 0, "idle": 60}  # days since the last event


@dataclass
class Template:
    account_id: str
    state: str
    features: str
    breakdown: str
    next_check: datetime | None
    message: bytes  # its scores.changed
    events: list[bytes]  # the input events, as ingest writes them to Kafka


@dataclass
class CountingProducer:
    """Stands in for the broker: counts what the services would have published."""

    messages: int = 0
    bytes: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)

    async def send_all(self, records) -> None:
        for record in records:
            self.messages += 1
            self.bytes += len(record.value)
            self.by_topic[record.topic] = self.by_topic.get(record.topic, 0) + 1


def templates(settings: ToolSettings, now: datetime) -> dict[str, Template]:
    from kizashi.contracts.events import input_event_adapter
    from kizashi.scoring.config import load_scoring_config
    from kizashi.scoring.pipeline import rescore
    from kizashi.scoring.repository import StoredAccount
    from kizashi.tools.bench.scoring import generate_stream

    config = load_scoring_config(settings.config_dir)
    made = {}
    for profile, days_ago in PROFILES.items():
        prefix = f"tmpl-{profile}-"
        stream = generate_stream(
            EVENTS_PER_ACCOUNT, 1, prefix=prefix, seed=7, now=now - timedelta(days_ago), days=30
        )
        account = stream[0][1]
        events = [input_event_adapter.validate_json(value) for _, _, value in stream]
        outcome = rescore(
            StoredAccount(account, None, None),
            events,
            config=config,
            now=now,
            history_since=now - timedelta(days=400),
        )
        scored = outcome.scored
        made[profile] = Template(
            account_id=account,
            state=orjson.dumps(scored.state).decode(),
            features=scored.features_json.decode(),
            breakdown=scored.breakdown_json.decode(),
            next_check=scored.next_check_at,
            message=outcome.encoded(),
            events=[value for _, _, value in stream],
        )
    return made


def shape_of(made: dict[str, Template], due: datetime) -> RowShape:
    active, idle = made["active"], made["idle"]
    return RowShape(
        state=(active.state, idle.state),
        features=(active.features, idle.features),
        breakdown=active.breakdown,
        next_check=(due, idle.next_check),
        active_every=ACTIVE_EVERY,
    )


def triggers_state(url: str, settings: ToolSettings, *, pool_size: int = 1):
    from kizashi.runtime.db import create_engine
    from kizashi.runtime.lifecycle import ServiceRuntime
    from kizashi.triggers.rules import load_rules_config
    from kizashi.triggers.settings import TriggersSettings
    from kizashi.triggers.state import TriggersState

    runtime = ServiceRuntime(
        service="triggers",
        settings=TriggersSettings(database_url=url, log_level="WARNING"),
        engine=create_engine(url, pool_size=pool_size),
    )
    runtime.producer = CountingProducer()  # type: ignore[assignment]
    return TriggersState(runtime=runtime, rules=load_rules_config(settings.config_dir))


async def load_triggers(url: str, settings: ToolSettings, made: dict[str, Template], due) -> None:
    """Triggers' rows for every scored account, copied from what its consumer wrote for the
    templates."""
    from aiokafka.structs import ConsumerRecord

    from kizashi.contracts.topics import SCORES_CHANGED
    from kizashi.runtime.db import raw_transaction
    from kizashi.triggers.consumer import handle_changes

    service = triggers_state(url, settings)
    records = [
        ConsumerRecord(SCORES_CHANGED, 0, 0, 0, 0, t.account_id.encode(), t.message, None, 0, 0, ())
        for t in made.values()
    ]
    await handle_changes(service, records)
    active, idle = made["active"].account_id, made["idle"].account_id
    template = f"""
        FROM scores s CROSS JOIN LATERAL (SELECT substr(s.account_id, 6)::int AS n) k
        JOIN {{table}} t
          ON t.account_id = CASE WHEN n % {ACTIVE_EVERY} = 1 THEN $1 ELSE $2 END
    """
    try:
        async with raw_transaction(service.engine) as connection:
            started = time.perf_counter()
            await connection.execute(
                f"""
                INSERT INTO trigger_accounts (account_id, latest, cs_history, fired_day,
                                              fired_today, updated_at, next_sweep_at)
                SELECT s.account_id, replace(t.latest::text, t.account_id, s.account_id)::json,
                       t.cs_history, t.fired_day, t.fired_today, t.updated_at,
                       CASE WHEN n % {ACTIVE_EVERY} = 1 THEN $3::timestamptz
                            ELSE t.next_sweep_at + make_interval(days => n % 365) END
                {template.format(table="trigger_accounts")}
                """,  # noqa: S608 - constant fragments only
                active,
                idle,
                due,
            )
            await connection.execute(
                f"""
                INSERT INTO rule_states (account_id, rule, armed, episode, last_fired_at,
                                         condition_since, cleared_since, last_value)
                SELECT s.account_id, t.rule, t.armed, t.episode, t.last_fired_at,
                       t.condition_since, t.cleared_since, t.last_value
                {template.format(table="rule_states")}
                """,  # noqa: S608 - constant fragments only
                active,
                idle,
            )
            for table in ("rule_states", "trigger_accounts", "signals"):
                await connection.execute(
                    f"DELETE FROM {table} WHERE account_id = ANY($1::text[])",  # noqa: S608
                    [active, idle],
                )
            say(f"  trigger_accounts, rule_states: {time.perf_counter() - started:.1f} s")
    finally:
        await service.engine.dispose()


async def load_all(
    url: str, accounts: int, settings: ToolSettings, now: datetime
) -> tuple[dict[str, float], dict[str, Template]]:
    import asyncpg

    from kizashi.runtime.db import async_url

    made = templates(settings, now)
    due = now - timedelta(minutes=1)
    timings = await load(url, accounts, 6, now, shape_of(made, due))
    started = time.perf_counter()
    await load_triggers(url, settings, made, due)
    connection = await asyncpg.connect(async_url(url).replace("+asyncpg", ""))
    try:
        await connection.execute("VACUUM ANALYZE trigger_accounts, rule_states, signals")
    finally:
        await connection.close()
    timings["triggers"] = time.perf_counter() - started
    return timings, made


# --- storage ---------------------------------------------------------------------------------


async def storage(url: str, accounts: int, made: dict[str, Template]) -> dict:
    """Bytes per account (each table's total size / N) and per event."""
    import asyncpg

    from kizashi.runtime.db import async_url

    connection = await asyncpg.connect(async_url(url).replace("+asyncpg", ""))
    try:
        sizes = {
            row["relname"]: row["bytes"]
            for row in await connection.fetch(
                "SELECT relname::text, pg_total_relation_size(oid) AS bytes FROM pg_class "
                "WHERE relname = ANY($1::text[]) AND relkind = 'r'",
                list(SIZED),
            )
        }
        # processed_events: the dedup rows of the active accounts' events, with UUID ids.
        events = max(10_000, accounts // ACTIVE_EVERY * EVENTS_PER_ACCOUNT)
        empty = await connection.fetchval("SELECT pg_total_relation_size('processed_events')")
        await connection.execute(
            """
            INSERT INTO processed_events (source, account_id, event_id, applied_at)
            SELECT 'default', 'acct-' || lpad((1 + (e / $2) * $3)::text, 6, '0'),
                   md5('bench' || e)::uuid::text, now() - make_interval(secs => e % 86400)
            FROM generate_series(0, $1 - 1) e
            """,
            events,
            EVENTS_PER_ACCOUNT,
            ACTIVE_EVERY,
        )
        await connection.execute("VACUUM ANALYZE processed_events")
        full = await connection.fetchval("SELECT pg_total_relation_size('processed_events')")
    finally:
        await connection.close()
    records = [value for t in made.values() for value in t.events]
    key = len(made["active"].account_id)
    return {
        "table_bytes": sizes,
        "per_account_bytes": {name: round(size / accounts) for name, size in sizes.items()},
        "total_per_account_bytes": round(sum(sizes.values()) / accounts),
        "processed_events_rows": events,
        "per_event_processed_bytes": round((full - empty) / events),
        "per_event_kafka_bytes": round(sum(len(v) for v in records) / len(records) + key),
        "scores_changed_bytes": {p: len(t.message) for p, t in made.items()},
    }
