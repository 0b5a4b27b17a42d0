"""The ingest service's FastAPI app (no database: Kafka is its only store)."""

from fastapi import FastAPI

from kizashi.ingest import api
from kizashi.kit.app import create_service_app
from kizashi.kit.runtime import ServiceRuntime, ServiceState
from kizashi.kit.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    async def setup(runtime: ServiceRuntime) -> ServiceState:
        return ServiceState(runtime=runtime)

    return create_service_app(
        service="ingest",
        settings=settings or get_settings(),
        routers=[api.router],
        setup=setup,
        database=False,
    )
