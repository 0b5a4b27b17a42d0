"""What the ingest routes are given (FastAPI `Annotated` dependencies), so no route reaches
into `request.app.state` itself."""

from typing import Annotated

from fastapi import Depends, Request

from kizashi.ingest.auth import source_for_secret
from kizashi.ingest.metrics import EVENTS_REJECTED
from kizashi.ingest.settings import IngestSettings
from kizashi.ingest.state import IngestState
from kizashi.runtime.auth import bearer_token, unauthorized

__all__ = ["IngestSource", "SettingsDep", "StateDep"]


def get_state(request: Request) -> IngestState:
    """The state `create_app`'s setup built when the service started."""
    return request.app.state.service


def get_settings(request: Request) -> IngestSettings:
    return request.app.state.settings


StateDep = Annotated[IngestState, Depends(get_state)]
SettingsDep = Annotated[IngestSettings, Depends(get_settings)]


def require_ingest_key(request: Request, settings: SettingsDep) -> str:
    """The name of the ingest key the request carries (`Authorization: Bearer <key>`); the
    name becomes the events' `source`. 401 without a known key."""
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


IngestSource = Annotated[str, Depends(require_ingest_key)]
