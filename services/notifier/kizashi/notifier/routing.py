"""Which receivers hear about a signal: `routing.yaml` (architecture §2.4).

The file has `receivers` (slack / email / webhook), ordered `routes` and a `default` route, which is
taken only when no route matched; `defaults/routing.yaml` documents every key. A matcher is a
string or a list of strings (any of them); "~regex" must match the whole value, "~~x" is the
literal "~x". `owner` is compared with both the account's `owner_email` and `owner_slack`;
`phase` with the account's relationship phase when the signal fired (`3`, `[3, 4]`, "~[3-9]").

A Slack receiver whose webhook env var is unset, or an email receiver without SMTP, is kept but
disabled: routes may name it, `match()` skips it and `describe()` says why. That is what lets
the packaged default stand in for "no file at all". A webhook receiver whose URL variable is
unset is disabled the same way; a URL or a secret that is set but invalid stops the service
with a RoutingConfigError naming the variable (never its value), as does a URL without a
secret: a webhook receiver never sends unsigned.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.budget import UNLIMITED, DailyBudget
from kizashi.contracts.signals import Signal
from kizashi.notifier.playbooks import CustomerEmailsConfig
from kizashi.notifier.routing_config import (
    ROUTING_FILE,
    SLACK_WEBHOOK_ENV,
    BudgetConfig,
    BudgetLimit,
    DefaultRouteConfig,
    EmailReceiverConfig,
    RouteConfig,
    RoutingConfigError,
    SlackReceiverConfig,
    WebhookReceiverConfig,
    _check_url,
)
from kizashi.notifier.settings import NotifierSettings
from kizashi.notifier.transport import redact_url
from kizashi.notifier.webhook import WebhookReceiver, build_webhook

logger = logging.getLogger(__name__)

# --- the loaded tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class SlackReceiver:
    name: str
    webhook_url: str | None
    by_owner: Mapping[str, str] = field(default_factory=dict)
    disabled_reason: str | None = None
    type: Literal["slack"] = "slack"

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None

    def webhook_for(self, account: AccountFacts) -> str | None:
        """The owner's own webhook when one is configured, else the receiver's."""
        # Email addresses are compared case-insensitively, as mail systems treat them.
        owners = {owner.casefold(): url for owner, url in self.by_owner.items()}
        for owner in (account.owner_email, account.owner_slack):
            if owner and owner.casefold() in owners:
                return owners[owner.casefold()]
        return self.webhook_url

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "webhook": redact_url(self.webhook_url) if self.webhook_url else None,
            "by_owner": {owner: redact_url(url) for owner, url in self.by_owner.items()},
        }


@dataclass(frozen=True)
class EmailReceiver:
    name: str
    to: tuple[str, ...] = ()
    to_account_owner: bool = False
    disabled_reason: str | None = None
    type: Literal["email"] = "email"

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None

    def recipients_for(self, account: AccountFacts) -> list[str]:
        """Empty when the receiver is "the account owner" and the account has none."""
        if self.to_account_owner:
            return [account.owner_email] if account.owner_email else []
        return list(self.to)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "to": "account_owner" if self.to_account_owner else list(self.to),
        }


Receiver = SlackReceiver | EmailReceiver | WebhookReceiver


@dataclass(frozen=True)
class Matcher:
    """One key's condition: any of the exact values or any of the full-match patterns."""

    exact: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    source: tuple[str, ...]

    def matches(self, *values: str | None) -> bool:
        for value in values:
            if value is None:
                continue
            if value in self.exact or any(p.fullmatch(value) for p in self.patterns):
                return True
        return False


@dataclass(frozen=True)
class Route:
    index: int
    name: str
    matchers: Mapping[str, Matcher]
    receivers: tuple[str, ...]
    continue_: bool = False
    digest: timedelta | None = None
    digest_label: str | None = None

    def matches(self, signal: Signal) -> bool:
        account = signal.account
        facts: dict[str, tuple[str | None, ...]] = {
            "kind": (signal.kind,),
            "rule": (signal.rule,),
            "priority": (signal.priority,),
            "segment": (signal.scores.segment,),
            "owner": (account.owner_email, account.owner_slack),
            # None (a signal from before phases) matches no phase matcher.
            "phase": (None if signal.phase is None else str(signal.phase),),
        }
        return all(m.matches(*facts[key]) for key, m in self.matchers.items())

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "match": {key: list(m.source) for key, m in self.matchers.items()},
            "receivers": list(self.receivers),
            "continue": self.continue_,
            "digest": {"interval": self.digest_label} if self.digest else None,
        }


@dataclass(frozen=True)
class RouteMatch:
    """A receiver chosen for a signal, and whether the route batches it into a digest."""

    receiver: Receiver
    route: str
    digest: timedelta | None


def _limit_text(budget: DailyBudget) -> int | str:
    return "unlimited" if budget.limit is None else budget.limit


