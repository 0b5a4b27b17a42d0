"""The triggers service's tables. It alone writes them."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB

metadata = MetaData()

signals = Table(
    "signals",
    metadata,
    # Deterministic from (account, rule, episode): a replay upserts the same row.
    Column("signal_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("priority", Text, nullable=False),
    Column("episode", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="open"),
    Column("snoozed_until", DateTime(timezone=True), nullable=True),
    Column("fired_at", DateTime(timezone=True), nullable=False),
    Column("status_changed_at", DateTime(timezone=True), nullable=True),
    Column("status_changed_by", Text, nullable=True),
    # The whole signal as emitted: reasons, suggested play, account and score snapshots.
    Column("payload", JSONB, nullable=False),
    # The last feedback given (0015): the history is signal_actions' 'feedback' rows.
    Column("feedback_useful", Boolean, nullable=True),
    Column("feedback_reason", Text, nullable=True),
    Column("feedback_by", Text, nullable=True),
    Column("feedback_at", DateTime(timezone=True), nullable=True),
    # Why a person resolved it (0023; kizashi.contracts.resolutions): opportunities only.
    Column("resolution", Text, nullable=True),
    Column("resolution_months", Integer, nullable=True),
    # The figures the rule read when it fired, for the rules a correction re-reads them for
    # (kizashi.triggers.corrections.MEASURED; 0020); null for the others.
    Column("measures", JSONB, nullable=True),
    # Each measure a rule may watch (CS, usage) as it stood when the signal was snoozed
    # (0017; kizashi.triggers.worse); NULL when not snoozed.
    Column("snooze_measures", JSONB, nullable=True),
    Index("signals_account_fired", "account_id", "fired_at"),
    Index("signals_status", "status", "fired_at"),
    Index("signals_rule_fired", "rule", "fired_at"),
    # The snoozed signals of a batch's accounts that watch a measure (0017).
    Index(
        "signals_snoozed_watching",
        "account_id",
        postgresql_where=text("status = 'snoozed' AND snooze_measures IS NOT NULL"),
    ),
)

signal_actions = Table(
    "signal_actions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("signal_id", Text, nullable=False, index=True),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("detail", JSONB, nullable=True),
)

rule_states = Table(
    "rule_states",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("rule", Text, primary_key=True),
    Column("armed", Boolean, nullable=False, server_default="true"),
    Column("episode", Integer, nullable=False, server_default="0"),
    Column("last_fired_at", DateTime(timezone=True), nullable=True),
    Column("condition_since", DateTime(timezone=True), nullable=True),
    Column("cleared_since", DateTime(timezone=True), nullable=True),
    Column("last_value", Float, nullable=True),
)

trigger_accounts = Table(
    "trigger_accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    # The latest scores.changed seen for the account: what the periodic sweep evaluates.
    # json, not jsonb, here and in cs_history: rewritten on every change, read whole (0005).
    Column("latest", JSON, nullable=False),
    # Recent (time, cs) points, for health_drop.
    Column("cs_history", JSON, nullable=False, server_default="[]"),
    Column("fired_day", Date, nullable=True),
    Column("fired_today", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # When time alone can next change a time-driven rule (or auto-resolve a signal); NULL when
    # nothing can until the next scores.changed. The sweep reads only the accounts due.
    Column("next_sweep_at", DateTime(timezone=True), nullable=True),
    Index("trigger_accounts_next_sweep", "next_sweep_at"),
)

# What happened to accounts (0016; kizashi.contracts.outcomes): from account_updates (carried
# on scores.changed, source 'crm') and from the outcome API and the console's form ('api',
# 'console'). Read against signals by account and time (GET /v1/rules/{name}/performance).
outcomes = Table(
    "outcomes",
    metadata,
    Column("outcome_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("amount", Float, nullable=True),
    Column("source", Text, nullable=False),
    Column("recorded_by", Text, nullable=True),
    Column("note", Text, nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("outcomes_account_occurred", "account_id", "occurred_at"),
)

# The recycle list (0023; kizashi.triggers.recycle): one entry per opportunity resolved "not
# now", keyed by that signal. 'waiting' until it returns ('returned', as the opportunity
# signal_id_for(account, 'recycled', 'recycled:<signal_id>')) or a later "not now" on the
# same account replaces it ('superseded').
recycle = Table(
    "recycle",
    metadata,
    Column("signal_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("months", Integer, nullable=True),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("set_by", Text, nullable=False),
    # The account's owner at the resolution (lower-case), and who it goes back to.
    Column("owner", Text, nullable=True),
    Column("return_to", Text, nullable=True),
    # When the clock returns it (timing, no_budget, not_contacted); NULL for no_need.
    Column("returns_at", DateTime(timezone=True), nullable=True),
    Column("fiscal_year_known", Boolean, nullable=True),
    # no_need: the OP at the resolution and the OP that returns it.
    Column("op_at_set", Float, nullable=True),
    Column("op_target", Float, nullable=True),
    Column("status", Text, nullable=False, server_default="waiting"),
    Column("returned_at", DateTime(timezone=True), nullable=True),
    # The sweep's due entries and the consumer's no_need probes, waiting ones only.
    Index(
        "recycle_waiting_due",
        "returns_at",
        postgresql_where=text("status = 'waiting' AND returns_at IS NOT NULL"),
    ),
    Index(
        "recycle_waiting_op",
        "account_id",
        postgresql_where=text("status = 'waiting' AND op_target IS NOT NULL"),
    ),
    Index("recycle_account", "account_id"),
)
