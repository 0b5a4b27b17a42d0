"""An account's `attributes` stay bounded (architecture §5.11): scoring keeps the
MAX_ATTRIBUTE_KEYS most recently written keys of each account and drops the rest, counting them
(`kizashi_scoring_attributes_dropped_total`).

Ingest refuses an update with more keys, longer keys or larger attributes than the contracts
allow (kizashi.contracts.limits), so each kept attribute is small; this bounds how many there
are, whatever the updates add up to. An account's attributes, its stored state and its
`scores.changed` messages so stay under MAX_ACCOUNT_ATTRIBUTES_BYTES of attributes: no message
grows too large to publish, and no account's rules stop running.

"Most recent" is the order of (occurred_at, event_id, key) of each key's latest write, the
order the CRM facts' last-writer-wins already uses. Keeping the top N of a total order under a
max-merge is independent of the order and batching of the updates (see `_keep_latest` in
kizashi.scoring.features): a key that belongs to the final N is never dropped for good, and
one that does not is always dropped.
"""

from typing import Any

from prometheus_client import Counter

from kizashi.contracts.limits import MAX_ATTRIBUTE_KEYS

ATTRIBUTE_PREFIX = "attributes."
ATTRIBUTES_DROPPED = Counter(
    "kizashi_scoring_attributes_dropped_total",
    f"Account attributes dropped because the account had more than {MAX_ATTRIBUTE_KEYS} "
    "(the least recently written go first)",
)


def cap_attributes(crm: dict[str, list[Any]]) -> int:
    """Drop the least recently written attributes past MAX_ATTRIBUTE_KEYS from a state's CRM
    entries (`name -> [ts, event_id, value]`, attributes named `attributes.<key>`), in place;
    how many were dropped."""
    names = [name for name in crm if name.startswith(ATTRIBUTE_PREFIX)]
    excess = len(names) - MAX_ATTRIBUTE_KEYS
    if excess <= 0:
        return 0
    names.sort(key=lambda name: (crm[name][0], crm[name][1], name))
    for name in names[:excess]:
        del crm[name]
    ATTRIBUTES_DROPPED.inc(excess)
    return excess
