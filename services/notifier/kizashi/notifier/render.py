"""What a rep reads: Slack Block Kit messages and email (subject, text, HTML) for signals.

Slack messages are built here in Python, because Block Kit's limits (header ≤ 150 chars,
section ≤ 3000, ≤ 50 blocks, button ≤ 75) are easier to enforce on data than in a template.
Email uses Jinja templates from the package's `templates/`; a file of the same name in
`<config_dir>/templates/` overrides it. HTML templates (`*.html`) are autoescaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from kizashi.contracts.rules import RULE_WORDS
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.contracts.signals import Signal

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
BUTTON_MAX = 75
BLOCKS_MAX = 50
SUBJECT_MAX = 200

KIND_LABELS = {"opportunity": "Opportunity", "churn_risk": "Churn risk"}
KIND_EMOJI = {"opportunity": ":chart_with_upwards_trend:", "churn_risk": ":warning:"}
PRIORITY_ORDER = {"high": 0, "medium": 1, "low": 2}
# The first number in a reason, with its scale ("9/10", "92%") and a leading acronym ("NPS 2").
_FIGURE = re.compile(r"(?:\b[A-Z]{2,6}\s*[:=]?\s*)?-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+|\s*%)?")
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")

ActionLinks = tuple[str | None, str | None]


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str

    def to_message(
        self, *, sender: str, to: Sequence[str], headers: Mapping[str, str] | None = None
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(to)
        message["Subject"] = self.subject
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        return message


@dataclass(frozen=True)
class RenderedDigest:
    slack: dict[str, Any]
    email: RenderedEmail


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


# --- formatting ------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack's three control characters; everything else in mrkdwn is left as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` chars, ending in "…" when cut, never inside an `&amp;`-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp <= 5:
        cut = cut[:amp]
    return cut + "…"


def _one_line(text: str) -> str:
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
    name = _one_line(account.display_name)
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
        headline=_one_line(f"{kind_label}: {name} — {summary}"),
        summary=_one_line(summary),
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


# --- Slack -----------------------------------------------------------------------------------


def _mrkdwn(text: str, limit: int = SECTION_MAX) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def _fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    fields = [_mrkdwn(f"*{label}*\n{slack_escape(value)}", FIELD_MAX) for label, value in pairs]
    return {"type": "section", "fields": fields[:10]}


def _button(label: str, url: str, action_id: str, style: str | None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(label, BUTTON_MAX), "emoji": True},
        "url": url,
        "action_id": action_id,
    }
    if style:
        button["style"] = style
    return button


def _bullets(items: list[str]) -> str:
    return "\n".join(f"• {slack_escape(_one_line(item))}" for item in items) or "—"


def _link(url: str, label: str) -> str:
    return f"<{slack_escape(url)}|{label}>"


def slack_message(
    view: SignalView, *, ack_url: str | None, snooze_url: str | None, open_url: str | None = None
) -> dict:
    signal = view.signal
    fact_block = _fields(view.facts)
    if view.owner_slack_mention:
        # A real mention pings the owner; it is built by us, so it is not escaped.
        owner_text = f"*Owner*\n{view.owner_slack_mention}"
        if signal.account.owner_email:
            owner_text += f" {slack_escape(signal.account.owner_email)}"
        fact_block["fields"][3] = _mrkdwn(owner_text, FIELD_MAX)
    emoji = KIND_EMOJI.get(signal.kind, "")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(f"{emoji} {view.kind_label}: {view.name}".strip(), HEADER_MAX),
                "emoji": True,
            },
        },
        {"type": "section", "text": _mrkdwn(f"*{slack_escape(view.summary)}*")},
        fact_block,
        _fields(view.scores),
        {"type": "section", "text": _mrkdwn(f"*Why*\n{_bullets(view.reasons)}")},
        {"type": "section", "text": _mrkdwn(f"*Suggested play*\n{slack_escape(view.play)}")},
    ]
    buttons = []
    if ack_url:
        buttons.append(_button("Acknowledge", ack_url, "kizashi_ack", "primary"))
    if snooze_url:
        buttons.append(_button("Snooze 24h", snooze_url, "kizashi_snooze", None))
    if open_url:
        buttons.append(_button("Open in Kizashi", open_url, "kizashi_open", None))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    context = f"rule `{signal.rule}` · signal `{signal.signal_id}` · fired {view.fired_at}"
    blocks.append({"type": "context", "elements": [_mrkdwn(slack_escape(context), 2000)]})
    return {"text": clip(slack_escape(view.headline), SECTION_MAX), "blocks": blocks[:BLOCKS_MAX]}


def slack_digest(
    views: list[SignalView], links: Mapping[str, ActionLinks], title: str
) -> dict[str, Any]:
    header = {"type": "header", "text": {"type": "plain_text", "text": clip(title, HEADER_MAX)}}
    blocks: list[dict[str, Any]] = [header]
    # Room for the header, and the "… and N more" context line.
    shown = views[: BLOCKS_MAX - 2]
    for view in shown:
        signal = view.signal
        line = f"*{slack_escape(view.kind_label)}* · *{slack_escape(view.name)}* — "
        line += f"{slack_escape(view.summary)} · {signal.priority} priority"
        line += f"\nCS {slack_escape(view.scores[0][1])} · OP {slack_escape(view.scores[1][1])}"
        line += f"\n_{slack_escape(_one_line(view.play))}_"
        ack, snooze = links.get(signal.signal_id, (None, None))
        pairs = ((ack, "Acknowledge"), (snooze, "Snooze 24h"))
        actions = [_link(url, label) for url, label in pairs if url]
        if actions:
            line += "\n" + " · ".join(actions)
        blocks.append({"type": "section", "text": _mrkdwn(line)})
    if len(views) > len(shown):
        more = f"… and {len(views) - len(shown)} more signals"
        blocks.append({"type": "context", "elements": [_mrkdwn(more)]})
    return {"text": clip(slack_escape(title), SECTION_MAX), "blocks": blocks}


# --- templates -------------------------------------------------------------------------------


class Renderer:
    """Renders with the packaged templates, overridden by `<config_dir>/templates/`."""

    def __init__(self, config_dir: Path | None = None) -> None:
        loaders = []
        if config_dir is not None and (config_dir / "templates").is_dir():
            loaders.append(FileSystemLoader(config_dir / "templates"))
        loaders.append(FileSystemLoader(PACKAGE_TEMPLATES))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def _email(self, prefix: str, context: dict[str, Any]) -> RenderedEmail:
        subject = self.env.get_template(f"{prefix}_subject.txt").render(context)
        return RenderedEmail(
            subject=clip(_one_line(subject), SUBJECT_MAX),
            text=self.env.get_template(f"{prefix}.txt").render(context),
            html=self.env.get_template(f"{prefix}.html").render(context),
        )

    def slack(
        self,
        signal: Signal,
        *,
        ack_url: str | None,
        snooze_url: str | None,
        open_url: str | None = None,
    ) -> dict:
        view = signal_view(signal)
        return slack_message(view, ack_url=ack_url, snooze_url=snooze_url, open_url=open_url)

    def email(
        self,
        signal: Signal,
        *,
        ack_url: str | None,
        snooze_url: str | None,
        open_url: str | None = None,
    ) -> RenderedEmail:
        context = {
            "v": signal_view(signal),
            "ack_url": ack_url,
            "snooze_url": snooze_url,
            "open_url": open_url,
        }
        return self._email("email", context)

    def digest(
        self,
        signals: Sequence[Signal],
        *,
        links: Mapping[str, ActionLinks] | None = None,
        title: str | None = None,
    ) -> RenderedDigest:
        ordered = sorted(signals, key=lambda s: (PRIORITY_ORDER.get(s.priority, 9), s.fired_at))
        views = [signal_view(s) for s in ordered]
        links = links or {}
        count = len(views)
        title = _one_line(title or f"Kizashi digest: {count} signal{'s' if count != 1 else ''}")
        context = {"views": views, "links": links, "title": title, "count": count}
        email = self._email("digest", context)
        return RenderedDigest(slack=slack_digest(views, links, title), email=email)


_default_renderer: Renderer | None = None


def default_renderer() -> Renderer:
    global _default_renderer
    if _default_renderer is None:
        _default_renderer = Renderer()
    return _default_renderer


def render_slack(
    signal: Signal,
    *,
    ack_url: str | None,
    snooze_url: str | None,
    renderer: Renderer | None = None,
) -> dict:
    return (renderer or default_renderer()).slack(signal, ack_url=ack_url, snooze_url=snooze_url)


def render_email(
    signal: Signal,
    *,
    ack_url: str | None,
    snooze_url: str | None,
    renderer: Renderer | None = None,
) -> RenderedEmail:
    return (renderer or default_renderer()).email(signal, ack_url=ack_url, snooze_url=snooze_url)


def render_digest(
    signals: Sequence[Signal],
    *,
    links: Mapping[str, ActionLinks] | None = None,
    title: str | None = None,
    renderer: Renderer | None = None,
) -> RenderedDigest:
    """One message for many signals (a route's `digest`); `links` maps signal_id → (ack, snooze)."""
    return (renderer or default_renderer()).digest(signals, links=links, title=title)
