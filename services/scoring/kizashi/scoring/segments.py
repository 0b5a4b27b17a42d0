"""The segment an account holds: cut-offs with hysteresis, so segments do not flap (issue #20).

A segment is two sides, CS high or low and OP high or low (`segments.cs_high`, `op_high`).
On each axis, an account that is low becomes high only at cut-off + `enter_margin`, and one
that is high becomes low only below cut-off − `exit_margin`: a score moving inside that band
leaves the side as it was. The segment those sides make is the *candidate*; it replaces the
segment held only once the scores have pointed to it for `min_dwell` (measured from the first
score that did, at every score since: a score pointing back, or to a third segment, starts
the wait over). With both margins 0 and no dwell this is the plain cut-off.

The first score of an account has nothing to hold and takes the plain cut-offs.

`insufficient_data` is not a segment of the scores but of their evidence (confidence below
`confidence.min_confidence`): it is published at once, with no margin and no dwell, both ways,
while the held segment keeps stepping underneath; when the evidence is back, the account shows
the segment it holds. Pure: no I/O. The held segment, the candidate and its start are stored
with the scores row, so they survive restarts and every replica reads the same.
"""

from dataclasses import dataclass
from datetime import datetime

from kizashi.contracts.scores import Segment
from kizashi.scoring.config import ScoringConfig

_SEGMENTS: dict[tuple[bool, bool], Segment] = {
    (True, True): "expand",
    (True, False): "nurture",
    (False, True): "recover",
    (False, False): "at_risk",
}
_CS_HIGH = frozenset({"expand", "nurture"})
_OP_HIGH = frozenset({"expand", "recover"})


def segment_of(cs: float, op: float, config: ScoringConfig) -> Segment:
    """The plain cut-offs: "high" means ≥ the cut-off."""
    return _SEGMENTS[cs >= config.segments.cs_high, op >= config.segments.op_high]


def _high(score: float, cut: float, was_high: bool, enter: float, exit_: float) -> bool:
    return score >= cut - exit_ if was_high else score >= cut + enter


def pointed_to(held: str | None, cs: float, op: float, config: ScoringConfig) -> Segment:
    """The segment the scores point to from `held`: the margins apply, the dwell does not."""
    if held not in _SEGMENTS.values():  # nothing held yet
        return segment_of(cs, op, config)
    s = config.segments
    cs_high = _high(cs, s.cs_high, held in _CS_HIGH, s.enter_margin, s.exit_margin)
    op_high = _high(op, s.op_high, held in _OP_HIGH, s.enter_margin, s.exit_margin)
    return _SEGMENTS[cs_high, op_high]


@dataclass(slots=True)
class SegmentHold:
    """What an account holds: the segment, and the candidate waiting out min_dwell since when.
    Stepped in place at every score (and every past point of a backfill), in time order."""

    held: str | None = None
    candidate: str | None = None
    since: datetime | None = None

    @classmethod
    def stored(cls, scores: dict | None) -> "SegmentHold":
        """From the scores row as read (repository.StoredAccount.scores). A row from before
        migration 0017 has no held segment: its published one is held, unless it was
        insufficient_data (then nothing is, and the next score takes the plain cut-offs)."""
        if scores is None:
            return cls()
        held = scores.get("held_segment") or scores.get("segment")
        if held not in _SEGMENTS.values():
            held = None
        return cls(held, scores.get("segment_candidate"), scores.get("segment_candidate_since"))

    def step(self, cs: float, op: float, now: datetime, config: ScoringConfig) -> Segment:
        """Take in a score at `now`; returns the segment held after it."""
        target = pointed_to(self.held, cs, op, config)
        if self.held is None or target == self.held:
            self.held, self.candidate, self.since = target, None, None
            return target
        if self.candidate != target or self.since is None or self.since > now:
            self.candidate, self.since = target, now
        if now - self.since >= config.segments.min_dwell:
            self.held, self.candidate, self.since = target, None, None
            return target
        return self.held  # type: ignore[return-value]

    def due_at(self, config: ScoringConfig) -> datetime | None:
        """When the candidate will have waited out min_dwell (the sweep re-scores then, so a
        quiet account changes segment on time); None without a candidate."""
        if self.candidate is None or self.since is None:
            return None
        return self.since + config.segments.min_dwell
