"""The scoring service's FastAPI app: the consumer, the periodic sweep, the pruning of
processed event ids and the accounts API."""

import functools
from datetime import timedelta

from fastapi import FastAPI

from kizashi.contracts.topics import CONSUMED_BY
from kizashi.runtime.app import create_service_app
from kizashi.runtime.collector import tune_garbage_collector
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.runtime.phases import load_phase_config
from kizashi.scoring import api, history_api
from kizashi.scoring.config import load_scoring_config
from kizashi.scoring.consumer import handle_events
from kizashi.scoring.dedup import prune_once
from kizashi.scoring.retention import prune_history
from kizashi.scoring.segment_sizes import refresh_segment_sizes
from kizashi.scoring.settings import ScoringSettings, get_settings
from kizashi.scoring.state import ScoringState
from kizashi.scoring.sweep import sweep_once


def create_app(settings: ScoringSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Validated before anything starts: a bad scoring.yaml stops the service with its reason.
    config = load_scoring_config(settings.config_dir)
    phases = load_phase_config(settings.config_dir)

    async def setup(runtime: ServiceRuntime) -> ScoringState:
        service = ScoringState(
            runtime=runtime,
            config=config,
            history_retention_days=settings.score_history_retention_days,
            dedup_window=timedelta(days=settings.dedup_window_days),
            phases=phases,
        )
        tune_garbage_collector()
        runtime.consume(
            list(CONSUMED_BY["scoring"]),
            functools.partial(handle_events, service),
            max_batch=settings.scoring_max_batch,
        )
        runtime.every(
            settings.sweep_interval_s, functools.partial(sweep_once, service), name="sweep"
        )
        runtime.every(
            settings.dedup_prune_interval_s,
            functools.partial(prune_once, service),
            name="dedup-prune",
        )
        runtime.every(
            settings.sweep_interval_s,
            functools.partial(refresh_segment_sizes, service),
            name="segment-sizes",
        )
        runtime.every(
            settings.sweep_interval_s,
            functools.partial(prune_history, service),
            name="history-prune",
        )
        return service

    return create_service_app(
        service="scoring", settings=settings, routers=[history_api.router, api.router], setup=setup
    )
