"""A signal in words: the one view of a signal that the Slack builder and the email templates
(kizashi.notifier.render) both show, and the formatting of its figures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from kizashi.contracts.rules import RULE_WORDS
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.contracts.signals import Signal

KIND_LABELS = {"opportunity": "Opportunity", "churn_risk": "Churn risk"}
# The first number in a reason, with its scale ("9/10", "92%") and a leading acronym ("NPS 2").
_FIGURE = re.compile(r"(?:\b[A-Z]{2,6}\s*[:=]?\s*)?-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+|\s*%)?")
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")


@dataclass(frozen=True)
class SignalView:
    """A signal in words, shared by the Slack builder and the email templates."""

    signal: Any
    kind_label: str
    name: str
    rule_words: str
    figure: str | None
    headline: str
    summary: str
    facts: list[tuple[str, str]]
    scores: list[tuple[str, str]]
    reasons: list[str]
    play: str
    owner_slack_mention: str | None
    fired_at: str


def clip(text: str, limit: int) -> str:
    """At most `limit` chars, ending in "…" when cut, never inside an `&amp;`-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp <= 5:
        cut = cut[:amp]
    return cut + "…"


def one_line(text: str) -> str:
    # Subjects and headers must not carry line breaks (header injection, broken rendering).
    return " ".join(text.split())


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def _change(now: float, before: float | None) -> str:
    if before is None:
        return _number(now)
    delta = now - before
    if abs(delta) < 0.5:
        return f"{_number(now)} (unchanged)"
    arrow = "▲" if delta > 0 else "▼"
    return f"{_number(now)} {arrow}{_number(abs(delta))} (was {_number(before)})"


def _renewal(renewal: date | None, today: date) -> str:
    if renewal is None:
        return "—"
    days = (renewal - today).days
    when = "today" if days == 0 else f"in {days} days" if days > 0 else f"{-days} days ago"
    return f"{renewal.isoformat()} ({when})"


def _figure(reasons: list[str]) -> str | None:
    found = _FIGURE.search(reasons[0]) if reasons else None
    return " ".join(found.group(0).split()) if found else None


def signal_view(signal: Signal) -> SignalView:
    account = signal.account
    before: ScoreSnapshot | None = signal.scores_before
    kind_label = KIND_LABELS.get(signal.kind, signal.kind)
    rule_words = RULE_WORDS.get(signal.rule, signal.rule.replace("_", " "))
    figure = _figure(signal.reasons)
    # The rule engine's own headline says it best; older signals fall back to the first
    # figure of the first reason: "upsell intent 9/10", "detractor, NPS 2".
    summary = signal.headline or rule_words
    if figure and not signal.headline:
        summary += f", {figure}" if figure[0].isalpha() else f" {figure}"
    name = one_line(account.display_name)
    owner = account.owner_email or "—"
    if account.owner_slack:
        owner = (
            f"{account.owner_email} (Slack: {account.owner_slack})"
            if account.owner_email
            else f"Slack: {account.owner_slack}"
        )
    segment = signal.scores.segment
    if before is not None and before.segment != segment:
        segment += f" (was {before.segment})"
    mention = None
    if account.owner_slack and _SLACK_USER_ID.match(account.owner_slack.lstrip("@")):
        mention = f"<@{account.owner_slack.lstrip('@')}>"
    return SignalView(
        signal=signal,
        kind_label=kind_label,
        name=name,
        rule_words=rule_words,
        figure=figure,
        headline=one_line(f"{kind_label}: {name} — {summary}"),
        summary=one_line(summary),
        facts=[
            ("Plan", account.plan or "—"),
            ("ARR", f"${account.arr:,.0f}" if account.arr is not None else "—"),
            ("Renewal", _renewal(account.renewal_date, signal.fired_at.date())),
            ("Owner", owner),
        ],
        scores=[
            ("CS", _change(signal.scores.cs, before.cs if before else None)),
            ("OP", _change(signal.scores.op, before.op if before else None)),
            ("Segment", segment),
            ("Priority", signal.priority),
        ],
        reasons=list(signal.reasons),
        play=signal.suggested_play,
        owner_slack_mention=mention,
        fired_at=signal.fired_at.strftime("%Y-%m-%d %H:%M %Z").strip(),
    )
