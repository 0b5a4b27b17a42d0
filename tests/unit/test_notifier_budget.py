"""The daily budget per rep: rank, the arrival-order selection with its reserve, and the
routing.yaml keys that set it (kizashi.contracts.budget, kizashi.notifier.routing)."""

from datetime import UTC, date, datetime, timedelta

import pytest
import yaml

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.budget import (
    UNLIMITED,
    DailyBudget,
    Ledger,
    Tally,
    admits,
    alert_rank,
    budget_day,
    budget_key,
    by_rank,
    owner_key,
    severity,
    window_end,
)
from kizashi.notifier.routing import build_tree
from kizashi.notifier.routing_config import RoutingConfigError
from tests.support.notifier_stack import make_signal


def signal(arr: float | None, priority: str = "medium", kind: str = "opportunity", **more):
    s = make_signal("ana@reps.test", priority=priority, kind=kind, **more)
    return s.model_copy(update={"account": s.account.model_copy(update={"arr": arr})})


def test_severity_orders_priority_first_and_churn_above_opportunity():
    assert severity("high", "churn_risk") == 4.5
    assert severity("high", "opportunity") == severity("medium", "churn_risk") == 3.0
    assert severity("medium", "opportunity") == 2.0
    assert severity("low", "churn_risk") == 1.5 and severity("low", "opportunity") == 1.0


def test_rank_is_arr_times_severity_and_no_arr_counts_as_one():
    assert alert_rank(signal(48000, "high", "churn_risk")) == 48000 * 4.5
    assert alert_rank(signal(None, "low")) == 1.0
    assert alert_rank(signal(0, "high")) == 3.0
    assert alert_rank(signal(float("nan"), "high")) == 3.0
    # A big account's low-priority alert outranks a small account's high one.
    assert alert_rank(signal(500_000, "low")) > alert_rank(signal(20_000, "high", "churn_risk"))


def test_by_rank_is_highest_first_then_oldest():
    early = signal(1000)
    late = early.model_copy(
        update={"signal_id": "sig-late", "fired_at": early.fired_at + timedelta(hours=1)}
    )
    big = signal(9000, "low")
    assert [s.signal_id for s in by_rank([late, big, early])] == [
        big.signal_id,
        early.signal_id,
        late.signal_id,
    ]


def test_under_the_budget_every_alert_goes_at_once_whatever_its_rank():
    ledger = Ledger()
    budget = DailyBudget(limit=10, reserve=2)
    assert all(ledger.offer("k", budget, rank) for rank in (5, 1, 3, 2, 1, 4, 1, 1))
    assert ledger.tallies["k"] == Tally(immediate=8, best=5)


def test_the_reserve_goes_only_to_an_alert_that_tops_the_day():
    budget = DailyBudget(limit=4, reserve=2)
    ledger = Ledger()
    decisions = [ledger.offer("k", budget, r) for r in (10, 20, 15, 20, 30, 40)]
    # 10, 20 free; 15 < 20 waits; 20 ties the day's best and takes the reserve; 30 takes the
    # last slot; 40 finds the budget spent.
    assert decisions == [True, True, False, True, True, False]
    assert ledger.tallies["k"] == Tally(immediate=4, best=40)


def test_never_more_than_the_limit_and_the_rest_deferred():
    ledger = Ledger()
    budget = DailyBudget(limit=3, reserve=0)
    decisions = [ledger.offer("k", budget, float(r)) for r in range(10)]
    assert decisions.count(True) == 3 and decisions[:3] == [True] * 3


def test_keys_are_counted_apart_and_unlimited_or_zero_budgets():
    ledger = Ledger()
    one = DailyBudget(limit=1, reserve=0)
    assert ledger.offer("a", one, 1) and ledger.offer("b", one, 1)
    assert not ledger.offer("a", one, 99)
    assert all(Ledger().offer("k", UNLIMITED, 1) for _ in range(50))
    assert not admits(DailyBudget(limit=0, reserve=2), Tally(), 1e9)
    # A reserve larger than the budget: only a new best of the day goes (the first one does).
    big_reserve = DailyBudget(limit=2, reserve=5)
    ledger = Ledger()
    assert [ledger.offer("k", big_reserve, r) for r in (5, 4, 6, 7)] == [True, False, True, False]
    with pytest.raises(ValueError):
        DailyBudget(limit=-1)


