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
    )
}
SCORES_CHANGED: Final = "kizashi.scores.changed"
SIGNAL_TOPICS: Final[dict[str, str]] = {
    "opportunity": "kizashi.signals.opportunity",
    "churn_risk": "kizashi.signals.churn_risk",
}
DEAD_LETTER: Final = "kizashi.deadletter"

ALL_TOPICS: Final[tuple[str, ...]] = (
    *EVENT_TOPICS.values(),
    SCORES_CHANGED,
    *SIGNAL_TOPICS.values(),
    DEAD_LETTER,
)
