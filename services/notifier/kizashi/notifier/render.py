"""What a rep reads: Slack Block Kit messages and email (subject, text, HTML) for signals.

Slack messages are built here in Python, because Block Kit's limits (header ≤ 150 chars,
section ≤ 3000, ≤ 50 blocks, button ≤ 75) are easier to enforce on data than in a template.
Email uses Jinja templates from the package's `templates/`; a file of the same name in
`<config_dir>/templates/` overrides it. HTML templates (`*.html`) are autoescaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

from kizashi.contracts.budget import by_rank
from kizashi.contracts.signals import Signal
from kizashi.notifier.view import SignalView, clip, one_line, signal_view

__all__ = ["clip", "Renderer", "RenderedDigest", "RenderedEmail", "slack_escape"]

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
BUTTON_MAX = 75
BLOCKS_MAX = 50
SUBJECT_MAX = 200

KIND_EMOJI = {"opportunity": ":chart_with_upwards_trend:", "churn_risk": ":warning:"}

ActionLinks = tuple[str | None, str | None]
# (useful, not useful): signed feedback links, kept apart from ActionLinks so that templates
# written for (ack, snooze) pairs keep working.
FeedbackLinks = tuple[str, str]


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


# --- formatting ------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack's three control characters; everything else in mrkdwn is left as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
    return "\n".join(f"• {slack_escape(one_line(item))}" for item in items) or "—"


def _link(url: str, label: str) -> str:
    return f"<{slack_escape(url)}|{label}>"


def slack_message(
    view: SignalView,
    *,
    ack_url: str | None,
    snooze_url: str | None,
    open_url: str | None = None,
    feedback_urls: FeedbackLinks | None = None,
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
    if feedback_urls:
        buttons.append(_button("Useful", feedback_urls[0], "kizashi_useful", None))
        buttons.append(_button("Not useful", feedback_urls[1], "kizashi_not_useful", None))
    if open_url:
        buttons.append(_button("Open in Kizashi", open_url, "kizashi_open", None))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    context = f"rule `{signal.rule}` · signal `{signal.signal_id}` · fired {view.fired_at}"
    blocks.append({"type": "context", "elements": [_mrkdwn(slack_escape(context), 2000)]})
    return {"text": clip(slack_escape(view.headline), SECTION_MAX), "blocks": blocks[:BLOCKS_MAX]}


def slack_digest(
    views: list[SignalView],
    links: Mapping[str, ActionLinks],
    title: str,
    feedback: Mapping[str, FeedbackLinks] | None = None,
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
        line += f"\n_{slack_escape(one_line(view.play))}_"
        ack, snooze = links.get(signal.signal_id, (None, None))
        useful, not_useful = (feedback or {}).get(signal.signal_id, (None, None))
        pairs = ((ack, "Acknowledge"), (snooze, "Snooze 24h"))
        pairs += ((useful, "Useful"), (not_useful, "Not useful"))
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
            subject=clip(one_line(subject), SUBJECT_MAX),
            text=self.env.get_template(f"{prefix}.txt").render(context),
            html=self.env.get_template(f"{prefix}.html").render(context),
        )

    def customer(self, template: str, context: dict[str, Any]) -> RenderedEmail:
        """A customer playbook's email: templates/customer/<template>_subject.txt, .txt, .html."""
        return self._email(f"customer/{template}", context)

    def missing_customer_templates(self, templates: Iterable[str]) -> list[str]:
        """The files of these customer templates that neither folder has (checked at start)."""
        missing = []
        for template in templates:
            for suffix in ("_subject.txt", ".txt", ".html"):
                try:
                    self.env.get_template(f"customer/{template}{suffix}")
                except TemplateNotFound:
                    missing.append(f"templates/customer/{template}{suffix}")
        return missing

    def slack(
        self,
        signal: Signal,
        *,
        ack_url: str | None,
        snooze_url: str | None,
        open_url: str | None = None,
        feedback_urls: FeedbackLinks | None = None,
    ) -> dict:
        view = signal_view(signal)
        return slack_message(
            view,
            ack_url=ack_url,
            snooze_url=snooze_url,
            open_url=open_url,
            feedback_urls=feedback_urls,
        )

    def email(
        self,
        signal: Signal,
        *,
        ack_url: str | None,
        snooze_url: str | None,
        open_url: str | None = None,
        feedback_urls: FeedbackLinks | None = None,
    ) -> RenderedEmail:
        useful, not_useful = feedback_urls or (None, None)
        context = {
            "v": signal_view(signal),
            "ack_url": ack_url,
            "snooze_url": snooze_url,
            "open_url": open_url,
            "useful_url": useful,
            "not_useful_url": not_useful,
        }
        return self._email("email", context)

    def digest(
        self,
        signals: Sequence[Signal],
        *,
        links: Mapping[str, ActionLinks] | None = None,
        title: str | None = None,
        feedback: Mapping[str, FeedbackLinks] | None = None,
    ) -> RenderedDigest:
        # By rank (ARR × severity, kizashi.contracts.budget), the same order the budget uses.
        ordered = by_rank(list(signals))
        views = [signal_view(s) for s in ordered]
        links = links or {}
        count = len(views)
        title = one_line(title or f"Kizashi digest: {count} signal{'s' if count != 1 else ''}")
        feedback = feedback or {}
        context = {
            "views": views,
            "links": links,
            "feedback": feedback,
            "title": title,
            "count": count,
        }
        email = self._email("digest", context)
        return RenderedDigest(slack=slack_digest(views, links, title, feedback), email=email)


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
