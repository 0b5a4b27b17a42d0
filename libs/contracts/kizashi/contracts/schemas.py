"""JSON Schemas exported from the models: the files under `schemas/` must match these."""

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from kizashi.contracts.deadletter import DeadLetter
from kizashi.contracts.events import InputEvent
from kizashi.contracts.observations import RepObservation
from kizashi.contracts.scores import ScoresChanged
from kizashi.contracts.signals import ChurnRiskSignal, OpportunitySignal

SCHEMA_DIR = Path(__file__).parent / "schemas"

EXPORTED: dict[str, Any] = {
    "input_event": InputEvent,
    "rep_observation": RepObservation,
    "scores_changed": ScoresChanged,
    "signal_opportunity": OpportunitySignal,
    "signal_churn_risk": ChurnRiskSignal,
    "dead_letter": DeadLetter,
}


def render_schemas() -> dict[str, str]:
    """File name → JSON text, deterministic so that a diff means the models moved."""
    return {
        f"{name}.schema.json": json.dumps(
            TypeAdapter(model).json_schema(mode="validation"), indent=2, sort_keys=True
        )
        + "\n"
        for name, model in EXPORTED.items()
    }


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in render_schemas().items():
        path = directory / file_name
        path.write_text(text)
        written.append(path)
    return written
