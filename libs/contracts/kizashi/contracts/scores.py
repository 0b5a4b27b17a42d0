"""`kizashi.scores.changed`: an account's CS and OP moved, with the before and after values."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.outcomes import OutcomeFact

# insufficient_data: the scores' confidence is below scoring.yaml's min_confidence.
Segment = Literal["expand", "recover", "nurture", "at_risk", "insufficient_data"]
Priority = Literal["high", "medium", "low"]
Index = Literal["cs", "op"]


class ScoreComponent(BaseModel):
    """One line of a score's breakdown, in words a rep understands."""

    model_config = ConfigDict(extra="forbid")

    index: Index
    component: str
    raw: float | None
    weight: float
    points: float
    explanation: str


class ScoreSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cs: float = Field(ge=0, le=100)
    op: float = Field(ge=0, le=100)
    segment: Segment
    priority: Priority
    # How much evidence the scores stand on, 0..1 (the lower of CS's and OP's; the breakdown's
    # `confidence` lines give each and what would raise it). None from an older scoring.
    confidence: float | None = Field(default=None, ge=0, le=1)


class AppliedEvent(BaseModel):
    """A reference to an input event whose effect this change includes."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    type: str
    occurred_at: datetime
    received_at: datetime | None = None


class ObservationFact(BaseModel):
    """A rep's observation as the rules read it (kizashi.contracts.observations): who logged
    what, when, and the kind's structured fields (the note is not carried)."""

    model_config = ConfigDict(extra="forbid")

    observation_id: str
    kind: str
    occurred_at: datetime
    author: str
    fields: dict[str, str | int | bool | None] = Field(default_factory=dict)


class LateEvents(BaseModel):
    """Events of one type and source that arrived late, within their source's watermark
    (scoring.yaml `watermarks`): a span of occurrence times with no gap over an hour between
    two of them (issue #20, corrections). Triggers intersects it with the time a sent signal's
    condition covered, to retract a signal the late events show did not hold."""

    model_config = ConfigDict(extra="forbid")

    type: str
    source: str | None = None
    first_at: datetime
    last_at: datetime
    count: int = Field(ge=1)
    # product_usage only: the sum of the events' `quantity` (what the usage counters add).
    quantity: float | None = Field(default=None, ge=0)


class ScoresChanged(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str
    computed_at: datetime
    config_version: str
    before: ScoreSnapshot | None
    after: ScoreSnapshot
    breakdown: list[ScoreComponent]
    account: AccountFacts
    features: dict[str, float | None]
    # The events applied in the batch that caused this change (capped; `event_count` is exact).
    events: list[AppliedEvent] = Field(default_factory=list)
    event_count: int = 0
    # When the newest of those events happened (all of them, not only the capped list): a
    # change whose newest event is well behind `computed_at` is history arriving (a backfill,
    # a backlog), and triggers holds its clock-relative usage rules on it (docs/signals.md).
    newest_event_at: datetime | None = None
    # "events" when new events moved the scores, "sweep" when time (decay, the calendar) did.
    cause: Literal["events", "sweep", "rescore"] = "events"
    # The relationship phase (kizashi.runtime.phases) after this change, and before it (None
    # on the first score). The same on an account no rep has logged evidence for: 0.
    phase: int = 0
    phase_before: int | None = None
    # The account's recent observations the rules read (the newest few of each kind), newest
    # first; empty, and left out of the message, for an account with none.
    observations: list[ObservationFact] = Field(default_factory=list)
    # Outcomes (renewal, churn, expansion, contraction) the batch's account_updates recorded;
    # empty, and left out of the message, when there are none (issue #19).
    outcomes: list[OutcomeFact] = Field(default_factory=list)
    # The batch's events that arrived late but within their source's watermark, as spans
    # (LateEvents); empty, and left out of the message, when there are none (issue #20).
    late: list[LateEvents] = Field(default_factory=list)
