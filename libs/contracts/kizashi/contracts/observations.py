"""What reps know (issue #18): a `rep_observation` event, one model per kind, each with its
own structured fields. It carries the envelope of every event (so its limits are theirs) plus
`author` (a user's email, which ingest checks against `users`), `kind` and a `note`.

Observations travel on their own topic (topics.REP_OBSERVATIONS), which scoring consumes
with the input events (it decodes each topic with its own adapter: `rep_observation_adapter`
here). Ingest decodes with `ingest_event_adapter`, which holds both.
"""

from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter

from kizashi.contracts.events import (
    AccountUpdate,
    EmailAddress,
    EmailEngagement,
    EventEnvelope,
    ProductUsage,
    SurveyResponse,
    WebVisit,
)
from kizashi.contracts.limits import MAX_NOTE_LENGTH
from kizashi.contracts.text import Identifier, ShortText, Text

# Users' emails are stored lower-case (users_email_lower); an author is compared the same way.
AuthorEmail = Annotated[EmailAddress, AfterValidator(str.lower)]
Note = Annotated[Text, StringConstraints(max_length=MAX_NOTE_LENGTH)]


class _Observation(EventEnvelope):
    type: Literal["rep_observation"]
    author: AuthorEmail
    note: Note = ""


class RenewalTiming(_Observation):
    kind: Literal["renewal_timing"]
    # When the contract, or the equipment's useful life, ends.
    due_date: date


class KeyPersonChange(_Observation):
    kind: Literal["key_person_change"]
    person: ShortText
    role: ShortText
    change: Literal["left", "joined"]
    is_decision_maker: bool = Field(strict=True)


class Relocation(_Observation):
    kind: Literal["relocation"]
    # When they move (a date, or unknown).
    moving_on: date | None = None


class PolicyChange(_Observation):
    kind: Literal["policy_change"]
    direction: Literal["expansion", "cost_cutting"]


class CompetitorTrouble(_Observation):
    kind: Literal["competitor_trouble"]
    competitor: ShortText
    what: ShortText


class CustomerPain(_Observation):
    kind: Literal["customer_pain"]
    pain: Literal["urgent", "inexperienced_staff"]


class SatisfactionWithRep(_Observation):
    kind: Literal["satisfaction_with_rep"]
    # The customer's 1–5 answer, e.g. asked at a review meeting.
    satisfaction: int = Field(ge=1, le=5, strict=True)


class OutcomeRealised(_Observation):
    kind: Literal["outcome_realised"]
    # Did the customer get the result they bought for?
    outcome: Literal["yes", "partly", "no"]


class PhaseEvidence(_Observation):
    kind: Literal["phase_evidence"]
    # A criterion id of phases.yaml; ingest refuses one that is not there.
    criterion: Identifier


RepObservation = Annotated[
    RenewalTiming
    | KeyPersonChange
    | Relocation
    | PolicyChange
    | CompetitorTrouble
    | CustomerPain
    | SatisfactionWithRep
    | OutcomeRealised
    | PhaseEvidence,
    Field(discriminator="kind"),
]
OBSERVATION_KINDS: tuple[str, ...] = (
    "renewal_timing",
    "key_person_change",
    "relocation",
    "policy_change",
    "competitor_trouble",
    "customer_pain",
    "satisfaction_with_rep",
    "outcome_realised",
    "phase_evidence",
)
rep_observation_adapter: TypeAdapter[RepObservation] = TypeAdapter(RepObservation)

# What ingest's native API accepts: the five input events and observations.
IngestEvent = Annotated[
    ProductUsage | EmailEngagement | WebVisit | SurveyResponse | AccountUpdate | RepObservation,
    Field(discriminator="type"),
]
ingest_event_adapter: TypeAdapter[IngestEvent] = TypeAdapter(IngestEvent)