@dataclass(frozen=True)
class BudgetPolicy:
    """Each owner's daily budget of immediate alerts per receiver (docs/notifications.md):
    the owner's own (`budget.by_owner`), else the receiver's (`daily_budget`), else
    `budget.daily` (10). Deferred alerts join the owner's digest of `digest` on that receiver."""

    default: DailyBudget = field(default_factory=DailyBudget)
    by_receiver: Mapping[str, DailyBudget] = field(default_factory=dict)
    by_owner: Mapping[str, DailyBudget] = field(default_factory=dict)  # casefolded owner
    digest: timedelta = timedelta(days=1)
    digest_label: str = "1d"
    reserve: int = DailyBudget().reserve

    def for_owner(self, receiver: str, account: AccountFacts) -> DailyBudget:
        for owner in (account.owner_email, account.owner_slack):
            if owner and owner.casefold() in self.by_owner:
                return self.by_owner[owner.casefold()]
        return self.by_receiver.get(receiver, self.default)

    def describe(self) -> dict[str, Any]:
        # Owners' addresses are configuration, shown as written (GET /v1/routes needs a token).
        return {
            "daily": _limit_text(self.default),
            "reserve": self.reserve,
            "digest": {"interval": self.digest_label},
            "by_receiver": {k: _limit_text(v) for k, v in self.by_receiver.items()},
            "by_owner": {k: _limit_text(v) for k, v in self.by_owner.items()},
        }


@dataclass(frozen=True)
class RoutingTree:
    receivers: Mapping[str, Receiver]
    routes: tuple[Route, ...]
    default: Route
    source: str
    # routing.yaml's `customer_emails` (kizashi.notifier.playbooks).
    customer: CustomerEmailsConfig = field(default_factory=CustomerEmailsConfig)
    budget: BudgetPolicy = field(default_factory=BudgetPolicy)

    def route(self, signal: Signal) -> list[RouteMatch]:
        """Every enabled receiver for the signal, in route order, each receiver once."""
        chosen: dict[str, RouteMatch] = {}
        matched_any = False
        for route in self.routes:
            if not route.matches(signal):
                continue
            matched_any = True
            self._add(chosen, route)
            if not route.continue_:
                break
        if not matched_any:
            self._add(chosen, self.default)
        return list(chosen.values())

    def match(self, signal: Signal) -> list[Receiver]:
        return [m.receiver for m in self.route(signal)]

    def _add(self, chosen: dict[str, RouteMatch], route: Route) -> None:
        for name in route.receivers:
            receiver = self.receivers[name]
            if receiver.enabled and name not in chosen:
                chosen[name] = RouteMatch(receiver, route.name, route.digest)

    def describe(self) -> dict[str, Any]:
        """JSON-able, for GET /v1/routes; webhook URLs are redacted to their host."""
        return {
            "source": self.source,
            "receivers": [r.describe() for r in self.receivers.values()],
            "routes": [r.describe() for r in self.routes],
            "default": self.default.describe(),
            "customer_emails": self.customer.describe(),
            "budget": self.budget.describe(),
        }


# --- loading -------------------------------------------------------------------------------


def load_routing_config_for(settings: NotifierSettings) -> RoutingTree:
    """routing.yaml as the notifier runs it with these settings' Slack webhook and SMTP server."""
    slack = settings.slack_webhook_url
    return load_routing_config(
        settings.config_dir,
        slack_webhook_url=slack.get_secret_value() if slack else None,
        smtp_configured=bool(settings.smtp_url and settings.smtp_url.get_secret_value()),
    )


def load_routing_config(
    config_dir: Path | None,
    *,
    slack_webhook_url: str | None,
    smtp_configured: bool,
    environ: Mapping[str, str] | None = None,
) -> RoutingTree:
    """Read `<config_dir>/routing.yaml`, or the packaged default when there is none."""
    # Named by its full path even when packaged: GET /v1/routes shows where the routes are from.
    path = ROUTING_FILE.path_in(config_dir) or ROUTING_FILE.default_path()
    raw = ROUTING_FILE.read_mapping(path, str(path))
    env = dict(os.environ if environ is None else environ)
    if slack_webhook_url:
        env[SLACK_WEBHOOK_ENV] = slack_webhook_url
    else:
        env.pop(SLACK_WEBHOOK_ENV, None)
    return build_tree(raw, source=str(path), environ=env, smtp_configured=smtp_configured)


