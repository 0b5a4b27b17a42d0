"""The one retry policy: how often to try again, and how long to wait in between.

Both kinds of retrying in Kizashi use it. A database transaction that hit a deadlock, a
serialization failure or a dropped connection runs again in the same call (`run`, which
tenacity drives). A notification delivery is tried again later: the notifier records the
attempt and asks `next_delay` when the next one is due, so the wait survives a restart.

The wait after attempt n is exponential, `base · 2^(n-1)` up to `cap`, with full jitter
(uniform in [0, that]) unless `jitter` is off; a receiver's Retry-After replaces it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

T = TypeVar("T")


class Outcome(Protocol):
    """What `next_delay` needs to know of an attempt's result (e.g. the notifier's SendResult)."""

    @property
    def retryable(self) -> bool: ...

    @property
    def retry_after(self) -> float | None: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base: float = 1.0
    cap: float = 300.0
    # Full jitter spreads out retries that failed together (one receiver, many deliveries).
    jitter: bool = True

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (counting from 1)."""
        ceiling = min(self.cap, self.base * (2 ** min(max(attempt - 1, 0), 62)))
        return (rng or random).uniform(0, ceiling) if self.jitter else ceiling

    def next_delay(
        self, attempt: int, outcome: Outcome, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up."""
        if not outcome.retryable or attempt >= self.max_attempts:
            return None
        if outcome.retry_after is not None:
            # The receiver said when; jitter would only make us early or needlessly late.
            return max(outcome.retry_after, 0.0)
        return self.backoff(attempt, rng)

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        retry_if: Callable[[BaseException], bool],
        on_retry: Callable[[int, BaseException, float], object] | None = None,
        rng: random.Random | None = None,
    ) -> T:
        """Await `operation()` until it returns, raises an error `retry_if` rejects, or has
        been tried `max_attempts` times (then its last error is raised)."""

        async def attempt() -> T:  # a coroutine function whatever `operation` is
            return await operation()

        def wait(state: RetryCallState) -> float:
            return self.backoff(state.attempt_number, rng)

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None and state.next_action:
                error = state.outcome.exception()
                assert error is not None
                on_retry(state.attempt_number, error, state.next_action.sleep)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=retry_if_exception(retry_if),
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(attempt)
