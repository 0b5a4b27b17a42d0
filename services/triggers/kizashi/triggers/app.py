"""The triggers service's FastAPI app: the rule consumer, the periodic sweep, the signals API."""

import functools
from datetime import UTC, datetime

from fastapi import FastAPI

from kizashi.contracts.topics import SCORES_CHANGED
from kizashi.kit.app import create_service_app
from kizashi.kit.db import raw_transaction
from kizashi.kit.runtime import ServiceRuntime
from kizashi.kit.settings import Settings, get_settings
from kizashi.triggers import actions, api
from kizashi.triggers.consumer import handle_changes
from kizashi.triggers.lifecycle import reopen_due_snoozes
from kizashi.triggers.rules import load_rules
from kizashi.triggers.service import TriggersService


async def sweep_once(service: TriggersService) -> None:
    """Snoozes that ran out re-open. Time-driven rules (silence, the renewal calendar) reach
    the rules through scoring's own sweep, which publishes the drifted features."""
    async with raw_transaction(service.engine) as connection:
        await reopen_due_snoozes(connection, datetime.now(UTC))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Validated before anything starts: a bad rules.yaml stops the service with its reason.
    rules = load_rules(settings.config_dir)

    async def setup(runtime: ServiceRuntime) -> TriggersService:
        service = TriggersService(runtime=runtime, rules=rules)
        runtime.consume([SCORES_CHANGED], functools.partial(handle_changes, service))
        runtime.every(
            settings.sweep_interval_s, functools.partial(sweep_once, service), name="sweep"
        )
        return service

    return create_service_app(
        service="triggers", settings=settings, routers=[api.router, actions.router], setup=setup
    )
