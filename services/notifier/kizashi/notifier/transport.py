"""Sending one message: JSON over HTTP (Slack incoming webhooks, the signed `webhook`
receiver), email over SMTP (architecture §5.7).

A send never raises for delivery problems: it returns a `SendResult` that says whether the
message went out, may go out on a later attempt (and when), or never will. A send is one
attempt: the delivery worker (kizashi.notifier.deliver) records it and, when the result is
retryable, schedules the next one through the shared kizashi.runtime.retry.RetryPolicy.
Webhook URLs and SMTP passwords are secrets: they never appear in results, reprs or logs.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import httpx

logger = logging.getLogger(__name__)

# "skipped": nothing was sent, on purpose (a customer email held back: kizashi.notifier.customer).
Outcome = Literal["ok", "retry", "failed", "skipped"]
REASON_MAX = 300


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    reason: str = ""
    status: int | None = None
    # Seconds the receiver asked us to wait (429 Retry-After); None means "use backoff".
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def retryable(self) -> bool:
        return self.outcome == "retry"

    @property
    def permanent(self) -> bool:
        return self.outcome == "failed"


# --- redaction -------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """Keep what identifies the endpoint for a human (scheme, host, port, user), drop secrets."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    user = f"{unquote(parts.username)}:***@" if parts.username else ""
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{host}{port}/…"
    return f"{parts.scheme}://{user}{host}{port}"


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every secret (a URL, a password) replaced; for exception messages."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, redact_url(secret) if "://" in secret else "***")
    return text


class _RedactHttpxUrls(logging.Filter):
    """httpx logs every request's full URL at INFO, and a webhook URL is a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


if not any(isinstance(f, _RedactHttpxUrls) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_RedactHttpxUrls())


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


# --- Slack webhooks --------------------------------------------------------------------------


class TokenBucket:
    """`rate` tokens a second, up to `burst`; waiters are served in arrival order."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens = float(burst)
        self._updated = clock()
        self._not_before = 0.0
        self._lock = asyncio.Lock()

    def paused_for(self) -> float:
        return max(self._not_before - self._clock(), 0.0)

    def pause(self, seconds: float) -> None:
        """Hold every sender back, e.g. after the receiver answered 429."""
        self._not_before = max(self._not_before, self._clock() + seconds)
        self._tokens = 0.0

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if now < self._not_before:
                    await asyncio.sleep(self._not_before - now)
                    continue
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


class Pacer(Protocol):
    """Paces the sends to each webhook. Each method may raise when its store is unreachable;
    the sender then answers "retry" without sending."""

    async def paused_for(self, url: str) -> float:
        """Seconds a 429 still holds this webhook for."""
        ...

    async def acquire(self, url: str) -> None:
        """Wait for this webhook's next send slot."""
        ...

    async def pause(self, url: str, seconds: float) -> None:
        """Hold every sender back, e.g. after the receiver answered 429."""
        ...


class LocalPacer:
    """A token bucket per webhook, in this process only (tests, tools). The notifier service
    uses kizashi.notifier.pacing.SharedPacer, whose pace every replica shares."""

    def __init__(self, rate: float = 1.0, burst: int = 2) -> None:
        self._rate, self._burst = rate, burst
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, url: str) -> TokenBucket:
        bucket = self._buckets.get(url)
        if bucket is None:
            bucket = self._buckets[url] = TokenBucket(self._rate, self._burst)
        return bucket

    async def paused_for(self, url: str) -> float:
        return self._bucket(url).paused_for()

    async def acquire(self, url: str) -> None:
        await self._bucket(url).acquire()

    async def pause(self, url: str, seconds: float) -> None:
        self._bucket(url).pause(seconds)


