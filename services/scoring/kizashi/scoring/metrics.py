import collections
from collections.abc import Sequence

from prometheus_client import Counter, Gauge

EVENTS_APPLIED = Counter(
    "kizashi_scoring_events_applied_total", "Input events applied to account state", ["type"]
)
EVENTS_DUPLICATE = Counter(
    "kizashi_scoring_events_duplicate_total",
    "Input events skipped because their event_id was already applied",
)
EVENTS_EXPIRED = Counter(
    "kizashi_scoring_events_expired_total",
    "Input events not applied because ingest received them longer ago than the dedup window",
)
PROCESSED_EVENTS_PRUNED = Counter(
    "kizashi_scoring_processed_events_pruned_total",
    "Processed event ids deleted once older than the dedup window",
)
SCORE_UPDATES = Counter(
    "kizashi_scoring_score_updates_total",
    "Account scores recomputed, by cause (events, sweep, rescore)",
    ["cause"],
)
SCORES_CHANGED_EMITTED = Counter(
    "kizashi_scoring_scores_changed_total",
    "scores.changed messages published (a meaningful move)",
    ["cause"],
)
SEGMENT_TRANSITIONS = Counter(
    "kizashi_scoring_segment_transitions_total",
    "Accounts moving between segments",
    ["from_segment", "to_segment"],
)

HISTORY_PRUNED = Counter(
    "kizashi_scoring_history_points_pruned_total",
    "Score-history points deleted for being older than the retention",
)

SEGMENT_ACCOUNTS = Gauge(
    "kizashi_scoring_accounts",
    "Scored accounts per segment (refreshed periodically; every replica reports the same totals)",
    ["segment"],
)


def record_outcomes(outcomes: Sequence, cause: str = "events") -> None:
    # Counted first, then one inc() per series: a batch has thousands of outcomes.
    SCORE_UPDATES.labels(cause).inc(len(outcomes))
    emitted = 0
    transitions: collections.Counter[tuple[str, str]] = collections.Counter()
    for outcome in outcomes:
        message = outcome.message
        if message is None:
            continue
        emitted += 1
        before = message["before"]["segment"] if message["before"] else "none"
        after = message["after"]["segment"]
        if before != after:
            transitions[before, after] += 1
    if emitted:
        SCORES_CHANGED_EMITTED.labels(cause).inc(emitted)
    for (before, after), count in transitions.items():
        SEGMENT_TRANSITIONS.labels(before, after).inc(count)
