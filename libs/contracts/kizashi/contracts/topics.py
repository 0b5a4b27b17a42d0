"""Every Kafka topic name, defined once."""

from typing import Final

EVENT_TOPICS: Final[dict[str, str]] = {
    event_type: f"kizashi.events.{event_type}"
    for event_type in (
        "product_usage",
        "email_engagement",
        "web_visit",
        "survey_response",
        "account_update",
        "support_ticket",
        "purchase",
    )
}
# What reps know (issue #18): its own topic, consumed by scoring with the input events.
REP_OBSERVATIONS: Final = "kizashi.events.rep_observation"
# Where ingest produces each type it accepts.
INGEST_TOPICS: Final[dict[str, str]] = {**EVENT_TOPICS, "rep_observation": REP_OBSERVATIONS}
SCORES_CHANGED: Final = "kizashi.scores.changed"
SIGNAL_TOPICS: Final[dict[str, str]] = {
    "opportunity": "kizashi.signals.opportunity",
    "churn_risk": "kizashi.signals.churn_risk",
}
DEAD_LETTER: Final = "kizashi.deadletter"

# What each consuming service reads (one consumer group each, `kizashi-<service>`).
CONSUMED_BY: Final[dict[str, tuple[str, ...]]] = {
    "scoring": (*EVENT_TOPICS.values(), REP_OBSERVATIONS),
    "triggers": (SCORES_CHANGED,),
    "notifier": tuple(SIGNAL_TOPICS.values()),
}

ALL_TOPICS: Final[tuple[str, ...]] = (
    *EVENT_TOPICS.values(),
    REP_OBSERVATIONS,
    SCORES_CHANGED,
    *SIGNAL_TOPICS.values(),
    DEAD_LETTER,
)
