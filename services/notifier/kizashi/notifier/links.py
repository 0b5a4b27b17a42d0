"""The signed acknowledge/snooze links an alert carries: no API token needed to act on it."""

from datetime import UTC, datetime, timedelta

from kizashi.contracts.signals import SignalBase
from kizashi.notifier.state import NotifierState
from kizashi.runtime.signing import sign_action

ACTION_LINK_TTL = timedelta(days=14)


def action_links(service: NotifierState, signal: SignalBase) -> tuple[str, str]:
    expires = datetime.now(UTC) + ACTION_LINK_TTL
    base = service.public_url.rstrip("/")
    return tuple(  # type: ignore[return-value]
        f"{base}/v1/actions/{sign_action(signal.signal_id, action, expires, service.action_secret)}"
        for action in ("ack", "snooze")
    )
