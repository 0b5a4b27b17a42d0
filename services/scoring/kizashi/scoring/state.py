"""The typed state the scoring app holds while it runs."""

from dataclasses import dataclass

from kizashi.runtime.lifecycle import ServiceState
from kizashi.scoring.config import ScoringConfig


@dataclass
class ScoringState(ServiceState):
    config: ScoringConfig
