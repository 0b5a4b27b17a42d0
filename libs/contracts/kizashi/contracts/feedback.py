"""Feedback on signals and what it says about a rule: the reasons a rep may give, the periods a
rule's performance is read over, and the Wilson score interval of its precision.

Shared by triggers (which records feedback and serves GET /v1/rules/{name}/performance) and
the console (which shows both), so that the two never disagree on a reason or a figure."""

import math
import re
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

FeedbackReason = Literal["already_known", "wrong_data", "not_actionable", "false_alarm"]
# In the order a form offers them, with the words a rep reads.
REASONS: dict[str, str] = {
    "already_known": "Already known",
    "wrong_data": "Wrong data",
    "not_actionable": "Not actionable",
    "false_alarm": "False alarm",
}
# The action a feedback records in signal_actions, and the signed links' two actions.
FEEDBACK_ACTION = "feedback"
FEEDBACK_LINKS = {"useful": True, "not_useful": False}

# z for a two-sided 95 % interval.
Z95 = 1.959963984540054


class Interval(NamedTuple):
    low: float
    high: float


def wilson_interval(successes: int, trials: int, z: float = Z95) -> Interval | None:
    """The Wilson score interval of a proportion `successes / trials` (95 % by default);
    None when there are no trials (nothing is known, and 0/0 is no proportion)."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return None
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    spread = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    # At p = 0 or 1 the bound is exactly 0 or 1; rounding would leave it a hair inside.
    low = 0.0 if successes == 0 else max(0.0, centre - spread)
    high = 1.0 if successes == trials else min(1.0, centre + spread)
    return Interval(low, high)


class Precision(NamedTuple):
    """useful / (useful + not_useful), with its 95 % Wilson interval; all None with no
    feedback."""

    value: float | None
    low: float | None
    high: float | None


def precision(useful: int, not_useful: int) -> Precision:
    trials = useful + not_useful
    interval = wilson_interval(useful, trials)
    if interval is None:
        return Precision(None, None, None)
    return Precision(useful / trials, interval.low, interval.high)


# -- Periods, ending now: "30d" (days), "12w" (weeks) or "all". The trend is by calendar month.
DEFAULT_PERIOD = "90d"
_PERIOD = re.compile(r"(?P<n>[1-9]\d{0,3})(?P<unit>[dw])|all")
MAX_PERIOD_DAYS = 3660


class BadPeriod(ValueError):
    pass


def period_start(period: str, now: datetime) -> datetime | None:
    """When a period that ends now begins; None for "all". `Nd` is N days, `Nw` N weeks, up
    to ten years; anything else raises BadPeriod with what is accepted."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise BadPeriod(f"period must be like '30d', '12w' or 'all', not {period[:40]!r}")
    if period == "all":
        return None
    days = int(match["n"]) * (7 if match["unit"] == "w" else 1)
    if days > MAX_PERIOD_DAYS:
        raise BadPeriod(f"period must be at most {MAX_PERIOD_DAYS} days")
    return now - timedelta(days=days)
