"""The links an alert carries: the signed acknowledge/snooze and useful/not useful links (no
API token needed to act on them), and the console's page for the signal when
KIZASHI_CONSOLE_URL is set."""

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.signals import SignalBase
from kizashi.notifier.state import NotifierState
from kizashi.runtime.signing import InvalidActionToken, sign_action, verify_action_for

ACTION_LINK_TTL = timedelta(days=14)
# A customer may unsubscribe long after the email came; the link works for a year and more.
UNSUBSCRIBE_LINK_TTL = timedelta(days=400)
# Unsubscribe tokens are signed under keys of their own: never valid as an alert's action.
UNSUBSCRIBE_SALT = "kizashi.customer-unsubscribe"
UNSUBSCRIBE = "unsubscribe"


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


def unsubscribe_link(service: NotifierState, delivery_id: str, contact_email: str) -> str:
    """The signed link that takes `contact_email` off every customer playbook's list; it
    names the delivery (and so the account) it came in."""
    expires = datetime.now(UTC) + UNSUBSCRIBE_LINK_TTL
    token = sign_action(
        delivery_id,
        UNSUBSCRIBE,
        expires,
        service.action_secret,
        contact_email,
        salt=UNSUBSCRIBE_SALT,
    )
    return f"{service.unsubscribe_base_url.rstrip('/')}/v1/unsubscribe/{token}"


def verify_unsubscribe(service: NotifierState, token: str) -> tuple[str, str]:
    """(delivery_id, contact_email) of a genuine, unexpired unsubscribe token; raises
    kizashi.runtime.signing.InvalidActionToken (or ExpiredActionToken) otherwise."""
    secrets = service.verifying_secrets or (service.action_secret,)
    delivery_id, action, contact = verify_action_for(
        token, secrets, datetime.now(UTC), salt=UNSUBSCRIBE_SALT
    )
    if action != UNSUBSCRIBE or not contact:
        raise InvalidActionToken("not an unsubscribe token")
    return delivery_id, contact


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