def build_tree(
    raw: Any, *, source: str, environ: Mapping[str, str], smtp_configured: bool
) -> RoutingTree:
    if not isinstance(raw, dict):
        raise RoutingConfigError(f"{source}: must be a mapping with receivers, routes, default")
    parsed = ROUTING_FILE.validate(raw, source)

    receivers: dict[str, Receiver] = {}
    for index, config in enumerate(parsed.receivers):
        if config.name in receivers:
            raise RoutingConfigError(
                f"{source}: receiver #{index} ({config.name!r}): name: duplicate receiver name"
            )
        try:
            receivers[config.name] = _build_receiver(config, environ, smtp_configured)
        except ValueError as exc:
            raise RoutingConfigError(
                f"{source}: receiver #{index} ({config.name!r}): {exc}"
            ) from None

    routes: list[Route] = []
    for index, config in enumerate(parsed.routes):
        name = config.name or f"route-{index}"
        routes.append(_build_route(source, index, name, config, receivers))
    for route in routes[:-1]:
        if not route.matchers and not route.continue_:
            raise RoutingConfigError(
                f"{source}: route #{route.index} ({route.name!r}): match: matches every signal"
                " without `continue: true`, so the routes after it are never reached"
            )
    default = _build_route(source, len(routes), "default", parsed.default, receivers)
    budget = _build_budget(parsed.budget, parsed.receivers)
    return RoutingTree(receivers, tuple(routes), default, source, parsed.customer_emails, budget)


def _build_budget(
    config: BudgetConfig,
    receivers: list[SlackReceiverConfig | EmailReceiverConfig | WebhookReceiverConfig],
) -> BudgetPolicy:
    def budget(limit: BudgetLimit) -> DailyBudget:
        if limit == "unlimited":
            return UNLIMITED
        return DailyBudget(limit=int(limit), reserve=config.reserve)

    return BudgetPolicy(
        default=budget(config.daily),
        by_receiver={
            r.name: budget(r.daily_budget)
            for r in receivers
            if getattr(r, "daily_budget", None) is not None  # a webhook has none
        },
        by_owner={owner.casefold(): budget(v) for owner, v in config.by_owner.items()},
        digest=config.digest.period,
        digest_label=config.digest.interval,
        reserve=config.reserve,
    )


def _build_receiver(
    config: SlackReceiverConfig | EmailReceiverConfig | WebhookReceiverConfig,
    environ: Mapping[str, str],
    smtp_configured: bool,
) -> Receiver:
    if isinstance(config, WebhookReceiverConfig):
        return build_webhook(config, environ)
    if isinstance(config, EmailReceiverConfig):
        return EmailReceiver(
            name=config.name,
            to=() if config.to == "account_owner" else tuple(config.to),
            to_account_owner=config.to == "account_owner",
            disabled_reason=None if smtp_configured else "SMTP is not configured",
        )
    url, reason = config.webhook_url, None
    if config.webhook_url_env:
        url = environ.get(config.webhook_url_env) or None
        if url is None and not config.by_owner:
            reason = f"{config.webhook_url_env} is not set"
        elif url is not None:
            try:
                _check_url(url)
            except ValueError:
                url, reason = None, f"{config.webhook_url_env} is not an http(s) URL"
    if reason:
        logger.warning("slack receiver %r disabled: %s", config.name, reason)
    return SlackReceiver(config.name, url, dict(config.by_owner), reason)


def _build_route(
    source: str,
    index: int,
    name: str,
    config: RouteConfig | DefaultRouteConfig,
    receivers: Mapping[str, Receiver],
) -> Route:
    where = f"{source}: route #{index} ({name!r})"
    for receiver in config.receivers:
        if receiver not in receivers:
            raise RoutingConfigError(f"{where}: receivers: unknown receiver {receiver!r}")
        if config.digest and receivers[receiver].type == "webhook":
            raise RoutingConfigError(
                f"{where}: digest: webhook receiver {receiver!r} takes each signal as it"
                " fires; give the digest route only slack or email receivers"
            )
    matchers: dict[str, Matcher] = {}
    if isinstance(config, RouteConfig):
        for key, value in config.match.model_dump(exclude_none=True).items():
            matchers[key] = _matcher(where, key, value)
    return Route(
        index=index,
        name=name,
        matchers=matchers,
        receivers=tuple(dict.fromkeys(config.receivers)),
        continue_=isinstance(config, RouteConfig) and config.continue_,
        digest=config.digest.period if config.digest else None,
        digest_label=config.digest.interval if config.digest else None,
    )


def _matcher(where: str, key: str, value: str | list[str]) -> Matcher:
    values = [value] if isinstance(value, str) else value
    if not values:
        raise RoutingConfigError(f"{where}: match.{key}: an empty list matches nothing")
    exact: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for item in values:
        if item.startswith("~~"):
            exact.add(item[1:])
        elif item.startswith("~"):
            try:
                patterns.append(re.compile(item[1:]))
            except re.error as exc:
                raise RoutingConfigError(
                    f"{where}: match.{key}: bad regular expression {item[1:]!r}: {exc}"
                ) from exc
        else:
            exact.add(item)
    return Matcher(frozenset(exact), tuple(patterns), tuple(values))
