"""The typed state the notifier app holds while it runs."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kizashi.notifier.render import Renderer
from kizashi.notifier.routing import RoutingTree
from kizashi.notifier.transport import SmtpSender, WebhookSender
from kizashi.runtime.lifecycle import ServiceState
from kizashi.runtime.retry import RetryPolicy


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class NotifierState(ServiceState):
    routing: RoutingTree
    renderer: Renderer
    webhooks: WebhookSender
    smtp: SmtpSender | None
    retry: RetryPolicy
    action_secret: str
    public_url: str
    # The console's address for reps' browsers; alerts link to its signal page when set.
    console_url: str | None = None
    # The customer emails (kizashi.notifier.customer): where customers reach the unsubscribe
    # page, the keys its links may be signed with (the current one first), the From fallback.
    unsubscribe_base_url: str = "http://127.0.0.1:8004"
    verifying_secrets: tuple[str, ...] = ()
    email_from: str = "kizashi@localhost"
    lease_s: float = 120.0
    # Set when new deliveries are recorded, so the worker sends at once instead of polling.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Deliveries this process is sending now: never reclaimed as abandoned by this process,
    # and their leases renewed while it lives (kizashi.notifier.deliver.keep_leases).
    in_flight: set[str] = field(default_factory=set)
    # Sends whose result could not be recorded yet (PostgreSQL away), oldest first: recorded
    # before this process claims anything else; their ids stay in `in_flight` meanwhile.
    unrecorded: list = field(default_factory=list)
    # What the consumer takes as the time a signal arrived: its daily budget's day and its
    # digest window (a test sets a fixed day).
    clock: Callable[[], datetime] = field(default_factory=lambda: _utc_now)
