"""Ingest keys: `Authorization: Bearer <key>`; the key's name becomes the event's `source`
(the route dependency is kizashi.ingest.deps.IngestSource)."""

import hmac

from kizashi.ingest.settings import IngestSettings


def source_for_secret(settings: IngestSettings, secret: object) -> str | None:
    if not isinstance(secret, str) or not secret:
        return None
    for known, name in settings.ingest_key_names().items():
        if hmac.compare_digest(known.encode(), secret.encode()):
            return name
    return None
