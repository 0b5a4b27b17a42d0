"""Building a service's FastAPI app: the lifespan that starts and stops its runtime, the
routers, and the operational routes every service has."""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from kizashi.runtime.http import install_common_routes
from kizashi.runtime.lifecycle import ServiceRuntime, ServiceState
from kizashi.runtime.logs import configure_logging
from kizashi.runtime.settings import Settings
from kizashi.runtime.tracing import FASTAPI_TELEMETRY
from kizashi.runtime.tracing import setup as setup_tracing

Setup = Callable[[ServiceRuntime], Awaitable[ServiceState]]


def create_service_app(
    *,
    service: str,
    settings: Settings,
    routers: Sequence[APIRouter],
    setup: Setup,
    database: bool = True,
    broker: bool = True,
    openapi: bool = True,
) -> FastAPI:
    """`setup` builds the service's typed state and starts its consumers and periodic jobs.

    No page of Kizashi loads anything from elsewhere, so FastAPI's /docs and /redoc (which
    load Swagger UI and ReDoc from a CDN) are off; an API service answers its OpenAPI
    document at /openapi.json (`openapi=False`: not even that, for the console, which has
    no API)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service, settings.log_level)
        runtime = await ServiceRuntime.start(service, settings, database=database, broker=broker)
        try:
            app.state.service = await setup(runtime)
            yield
        finally:
            await runtime.stop()

    # Off and free unless an OTLP endpoint is configured (kizashi.runtime.tracing); when on,
    # FastAPI's own telemetry makes each request's span.
    setup_tracing(service, settings.otlp_endpoint)
    app = FastAPI(
        title=f"Kizashi {service}",
        version="1",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if openapi else None,
    )
    app.state.settings = settings
    for router in routers:
        app.include_router(router)

    async def readiness() -> dict[str, bool]:
        state = app.state.service
        return {**await state.runtime.readiness(), **state.readiness()}

    async def liveness() -> dict[str, bool]:
        state = getattr(app.state, "service", None)
        return state.runtime.liveness() if state is not None else {}

    install_common_routes(
        app,
        service=service,
        readiness=readiness,
        liveness=liveness,
        body_timeout_s=settings.http_body_timeout_s,
    )
    return app
