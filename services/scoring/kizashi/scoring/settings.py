"""The scoring service's settings: the shared ones, the sweep interval, the batch size, how
long score history is kept and the dedup window."""

from functools import lru_cache

from pydantic import Field

from kizashi.runtime.settings import SweepSettings


class ScoringSettings(SweepSettings):
    # Scoring re-scores each account once per batch, so under backlog a bigger batch means
    # fewer re-scorings per event; a batch is only this big when that many records wait.
    scoring_max_batch: int = Field(default=50_000, ge=1, le=200_000)
    # Score history (the console's charts and map trails) older than this is pruned.
    score_history_retention_days: int = Field(default=400, ge=1, le=3650)
    # Applied event ids are remembered this long: a repeat received within it is applied once,
    # and an event received before it is not applied (kizashi.scoring.dedup).
    dedup_window_days: int = Field(default=35, ge=1, le=3650)
    # How often the ids older than the window are pruned.
    dedup_prune_interval_s: float = Field(default=600.0, gt=0, le=86_400)


@lru_cache
def get_settings() -> ScoringSettings:
    return ScoringSettings()
