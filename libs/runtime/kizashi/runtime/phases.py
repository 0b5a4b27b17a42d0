"""Relationship phases (issue #18): the ladder in phases.yaml, and the pure computation of an
account's phase from its `phase_evidence` observations.

A criterion is met by its latest evidence dated at or before `now` and not older than the
criterion's expiry. The phase is the highest phase whose criteria, and all lower phases'
criteria, are met. The result depends only on the set of evidence and `now`, never on the
order it arrived in: evidence for a criterion of a phase the account has not reached yet is
kept, and counts once the lower phases are met.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kizashi.contracts.text import Identifier, ShortText
from kizashi.runtime.yamlconfig import ConfigFile, ConfigFileError

MAX_EXPIRY_DAYS = 36_500


class PhaseConfigError(ConfigFileError):
    """phases.yaml cannot be used; the message names the key."""


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    question: ShortText
    expiry_days: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_DAYS, strict=True)


class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: int = Field(ge=0, strict=True)
    name: ShortText
    criteria: tuple[Criterion, ...] = ()


class PhaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expiry_days: int = Field(default=365, ge=1, le=MAX_EXPIRY_DAYS, strict=True)
    phases: tuple[Phase, ...] = Field(min_length=1)

    @field_validator("phases")
    @classmethod
    def _ladder(cls, phases: tuple[Phase, ...]) -> tuple[Phase, ...]:
        numbers = [p.phase for p in phases]
        if numbers != list(range(len(numbers))):
            raise ValueError(f"must be numbered 0, 1, 2, … in order, got {numbers}")
        seen: set[str] = set()
        for phase in phases:
            for criterion in phase.criteria:
                if criterion.id in seen:
                    raise ValueError(f"criterion '{criterion.id}' is named twice")
                seen.add(criterion.id)
        return phases

    @property
    def criteria(self) -> frozenset[str]:
        """Every criterion id: what a phase_evidence observation may name."""
        return frozenset(c.id for p in self.phases for c in p.criteria)

    def expiry(self, criterion: Criterion) -> timedelta:
        return timedelta(days=criterion.expiry_days or self.expiry_days)


PHASES_FILE = ConfigFile(
    name="phases.yaml", package="kizashi.runtime", model=PhaseConfig, error=PhaseConfigError
)


def load_phase_config(config_dir: Path | None) -> PhaseConfig:
    """`<config_dir>/phases.yaml` if there is one, else the packaged default."""
    return PHASES_FILE.load(config_dir)


@dataclass(frozen=True, order=True)
class Evidence:
    """One `phase_evidence` observation: a rep said yes to `criterion` on `occurred_at`."""

    criterion: str
    occurred_at: datetime
    author: str


@dataclass(frozen=True)
class MetCriterion:
    phase: int
    criterion: str
    question: str
    author: str
    occurred_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Standing:
    """An account's phase, what meets it, and what is missing for the next phase."""

    phase: int
    name: str
    met: tuple[MetCriterion, ...]
    # The next phase's criteria not met (empty at the top of the ladder).
    missing: tuple[Criterion, ...]


def phase_of(config: PhaseConfig, evidence: Iterable[Evidence], now: datetime) -> Standing:
    """The account's standing at `now`. Evidence dated after `now` does not count yet."""
    latest: dict[str, Evidence] = {}
    for item in evidence:
        if item.occurred_at > now:
            continue
        held = latest.get(item.criterion)
        # Latest wins; on the same instant the greater author, so order never matters.
        if held is None or (item.occurred_at, item.author) > (held.occurred_at, held.author):
            latest[item.criterion] = item
    met: list[MetCriterion] = []
    met_ids: set[str] = set()
    for phase in config.phases:
        for criterion in phase.criteria:
            found = latest.get(criterion.id)
            if found is None:
                continue
            expires_at = found.occurred_at + config.expiry(criterion)
            if expires_at <= now:
                continue
            met_ids.add(criterion.id)
            met.append(
                MetCriterion(
                    phase.phase,
                    criterion.id,
                    criterion.question,
                    found.author,
                    found.occurred_at,
                    expires_at,
                )
            )
    reached = config.phases[0]
    for phase in config.phases:
        if not all(c.id in met_ids for c in phase.criteria):
            break
        reached = phase
    following = [p for p in config.phases if p.phase == reached.phase + 1]
    missing = tuple(c for c in following[0].criteria if c.id not in met_ids) if following else ()
    return Standing(reached.phase, reached.name, tuple(met), missing)
