"""What triggers reads of a `scores.changed`: the fields the rules, the signals and the sweep's
schedule use, validated as the contract types them (kizashi.contracts.scores.ScoresChanged).

The rest of the message (the score breakdown, two thirds of its bytes, and the bookkeeping
fields) is never built into Python objects: decoding the whole contract model took a fifth of
the consumer's time under load, half of it on the breakdown. The message's text is still kept
whole as the account's `latest` (AccountMemory.latest_json). A record without these fields,
or with one of the wrong type, is a schema violation and is dead-lettered as before.
"""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.outcomes import OutcomeFact
from kizashi.contracts.scores import AppliedEvent, LateEvents, ObservationFact, ScoreSnapshot


class RuleInput(BaseModel):
    """A `scores.changed` as the rules see it. Its fields are ScoresChanged's, with the same
    types (a unit test holds the two together); a full ScoresChanged can stand in for it."""

    model_config = ConfigDict(extra="ignore")

    account_id: str
    computed_at: datetime
    before: ScoreSnapshot | None
    after: ScoreSnapshot
    account: AccountFacts
    features: dict[str, float | None]
    events: list[AppliedEvent] = Field(default_factory=list)
    newest_event_at: datetime | None = None
    # What reps logged, for the observation rules (only accounts with some carry any).
    phase: int = 0
    observations: list[ObservationFact] = Field(default_factory=list)
    # What happened to the account (renewal, churn, expansion, contraction), stored by the
    # consumer for the rules' outcomes.
    outcomes: list[OutcomeFact] = Field(default_factory=list)
    # Events that arrived late within their source's watermark (kizashi.triggers.corrections).
    late: list[LateEvents] = Field(default_factory=list)
