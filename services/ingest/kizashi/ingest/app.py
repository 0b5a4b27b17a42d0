"""The ingest service's FastAPI app. Kafka is where events go; PostgreSQL remembers which
account a tracked user belongs to (Segment identify/group links) and says which observation
authors are users."""

import asyncio

from fastapi import FastAPI

from kizashi.ingest import api, segment_api
from kizashi.ingest.identities import Identities
from kizashi.ingest.segment_config import load_segment_config
from kizashi.ingest.settings import IngestSettings, get_settings
from kizashi.ingest.state import IngestState
from kizashi.runtime.app import create_service_app
from kizashi.runtime.lifecycle import ServiceRuntime, ServiceState
from kizashi.runtime.observation_kinds import load_observation_config
from kizashi.runtime.phases import load_phase_config


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Read before serving: a broken mapping file stops the start with the key it names.
    mapping = load_segment_config(settings.config_dir)
    criteria = load_phase_config(settings.config_dir).criteria
    kinds = load_observation_config(settings.config_dir)

    async def setup(runtime: ServiceRuntime) -> ServiceState:
        assert runtime.engine is not None
        state = IngestState(
            runtime=runtime,
            identities=Identities(runtime.engine),
            segment_mapping=mapping,
            phase_criteria=criteria,
            observation_kinds=kinds,
        )
        state.intake.close_on_signal(asyncio.get_running_loop())
        return state

    return create_service_app(
        service="ingest",
        settings=settings,
        routers=[api.router, segment_api.router],
        setup=setup,
        database=True,
    )
