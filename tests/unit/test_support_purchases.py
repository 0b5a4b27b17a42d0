"""Support tickets and purchases (issue #21): their features, in any order; the fiscal year
end, given or inferred; their parts of CS and OP; the two rules' readings."""

from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest

from kizashi.contracts.events import input_event_adapter
from kizashi.contracts.fiscal import days_to_fiscal_year_end
from kizashi.scoring.features import AccountState, features_at
from kizashi.scoring.indices import score
from kizashi.scoring.support import MAX_TICKETS
from kizashi.triggers.rules import load_rules_config
from kizashi.triggers.rules.base import Context
from tests.unit.scoring_events import CONFIG, NOW, event, state_of

DAY = timedelta(days=1)
RATES = {"USD": 1.0, "EUR": 2.0}


def ticket(at: datetime, ticket_id: str, status: str = "opened", **fields):
    return event("support_ticket", at, ticket_id=ticket_id, status=status, **fields)


def buy(at: datetime, amount: float, product: str = "core", currency: str = "USD"):
    # `event`'s first parameter is named kind, as is the purchase's field: build it here.
    return input_event_adapter.validate_python(
        {
            "type": "purchase",
            "account_id": "acme",
            "occurred_at": at.isoformat(),
            "order_id": f"o-{at.timestamp()}-{product}",
            "amount": amount,
            "currency": currency,
            "product": product,
            "kind": "new",
        }
    )


def with_catalogue(catalogue: tuple[str, ...]):
    purchases = CONFIG.purchases.model_copy(update={"catalogue": list(catalogue)})
    return CONFIG.model_copy(update={"purchases": purchases})


def feats(state: AccountState, now: datetime = NOW, catalogue: tuple[str, ...] = ()):
    return features_at(state, state.facts("acme"), now, rates=RATES, catalogue=catalogue)


def test_no_tickets_or_purchases_means_none_not_zero() -> None:
    f = feats(state_of(event("product_usage", NOW, action="login")))
    assert f["tickets_7d"] is None and f["open_tickets"] is None
    assert f["spend_365d"] is None and f["fiscal_year_end_month"] is None
    # And no part of CS or OP stands on them: no line, no weight.
    lines = score(f, state_of().facts("acme"), CONFIG, NOW).lines
    parts = {line["component"] for line in lines}
    assert not parts & {"support_load", "purchase_growth", "cross_sell_room"}


def test_ticket_windows_baseline_open_reopen_and_first_response() -> None:
    events = [ticket(NOW - (10 + 9 * i) * DAY, f"old{i}") for i in range(9)]  # 9 in the baseline
    events += [ticket(NOW - (i % 5) * DAY, f"new{i}") for i in range(6)]  # 6 this week
    events += [
        ticket(NOW - 18 * DAY, "old1", "solved", first_response_s=3600.0),
        ticket(NOW - 17 * DAY, "old1", "reopened"),
        ticket(NOW - 2 * DAY, "new3", "solved", first_response_s=7200.0),
        ticket(NOW - 1 * DAY, "new4", "solved", first_response_s=36_000.0),
    ]
    f = feats(state_of(*events))
    assert f["tickets_7d"] == 6
    assert f["tickets_28d"] == 6 + 2  # old0 (10 days) and old1 (19 days)
    # 9 tickets over the 90 days before the last 7: 0.7 a week.
    assert f["tickets_baseline_7d"] == pytest.approx(9 / 90 * 7, abs=1e-3)
    assert f["tickets_vs_baseline_7d"] == pytest.approx(6 / (9 / 90 * 7), abs=1e-2)
    # 15 opened; old1 solved then reopened, new3 and new4 solved.
    assert f["open_tickets"] == 13
    assert f["reopen_rate_90d"] == pytest.approx(1 / 15, abs=1e-3)
    assert f["first_response_median_h"] == 2.0


def test_a_solve_without_an_open_ticket_counts_its_response_and_nothing_else() -> None:
    f = feats(state_of(ticket(NOW - DAY, "t-before-kizashi", "solved", first_response_s=1800.0)))
    assert f["open_tickets"] == 0 and f["tickets_7d"] == 0
    assert f["first_response_median_h"] == 0.5


def test_ticket_features_in_any_order() -> None:
    events = [
        ticket(NOW - 3 * DAY, "a"),
        ticket(NOW - 2 * DAY, "a", "solved", first_response_s=60.0),
        ticket(NOW - 1 * DAY, "a", "reopened"),
        ticket(NOW - 40 * DAY, "b"),
        ticket(NOW - 400 * DAY, "c"),  # over a year before the newest: not kept
    ]
    results = [feats(state_of(*order)) for order in permutations(events)]
    assert all(r == results[0] for r in results)
    assert results[0]["open_tickets"] == 2  # a (reopened) and b; c is not kept


def test_open_tickets_are_bounded() -> None:
    state = state_of(*(ticket(NOW - DAY, f"t{i}") for i in range(MAX_TICKETS + 50)))
    assert len(state.sup["tickets"]) == MAX_TICKETS
    assert feats(state)["open_tickets"] == MAX_TICKETS


