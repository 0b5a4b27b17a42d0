"""The ingest service's FastAPI app."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kizashi.ingest import api
from kizashi.kit.http import install_common_routes
from kizashi.kit.logs import configure_logging
from kizashi.kit.runtime import ServiceRuntime
from kizashi.kit.settings import Settings, get_settings

SERVICE = "ingest"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(SERVICE, settings.log_level)
        app.state.runtime = await ServiceRuntime.start(SERVICE, settings, database=False)
        try:
            yield
        finally:
            await app.state.runtime.stop()

    app = FastAPI(title="Kizashi ingest", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.include_router(api.router)

    async def readiness() -> dict[str, bool]:
        return await app.state.runtime.readiness()

    install_common_routes(app, service=SERVICE, readiness=readiness)

    return app
