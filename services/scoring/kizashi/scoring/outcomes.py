"""Outcomes from account_update events (issue #19, item 2; kizashi.contracts.outcomes): read
against the CRM facts as they stood before the batch, in the order the updates happened.

- `status: churned` (when it was not already): a churn, its amount the ARR last known;
- the ARR up or down: an expansion or a contraction of the difference;
- the seats up or down with no ARR change: an expansion or a contraction, amount unknown;
- the renewal date moved later (on an account not churned): a renewal of the ARR.

A first value is no outcome (nothing to compare with), and neither is an update older than
the fact it would change (out of order: it never was the account's state). A plan change alone
tells no direction: it counts through the ARR or seats that come with it. Pure: no I/O."""

from collections.abc import Sequence
from typing import Any

from kizashi.contracts.events import EventEnvelope, occurred
from kizashi.contracts.outcomes import CHURNED

_WATCHED = ("arr", "seats", "renewal_date", "status")


def detect(crm: dict[str, list[Any]], events: Sequence[EventEnvelope]) -> list[dict]:
    """The outcomes `events` record, as OutcomeFact JSON data, oldest first. `crm` is the
    state's CRM entries ([ts, event_id, value] per field) before the events are applied; it
    is not changed."""
    updates = sorted(
        (occurred(e).timestamp(), e.event_id, e)
        for e in events
        if e.type == "account_update"  # type: ignore[attr-defined]
    )
    if not updates:
        return []
    current = {name: crm.get(name) for name in _WATCHED}
    found: list[dict] = []
    for ts, event_id, event in updates:
        facts = event.facts()  # type: ignore[attr-defined]
        arr_before = None if current["arr"] is None else current["arr"][2]
        changed: dict[str, tuple[Any, Any]] = {}
        for name in _WATCHED:
            if name not in facts:
                continue
            entry = current[name]
            if entry is not None and (ts, event_id) <= (entry[0], entry[1]):
                continue  # older than what is known
            current[name] = [ts, event_id, facts[name]]
            if entry is not None and entry[2] != facts[name]:
                changed[name] = (entry[2], facts[name])
            elif entry is None and name == "status" and facts[name] == CHURNED:
                changed[name] = (None, CHURNED)

        def add(kind: str, amount: float | None, event: EventEnvelope = event) -> None:
            found.append(_fact(event, kind, amount))

        status = changed.get("status")
        if status is not None and status[1] == CHURNED:
            add("churn", arr_before)
            continue
        if "arr" in changed:
            old, new = changed["arr"]
            add("expansion" if new > old else "contraction", new - old)
        elif "seats" in changed:
            old, new = changed["seats"]
            add("expansion" if new > old else "contraction", None)
        renewal = changed.get("renewal_date")
        churned = current["status"] is not None and current["status"][2] == CHURNED
        if renewal is not None and renewal[1] > renewal[0] and not churned:
            arr = current["arr"]
            add("renewal", None if arr is None else arr[2])
    return found


def _fact(event: EventEnvelope, kind: str, amount: float | None) -> dict:
    return {
        "outcome_id": f"{event.event_id}:{kind}",
        "kind": kind,
        "occurred_at": occurred(event),
        "amount": None if amount is None else float(abs(amount)),
        "event_id": event.event_id,
    }
