"""Per-account scoring state, built from input events in any order, and its named features.

The state is a commutative summary (architecture §5.4): applying the same events in any order or
batching gives the same state, up to float rounding. Event-id dedup happens upstream, so
`apply` never sees an event twice.

How each part of the state stays order-independent:

| part | kept as | merge |
|---|---|---|
| `usage` | `[ref_ts, u7, u28]`: decayed sums at the latest usage time | rebase to max, add |
| `days` | UTC day -> `[usage, pricing, product, support, cross_sell, opens]` | sum |
| `user_days`, `feature_days` | key -> last UTC day seen in usage (at most 2,000 / 200 keys) | max |
| `contact_days` | user -> last UTC day in an email, web or survey event (at most 2,000) | max |
| `surveys` | answer -> newest two `[ts, event_id, value]` | top-2 by (ts, event_id) |
| `crm` | field -> `[ts, event_id, value]` | last writer wins; newest 200 attributes |
| `counts` | event type -> lifetime count | sum |
| `obs`, `evidence` | reps' observations (kizashi.scoring.observations) | top-N, max |
| `sup` | support tickets (kizashi.scoring.support) | sum, last writer, top-N |
| `buy` | purchases (kizashi.scoring.purchases) | sum, max |

Decay constants are fixed here, not in scoring.yaml, because they are baked into the stored
state; changing them needs a rebuild from the event log (docs/features.md fixes them too):

| counter | mean life | half-life | reads as |
|---|---|---|---|
| `usage_7d` | 7 days | 4.85 days | ≈ usage quantity in the last 7 days |
| `usage_28d` | 28 days | 19.4 days | ≈ usage quantity in the last 28 days |

Day buckets, user, contact and feature days older than 42 days before the newest event day are
dropped; every window read from them is at most 28 days, so nothing visible is lost.
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.decay import DAY_S, MEAN_LIFE_7D_S, MEAN_LIFE_28D_S
from kizashi.contracts.events import (
    InputEvent,
    ProductUsage,
    occurred,
)
from kizashi.contracts.fiscal import days_to_fiscal_year_end
from kizashi.contracts.limits import MAX_ATTRIBUTE_KEYS
from kizashi.runtime.trusted import trusted
from kizashi.scoring.attributes import ATTRIBUTE_PREFIX, cap_attributes
from kizashi.scoring.observations import fold_observation
from kizashi.scoring.purchases import (
    PURCHASE_FEATURES,
    fold_purchase,
    inferred_fiscal_year_end,
    purchase_features,
)
from kizashi.scoring.support import SUPPORT_FEATURES, fold_ticket, support_features

RETENTION_DAYS = 42
# Bounds keep the json row small for huge accounts; past them the most recent keys are kept,
# so `active_users_28d` saturates at MAX_USERS rather than growing the state without end.
MAX_USERS = 2_000
MAX_FEATURES = 200

# Indices into a day bucket.
USAGE, PRICING, PRODUCT, SUPPORT, CROSS_SELL, OPENS = range(6)
_BUCKET_SIZE = 6
CROSS_SELL_TAGS = frozenset({"cross_sell", "upsell", "new_product"})
SURVEY_ANSWERS = ("nps", "csat", "upsell_intent", "referral_intent")

# The names of docs/features.md, in its order, plus `support_visits_14d` (support-page visits,
# a priority input).
FEATURE_NAMES: tuple[str, ...] = (
    "usage_7d",
    "usage_28d",
    "usage_trend",
    "active_days_14d",
    "active_days_28d",
    "distinct_features_28d",
    "active_users_28d",
    "seats",
    "seat_utilisation",
    "pricing_visits_7d",
    "high_value_visits_7d",
    "cross_sell_clicks_14d",
    "email_opens_14d",
    "nps",
    "nps_previous",
    "nps_at",
    "csat",
    "csat_previous",
    "csat_at",
    "upsell_intent",
    "upsell_intent_at",
    "referral_intent",
    "referral_intent_at",
    "last_usage_at",
    "days_since_usage",
    "days_to_renewal",
    "arr",
    "employees",
    "support_visits_14d",
    "decision_makers_engaged_28d",
    "usage_history_days",
    # Support tickets and purchases (issue #21): None while the account has sent none.
    *SUPPORT_FEATURES,
    *PURCHASE_FEATURES,
    "fiscal_year_end_month",
    "fiscal_year_end_inferred",
    "days_to_fiscal_year_end",
)
# Conversion of purchase amounts to the reporting currency, for callers that pass none.
NO_RATES: dict[str, float] = {}


def utc_day(ts: float) -> int:
    """The UTC day number (days since the epoch) of an epoch-seconds time."""
    return int(ts // DAY_S)


@dataclass(slots=True)
class AccountState:
    """Everything scoring remembers about one account; stored as json, one row per account.

    A plain dataclass, not a pydantic model: it is only ever built by `from_json` (from rows
    `to_json` wrote) or empty, and is rebuilt for every account of every batch."""

    counts: dict[str, int] = field(default_factory=dict)
    usage: list[float] = field(default_factory=list)
    max_day: int | None = None
    days: dict[int, list[int]] = field(default_factory=dict)
    user_days: dict[str, int] = field(default_factory=dict)
    feature_days: dict[str, int] = field(default_factory=dict)
    contact_days: dict[str, int] = field(default_factory=dict)
    surveys: dict[str, list[list[Any]]] = field(default_factory=dict)
    crm: dict[str, list[Any]] = field(default_factory=dict)
    obs: dict[str, list[list[Any]]] = field(default_factory=dict)
    evidence: dict[str, list[Any]] = field(default_factory=dict)
    sup: dict[str, Any] = field(default_factory=dict)
    buy: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict | None) -> "AccountState":
        """Read a stored row back; the only conversion needed is the day keys (JSON object
        keys are strings)."""
        if not data:
            return cls()
        crm = data.get("crm", {})
        if len(crm) > _CRM_BOUND:  # a state stored before attributes were capped
            cap_attributes(crm)
        return cls(
            counts=data.get("counts", {}),
            usage=data.get("usage", []),
            max_day=data.get("max_day"),
            days={int(day): bucket for day, bucket in data.get("days", {}).items()},
            user_days=data.get("user_days", {}),
            feature_days=data.get("feature_days", {}),
            contact_days=data.get("contact_days", {}),
            surveys=data.get("surveys", {}),
            crm=crm,
            obs=data.get("obs", {}),
            evidence=data.get("evidence", {}),
            sup=data.get("sup", {}),
            buy=data.get("buy", {}),
        )

    def to_json(self) -> dict:
        """The row to store, as JSON data."""
        out = {
            "counts": self.counts,
            "usage": self.usage,
            "max_day": self.max_day,
            "days": {str(day): bucket for day, bucket in self.days.items()},
            "user_days": self.user_days,
            "feature_days": self.feature_days,
            "contact_days": self.contact_days,
            "surveys": self.surveys,
            "crm": self.crm,
        }
        # Only on accounts reps have logged something for: most rows stay as they were.
        if self.obs:
            out["obs"] = self.obs
        if self.evidence:
            out["evidence"] = self.evidence
        # Only on accounts with tickets or purchases, likewise.
        if self.sup:
            out["sup"] = self.sup
        if self.buy:
            out["buy"] = self.buy
        return out

    def apply(self, event: InputEvent) -> None:
        """Fold one input event into the state (in place; order- and batching-independent)."""
        kind: str = event.type
        self.counts[kind] = self.counts.get(kind, 0) + 1
        ts = occurred(event).timestamp()
        # Dispatch on the type tag: isinstance on pydantic models goes through ABCMeta's slow
        # path, and this runs for every event.
        if kind == "product_usage":
            self._apply_usage(event, ts)  # type: ignore[arg-type]
            return
        if kind == "rep_observation":
            fold_observation(self.obs, self.evidence, event, ts)
            return
        if kind == "support_ticket":
            fold_ticket(self.sup, event, ts)
            return
        if kind == "purchase":
            fold_purchase(self.buy, event, ts)
            return
        if event.user_id is not None and kind != "account_update":
            day = utc_day(ts)
            if self._retained(day):
                _keep_latest(self.contact_days, event.user_id, day, MAX_USERS)
        if kind == "web_visit":
            bucket = self._bucket(utc_day(ts))
            if bucket is not None:
                category = event.page_category  # type: ignore[union-attr]
                if category == "pricing":
                    bucket[PRICING] += 1
                elif category == "product":
                    bucket[PRODUCT] += 1
                elif category == "support":
                    bucket[SUPPORT] += 1
        elif kind == "email_engagement":
            bucket = self._bucket(utc_day(ts))
            if bucket is not None:
                if event.action == "open":  # type: ignore[union-attr]
                    bucket[OPENS] += 1
                elif not CROSS_SELL_TAGS.isdisjoint(event.tags):  # type: ignore[union-attr]
                    bucket[CROSS_SELL] += 1
        elif kind == "survey_response":
            for answer in SURVEY_ANSWERS:
                value = getattr(event, answer)
                if value is not None:
                    self._record_answer(answer, [ts, event.event_id, value])
        elif kind == "account_update":
            for name, value in event.facts().items():  # type: ignore[union-attr]
                if name == "attributes":
                    for key, item in value.items():
                        self._write_crm(ATTRIBUTE_PREFIX + key, ts, event.event_id, item)
                    cap_attributes(self.crm)
                else:
                    self._write_crm(name, ts, event.event_id, value)

    def _apply_usage(self, event: ProductUsage, ts: float) -> None:
        quantity = event.quantity
        usage = self.usage
        if not usage:
            usage.extend((ts, quantity, quantity))
        elif ts > usage[0]:
            # Rebase to the newer time so the reference is always the latest usage.
            dt = ts - usage[0]
            usage[0] = ts
            usage[1] = usage[1] * math.exp(-dt / MEAN_LIFE_7D_S) + quantity
            usage[2] = usage[2] * math.exp(-dt / MEAN_LIFE_28D_S) + quantity
        else:
            dt = usage[0] - ts
            usage[1] += quantity * math.exp(-dt / MEAN_LIFE_7D_S)
            usage[2] += quantity * math.exp(-dt / MEAN_LIFE_28D_S)
        day = utc_day(ts)
        bucket = self._bucket(day)
        if bucket is None:
            return
        bucket[USAGE] += 1
        if event.user_id is not None:
            _keep_latest(self.user_days, event.user_id, day, MAX_USERS)
        if event.feature is not None:
            _keep_latest(self.feature_days, event.feature, day, MAX_FEATURES)

    def _retained(self, day: int) -> bool:
        """Advance the newest day (pruning what falls out of retention); False when `day` is
        already past retention."""
        if self.max_day is None or day > self.max_day:
            self.max_day = day
            self._prune(day - RETENTION_DAYS)
            return True
        return day >= self.max_day - RETENTION_DAYS

    def _bucket(self, day: int) -> list[int] | None:
        """The day's bucket, or None when the day is already past retention."""
        if not self._retained(day):
            return None
        bucket = self.days.get(day)
        if bucket is None:
            bucket = self.days[day] = [0] * _BUCKET_SIZE
        return bucket

    def _prune(self, floor: int) -> None:
        # Pruning depends only on the newest day, which every order reaches in the end.
        for day in [day for day in self.days if day < floor]:
            del self.days[day]
        for mapping in (self.user_days, self.feature_days, self.contact_days):
            for key in [key for key, day in mapping.items() if day < floor]:
                del mapping[key]

    def _record_answer(self, answer: str, entry: list[Any]) -> None:
        entries = self.surveys.setdefault(answer, [])
        entries.append(entry)
        entries.sort(key=lambda item: (item[0], item[1]), reverse=True)
        del entries[2:]

    def _write_crm(self, name: str, ts: float, event_id: str, value: Any) -> None:
        current = self.crm.get(name)
        if current is None or (ts, event_id) > (current[0], current[1]):
            self.crm[name] = [ts, event_id, value]

    def facts_json(self, account_id: str) -> dict:
        """The CRM facts in `AccountFacts`' JSON form, each field from its latest account_update
        (by occurred_at)."""
        values: dict[str, Any] = {**_NO_FACTS, "account_id": account_id}
        attributes: dict[str, Any] = {}
        for name, (_, _, value) in self.crm.items():
            if name.startswith(ATTRIBUTE_PREFIX):
                attributes[name[len(ATTRIBUTE_PREFIX) :]] = value
            else:
                values[name] = value
        values["attributes"] = attributes
        return values

    def facts(self, account_id: str) -> AccountFacts:
        return facts_model(self.facts_json(account_id))

    def renewal_date(self) -> date | None:
        entry = self.crm.get("renewal_date")
        return None if entry is None else date.fromisoformat(entry[2])


