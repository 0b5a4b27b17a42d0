"""The console's pages about people: sign-in, sign-out, and one's own API tokens."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kizashi.console import repository, security
from kizashi.console.deps import EngineDep, FormUserDep, PageError, SettingsDep, UserDep
from kizashi.console.metrics import TOKENS
from kizashi.console.sessions import (
    SESSION_COOKIE,
    SIGNIN_CSRF_COOKIE,
    set_cookie,
    sign_in,
    sign_out,
)
from kizashi.console.views import render
from kizashi.runtime.auth import hash_token, new_personal_token
from kizashi.runtime.db import raw_transaction

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this site: never `//elsewhere` or `https://elsewhere`."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target[:2000]
    return "/"


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _signin_page(
    request: Request,
    settings,
    *,
    next_url: str,
    email: str = "",
    refusal: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    csrf = request.cookies.get(SIGNIN_CSRF_COOKIE) or security.new_secret()
    response = render(
        request,
        "signin.html",
        status_code=status_code,
        user=None,
        csrf=csrf,
        next=next_url,
        email=email,
        refusal=refusal,
    )
    set_cookie(response, request, settings, SIGNIN_CSRF_COOKIE, csrf, max_age=3600)
    return response


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request, settings: SettingsDep, next: str = "/") -> Response:
    return _signin_page(request, settings, next_url=safe_next(next))


@router.post("/signin", response_class=HTMLResponse)
async def signin(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if not security.same_secret(csrf, request.cookies.get(SIGNIN_CSRF_COOKIE)):
        raise PageError(403, "Form refused", "The sign-in form expired. Reload it and try again.")
    client = request.client.host if request.client else None
    result = await sign_in(engine, settings, email=email, password=password, client=client)
    if result.cookie is None:
        return _signin_page(
            request,
            settings,
            next_url=safe_next(next),
            email=email,
            refusal=result.refusal,
            status_code=429 if result.throttled else 401,
        )
    response = see_other(safe_next(next))
    max_age = int(settings.session_hours * 3600)
    set_cookie(response, request, settings, SESSION_COOKIE, result.cookie, max_age=max_age)
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/")
    return response


@router.post("/signout")
async def signout(request: Request, engine: EngineDep, _: FormUserDep) -> Response:
    await sign_out(engine, request.cookies.get(SESSION_COOKIE))
    response = see_other("/signin")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _tokens_page(
    request: Request, engine, user, new_token: str | None = None, new_name: str | None = None
) -> HTMLResponse:
    async with raw_transaction(engine) as connection:
        tokens = await repository.list_tokens(conn=connection, user_id=user.id)
    return render(
        request, "tokens.html", user=user, tokens=tokens, new_token=new_token, new_name=new_name
    )


@router.get("/tokens", response_class=HTMLResponse)
async def tokens(request: Request, engine: EngineDep, user: UserDep) -> Response:
    return await _tokens_page(request, engine, user)


@router.post("/tokens", response_class=HTMLResponse)
async def create_token(
    request: Request,
    engine: EngineDep,
    user: FormUserDep,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    name = name.strip()
    if not name or "\x00" in name:
        raise PageError(400, "No name", "Give the token a name, so you can tell it apart later.")
    token = new_personal_token()
    async with raw_transaction(engine) as connection:
        await repository.add_token(
            conn=connection,
            user_id=user.id,
            name=name,
            token_hash=hash_token(token),
            prefix=token[:10],
        )
    TOKENS.labels("created").inc()
    # Shown in this answer only (no redirect that would need to carry it).
    return await _tokens_page(request, engine, user, new_token=token, new_name=name)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(engine: EngineDep, user: FormUserDep, token_id: int) -> Response:
    async with raw_transaction(engine) as connection:
        found = await repository.revoke_token(
            conn=connection, user_id=user.id, token_id=token_id, now=datetime.now(UTC)
        )
    if not found:
        raise PageError(404, "No such token", "You have no token with that number.")
    TOKENS.labels("revoked").inc()
    return see_other("/tokens")