class WebhookSender:
    """POSTs JSON to Slack incoming webhooks and `webhook` receivers, at most ~`rate`
    messages a second per URL (paced by `pacer`; by default a token bucket per URL in this
    process)."""

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        rate: float = 1.0,
        burst: int = 2,
        timeout: float = 10.0,
        max_pause: float = 5.0,
        pacer: Pacer | None = None,
    ) -> None:
        # A webhook paused by a 429 longer than `max_pause` is not waited for in memory: the
        # send returns "retry" at once, so a long Retry-After holds no caller (or lease) hostage.
        self._max_pause = max_pause
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._pacer: Pacer = pacer or LocalPacer(rate, burst)

    async def send(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        sign: Callable[[bytes], Mapping[str, str]] | None = None,
    ) -> SendResult:
        """`sign`, when given, adds headers computed from the body at the moment of sending
        (after any wait for the pace), e.g. the Standard Webhooks signature and timestamp."""
        try:
            paused = await self._pacer.paused_for(url)
            if paused > self._max_pause:
                return SendResult("retry", "webhook paused after HTTP 429", 429, paused)
            await self._pacer.acquire(url)
        except Exception as exc:  # the shared pace lives in PostgreSQL, which may be away
            return SendResult("retry", _clip(f"pacing unavailable: {type(exc).__name__}"))
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        if sign is not None:
            headers.update(sign(body))
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return SendResult("retry", f"timeout: {type(exc).__name__}")
        except httpx.TransportError as exc:
            # Connection refused, DNS, TLS, a dropped connection: the webhook may come back.
            return SendResult("retry", _clip(f"{type(exc).__name__}: {redact(str(exc), url)}"))
        result = self._classify(response)
        if result.status == 429:
            try:
                await self._pacer.pause(
                    url, result.retry_after if result.retry_after is not None else 1.0
                )
            except Exception:  # the pause is a courtesy; the result is recorded regardless
                logger.warning("could not record a 429 pause for a webhook", exc_info=True)
        return result

    def _classify(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        text = _clip(response.text) or response.reason_phrase
        if 200 <= status < 300:
            return SendResult("ok", text, status)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return SendResult("retry", f"HTTP 429: {text}", status, retry_after)
        if status >= 500 or status == 408:
            return SendResult("retry", f"HTTP {status}: {text}", status)
        # Slack answers 400 invalid_payload, 403 action_prohibited, 404 no_service /
        # channel_not_found, 410 channel_is_archived: retrying will not change them. A
        # `webhook` receiver's 4xx (401: the signature did not verify) is treated the same.
        return SendResult("failed", f"HTTP {status}: {text}", status)

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# --- SMTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    implicit_tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """`smtp://[user:pass@]host:port[?starttls=true]`, or `smtps://` for TLS from the start."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"not an smtp:// or smtps:// URL: {redact_url(url)}")
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=query.get("starttls", "false") in ("1", "true", "yes"),
            implicit_tls=implicit,
        )

    def __repr__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        tls = " starttls" if self.starttls else " tls" if self.implicit_tls else ""
        return f"SmtpConfig({user}{self.host}:{self.port}{tls})"


class SmtpSender:
    """Sends multipart (text + HTML) email; each send is its own SMTP session."""

    def __init__(self, config: SmtpConfig, *, sender: str, timeout: float = 30.0) -> None:
        self.config, self.sender, self.timeout = config, sender, timeout

    @classmethod
    def from_url(cls, url: str, *, sender: str, timeout: float = 30.0) -> SmtpSender:
        return cls(SmtpConfig.from_url(url), sender=sender, timeout=timeout)

    def __repr__(self) -> str:
        return f"SmtpSender({self.config!r}, sender={self.sender!r})"

    def build_message(
        self,
        to: Sequence[str],
        subject: str,
        text: str,
        html: str,
        headers: Mapping[str, str] | None = None,
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = " ".join(subject.split())
        message["Date"] = email.utils.formatdate(localtime=False)
        message["Message-ID"] = email.utils.make_msgid(domain="kizashi")
        for name, value in (headers or {}).items():
            del message[name]  # a caller's Message-ID or Date replaces ours, not duplicates it
            message[name] = value
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    async def send(
        self,
        to: list[str],
        subject: str,
        text: str,
        html: str,
        *,
        headers: Mapping[str, str] | None = None,
        sender: str | None = None,
    ) -> SendResult:
        """`sender`: the envelope's MAIL FROM when not the configured one (give the same
        address as the `From` header)."""
        if not to:
            return SendResult("failed", "no recipients")
        message = self.build_message(to, subject, text, html, headers)
        cfg = self.config
        try:
            refused, reply = await aiosmtplib.send(
                message,
                sender=sender or self.sender,
                recipients=list(to),
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password,
                use_tls=cfg.implicit_tls,
                start_tls=cfg.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            outcome: Outcome = "retry" if any(400 <= c < 500 for c in codes) else "failed"
            return SendResult(outcome, _clip(f"recipients refused: {detail}"), min(codes))
        except aiosmtplib.SMTPResponseException as exc:
            outcome = "retry" if 400 <= exc.code < 500 else "failed"
            return SendResult(outcome, _clip(f"SMTP {exc.code}: {exc.message}"), exc.code)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # No reply code: connection refused, dropped or timed out; the server may return.
            message_text = redact(str(exc), cfg.password)
            return SendResult("retry", _clip(f"{type(exc).__name__}: {message_text}"))
        if refused:
            detail = "; ".join(f"{rcpt}: {r.code} {r.message}" for rcpt, r in refused.items())
            return SendResult("ok", _clip(f"{reply}; some recipients refused: {detail}"), 250)
        return SendResult("ok", _clip(reply), 250)
