"""Outcomes: what happened to an account after the signals (issue #19, item 2). A renewal, a
churn, an expansion or a contraction is a fact with a date and an amount (the ARR it moved,
when known). Scoring derives them from `account_update` events (an ARR, seat or plan change,
a later renewal date, `status: churned`) and carries them on `scores.changed`; triggers
stores them, with the ones given through its outcome API and the console's form, and reads
them against its signals: an opportunity is `won` when an expansion follows within the
window, a churn risk `confirmed` when churn or a contraction does, `averted` when the account
renews."""

from collections.abc import Iterable
from datetime import datetime, timedelta
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


# -- What an outcome says about a signal: one definition for triggers' performance figures
# (its SQL binds these kinds) and for `kizashi backtest --outcomes`.
DEFAULT_OUTCOME_WINDOW = timedelta(days=90)
# An opportunity is won by an expansion; a churn risk is confirmed by a churn or a
# contraction, and averted by a renewal (when nothing confirmed it).
WON_BY: tuple[str, ...] = ("expansion",)
CONFIRMED_BY: tuple[str, ...] = ("churn", "contraction")
AVERTED_BY: tuple[str, ...] = ("renewal",)
# The outcomes a rule of each signal kind tries to foresee (what its recall is measured on).
FORESEEN: dict[str, tuple[str, ...]] = {"opportunity": WON_BY, "churn_risk": CONFIRMED_BY}

SignalResult = Literal["won", "confirmed", "averted"]


def within_window(fired_at: datetime, occurred_at: datetime, window: timedelta) -> bool:
    """An outcome counts for a signal when it happened at or after the firing and less than
    `window` later."""
    return fired_at <= occurred_at < fired_at + window


def signal_result(signal_kind: str, followed_by: Iterable[str]) -> SignalResult | None:
    """What the kinds of the outcomes that followed a signal within the window make of it:
    an opportunity `won`, a churn risk `confirmed` (before `averted`: a renewal after a
    contraction saved nothing), or None."""
    kinds = set(followed_by)
    if signal_kind == "opportunity":
        return "won" if kinds.intersection(WON_BY) else None
    if kinds.intersection(CONFIRMED_BY):
        return "confirmed"
    return "averted" if kinds.intersection(AVERTED_BY) else None
