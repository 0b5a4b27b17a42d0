"""What reps know (issue #18): a `rep_observation` event, one model per kind, each with its
own structured fields. It carries the envelope of every event (so its limits are theirs) plus
`author` (a user's email, which ingest checks against `users`), `kind` and a `note`.

Observations travel on their own topic (topics.REP_OBSERVATIONS), which scoring consumes
with the input events (it decodes each topic with its own adapter: `rep_observation_adapter`
here). Ingest decodes with `ingest_event_adapter`, which holds both.

The nine kinds below are the built-in ones, each with its model. A team's own kinds
(observations.yaml, kizashi.runtime.observation_kinds) travel as `CustomObservation`: any
`kind` that is not built-in, with its values in a flat `fields` object. The contract bounds
that object (MAX_CUSTOM_FIELDS identifier keys; text, number or true/false values); which kinds
exist and what their fields are is configuration, checked by ingest.
"""

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    Tag,
    TypeAdapter,
)

from kizashi.contracts.events import (
    AccountUpdate,
    EmailAddress,
    EmailEngagement,
    EventEnvelope,
    ProductUsage,
    Purchase,
    SupportTicket,
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


# A custom kind's fields: at most this many, each value text (dates as ISO text), a number
# or true/false; which names and types a kind has is observations.yaml's to say.
MAX_CUSTOM_FIELDS = 32
CUSTOM_TAG = "custom"
CustomValue = StrictBool | StrictInt | StrictFloat | Note


BUILTIN_MODELS: tuple[type[_Observation], ...] = (
    RenewalTiming,
    KeyPersonChange,
    Relocation,
    PolicyChange,
    CompetitorTrouble,
    CustomerPain,
    SatisfactionWithRep,
    OutcomeRealised,
    PhaseEvidence,
)
OBSERVATION_KINDS: tuple[str, ...] = tuple(
    m.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in BUILTIN_MODELS
)


class CustomObservation(_Observation):
    """A kind a team configured (observations.yaml), not one of the built-in nine."""

    # Never a built-in kind (the union routes those to their models); the JSON Schema says
    # so too, so that each event matches exactly one member of its `oneOf`.
    kind: Annotated[Identifier, Field(json_schema_extra={"not": {"enum": list(OBSERVATION_KINDS)}})]
    fields: dict[Identifier, CustomValue] = Field(
        default_factory=dict, max_length=MAX_CUSTOM_FIELDS
    )


def _kind_tag(value: Any) -> str | None:
    """The union member an observation is decoded with: its built-in kind, else custom."""
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    if kind is None:
        return None
    return kind if kind in OBSERVATION_KINDS else CUSTOM_TAG


RepObservation = Annotated[
    Annotated[RenewalTiming, Tag("renewal_timing")]
    | Annotated[KeyPersonChange, Tag("key_person_change")]
    | Annotated[Relocation, Tag("relocation")]
    | Annotated[PolicyChange, Tag("policy_change")]
    | Annotated[CompetitorTrouble, Tag("competitor_trouble")]
    | Annotated[CustomerPain, Tag("customer_pain")]
    | Annotated[SatisfactionWithRep, Tag("satisfaction_with_rep")]
    | Annotated[OutcomeRealised, Tag("outcome_realised")]
    | Annotated[PhaseEvidence, Tag("phase_evidence")]
    | Annotated[CustomObservation, Tag(CUSTOM_TAG)],
    Discriminator(
        _kind_tag,
        custom_error_type="missing_kind",
        custom_error_message="missing observation kind",
    ),
]
rep_observation_adapter: TypeAdapter[RepObservation] = TypeAdapter(RepObservation)

# What ingest's native API accepts: the input events and observations.
IngestEvent = Annotated[
    ProductUsage
    | EmailEngagement
    | WebVisit
    | SurveyResponse
    | AccountUpdate
    | SupportTicket
    | Purchase
    | RepObservation,
    Field(discriminator="type"),
]
ingest_event_adapter: TypeAdapter[IngestEvent] = TypeAdapter(IngestEvent)
