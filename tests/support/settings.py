"""Which KIZASHI_* variables each process reads: one settings class per service (all derived
from the shared kizashi.runtime.settings.Settings), the shared class alone for `migrate`, and
for the notifier also the variables its packaged routing.yaml names (its webhook receiver's
URL and secret, read through routing.yaml rather than settings)."""

import re

from pydantic_settings import BaseSettings

from kizashi.console.settings import ConsoleSettings
from kizashi.ingest.settings import IngestSettings
from kizashi.notifier.routing_config import ROUTING_FILE
from kizashi.notifier.settings import NotifierSettings
from kizashi.runtime.settings import Settings
from kizashi.scoring.settings import ScoringSettings
from kizashi.triggers.settings import TriggersSettings

SERVICE_SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "scoring": ScoringSettings,
    "triggers": TriggersSettings,
    "notifier": NotifierSettings,
    "console": ConsoleSettings,
    "migrate": Settings,
}


def variable_names(*classes: type[BaseSettings]) -> set[str]:
    """The environment variables these classes read, as `KIZASHI_<FIELD>`."""
    return {f"KIZASHI_{name.upper()}" for cls in classes for name in cls.model_fields}


def routing_variables() -> set[str]:
    """The variables the packaged routing.yaml names, its commented examples included."""
    text = ROUTING_FILE.default_path().read_text(encoding="utf-8")
    return set(re.findall(r"\b(?:webhook_url_env|url_env|secret_env): (KIZASHI_\w+)", text))


def read_by(process: str) -> set[str]:
    extra = routing_variables() if process == "notifier" else set()
    return variable_names(SERVICE_SETTINGS[process]) | extra


def read_by_any_service() -> set[str]:
    return variable_names(*SERVICE_SETTINGS.values()) | routing_variables()
