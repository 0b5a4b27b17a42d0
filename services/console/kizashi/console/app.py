"""The console's FastAPI app: server-rendered pages (sign-in, the signals inbox, tokens) on
the shared runtime (/healthz, /readyz, /metrics, request metrics). No broker: it reads its
own tables and, read-only, the signals, accounts and observations; actions go through
triggers' API, observations through ingest's, and the KPIs answer at /v1/kpis."""

import asyncio
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from kizashi.console import (
    account,
    accounts,
    inbox,
    kpis,
    mapdigest,
    moves,
    observations,
    outcomes,
    pages,
    people,
    recycle,
    repository,
    rules,
)
from kizashi.console.deps import PageError, SignInRequired
from kizashi.console.settings import ConsoleSettings, get_settings
from kizashi.console.state import ConsoleState
from kizashi.console.views import STATIC, render, template_env
from kizashi.runtime.app import create_service_app
from kizashi.runtime.db import raw_transaction
from kizashi.runtime.http import validation_errors
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.runtime.observation_kinds import load_observation_config
from kizashi.runtime.phases import load_phase_config


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Loaded before anything starts: a broken phases.yaml stops the console at once.
    phases = load_phase_config(settings.config_dir)
    observation_kinds = load_observation_config(settings.config_dir)

    async def setup(runtime: ServiceRuntime) -> ConsoleState:
        token = settings.api_token.get_secret_value() if settings.api_token else ""
        client = httpx.AsyncClient(
            base_url=settings.triggers_api(),
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=10,
        )
        scoring = httpx.AsyncClient(
            base_url=settings.scoring_api(), headers=client.headers, timeout=3
        )
        key = settings.ingest_key()
        ingest = httpx.AsyncClient(
            base_url=settings.ingest_api(),
            headers={"Authorization": f"Bearer {key[1]}"} if key else {},
            timeout=15,
        )
        state = ConsoleState(
            runtime=runtime,
            settings=settings,
            triggers=client,
            scoring=scoring,
            ingest=ingest,
            phases=phases,
            observation_kinds=observation_kinds,
        )
        runtime.background(_close_on_cancel(client), name="triggers-client")
        runtime.background(_close_on_cancel(scoring), name="scoring-client")
        runtime.background(_close_on_cancel(ingest), name="ingest-client")
        runtime.every(3600, lambda: _forget_expired_sessions(state), name="session-cleanup")
        runtime.every(
            moves.REFRESH_S, lambda: state.moves.refresh(state.engine), name="segment-moves"
        )
        runtime.every(
            mapdigest.REFRESH_S, lambda: state.map.refresh(state.engine), name="map-digest"
        )
        return state

    app = create_service_app(
        service="console",
        settings=settings,
        routers=[
            pages.router,
            accounts.router,
            account.router,
            observations.router,
            kpis.router,
            inbox.router,
            people.router,
            rules.router,
            outcomes.router,
            recycle.router,
        ],
        setup=setup,
        broker=False,
        openapi=False,
    )
    app.state.templates = template_env()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in_first(request: Request, _: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return pages.see_other(f"/signin?{httpx.QueryParams(next=target)}")

    @app.exception_handler(PageError)
    async def _page_error(request: Request, error: PageError) -> Response:
        return render(
            request,
            "error.html",
            status_code=error.status_code,
            user=None,
            title=error.title,
            message=error.message,
            back=request.headers.get("referer") if _same_site(request) else None,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        if request.url.path.startswith("/v1/"):
            errors = validation_errors(error)
            return JSONResponse({"error": "invalid_request", "errors": errors}, status_code=422)
        reasons = "; ".join(f"{e['field']}: {e['reason']}" for e in validation_errors(error))
        return render(
            request,
            "error.html",
            status_code=422,
            user=None,
            title="Not understood",
            message=reasons,
            back=None,
        )

    return app


def _same_site(request: Request) -> bool:
    referer = request.headers.get("referer", "")
    return referer.startswith(f"{request.url.scheme}://{request.url.netloc}/")


async def _close_on_cancel(client: httpx.AsyncClient) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await client.aclose()


async def _forget_expired_sessions(state: ConsoleState) -> None:
    async with raw_transaction(state.engine) as connection:
        await repository.delete_expired_sessions(conn=connection, now=datetime.now(UTC))
