"""Which digest a signal joins: one per (receiver, owner) per epoch-aligned window."""

from datetime import UTC, datetime, timedelta

from kizashi.contracts.accounts import AccountFacts
from kizashi.notifier.consumer import digest_owner, digest_slot
from kizashi.notifier.digest import digest_id_for

DAY = timedelta(days=1)


def test_a_day_window_closes_at_midnight_utc() -> None:
    key, end = digest_slot("mail", "ana@x.test", DAY, datetime(2025, 1, 10, 9, 30, tzinfo=UTC))
    assert end == datetime(2025, 1, 11, tzinfo=UTC)
    assert key == f"mail|ana@x.test|{end.timestamp():.0f}"


def test_signals_in_one_window_share_a_digest_and_the_next_window_does_not() -> None:
    morning = datetime(2025, 1, 10, 0, 0, 1, tzinfo=UTC)
    evening = datetime(2025, 1, 10, 23, 59, 59, tzinfo=UTC)
    midnight = datetime(2025, 1, 11, tzinfo=UTC)
    assert digest_slot("m", "o", DAY, morning) == digest_slot("m", "o", DAY, evening)
    # A signal exactly at the window's end belongs to the next window, which ends later.
    key, end = digest_slot("m", "o", DAY, midnight)
    assert end == midnight + DAY and key != digest_slot("m", "o", DAY, evening)[0]


def test_receivers_and_owners_have_their_own_digests() -> None:
    now = datetime(2025, 1, 10, 12, tzinfo=UTC)
    keys = {digest_slot(r, o, timedelta(hours=1), now)[0] for r in "ab" for o in ("x", "y")}
    assert len(keys) == 4


def test_the_owner_is_the_email_case_folded_else_the_slack_handle() -> None:
    assert digest_owner(AccountFacts(account_id="a", owner_email="Ana@X.test")) == "ana@x.test"
    assert digest_owner(AccountFacts(account_id="a", owner_slack="@ana")) == "@ana"
    assert digest_owner(AccountFacts(account_id="a")) == "-"


def test_a_digest_id_is_stable_and_distinct() -> None:
    assert digest_id_for("mail|ana|1", ["d1", "d2"]) == digest_id_for("mail|ana|1", ["d2", "d1"])
    assert digest_id_for("mail|ana|1", ["d1"]) != digest_id_for("mail|ana|2", ["d1"])
    # Another set of rows in the same window (a late row) is another message.
    assert digest_id_for("mail|ana|1", ["d1", "d2"]) != digest_id_for("mail|ana|1", ["d3"])
    assert digest_id_for("mail|ana|1", ["d1"]) != digest_id_for("mail|ana|1", ["d1", "d3"])
