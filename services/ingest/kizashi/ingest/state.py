"""The typed state the ingest app holds while it runs."""

from dataclasses import dataclass, field

from kizashi.ingest.identities import Identities
from kizashi.ingest.intake import Intake
from kizashi.ingest.segment_config import SegmentMapping
from kizashi.runtime.lifecycle import ServiceState
from kizashi.runtime.observation_kinds import ObservationConfig


@dataclass
class IngestState(ServiceState):
    identities: Identities
    segment_mapping: SegmentMapping
    # The criteria phases.yaml names: what a phase_evidence observation may cite.
    phase_criteria: frozenset[str] = frozenset()
    # observations.yaml: the kinds reps may log, and custom kinds' fields.
    observation_kinds: ObservationConfig | None = None
    intake: Intake = field(default_factory=Intake)

    def readiness(self) -> dict[str, bool]:
        return self.intake.readiness()
