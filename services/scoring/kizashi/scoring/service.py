"""The typed state the scoring app holds while it runs."""

from dataclasses import dataclass

from kizashi.kit.runtime import ServiceState
from kizashi.scoring.config import ScoringConfig


@dataclass
class ScoringService(ServiceState):
    config: ScoringConfig