_NO_FACTS = dict.fromkeys(AccountFacts.model_fields)
# The most CRM entries a capped state holds: every fact field and MAX_ATTRIBUTE_KEYS attributes.
_CRM_BOUND = len(_NO_FACTS) + MAX_ATTRIBUTE_KEYS


def facts_model(data: dict) -> AccountFacts:
    """`AccountFacts` from `AccountState.facts_json`. Each value was validated with the
    account_update that set it, so only the renewal date needs reading back into a date; this
    runs for every account of every batch."""
    renewal = data["renewal_date"]
    return trusted(
        AccountFacts,
        {**data, "renewal_date": None if renewal is None else date.fromisoformat(renewal)},
    )


def _keep_latest(mapping: dict[str, int], key: str, day: int, cap: int) -> None:
    """Max-merge `day` into `mapping[key]`, keeping the `cap` largest (day, key) pairs.

    Keeping the top-N of a total order with a max-merge is order-independent: a key that
    belongs in the final top-N is never evicted, and one that does not is always evicted.
    """
    previous = mapping.get(key)
    if previous is None:
        mapping[key] = day
        if len(mapping) > cap:
            victim = min(mapping.items(), key=lambda item: (item[1], item[0]))[0]
            del mapping[victim]
    elif day > previous:
        mapping[key] = day


