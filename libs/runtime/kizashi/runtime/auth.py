"""Bearer-token auth for the read and admin APIs. Tokens are compared in constant time."""

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from kizashi.runtime.settings import Settings


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def unauthorized(detail: str, scheme: str = "Bearer") -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": scheme}
    )


def require_api_token(request: Request) -> str:
    settings: Settings = request.app.state.settings
    expected = settings.api_token.get_secret_value() if settings.api_token else ""
    if not expected:
        raise unauthorized("this server has no KIZASHI_API_TOKEN configured; the API is closed")
    supplied = bearer_token(request)
    if supplied is None:
        raise unauthorized("missing 'Authorization: Bearer <token>' header")
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise unauthorized("invalid API token")
    return "api"


ApiCaller = Annotated[str, Depends(require_api_token)]
