"""`kizashi.signals.opportunity` and `kizashi.signals.churn_risk`."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.scores import Priority, ScoreSnapshot

SignalKind = Literal["opportunity", "churn_risk"]


class Retraction(BaseModel):
    """Why a sent signal was retracted: late events showed its condition did not hold when it
    fired (issue #20). Set only on the message that announces the retraction."""

    model_config = ConfigDict(extra="forbid")

    at: datetime
    # Plain text, e.g. "product usage on 2026-12-01 arrived late (12 events)".
    reason: str


class SignalBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal_id: str
    rule: str
    account_id: str
    priority: Priority
    # What makes this firing distinct from earlier ones of the same (account, rule).
    episode: str
    fired_at: datetime
    reasons: list[str]
    suggested_play: str
    # What happened with its key figure, in a few words ("upsell intent 9/10").
    headline: str | None = None
    account: AccountFacts
    scores: ScoreSnapshot
    scores_before: ScoreSnapshot | None = None
    # The oldest `received_at` among the events behind this signal, for end-to-end latency.
    caused_at: datetime | None = None
    # The account's relationship phase when the signal fired (issue #18; a routing attribute).
    phase: int | None = None
    # Set on the message triggers sends again when it retracts the signal (the notifier sends
    # the owner one "Correction: …" follow-up for it); None on the signal as it fired.
    retracted: Retraction | None = None
    # Set when a snoozed signal reopened because its rule's measure got worse (issue #20): the
    # same signal, published again with what got worse as its first reason. The notifier's
    # delivery ids include it, so the reopened signal alerts once more (and only once).
    reopened_at: datetime | None = None


class OpportunitySignal(SignalBase):
    kind: Literal["opportunity"] = "opportunity"


class ChurnRiskSignal(SignalBase):
    kind: Literal["churn_risk"] = "churn_risk"


Signal = Annotated[OpportunitySignal | ChurnRiskSignal, Field(discriminator="kind")]
signal_adapter: TypeAdapter[Signal] = TypeAdapter(Signal)
