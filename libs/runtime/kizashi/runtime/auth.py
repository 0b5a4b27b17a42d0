"""Bearer-token auth for the read and admin APIs: the service token (KIZASHI_API_TOKEN) or a
person's own API token (made on the console, architecture §11).

- The service token is compared in constant time, with no database work.
- A personal token (`kzp_…`) is looked up by its SHA-256 in `api_tokens` (owned by the
  console; read here, never written), joined to its user: one indexed query per request, so a
  revoked token, or any token of a disabled user, stops working at the next request.
- With the service token a trusted caller (the console) may name the person it acts for in
  `X-Kizashi-Acting-User`; that person must exist and be enabled, and their role then governs
  the request exactly as if they had come with their own token. The header means nothing
  without the service token.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from kizashi.runtime.db import raw_transaction
from kizashi.runtime.settings import Settings

PERSONAL_TOKEN_PREFIX = "kzp_"
ACTING_USER_HEADER = "X-Kizashi-Acting-User"
ROLES = ("rep", "manager", "admin")


def new_personal_token() -> str:
    """256 bits of randomness: hashing it once (no salt, no stretching) is enough to store it."""
    return PERSONAL_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is calling. `actor` is what an action records: the user's email, or "api"."""

    actor: str
    email: str | None = None
    role: str | None = None

    @property
    def is_service(self) -> bool:
        return self.email is None

    def may_act_on(self, owner_email: str | None) -> bool:
        """Managers, admins and the service token act on any account; a rep on their own."""
        if self.is_service or self.role in ("manager", "admin"):
            return True
        return bool(owner_email) and owner_email.strip().lower() == self.email


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def unauthorized(detail: str, scheme: str = "Bearer") -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": scheme}
    )


# The two lookups, on the console's tables (migration 0008). Unique indexes on
# api_tokens.token_hash and users.email make each one an index probe.
_BY_TOKEN = """
    SELECT u.email, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id
    WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND NOT u.disabled
"""
_BY_EMAIL = "SELECT email, role FROM users WHERE email = $1 AND NOT disabled"


async def _lookup(request: Request, query: str, value: str) -> Caller | None:
    state = getattr(request.app.state, "service", None)
    if state is None or state.runtime.engine is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="starting")
    async with raw_transaction(state.runtime.engine) as connection:
        row = await connection.fetchrow(query, value)
    return None if row is None else Caller(actor=row["email"], email=row["email"], role=row["role"])


async def require_caller(request: Request) -> Caller:
    settings: Settings = request.app.state.settings
    supplied = bearer_token(request)
    if supplied is None:
        raise unauthorized("missing 'Authorization: Bearer <token>' header")
    expected = settings.api_token.get_secret_value() if settings.api_token else ""
    if expected and hmac.compare_digest(supplied.encode(), expected.encode()):
        acting = request.headers.get(ACTING_USER_HEADER)
        if acting is None:
            return Caller(actor="api")
        person = await _lookup(request, _BY_EMAIL, acting.strip().lower()[:320])
        if person is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail="the acting user is unknown or disabled"
            )
        return person
    if supplied.startswith(PERSONAL_TOKEN_PREFIX) and len(supplied) <= 128:
        person = await _lookup(request, _BY_TOKEN, hash_token(supplied))
        if person is not None:
            return person
        raise unauthorized("invalid, revoked or disabled personal token")
    if not expected:
        raise unauthorized("this server has no KIZASHI_API_TOKEN configured; use a personal token")
    raise unauthorized("invalid API token")


CallerDep = Annotated[Caller, Depends(require_caller)]


def require_api_token(caller: CallerDep) -> str:
    """The caller's actor name, for routes that only need to know the caller is let in."""
    return caller.actor


ApiCaller = Annotated[str, Depends(require_api_token)]
