"""Acknowledge / snooze / useful / not useful from an alert, with no API token: the link
carries a signed, expiring token (kizashi.runtime.signing). GET only shows a confirmation page
(for "not useful", with the optional reason to pick), because mail scanners open links before
people do; the action happens on POST from that page."""

from datetime import UTC, datetime, timedelta
from html import escape
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.contracts.feedback import FEEDBACK_LINKS, REASONS
from kizashi.runtime.db import raw_transaction
from kizashi.runtime.signing import ExpiredActionToken, InvalidActionToken, verify_action_for
from kizashi.triggers.deps import EngineDep, SettingsDep
from kizashi.triggers.feedback import give_feedback
from kizashi.triggers.lifecycle import InvalidTransition, NotFound, apply_action
from kizashi.triggers.settings import TriggersSettings

router = APIRouter(prefix="/v1/actions", tags=["alert links"])

SNOOZE_FOR = timedelta(hours=24)
LABELS = {
    "ack": "Acknowledge",
    "snooze": "Snooze for 24 hours",
    "useful": "Mark as useful",
    "not_useful": "Mark as not useful",
}
# The "not useful" page's choice of why; the first, empty, option gives no reason.
REASON_CHOICE = (
    "<p><label>Why? <select name='reason'><option value=''>(no reason given)</option>"
    + "".join(f"<option value='{key}'>{escape(words)}</option>" for key, words in REASONS.items())
    + "</select></label></p>"
)


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><title>Kizashi</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>",
        status_code=status_code,
    )


def _verify(settings: TriggersSettings, token: str) -> tuple[str, str, str | None] | HTMLResponse:
    secrets = settings.verifying_secrets()
    try:
        return verify_action_for(token, secrets, datetime.now(UTC))
    except ExpiredActionToken:
        return _page("This link has expired", "<p>Open the signal in Kizashi instead.</p>", 410)
    except InvalidActionToken:
        return _page("This link is not valid", "<p>It may have been cut short.</p>", 400)


@router.get("/{token}", response_class=HTMLResponse)
async def confirm(token: str, settings: SettingsDep) -> HTMLResponse:
    verified = _verify(settings, token)
    if isinstance(verified, HTMLResponse):
        return verified
    signal_id, action, _ = verified
    label = LABELS.get(action, action)
    choice = REASON_CHOICE if action == "not_useful" else ""
    return _page(
        f"{label}?",
        f"<p>Signal <code>{escape(signal_id)}</code></p>"
        f"<form method='post'>{choice}<button type='submit'>{escape(label)}</button></form>",
    )


@router.post("/{token}", response_class=HTMLResponse)
async def perform(
    token: str,
    settings: SettingsDep,
    engine: EngineDep,
    reason: Annotated[str, Form(max_length=64)] = "",
) -> HTMLResponse:
    verified = _verify(settings, token)
    if isinstance(verified, HTMLResponse):
        return verified
    signal_id, action, recipient = verified
    if action not in LABELS:
        return _page("This link is not valid", "<p>Unknown action.</p>", 400)
    if action in FEEDBACK_LINKS:
        return await _feedback(engine, signal_id, action, recipient, reason)
    now = datetime.now(UTC)
    try:
        async with raw_transaction(engine) as connection:
            row = await apply_action(
                connection,
                signal_id=signal_id,
                action=action,
                # The person the alert was sent to (bound into the link); older links name none.
                actor=recipient or "alert-link",
                now=now,
                until=now + SNOOZE_FOR if action == "snooze" else None,
            )
    except NotFound:
        return _page("No such signal", "<p>It may have been removed.</p>", 404)
    except InvalidTransition as error:
        return _page("Nothing to do", f"<p>{escape(str(error))}.</p>", 409)
    until = f" until {row['snoozed_until']:%Y-%m-%d %H:%M} UTC" if row["snoozed_until"] else ""
    return _page("Done", f"<p>The signal is now {escape(row['status'])}{escape(until)}.</p>")


async def _feedback(
    engine: AsyncEngine, signal_id: str, action: str, recipient: str | None, reason: str
) -> HTMLResponse:
    useful = FEEDBACK_LINKS[action]
    if reason and (useful or reason not in REASONS):
        return _page("Not recorded", "<p>Choose one of the reasons offered.</p>", 400)
    try:
        async with raw_transaction(engine) as connection:
            await give_feedback(
                connection,
                signal_id=signal_id,
                useful=useful,
                reason=reason or None,
                actor=recipient or "alert-link",
                channel="link",
            )
    except NotFound:
        return _page("No such signal", "<p>It may have been removed.</p>", 404)
    why = f" ({REASONS[reason].lower()})" if reason else ""
    answer = "useful" if useful else f"not useful{why}"
    return _page(
        "Thank you",
        f"<p>Recorded: this signal was {escape(answer)}. "
        "Open the link again to change your answer.</p>",
    )
