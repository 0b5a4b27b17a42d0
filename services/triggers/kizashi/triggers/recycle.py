"""The recycle process (issue #21), pure, no I/O: when an opportunity resolved "not now" puts
its account back in front of a rep, and the signal it comes back with.

Resolving an opportunity takes a reason (kizashi.contracts.resolutions). A "not now" reason
parks the account (`park`): `timing` until its months have passed, `no_budget` until the
account's next fiscal year starts, `no_need` until its OP has risen by rules.yaml's `op_rise`,
`not_contacted` not at all (the next sweep returns it, to `reassign_to` when one is set).
The sweep returns the due ones and the consumer the `no_need` ones whose OP has risen
(kizashi.triggers.returns); each entry returns once, as one `recycled` opportunity whose first
reason says why it is back (`came_back`)."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.resolutions import NOT_NOW, RECYCLE_RULE, RESOLUTION_REASONS
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.contracts.signals import OpportunitySignal
from kizashi.triggers.engine import signal_id_for
from kizashi.triggers.rules.base import n
from kizashi.triggers.rules.catalogue import RecycleConfig


@dataclass(frozen=True)
class Parked:
    """What a "not now" resolution puts on the recycle list."""

    reason: str
    months: int | None
    # When the clock returns it (timing, no_budget, not_contacted); None for no_need.
    returns_at: datetime | None
    # no_need: the OP at the resolution and the OP that returns it.
    op_at_set: float | None
    op_target: float | None
    # Who it goes back to: reassign_to for not_contacted when set, else the owner.
    return_to: str | None
    # no_budget: whether the account's fiscal year end was known (else the fallback).
    fiscal_year_known: bool | None = None


def entry(
    parked: Parked,
    *,
    signal_id: str,
    account_id: str,
    rule: str,
    set_at: datetime,
    set_by: str,
    owner: str | None,
) -> dict[str, Any]:
    """A recycle entry as the `recycle` table keeps it (kizashi.triggers.repository.recycle.park
    writes these columns) and as `came_back` and `return_signal` read it: the offline replay
    (kizashi.tools.replay) keeps its recycle list as these."""
    return {
        "signal_id": signal_id,
        "account_id": account_id,
        "rule": rule,
        "reason": parked.reason,
        "months": parked.months,
        "set_at": set_at,
        "set_by": set_by,
        "owner": owner,
        "return_to": parked.return_to,
        "returns_at": parked.returns_at,
        "fiscal_year_known": parked.fiscal_year_known,
        "op_at_set": parked.op_at_set,
        "op_target": parked.op_target,
    }


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole calendar months; the day is kept, or the month's last when shorter
    (31 January + 1 month = 28 or 29 February)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def fiscal_year_end_month(facts: Mapping[str, Any] | None) -> int | None:
    """The account's fiscal year end month (1–12) from its facts (an `account` dict of a
    scores.changed or a signal), or None when absent or not a month. Read defensively: the
    field is new (issue #21, item 2), and older changes do not carry it."""
    value = (facts or {}).get("fiscal_year_end_month")
    if isinstance(value, bool):
        return None
    if isinstance(value, str):  # JSON text out of PostgreSQL: "3", or a feature's "3.0"
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():  # features are floats
        value = int(value)
    if isinstance(value, int) and 1 <= value <= 12:
        return value
    return None


def next_fiscal_year_start(
    facts: Mapping[str, Any] | None, resolved_at: datetime, fallback_months: int = 12
) -> tuple[datetime, bool]:
    """When `no_budget` returns: the first day (00:00 UTC) of the month after the account's
    fiscal year end, the first such day after `resolved_at`; without a known fiscal year end,
    `fallback_months` after `resolved_at`. The flag says which of the two it is."""
    month = fiscal_year_end_month(facts)
    if month is None:
        return add_months(resolved_at, fallback_months), False
    start_month = month % 12 + 1
    at = resolved_at.astimezone(UTC)
    start = datetime(at.year, start_month, 1, tzinfo=UTC)
    if start <= at:
        start = datetime(at.year + 1, start_month, 1, tzinfo=UTC)
    return start, True


def park(
    reason: str,
    months: int | None,
    *,
    now: datetime,
    account: Mapping[str, Any] | None,
    op: float | None,
    owner: str | None,
    config: RecycleConfig,
) -> Parked | None:
    """The recycle entry a resolution makes; None for a reason that is not "not now"."""
    if reason not in NOT_NOW:
        return None
    if reason == "timing":
        assert months is not None, "validated before (resolution_problem)"
        return Parked(reason, months, add_months(now, months), None, None, owner)
    if reason == "no_budget":
        at, known = next_fiscal_year_start(account, now, config.no_budget.fallback_months)
        return Parked(reason, None, at, None, None, owner, fiscal_year_known=known)
    if reason == "no_need":
        base = op or 0.0
        return Parked(reason, None, None, base, base + config.no_need.op_rise, owner)
    reassign = config.not_contacted.reassign_to
    return Parked(reason, None, now, None, None, (reassign or owner or "").lower() or None)


def _one_line(value: object, limit: int = 120) -> str:
    """Free text (who set it) on one line, clipped: reasons are plain text, each channel
    escapes them for itself (kizashi.notifier.render; the console's templates)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def came_back(entry: Mapping[str, Any], op_now: float | None = None) -> list[str]:
    """The returning signal's reasons: why it is back first ("came back: timing was 3
    months, set on 2026-09-01 by dana@…"), then what it was parked from."""
    reason = entry["reason"]
    setting = f"set on {entry['set_at']:%Y-%m-%d} by {_one_line(entry['set_by'])}"
    if reason == "timing":
        months = entry["months"]
        why = f"came back: timing was {months} month{'' if months == 1 else 's'}, {setting}"
    elif reason == "no_budget":
        why = f"came back: no budget, {setting}; its new fiscal year starts now"
        if not entry.get("fiscal_year_known"):
            why = f"came back: no budget, {setting}; fiscal year end unknown, so a year on"
    elif reason == "no_need":
        rise = f"OP rose from {n(entry['op_at_set'], 0)}"
        if op_now is not None:
            rise += f" to {n(op_now, 0)}"
        why = f"came back: no need, {setting}; {rise} (asked: {n(entry['op_target'], 0)})"
    else:
        why = f"came back: not contacted yet, {setting}"
        owner, to = entry.get("owner"), entry.get("return_to")
        if to and to != owner:
            why += f"; now for {_one_line(to)}" + (f" (was {_one_line(owner)})" if owner else "")
    parked_from = f"Parked from the {_one_line(entry['rule'])} opportunity ({entry['signal_id']})"
    return [why, parked_from]


def headline(entry: Mapping[str, Any]) -> str:
    words = RESOLUTION_REASONS.get(entry["reason"], entry["reason"]).split(":")[0].lower()
    return f"back after {words}"


def return_signal(
    entry: Mapping[str, Any],
    *,
    account: AccountFacts,
    scores: ScoreSnapshot,
    phase: int | None,
    now: datetime,
    config: RecycleConfig,
) -> OpportunitySignal:
    """The opportunity a recycle entry comes back as. Its id follows from the entry (the
    resolved signal's id), so a second sweep, a second replica or a replay makes the same
    signal, which is stored and sent once. When the entry goes to someone other than the
    owner (not_contacted's reassign_to), the signal's account names them as its owner, which
    is who the notifier routes it to."""
    episode = f"{RECYCLE_RULE}:{entry['signal_id']}"
    to = entry.get("return_to")
    if to and to != (account.owner_email or "").lower():
        account = account.model_copy(update={"owner_email": to, "owner_slack": None})
    return OpportunitySignal(
        signal_id=signal_id_for(entry["account_id"], RECYCLE_RULE, episode),
        rule=RECYCLE_RULE,
        account_id=entry["account_id"],
        priority=scores.priority,
        episode=episode,
        fired_at=now,
        reasons=came_back(entry, scores.op),
        suggested_play=config.suggested_play,
        headline=headline(entry),
        account=account,
        scores=scores,
        phase=phase,
    )


def returned_signal_id(account_id: str, entry_id: str) -> str:
    """The id of the signal an entry came (or will come) back as."""
    return signal_id_for(account_id, RECYCLE_RULE, f"{RECYCLE_RULE}:{entry_id}")