def test_spend_orders_growth_products_and_currencies() -> None:
    events = [
        buy(NOW - 400 * DAY, 1000.0),  # the year before
        buy(NOW - 200 * DAY, 500.0, "analytics"),
        buy(NOW - 30 * DAY, 400.0, currency="EUR"),  # 800 USD
        buy(NOW - 10 * DAY, 100.0, "api", currency="JPY"),  # no rate: an order, no spend
    ]
    catalogue = ("core", "analytics", "api", "sso", "audit")
    f = feats(state_of(*events), catalogue=catalogue)
    assert f["spend_90d"] == 800 and f["orders_90d"] == 2
    assert f["spend_365d"] == 1300 and f["orders_365d"] == 3
    assert f["spend_prev_365d"] == 1000 and f["spend_growth"] == pytest.approx(1.3)
    assert f["products_owned"] == 3 and f["cross_sell_room"] == 2
    lines = {
        line["component"]: line
        for line in score(f, state_of().facts("acme"), with_catalogue(catalogue), NOW).lines
    }
    assert lines["purchase_growth"]["raw"] == pytest.approx(1.3)
    assert "130% of the year before" in lines["purchase_growth"]["explanation"]
    assert lines["cross_sell_room"]["raw"] == 2
    assert lines["cross_sell_room"]["explanation"] == (
        "Owns 3 products; 2 of the 5 in the catalogue not bought yet"
    )


def test_fiscal_year_end_is_inferred_from_a_month_two_years_show() -> None:
    one_year = [buy(datetime(2025, 11, 25, tzinfo=UTC), 9000.0)]
    assert feats(state_of(*one_year))["fiscal_year_end_month"] is None
    both = [
        *one_year,
        buy(datetime(2026, 11, 10, tzinfo=UTC), 12_000.0),
        buy(datetime(2026, 3, 1, tzinfo=UTC), 100.0),
        buy(datetime(2025, 3, 9, tzinfo=UTC), 100.0),
    ]
    f = feats(state_of(*both))
    assert f["fiscal_year_end_month"] == 11 and f["fiscal_year_end_inferred"] == 1
    assert f["days_to_fiscal_year_end"] == 10  # 2026-11-20 to 2026-11-30
    # The CRM's month wins over the inference.
    told = [*both, event("account_update", NOW - DAY, fiscal_year_end=3)]
    f = feats(state_of(*told))
    assert f["fiscal_year_end_month"] == 3 and f["fiscal_year_end_inferred"] == 0
    assert state_of(*told).facts("acme").fiscal_year_end == 3


def test_days_to_the_fiscal_year_end_roll_over_to_next_year() -> None:
    assert days_to_fiscal_year_end(12, datetime(2026, 12, 31, 23, tzinfo=UTC)) == 0
    assert days_to_fiscal_year_end(12, datetime(2027, 1, 1, tzinfo=UTC)) == 364
    assert days_to_fiscal_year_end(2, datetime(2027, 2, 1, tzinfo=UTC)) == 27


def test_heavy_load_with_slow_answers_lowers_cs_with_a_sentence() -> None:
    def support_line(*events):
        f = feats(state_of(*events))
        lines = score(f, state_of().facts("acme"), CONFIG, NOW).lines
        return next(line for line in lines if line["component"] == "support_load")

    heavy = [ticket(NOW - (i % 20) * DAY, f"t{i}") for i in range(14)]
    slow = support_line(*heavy, ticket(NOW, "t0", "solved", first_response_s=50 * 3600.0))
    fast = support_line(*heavy, ticket(NOW, "t0", "solved", first_response_s=600.0))
    light = support_line(ticket(NOW - DAY, "x"))
    assert slow["points"] == 0 < fast["points"] < light["points"]
    assert slow["explanation"] == (
        "14 support tickets opened in the last 28 days (13 open), "
        "median first response 50 h: heavy load with slow answers"
    )


RULES = load_rules_config(None)


def context(**features) -> Context:
    from kizashi.contracts.scores import ScoreSnapshot

    snap = ScoreSnapshot(cs=60, op=40, segment="nurture", priority="medium")
    return Context(features=features, scores=snap, before=None, cs_history=[], now=NOW)


def test_support_surge_needs_the_factor_and_the_minimum() -> None:
    rule = RULES.get("support_surge")
    assert rule.read(context(tickets_7d=None, tickets_baseline_7d=None)).level == "unknown"
    # 5 tickets against 3 a week: under 2x.
    assert rule.read(context(tickets_7d=5, tickets_baseline_7d=3.0)).level == "band"
    # 4 tickets from nothing: under the minimum.
    assert rule.read(context(tickets_7d=4, tickets_baseline_7d=0.0)).level == "band"
    on = rule.read(context(tickets_7d=8, tickets_baseline_7d=1.5, open_tickets=3))
    assert on.level == "on"
    assert on.reasons == (
        "8 support tickets opened in the last 7 days, 5.3x its usual 1.5 a week",
        "3 open now",
    )
    assert rule.read(context(tickets_7d=1, tickets_baseline_7d=1.5)).level == "off"


def test_fiscal_year_end_fires_weeks_before_and_says_where_the_month_came_from() -> None:
    rule = RULES.get("fiscal_year_end")
    inferred = {"fiscal_year_end_month": 12, "fiscal_year_end_inferred": 1}
    assert rule.read(context(days_to_fiscal_year_end=57, **inferred)).level == "band"
    on = rule.read(context(days_to_fiscal_year_end=41, spend_365d=1200, **inferred))
    assert on.level == "on"
    assert on.reasons[0] == (
        "Fiscal year ends on 2026-12-31, in 41 days (inferred from the months it buys in)"
    )
    assert rule.read(context(days_to_fiscal_year_end=300, **inferred)).level == "off"
    assert rule.read(context(days_to_fiscal_year_end=None)).level == "unknown"


def test_every_product_of_an_order_counts_as_owned() -> None:
    order = buy(NOW - DAY, 900.0, "core").model_copy(update={"products": ["sso", "audit"]})
    f = feats(state_of(order), catalogue=("core", "analytics", "api", "sso", "audit"))
    assert f["products_owned"] == 3 and f["cross_sell_room"] == 2
    assert f["orders_90d"] == 1 and f["spend_90d"] == 900  # one order, its whole amount
