"""The Wilson score interval against published values, 0/0, and the periods a rule's
performance is read over (kizashi.contracts.feedback)."""

from datetime import UTC, datetime, timedelta

import pytest

from kizashi.contracts.feedback import (
    BadPeriod,
    period_start,
    precision,
    wilson_interval,
)

# (successes, trials) → the 95 % Wilson interval, to three places: 8/10 is the brief's
# example; the rest are Newcombe (1998), Statistics in Medicine 17, 857–872, table I, method 3
# (81/263, 15/148, 0/20, 1/29), and the symmetric 5/10.
KNOWN = {
    (8, 10): ("0.490", "0.943"),
    (81, 263): ("0.2553", "0.3662"),
    (15, 148): ("0.0624", "0.1605"),
    (0, 20): ("0.0000", "0.1611"),
    (1, 29): ("0.0061", "0.1718"),
    (5, 10): ("0.2366", "0.7634"),
}


@pytest.mark.parametrize(("successes", "trials"), sorted(KNOWN))
def test_wilson_matches_published_values(successes: int, trials: int) -> None:
    low, high = wilson_interval(successes, trials)
    expected = KNOWN[(successes, trials)]
    places = len(expected[0].split(".")[1])
    assert (f"{low:.{places}f}", f"{high:.{places}f}") == expected


def test_wilson_at_the_edges() -> None:
    assert wilson_interval(0, 0) is None  # no feedback: nothing is known
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    low, high = wilson_interval(10, 10)
    assert round(low, 3) == 0.722
    for bad in ((-1, 3), (4, 3), (0, -1)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)


def test_precision_is_useful_over_answered() -> None:
    assert precision(0, 0) == (None, None, None)
    value, low, high = precision(8, 2)
    assert value == 0.8 and (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert precision(0, 3).value == 0.0


def test_periods() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert period_start("all", now) is None
    assert period_start("30d", now) == now - timedelta(days=30)
    assert period_start("12w", now) == now - timedelta(weeks=12)
    assert period_start("3660d", now) == now - timedelta(days=3660)
    for bad in ("", "0d", "30", "d", "-5d", "6m", "3661d", "1000w", "30 d", "ALL", "30d\n"):
        with pytest.raises(BadPeriod):
            period_start(bad, now)
