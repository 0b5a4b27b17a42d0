"""Customer playbooks: for some rules, a medium- or low-priority account's signal becomes an
email to the customer's contact, from a template, instead of an alert to its rep (issue #20,
item 5: the renewal playbook; issue #21's `support_surge` uses the same mechanics).

This module holds the shape of routing.yaml's `customer_emails` section and the pure
decisions: which playbook (if any) takes a signal, and whether the frequency cap lets another
email go to a customer. Sending is kizashi.notifier.customer; docs/notifications.md describes
the whole of it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kizashi.contracts.signals import SignalBase

# The delivery of a customer email: receiver "customer:<playbook>", on this channel.
CUSTOMER_CHANNEL = "customer_email"
CUSTOMER_RECEIVER_PREFIX = "customer:"
_INTERVAL = re.compile(r"^([1-9]\d*)([hd])$")

Address = Annotated[str, Field(pattern=r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$", max_length=254)]
PriorityName = Literal["high", "medium", "low"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class FrequencyCap(_Strict):
    """At most `max` customer emails to one customer (its account, or its contact's address)
    per `per`, across every playbook."""

    max: int = Field(default=1, ge=1, le=100)
    per: str = "30d"

    @field_validator("per")
    @classmethod
    def _period(cls, value: str) -> str:
        if not _INTERVAL.match(value):
            raise ValueError('must look like "30d" or "12h"')
        return value

    @property
    def period(self) -> timedelta:
        match = _INTERVAL.match(self.per)
        assert match is not None
        number, unit = int(match[1]), match[2]
        return timedelta(days=number) if unit == "d" else timedelta(hours=number)


class PlaybookConfig(_Strict):
    # Off until a team turns it on: Kizashi writes to no customer unless told to.
    enabled: bool = False
    # The account priorities (scores.changed's priority) whose signals go to the customer;
    # any other priority alerts the rep as routed.
    priorities: list[PriorityName] = Field(default=["medium", "low"], min_length=1)
    # templates/customer/<template>_subject.txt, <template>.txt and <template>.html (in the
    # package, or overridden in <config_dir>/templates/customer/).
    template: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    # The From header; the section's `from`, else KIZASHI_EMAIL_FROM, when unset.
    from_: Address | None = Field(default=None, alias="from")
    # Replies go here (e.g. the team's shared inbox); the account's owner when unset.
    reply_to: Address | None = None


class CustomerEmailsConfig(_Strict):
    """routing.yaml's `customer_emails` section."""

    from_: Address | None = Field(default=None, alias="from")
    frequency_cap: FrequencyCap = Field(default_factory=FrequencyCap)
    # Keyed by rule name: a signal of that rule may become a customer email.
    playbooks: dict[str, PlaybookConfig] = Field(default_factory=dict)

    @field_validator("playbooks")
    @classmethod
    def _rule_names(cls, value: dict[str, PlaybookConfig]) -> dict[str, PlaybookConfig]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
                raise ValueError(f"{name!r} is not a rule name")
        return value

    def playbook_for(self, signal: SignalBase) -> PlaybookConfig | None:
        """The enabled playbook that takes this signal instead of its rep's alert, judged on
        the rule and the account's priority; whether the account has a contact to write to is
        the caller's question (its facts may be newer than the signal's snapshot)."""
        playbook = self.playbooks.get(signal.rule)
        if playbook is None or not playbook.enabled:
            return None
        return playbook if account_priority(signal) in playbook.priorities else None

    def describe(self) -> dict[str, Any]:
        return {
            "from": self.from_,
            "frequency_cap": self.frequency_cap.model_dump(),
            "playbooks": {name: p.model_dump(by_alias=True) for name, p in self.playbooks.items()},
        }


def customer_playbook(
    config: CustomerEmailsConfig, signal: SignalBase, contact_email: str | None
) -> PlaybookConfig | None:
    """The playbook whose email goes to the customer instead of the rep's alert; None when the
    rep is alerted (no playbook for the rule, off, the account's priority not among the
    playbook's, or no contact to write to)."""
    playbook = config.playbook_for(signal)
    return playbook if playbook is not None and contact_email else None


def unreachable_unsubscribe(
    config: CustomerEmailsConfig, *, smtp_configured: bool, public_url: str | None
) -> str | None:
    """Why the notifier must not start: a playbook is on and SMTP is set, so customer emails
    can go, but KIZASHI_NOTIFIER_PUBLIC_URL is not set, so their unsubscribe link would point
    at this host's loopback address, which no customer reaches. None when nothing is wrong.
    (`kizashi up` sets the variable itself, to 127.0.0.1, for a local trial.)"""
    enabled = sorted(name for name, playbook in config.playbooks.items() if playbook.enabled)
    if not enabled or not smtp_configured or (public_url or "").strip():
        return None
    return (
        f"customer_emails: {', '.join(enabled)} on and SMTP configured, but "
        "KIZASHI_NOTIFIER_PUBLIC_URL is not set: the customer emails' unsubscribe link would "
        "point at 127.0.0.1, which customers cannot reach. Set it to where customers' "
        "browsers reach this notifier (expose only /v1/unsubscribe/), or turn the playbooks off"
    )


def account_priority(signal: SignalBase) -> str:
    """The account's priority when the signal fired (a rule may fix its signal's own)."""
    return signal.scores.priority


def receiver_name(rule: str) -> str:
    return f"{CUSTOMER_RECEIVER_PREFIX}{rule}"


def playbook_name(receiver: str) -> str | None:
    if receiver.startswith(CUSTOMER_RECEIVER_PREFIX):
        return receiver[len(CUSTOMER_RECEIVER_PREFIX) :]
    return None


@dataclass(frozen=True)
class CapCheck:
    allowed: bool
    sent: int
    next_allowed_at: datetime | None = None


def within_cap(cap: FrequencyCap, earlier: Iterable[datetime], now: datetime) -> CapCheck:
    """Whether one more email may go to a customer now, given when the earlier ones (sent or
    on their way) went: fewer than `cap.max` in the last `cap.per`."""
    since = now - cap.period
    recent = sorted(at for at in earlier if at > since)
    if len(recent) < cap.max:
        return CapCheck(True, len(recent))
    # The oldest email that still counts must leave the window before another may go.
    return CapCheck(False, len(recent), recent[-cap.max] + cap.period)
