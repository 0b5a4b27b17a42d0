"""Why an opportunity was resolved (issue #21, the recycle process), as triggers' API and the
console's resolve form take it: the reasons, their words, which of them are "not now" (the
account goes on the recycle list and comes back by rules.yaml's `recycle` rules), and the
rule name of the signal a recycled account comes back with (docs/signals.md, "Recycle")."""

from typing import Literal

ResolutionReason = Literal[
    "won", "not_contacted", "timing", "no_budget", "no_need", "lost_to_competitor"
]

# In the order a form offers them.
RESOLUTION_REASONS: dict[str, str] = {
    "won": "Won",
    "not_contacted": "Not contacted yet",
    "timing": "Timing: back in N months",
    "no_budget": "No budget",
    "no_need": "No need",
    "lost_to_competitor": "Lost to a competitor",
}
# The "not now" reasons: each puts the account on the recycle list.
NOT_NOW: frozenset[str] = frozenset({"not_contacted", "timing", "no_budget", "no_need"})
# `timing` comes with a number of months, 1 to this.
MAX_TIMING_MONTHS = 24

# The rule of the opportunity a recycled account comes back with. Not a rule of the
# catalogue (kizashi.contracts.rules): it is fired by the recycle list, not by scores.
RECYCLE_RULE = "recycled"
RECYCLE_WORDS = "came back from recycle"


def resolution_problem(kind: str, reason: str | None, months: int | None) -> str | None:
    """What is wrong with resolving a signal of `kind` with this reason, or None when it is
    acceptable. An opportunity needs a reason (no silent default), `timing` and only `timing`
    needs months; a churn risk takes no reason (they describe an opportunity's end)."""
    if kind != "opportunity":
        if reason is not None or months is not None:
            return "a churn-risk signal is resolved without a reason or months"
        return None
    if reason is None:
        return f"resolving an opportunity needs a reason: one of {', '.join(RESOLUTION_REASONS)}"
    if reason not in RESOLUTION_REASONS:
        return f"unknown reason {reason[:40]!r}: one of {', '.join(RESOLUTION_REASONS)}"
    if reason == "timing":
        if months is None:
            return f"reason 'timing' needs 'months' (1 to {MAX_TIMING_MONTHS})"
        if not 1 <= months <= MAX_TIMING_MONTHS:
            return f"'months' must be 1 to {MAX_TIMING_MONTHS}"
    elif months is not None:
        return "'months' goes only with reason 'timing'"
    return None
