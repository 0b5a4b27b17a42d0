"""The links an alert carries: the signed acknowledge/snooze and useful/not useful links (no
API token needed to act on them), and the console's page for the signal when
KIZASHI_CONSOLE_URL is set."""

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.signals import SignalBase
from kizashi.notifier.state import NotifierState
from kizashi.runtime.signing import sign_action

ACTION_LINK_TTL = timedelta(days=14)


def recipient_of(account: AccountFacts, addresses: list[str] | None = None) -> str | None:
    """Who a message goes to, as its action links record them: the one address an email is
    sent to, else the account's owner (a Slack channel, or an email to several people)."""
    if addresses and len(addresses) == 1:
        return addresses[0].strip().lower()
    owner = account.owner_email or account.owner_slack
    return owner.strip().lower() if owner else None


def _signed(
    service: NotifierState, signal: SignalBase, recipient: str | None, actions: tuple[str, str]
) -> tuple[str, str]:
    expires = datetime.now(UTC) + ACTION_LINK_TTL
    base = service.public_url.rstrip("/")
    return tuple(  # type: ignore[return-value]
        f"{base}/v1/actions/"
        f"{sign_action(signal.signal_id, action, expires, service.action_secret, recipient)}"
        for action in actions
    )


def action_links(
    service: NotifierState, signal: SignalBase, recipient: str | None = None
) -> tuple[str, str]:
    """(acknowledge, snooze 24 h)."""
    return _signed(service, signal, recipient, ("ack", "snooze"))


def feedback_links(
    service: NotifierState, signal: SignalBase, recipient: str | None = None
) -> tuple[str, str]:
    """(useful, not useful): the answer is recorded as `recipient`'s feedback."""
    return _signed(service, signal, recipient, ("useful", "not_useful"))


def console_link(service: NotifierState, signal: SignalBase) -> str | None:
    if not service.console_url:
        return None
    return f"{service.console_url.rstrip('/')}/signals/{quote(signal.signal_id, safe='')}"


def all_links(
    service: NotifierState, signal: SignalBase, recipient: str | None
) -> dict[str, str | None]:
    """Every link by name, for a machine-read message (the `webhook` receiver's JSON)."""
    ack, snooze = action_links(service, signal, recipient)
    useful, not_useful = feedback_links(service, signal, recipient)
    return {
        "console": console_link(service, signal),
        "acknowledge": ack,
        "snooze": snooze,
        "useful": useful,
        "not_useful": not_useful,
    }
