"""The triggers service's FastAPI app: the rule consumer, the periodic sweep, the signals API."""

import functools

from fastapi import FastAPI

from kizashi.contracts.topics import CONSUMED_BY
from kizashi.runtime.app import create_service_app
from kizashi.runtime.collector import tune_garbage_collector
from kizashi.runtime.lifecycle import ServiceRuntime
from kizashi.triggers import actions, api, feedback, outcomes, performance, recycle_api
from kizashi.triggers.consumer import handle_changes
from kizashi.triggers.rules import load_rules_config
from kizashi.triggers.settings import TriggersSettings, get_settings
from kizashi.triggers.state import TriggersState
from kizashi.triggers.sweep import sweep_once


def create_app(settings: TriggersSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Validated before anything starts: a bad rules.yaml stops the service with its reason.
    rules = load_rules_config(settings.config_dir)

    async def setup(runtime: ServiceRuntime) -> TriggersState:
        service = TriggersState(runtime=runtime, rules=rules)
        tune_garbage_collector()
        runtime.consume(list(CONSUMED_BY["triggers"]), functools.partial(handle_changes, service))
        runtime.every(
            settings.sweep_interval_s, functools.partial(sweep_once, service), name="sweep"
        )
        runtime.every(
            performance.GAUGE_REFRESH_S,
            functools.partial(performance.refresh_gauges, service),
            name="rule-gauges",
        )
        return service

    return create_service_app(
        service="triggers",
        settings=settings,
        routers=[
            api.router,
            feedback.router,
            performance.router,
            outcomes.router,
            actions.router,
            recycle_api.router,
        ],
        setup=setup,
    )
