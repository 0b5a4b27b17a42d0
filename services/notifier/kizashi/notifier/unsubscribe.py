"""The customer emails' unsubscribe link (kizashi.notifier.customer), with no account or API
token: the link carries a signed token naming the address and the delivery it came in
(kizashi.notifier.links.unsubscribe_link).

GET only shows a confirmation page, because mail scanners open links before people do; the
unsubscribe happens on POST, from that page's form or from a mail client's one-click
unsubscribe (RFC 8058: `List-Unsubscribe=One-Click`, no page at all). The signed token in the
URL is the form's CSRF proof: it is unguessable, bound to the one address it unsubscribes and
sent only to that address, so another site cannot forge the POST for anyone else; and the
action only ever stops email. The account's customer emails, for the console and the API,
are here too."""

from datetime import UTC, datetime
from html import escape
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from kizashi.contracts.limits import MAX_ID_LENGTH
from kizashi.contracts.text import NO_NUL_PATTERN
from kizashi.notifier.deps import ApiCaller, StateDep
from kizashi.notifier.links import verify_unsubscribe
from kizashi.notifier.repository import customer as customer_sql
from kizashi.runtime.db import raw_transaction
from kizashi.runtime.signing import ExpiredActionToken, InvalidActionToken

router = APIRouter(prefix="/v1", tags=["customer emails"])

TOKEN = Annotated[str, Path(max_length=2048, pattern=NO_NUL_PATTERN)]


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><title>Unsubscribe</title>"
        "<meta name='referrer' content='no-referrer'>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>",
        status_code=status_code,
        # The page is never framed by another site (the button must be pressed knowingly).
        headers={"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"},
    )


def _verified(state, token: str) -> tuple[str, str] | HTMLResponse:
    try:
        return verify_unsubscribe(state, token)
    except ExpiredActionToken:
        return _page(
            "This link has expired",
            "<p>Reply to the email and ask to be taken off the list instead.</p>",
            410,
        )
    except InvalidActionToken:
        return _page("This link is not valid", "<p>It may have been cut short.</p>", 400)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def confirm(token: TOKEN, state: StateDep) -> HTMLResponse:
    verified = _verified(state, token)
    if isinstance(verified, HTMLResponse):
        return verified
    _, contact = verified
    return _page(
        "Stop these emails?",
        f"<p>No more emails like this one will be sent to <b>{escape(contact)}</b>.</p>"
        "<form method='post'><button type='submit'>Unsubscribe</button></form>",
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def perform(token: TOKEN, state: StateDep, request: Request) -> HTMLResponse:
    # Besides the token: a browser's POST from another site's page names that site in Origin
    # (a mail provider's one-click POST, server to server, sends none; this page's own form
    # may send "null", its referrer policy being no-referrer).
    origin = (request.headers.get("origin") or "null").lower()
    if origin not in ("null", _origin(state.unsubscribe_base_url)):
        return _page("Not done", "<p>Use the button on this page to unsubscribe.</p>", 403)
    verified = _verified(state, token)
    if isinstance(verified, HTMLResponse):
        return verified
    delivery_id, contact = verified
    async with raw_transaction(state.engine) as connection:
        sent = await customer_sql.customer_email_of(conn=connection, delivery_id=delivery_id)
        await customer_sql.unsubscribe(
            conn=connection,
            contact_email=contact,
            account_id=sent["account_id"] if sent else None,
            delivery_id=delivery_id,
            now=datetime.now(UTC),
        )
    return _page(
        "You are unsubscribed",
        f"<p>No more emails like this one will be sent to <b>{escape(contact)}</b>.</p>",
    )


class CustomerEmailView(BaseModel):
    delivery_id: str
    signal_id: str
    account_id: str
    contact_email: str
    playbook: str
    template: str
    # sending, sent, pending (a retry follows), failed, or suppressed (with the reason).
    status: str
    reason: str | None
    created_at: datetime
    sent_at: datetime | None
    # When the address unsubscribed (after this email or before), if it did.
    unsubscribed_at: datetime | None


# `:path`: an account id may hold "/" (any 1–128 characters but NUL, as ingest accepts).
@router.get("/accounts/{account_id:path}/customer-emails", response_model=list[CustomerEmailView])
async def account_customer_emails(
    state: StateDep,
    _: ApiCaller,
    account_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL_PATTERN)
    ],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CustomerEmailView]:
    async with raw_transaction(state.engine) as connection:
        rows = await customer_sql.customer_emails(
            conn=connection, account_id=account_id, limit=limit
        )
    return [CustomerEmailView(**row) for row in rows]
