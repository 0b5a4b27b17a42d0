"""Support tickets in the account state (issue #21): what `support_ticket` events fold into,
and the support features read from it. Pure; no I/O.

Kept per account, bounded, order-independent (architecture §5.4), only on accounts that sent a
ticket (`AccountState.sup`, left out of the row otherwise):

- `days`: UTC day -> `[opened, reopened]`, the last `RETENTION_DAYS` before the newest ticket
  day; merged by sum.
- `tickets`: ticket id -> `[ts, event_id, status]`, each ticket's latest step, at most
  `MAX_TICKETS`; last writer by (ts, event_id), the most recently touched tickets kept.
- `fr`: the newest `MAX_RESPONSES` first-response times `[ts, event_id, seconds]`; top-N.
- `max`: the newest ticket day; max.

Open tickets are the kept tickets whose latest step is `opened` or `reopened`. Tickets are not
kept forever: at most `MAX_TICKETS` (the most recently touched) and none whose latest step is
older than `TICKET_RETENTION_DAYS` before the newest ticket day, so a ticket whose solve never
came stops counting as open after a year. A solve or reopen of a ticket Kizashi never saw open
is accepted (it may have opened before Kizashi was connected): it is kept as that ticket's
latest step and counts its first response; it is never "open" unless its latest step is a
reopen.
"""

from statistics import median
from typing import Any

from kizashi.contracts.decay import DAY_S

# The baseline is the 90 days before the 7-day window, so day buckets reach 97 days back.
BASELINE_DAYS = 90
RETENTION_DAYS = BASELINE_DAYS + 7
TICKET_RETENTION_DAYS = 365
MAX_TICKETS = 500
MAX_RESPONSES = 25
# How far back first responses count towards the median.
RESPONSE_WINDOW_DAYS = 90
OPENED, REOPENED = 0, 1

SUPPORT_FEATURES = (
    "tickets_7d",
    "tickets_28d",
    "tickets_baseline_7d",
    "tickets_vs_baseline_7d",
    "tickets_vs_baseline_28d",
    "open_tickets",
    "reopen_rate_90d",
    "first_response_median_h",
)
NO_SUPPORT: dict[str, float | None] = dict.fromkeys(SUPPORT_FEATURES)


def fold_ticket(sup: dict[str, Any], event: Any, ts: float) -> None:
    """Fold one support_ticket event into `sup` (in place)."""
    day = int(ts // DAY_S)
    newest = sup.get("max")
    if newest is None or day > newest:
        sup["max"] = newest = day
        _prune(sup, day)
    status = event.status
    if day >= newest - RETENTION_DAYS and status != "solved":
        days = sup.setdefault("days", {})
        bucket = days.get(str(day))
        if bucket is None:
            bucket = days[str(day)] = [0, 0]
        bucket[OPENED if status == "opened" else REOPENED] += 1
    if day >= newest - TICKET_RETENTION_DAYS:
        _write_ticket(sup.setdefault("tickets", {}), event.ticket_id, [ts, event.event_id, status])
    seconds = event.first_response_s
    if seconds is not None:
        responses = sup.setdefault("fr", [])
        responses.append([ts, event.event_id, seconds])
        responses.sort(key=lambda item: (item[0], item[1]), reverse=True)
        del responses[MAX_RESPONSES:]


def _write_ticket(tickets: dict[str, list], ticket_id: str, step: list) -> None:
    """Last writer wins per ticket; past MAX_TICKETS the least recently touched ticket goes.
    A top-N by each ticket's newest (ts, event_id) with a max-merge: order-independent."""
    current = tickets.get(ticket_id)
    if current is not None:
        if (step[0], step[1]) > (current[0], current[1]):
            tickets[ticket_id] = step
        return
    tickets[ticket_id] = step
    if len(tickets) > MAX_TICKETS:
        victim = min(tickets.items(), key=lambda item: (item[1][0], item[1][1], item[0]))[0]
        del tickets[victim]


def _prune(sup: dict[str, Any], newest: int) -> None:
    """Drop what fell out of retention; depends only on the newest day, which every order of
    the same events reaches in the end."""
    days = sup.get("days")
    if days:
        for key in [key for key in days if int(key) < newest - RETENTION_DAYS]:
            del days[key]
    tickets = sup.get("tickets")
    if tickets:
        floor = (newest - TICKET_RETENTION_DAYS) * DAY_S
        for key in [key for key, step in tickets.items() if step[0] < floor]:
            del tickets[key]


def support_features(sup: dict[str, Any] | None, t: float) -> dict[str, float | None]:
    """The support features at epoch time `t`; all None for an account that never sent a
    ticket (no helpdesk connected), which is not the same as a quiet one (zeros)."""
    if not sup:
        return NO_SUPPORT
    today = int(t // DAY_S)
    opened_7 = opened_28 = baseline = opened_90 = reopened_90 = 0
    for key, (opened, reopened) in sup.get("days", {}).items():
        age = today - int(key)
        if age < 0:
            continue
        if age < 7:
            opened_7 += opened
        elif age < RETENTION_DAYS:
            baseline += opened
        if age < 28:
            opened_28 += opened
        if age < BASELINE_DAYS:
            opened_90 += opened
            reopened_90 += reopened
    weekly = baseline / BASELINE_DAYS * 7
    open_now = sum(
        1 for step in sup.get("tickets", {}).values() if step[2] != "solved" and step[0] <= t
    )
    since = t - RESPONSE_WINDOW_DAYS * DAY_S
    responses = [seconds for ts, _, seconds in sup.get("fr", ()) if since <= ts <= t]
    return {
        "tickets_7d": float(opened_7),
        "tickets_28d": float(opened_28),
        "tickets_baseline_7d": round(weekly, 4),
        "tickets_vs_baseline_7d": round(opened_7 / weekly, 4) if weekly else None,
        "tickets_vs_baseline_28d": round(opened_28 / (4 * weekly), 4) if weekly else None,
        "open_tickets": float(open_now),
        "reopen_rate_90d": round(min(1.0, reopened_90 / opened_90), 4) if opened_90 else None,
        "first_response_median_h": round(median(responses) / 3600, 3) if responses else None,
    }


def next_edge(sup: dict[str, Any] | None, today: int) -> int | None:
    """The next UTC day on which a ticket day enters or leaves a window (7, 28, 90, 97 days),
    so the sweep re-scores the account then; None when every day has left every window."""
    if not sup:
        return None
    edges = [
        day + span
        for key in sup.get("days", {})
        for day in (int(key),)
        for span in (7, 28, BASELINE_DAYS, RETENTION_DAYS)
        if day + span > today
    ]
    return min(edges, default=None)
