"""Whether ingest takes events, and how many requests it is still answering.

A clean stop of `kizashi up` closes the intake first (SIGUSR1, architecture §6.1): from then
on every event route (native and Segment) answers 503 with Retry-After, and /readyz answers
503 with `accepting_events: false` and `earlier_requests_answered`, which turns true once
every request admitted before the close has been answered (its events acknowledged by the
broker, or refused). The supervisor waits for that before it measures what is left to consume.
The intake stays closed until the process stops.
"""

import contextlib
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

CLOSED_DETAIL = (
    "ingest is stopping and takes no events now; nothing was accepted, retry with the same ids"
)


@dataclass
class Intake:
    open: bool = True
    in_flight: int = 0

    def close(self) -> None:
        if self.open:
            self.open = False
            log.warning("intake closed: answering 503 to every event from now on (clean stop)")

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Counts a request from the moment it was let in (checked `open`) until answered."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def readiness(self) -> dict[str, bool]:
        if self.open:
            return {"accepting_events": True}
        return {"accepting_events": False, "earlier_requests_answered": self.in_flight == 0}

    def close_on_signal(self, loop) -> None:
        """SIGUSR1 closes the intake. `kizashi up` starts ingest with SIGUSR1 ignored (an
        early signal must not kill it) and sends it again until /readyz shows it took."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGUSR1, self.close)
