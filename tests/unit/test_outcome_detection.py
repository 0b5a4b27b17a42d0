"""Outcomes read from account_updates (kizashi.scoring.outcomes): against the facts as they
stood, in the order the updates happened; a first value, an out-of-order update and a plan
change alone record none."""

from datetime import UTC, datetime, timedelta

from kizashi.contracts.events import AccountUpdate
from kizashi.scoring.features import AccountState
from kizashi.scoring.outcomes import detect

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def update(event_id: str, days: float, **facts) -> AccountUpdate:
    return AccountUpdate(
        type="account_update",
        account_id="acme",
        event_id=event_id,
        occurred_at=T0 + timedelta(days=days),
        **facts,
    )


def kinds(found: list[dict]) -> list[tuple[str, float | None]]:
    return [(f["kind"], f["amount"]) for f in found]


def state_after(*events: AccountUpdate) -> AccountState:
    state = AccountState()
    for event in events:
        state.apply(event)
    return state


def test_first_values_are_no_outcome() -> None:
    first = update("e1", 0, arr=10_000.0, seats=10, renewal_date="2027-01-01", status="active")
    assert detect({}, [first]) == []


def test_arr_seats_renewal_and_churn() -> None:
    base = state_after(update("e0", 0, arr=10_000.0, seats=10, renewal_date="2027-01-01"))
    up = update("e1", 10, arr=15_000.0, seats=15)
    found = detect(base.crm, [up])
    assert kinds(found) == [("expansion", 5_000.0)]
    assert found[0]["outcome_id"] == "e1:expansion"
    assert found[0]["occurred_at"] == T0 + timedelta(days=10)
    assert kinds(detect(base.crm, [update("e2", 10, arr=8_000.0)])) == [("contraction", 2_000.0)]
    assert kinds(detect(base.crm, [update("e3", 10, seats=12)])) == [("expansion", None)]
    assert kinds(detect(base.crm, [update("e4", 10, seats=8)])) == [("contraction", None)]
    assert kinds(detect(base.crm, [update("e5", 10, renewal_date="2028-01-01")])) == [
        ("renewal", 10_000.0)
    ]
    assert detect(base.crm, [update("e6", 10, renewal_date="2026-12-01")]) == []
    assert kinds(detect(base.crm, [update("e7", 10, status="churned")])) == [("churn", 10_000.0)]
    assert detect(base.crm, [update("e8", 10, plan="enterprise")]) == []


def test_a_batch_is_read_in_time_order_and_old_news_counts_for_nothing() -> None:
    base = state_after(update("e0", 5, arr=10_000.0))
    later, earlier = update("e2", 20, arr=20_000.0), update("e1", 10, arr=12_000.0)
    assert kinds(detect(base.crm, [later, earlier])) == [
        ("expansion", 2_000.0),
        ("expansion", 8_000.0),
    ]
    assert detect(base.crm, [update("old", 1, arr=1.0)]) == []  # before what is known


def test_churned_once_is_one_churn_and_no_renewal() -> None:
    base = state_after(update("e0", 0, arr=9_000.0, renewal_date="2027-01-01"))
    churn = update("e1", 3, status="churned")
    again = update("e2", 4, status="churned", renewal_date="2028-01-01")
    assert kinds(detect(base.crm, [churn, again])) == [("churn", 9_000.0)]
    assert base.crm == state_after(update("e0", 0, arr=9_000.0, renewal_date="2027-01-01")).crm