def test_owner_day_and_the_digest_window():
    assert owner_key(AccountFacts(account_id="a", owner_email="Ana@X.test")) == "ana@x.test"
    assert owner_key(AccountFacts(account_id="a", owner_slack="@ana")) == "@ana"
    assert owner_key(AccountFacts(account_id="a")) is None
    late = datetime(2026, 3, 5, 23, 59, tzinfo=UTC)
    assert budget_day(late) == date(2026, 3, 5)
    assert budget_key("slack", "ana@x.test", budget_day(late)) == "slack|ana@x.test|2026-03-05"
    assert window_end(timedelta(days=1), late) == datetime(2026, 3, 6, tzinfo=UTC)


# --- routing.yaml --------------------------------------------------------------------------

CONFIG = """
receivers:
  - name: slack
    type: slack
    webhook_url: https://hooks.slack.com/services/T/B/X
  - name: mail
    type: email
    to: account_owner
    daily_budget: 3
routes: []
default:
  receivers: [slack, mail]
"""


def tree(text: str):
    return build_tree(yaml.safe_load(text), source="routing.yaml", environ={}, smtp_configured=True)


def test_default_budget_is_ten_and_a_receiver_or_an_owner_may_set_their_own():
    ana = AccountFacts(account_id="a", owner_email="Ana@Reps.test", owner_slack="@ana")
    bob = AccountFacts(account_id="b", owner_email="bob@reps.test")
    plain = tree(CONFIG)
    assert plain.budget.for_owner("slack", bob) == DailyBudget(limit=10, reserve=2)
    assert plain.budget.for_owner("mail", bob) == DailyBudget(limit=3, reserve=2)
    assert plain.budget.digest == timedelta(days=1)
    configured = tree(
        CONFIG + "budget:\n  daily: 5\n  reserve: 1\n  digest: {interval: 12h}\n"
        "  by_owner:\n    ana@reps.test: unlimited\n    '@bob': 2\n"
    )
    assert configured.budget.for_owner("slack", ana) == UNLIMITED
    assert configured.budget.for_owner("mail", ana) == UNLIMITED  # the owner's own comes first
    assert configured.budget.for_owner("slack", bob) == DailyBudget(limit=5, reserve=1)
    assert configured.budget.for_owner("mail", bob) == DailyBudget(limit=3, reserve=1)
    assert configured.budget.digest == timedelta(hours=12)
    assert configured.describe()["budget"]["by_owner"] == {"ana@reps.test": "unlimited", "@bob": 2}


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ("budget:\n  daily: -1\n", "budget.daily"),
        ("budget:\n  daily: lots\n", "budget.daily"),
        ("budget:\n  dayly: 3\n", "budget.dayly"),
        ("budget:\n  digest: {interval: soon}\n", "budget.digest.interval"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_key(extra: str, where: str):
    with pytest.raises(RoutingConfigError) as error:
        tree(CONFIG + extra)
    assert where in str(error.value)


def test_the_packaged_routing_yaml_has_the_default_budget():
    from kizashi.notifier.routing import load_routing_config

    packaged = load_routing_config(None, slack_webhook_url=None, smtp_configured=False)
    account = AccountFacts(account_id="a", owner_email="x@y.test")
    assert packaged.budget.for_owner("slack", account) == DailyBudget(limit=10, reserve=2)


def test_a_webhook_receiver_is_never_budgeted():
    """A webhook feeds a machine (a CRM), not a rep's attention, and takes no digest: with a
    budget of 0 the Slack alert waits for the digest, the webhook's goes at once."""
    from types import SimpleNamespace

    from kizashi.notifier.consumer import plan

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    config = yaml.safe_load(CONFIG)
    config["receivers"].append(
        {"name": "crm", "type": "webhook", "url_env": "CRM_URL", "secret_env": "CRM_SECRET"}
    )
    config["default"]["receivers"].append("crm")
    config["budget"] = {"daily": 0}
    routing = build_tree(
        config,
        source="routing.yaml",
        environ={"CRM_URL": "https://crm.example/hooks", "CRM_SECRET": secret},
        smtp_configured=True,
    )
    now = datetime(2026, 12, 3, 9, tzinfo=UTC)
    alone, budgeted = plan(SimpleNamespace(routing=routing), signal(50_000), now, None)
    assert [intent.receiver for intent in alone] == ["crm"]
    assert sorted(b.intent.receiver for b in budgeted) == ["mail", "slack"]
