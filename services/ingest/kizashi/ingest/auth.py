"""Ingest keys: `Authorization: Bearer <key>`; the key's name becomes the event's `source`."""

import hmac

from fastapi import Request

from kizashi.ingest.metrics import EVENTS_REJECTED
from kizashi.runtime.auth import bearer_token, unauthorized
from kizashi.runtime.settings import Settings


def source_for_secret(settings: Settings, secret: object) -> str | None:
    if not isinstance(secret, str) or not secret:
        return None
    for known, name in settings.ingest_key_names().items():
        if hmac.compare_digest(known.encode(), secret.encode()):
            return name
    return None


def require_ingest_key(request: Request) -> str:
    settings: Settings = request.app.state.settings
    supplied = bearer_token(request)
    source = source_for_secret(settings, supplied)
    if source is None:
        EVENTS_REJECTED.labels("unauthorized").inc()
        raise unauthorized(
            "missing 'Authorization: Bearer <ingest key>' header"
            if supplied is None
            else "invalid ingest key"
        )
    return source
