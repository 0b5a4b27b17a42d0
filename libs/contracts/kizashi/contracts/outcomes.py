"""Outcomes: what happened to an account after the signals (issue #19, item 2). A renewal, a
churn, an expansion or a contraction is a fact with a date and an amount (the ARR it moved,
when known). Scoring derives them from `account_update` events (an ARR, seat or plan change,
a later renewal date, `status: churned`) and carries them on `scores.changed`; triggers
stores them, with the ones given through its outcome API and the console's form, and reads
them against its signals: an opportunity is `won` when an expansion follows within the
window, a churn risk `confirmed` when churn or a contraction does, `averted` when the account
renews."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OutcomeKind = Literal["renewal", "churn", "expansion", "contraction"]
OUTCOME_KINDS: tuple[str, ...] = ("renewal", "churn", "expansion", "contraction")
# The words a page uses for them.
OUTCOME_WORDS: dict[str, str] = {
    "renewal": "Renewal",
    "churn": "Churn",
    "expansion": "Expansion",
    "contraction": "Contraction",
}
# The account_update status that means the customer left.
CHURNED = "churned"


class OutcomeFact(BaseModel):
    """One outcome as scores.changed carries it. `outcome_id` is deterministic (the event's id
    and the kind), so a replay stores it once."""

    model_config = ConfigDict(extra="forbid")

    outcome_id: str
    kind: OutcomeKind
    occurred_at: datetime
    # The ARR it moved (for a renewal or a churn: the ARR renewed or lost); None when unknown.
    amount: float | None = Field(default=None, ge=0)
    event_id: str | None = None
