"""The messages on every Kizashi topic, as pydantic v2 models: the single source of truth."""

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.deadletter import DeadLetter
from kizashi.contracts.events import (
    AccountUpdate,
    EmailEngagement,
    EventEnvelope,
    InputEvent,
    ProductUsage,
    Purchase,
    SupportTicket,
    SurveyResponse,
    WebVisit,
    input_event_adapter,
)
from kizashi.contracts.observations import RepObservation, rep_observation_adapter
from kizashi.contracts.scores import (
    AppliedEvent,
    Priority,
    ScoreComponent,
    ScoresChanged,
    ScoreSnapshot,
    Segment,
)
from kizashi.contracts.signals import (
    ChurnRiskSignal,
    OpportunitySignal,
    Signal,
    SignalKind,
    signal_adapter,
)

__all__ = [
    "AccountFacts",
    "AccountUpdate",
    "AppliedEvent",
    "ChurnRiskSignal",
    "DeadLetter",
    "EmailEngagement",
    "EventEnvelope",
    "InputEvent",
    "OpportunitySignal",
    "Priority",
    "RepObservation",
    "ProductUsage",
    "Purchase",
    "ScoreComponent",
    "ScoreSnapshot",
    "ScoresChanged",
    "Segment",
    "Signal",
    "SignalKind",
    "SupportTicket",
    "SurveyResponse",
    "WebVisit",
    "input_event_adapter",
    "rep_observation_adapter",
    "signal_adapter",
]
