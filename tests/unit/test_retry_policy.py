"""kizashi.runtime.retry: the one retry policy, for database transactions (run again at once)
and notification deliveries (the next attempt scheduled in the database)."""

import random
from dataclasses import dataclass

import pytest

from kizashi.runtime.retry import RetryPolicy


@dataclass(frozen=True)
class Result:
    retryable: bool = True
    retry_after: float | None = None


def test_without_jitter_the_waits_double_from_base() -> None:
    policy = RetryPolicy(max_attempts=5, base=0.05, cap=float("inf"), jitter=False)
    assert [policy.backoff(n) for n in range(1, 5)] == [0.05, 0.1, 0.2, 0.4]
    assert RetryPolicy(base=1, cap=5, jitter=False).backoff(10_000) == 5


def test_full_jitter_stays_under_the_exponential_ceiling() -> None:
    rng = random.Random(3)
    policy = RetryPolicy(base=1, cap=300)
    for attempt in range(1, 15):
        ceiling = min(300, 2 ** (attempt - 1))
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays) and max(delays) > ceiling * 0.8


def test_next_delay_honours_retry_after_and_gives_up() -> None:
    policy = RetryPolicy(max_attempts=3, base=1, cap=10)
    rng = random.Random(1)
    assert policy.next_delay(1, Result(retry_after=7.0), rng) == 7.0  # no jitter on top
    assert policy.next_delay(1, Result(retry_after=-2.0), rng) == 0.0
    assert 0 <= policy.next_delay(2, Result(), rng) <= 2
    assert policy.next_delay(3, Result(), rng) is None  # attempts used up
    assert policy.next_delay(1, Result(retryable=False), rng) is None


class Busy(Exception):
    pass


async def test_run_retries_what_retry_if_accepts_then_returns() -> None:
    calls, retries = [], []

    async def operation() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Busy
        return "done"

    policy = RetryPolicy(max_attempts=5, base=0.001, cap=1, jitter=False)
    result = await policy.run(
        operation,
        retry_if=lambda e: isinstance(e, Busy),
        on_retry=lambda n, e, delay: retries.append((n, type(e), delay)),
    )
    assert result == "done" and len(calls) == 3
    assert retries == [(1, Busy, 0.001), (2, Busy, 0.002)]


async def test_run_raises_the_last_error_when_attempts_run_out() -> None:
    calls = []

    async def operation() -> None:
        calls.append(1)
        raise Busy(len(calls))

    policy = RetryPolicy(max_attempts=3, base=0.001, cap=0.001)
    with pytest.raises(Busy) as raised:
        await policy.run(operation, retry_if=lambda e: isinstance(e, Busy))
    assert raised.value.args == (3,) and len(calls) == 3


async def test_run_raises_other_errors_at_once() -> None:
    calls = []

    async def operation() -> None:
        calls.append(1)
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        await RetryPolicy(base=0.001).run(operation, retry_if=lambda e: isinstance(e, Busy))
    assert len(calls) == 1
