"""The typed state the scoring app holds while it runs."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from kizashi.runtime.lifecycle import ServiceState
from kizashi.runtime.phases import PhaseConfig
from kizashi.scoring.config import ScoringConfig
from kizashi.scoring.pipeline import DEFAULT_PHASES


@dataclass
class ScoringState(ServiceState):
    config: ScoringConfig
    # KIZASHI_SCORE_HISTORY_RETENTION_DAYS: no history point is written or kept older.
    history_retention_days: int = 400

    def history_since(self, now: datetime) -> datetime:
        return now - timedelta(days=self.history_retention_days)

    # How long an applied event id is remembered (KIZASHI_DEDUP_WINDOW_DAYS; kizashi.scoring.dedup).
    dedup_window: timedelta = timedelta(days=35)
    # Whether processed ids from before migration 0010 (source unknown) may be left: None
    # until asked (the first batch asks), False once the pruning found none.
    legacy_ids: bool | None = None
    # The relationship-phase ladder (phases.yaml in KIZASHI_CONFIG_DIR, else the packaged one).
    phases: PhaseConfig = DEFAULT_PHASES
