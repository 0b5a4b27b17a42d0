"""Purchases in the account state (issue #21): what `purchase` events fold into, the
purchase features, and the fiscal year end inferred from the months an account buys in.
Pure; no I/O.

Kept per account, bounded, order-independent (architecture §5.4), only on accounts that
bought (`AccountState.buy`, left out of the row otherwise):

- `days`: UTC day -> currency -> `[orders, amount]`, the last `RETENTION_DAYS` before the
  newest purchase day (sparse: only days with an order); merged by sum.
- `products`: product -> the last UTC day bought, at most `MAX_PRODUCTS`; max, newest kept.
- `max`: the newest purchase day; max.

Amounts are kept in their own currency and converted when read, with scoring.yaml's
`purchases.rates` (a currency without a rate counts its orders, not its amount), so a new
rate needs no rebuild.
"""

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from kizashi.contracts.decay import DAY_S

# Spend over 365 days against the 365 before: two years of days.
RETENTION_DAYS = 730
MAX_PRODUCTS = 200
ORDERS, AMOUNT = 0, 1

PURCHASE_FEATURES = (
    "spend_90d",
    "spend_365d",
    "spend_prev_365d",
    "spend_growth",
    "orders_90d",
    "orders_365d",
    "products_owned",
    "cross_sell_room",
)
NO_PURCHASES: dict[str, float | None] = dict.fromkeys(PURCHASE_FEATURES)


def fold_purchase(buy: dict[str, Any], event: Any, ts: float) -> None:
    """Fold one purchase event into `buy` (in place)."""
    day = int(ts // DAY_S)
    newest = buy.get("max")
    if newest is None or day > newest:
        buy["max"] = newest = day
        _prune(buy, day)
    if day < newest - RETENTION_DAYS:
        return
    by_currency = buy.setdefault("days", {}).setdefault(str(day), {})
    bucket = by_currency.get(event.currency)
    if bucket is None:
        bucket = by_currency[event.currency] = [0, 0.0]
    bucket[ORDERS] += 1
    bucket[AMOUNT] += event.amount
    products = buy.setdefault("products", {})
    for product in (event.product, *event.products):
        previous = products.get(product)
        if previous is None:
            products[product] = day
            if len(products) > MAX_PRODUCTS:
                victim = min(products.items(), key=lambda item: (item[1], item[0]))[0]
                del products[victim]
        elif day > previous:
            products[product] = day


def _prune(buy: dict[str, Any], newest: int) -> None:
    days = buy.get("days")
    if days:
        for key in [key for key in days if int(key) < newest - RETENTION_DAYS]:
            del days[key]
    products = buy.get("products")
    if products:
        for key in [key for key, day in products.items() if day < newest - RETENTION_DAYS]:
            del products[key]


def _amount(by_currency: dict[str, list], rates: Mapping[str, float]) -> float:
    return sum(amount * rates[cur] for cur, (_, amount) in by_currency.items() if cur in rates)


def purchase_features(
    buy: dict[str, Any] | None,
    t: float,
    rates: Mapping[str, float],
    catalogue: Sequence[str],
) -> dict[str, float | None]:
    """The purchase features at epoch time `t`, spend in the reporting currency; all None for
    an account that never bought (no shop connected)."""
    if not buy:
        return NO_PURCHASES
    today = int(t // DAY_S)
    spend_90 = spend_365 = spend_prev = 0.0
    orders_90 = orders_365 = 0
    for key, by_currency in buy.get("days", {}).items():
        age = today - int(key)
        if age < 0 or age >= RETENTION_DAYS:
            continue
        amount = _amount(by_currency, rates)
        if age >= 365:
            spend_prev += amount
            continue
        orders = sum(bucket[ORDERS] for bucket in by_currency.values())
        spend_365 += amount
        orders_365 += orders
        if age < 90:
            spend_90 += amount
            orders_90 += orders
    owned = buy.get("products", {})
    room = None
    if catalogue:
        room = float(sum(1 for product in catalogue if product not in owned))
    return {
        "spend_90d": round(spend_90, 2),
        "spend_365d": round(spend_365, 2),
        "spend_prev_365d": round(spend_prev, 2),
        "spend_growth": round(spend_365 / spend_prev, 4) if spend_prev else None,
        "orders_90d": float(orders_90),
        "orders_365d": float(orders_365),
        "products_owned": float(len(owned)),
        "cross_sell_room": room,
    }


def inferred_fiscal_year_end(buy: dict[str, Any] | None, rates: Mapping[str, float]) -> int | None:
    """The month (1-12) the account's fiscal year seems to end in: among the months it bought
    in during at least two different years (of the two kept), the one with the most spend,
    then the most orders, then the later month. None when no month repeats."""
    if not buy:
        return None
    years: dict[int, set[int]] = {}
    spend: dict[int, float] = {}
    orders: dict[int, int] = {}
    for key, by_currency in buy.get("days", {}).items():
        day = date(1970, 1, 1) + timedelta(days=int(key))
        years.setdefault(day.month, set()).add(day.year)
        spend[day.month] = spend.get(day.month, 0.0) + _amount(by_currency, rates)
        orders[day.month] = orders.get(day.month, 0) + sum(b[ORDERS] for b in by_currency.values())
    repeated = [month for month, seen in years.items() if len(seen) >= 2]
    if not repeated:
        return None
    return max(repeated, key=lambda month: (spend[month], orders[month], month))


def next_edge(buy: dict[str, Any] | None, today: int) -> int | None:
    """The next UTC day on which a purchase day enters or leaves a window (90, 365, 730)."""
    if not buy:
        return None
    edges = [
        day + span
        for key in buy.get("days", {})
        for day in (int(key),)
        for span in (90, 365, RETENTION_DAYS)
        if day + span > today
    ]
    return min(edges, default=None)