def event_counts(state: AccountState) -> dict[str, int]:
    """Lifetime count of applied events per type."""
    return dict(state.counts)


def _answer(state: AccountState, answer: str) -> tuple[float | None, float | None, float | None]:
    """(latest value, previous value, latest time) of a survey answer."""
    entries = state.surveys.get(answer)
    if not entries:
        return None, None, None
    previous = float(entries[1][2]) if len(entries) > 1 else None
    return float(entries[0][2]), previous, float(entries[0][0])


def features_at(
    state: AccountState,
    facts: AccountFacts,
    now: datetime,
    *,
    rates: dict[str, float] = NO_RATES,
    catalogue: tuple[str, ...] = (),
) -> dict[str, float | None]:
    """The named features of docs/features.md as of `now` (None where unknown). `rates` and
    `catalogue`: scoring.yaml's purchases (amounts to the reporting currency; the products
    there are to sell)."""
    t = now.timestamp()
    today = utc_day(t)
    usage_7d = usage_28d = 0.0
    last_usage_at: float | None = None
    if state.usage:
        ref, u7, u28 = state.usage
        dt = t - ref
        usage_7d = u7 * math.exp(-dt / MEAN_LIFE_7D_S)
        usage_28d = u28 * math.exp(-dt / MEAN_LIFE_28D_S)
        last_usage_at = ref
    usage_trend = (usage_7d / 7.0) / (usage_28d / 28.0) if usage_28d > 0 else None

    since_28, since_14, since_7 = today - 27, today - 13, today - 6
    active_14 = active_28 = pricing = high_value = cross_sell = opens = support = 0
    first_usage_day = today + 1
    for day, bucket in state.days.items():
        if bucket[USAGE] and day < first_usage_day:
            first_usage_day = day
        if day < since_28:
            continue
        if bucket[USAGE]:
            active_28 += 1
            if day >= since_14:
                active_14 += 1
        if day >= since_14:
            cross_sell += bucket[CROSS_SELL]
            opens += bucket[OPENS]
            support += bucket[SUPPORT]
            if day >= since_7:
                pricing += bucket[PRICING]
                high_value += bucket[PRICING] + bucket[PRODUCT]
    users = sum(1 for day in state.user_days.values() if day >= since_28)
    distinct_features = sum(1 for day in state.feature_days.values() if day >= since_28)

    decision_makers_engaged = None
    if facts.decision_makers:
        decision_makers_engaged = float(
            sum(
                1
                for user in set(facts.decision_makers)
                if max(state.user_days.get(user, -1), state.contact_days.get(user, -1)) >= since_28
            )
        )
    seats = facts.seats
    nps, nps_previous, nps_at = _answer(state, "nps")
    csat, csat_previous, csat_at = _answer(state, "csat")
    upsell, _, upsell_at = _answer(state, "upsell_intent")
    referral, _, referral_at = _answer(state, "referral_intent")
    days_to_renewal = None
    if facts.renewal_date is not None:
        days_to_renewal = float((facts.renewal_date - now.astimezone(UTC).date()).days)
    # The fiscal year end: the CRM's (account_update fiscal_year_end), else inferred from
    # the months the account buys in.
    fiscal_month, fiscal_inferred = facts.fiscal_year_end, 0.0
    if fiscal_month is None:
        fiscal_month, fiscal_inferred = inferred_fiscal_year_end(state.buy, rates), 1.0
    return {
        "usage_7d": usage_7d,
        "usage_28d": usage_28d,
        "usage_trend": usage_trend,
        "active_days_14d": float(active_14),
        "active_days_28d": float(active_28),
        "distinct_features_28d": float(distinct_features),
        "active_users_28d": float(users),
        "seats": None if seats is None else float(seats),
        "seat_utilisation": users / seats if seats else None,
        "pricing_visits_7d": float(pricing),
        "high_value_visits_7d": float(high_value),
        "cross_sell_clicks_14d": float(cross_sell),
        "email_opens_14d": float(opens),
        "nps": nps,
        "nps_previous": nps_previous,
        "nps_at": nps_at,
        "csat": csat,
        "csat_previous": csat_previous,
        "csat_at": csat_at,
        "upsell_intent": upsell,
        "upsell_intent_at": upsell_at,
        "referral_intent": referral,
        "referral_intent_at": referral_at,
        "last_usage_at": last_usage_at,
        "days_since_usage": None
        if last_usage_at is None
        else max(0.0, (t - last_usage_at) / DAY_S),
        "days_to_renewal": days_to_renewal,
        "arr": facts.arr,
        "employees": None if facts.employees is None else float(facts.employees),
        "support_visits_14d": float(support),
        "decision_makers_engaged_28d": decision_makers_engaged,
        # Days from the first retained day with usage to today (0 with none): the evidence
        # behind the usage components (kizashi.scoring.confidence).
        "usage_history_days": float(max(0, today - first_usage_day + 1)),
        **support_features(state.sup, t),
        **purchase_features(state.buy, t, rates, catalogue),
        "fiscal_year_end_month": None if fiscal_month is None else float(fiscal_month),
        "fiscal_year_end_inferred": None if fiscal_month is None else fiscal_inferred,
        "days_to_fiscal_year_end": days_to_fiscal_year_end(fiscal_month, now),
    }
