"""Reps' observations in scoring (issue #18): what the account's state keeps of them, the
relationship phase, the facts `scores.changed` carries for the rules, and the score parts
they feed. Pure: no I/O (the `observations` table is written by the consumer, through
repository.insert_observations).

The state keeps, order-independently like the rest of it (kizashi.scoring.features):

| part | kept as | merge |
|---|---|---|
| `obs` | kind -> newest KEPT_PER_KIND `[ts, event_id, author, fields]` | top-N (ts, event_id) |
| `evidence` | criterion -> `[ts, author, event_id]` of its latest evidence | max (ts, author) |

`evidence` keeps per criterion exactly what kizashi.runtime.phases.phase_of reads (the latest
piece, the greater author on the same instant), so the phase is the same as over every piece.
One difference: a piece dated in the future hides an older one of the same criterion until its
date comes (ingest refuses events too far in the future, so this is at most a few minutes).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kizashi.contracts.decay import DAY_S
from kizashi.contracts.observations import CustomObservation
from kizashi.runtime.phases import Evidence, PhaseConfig, Standing, phase_of

# The newest observations of each kind kept in the state and carried to the rules.
KEPT_PER_KIND = 3
_ENVELOPE = frozenset(
    {
        "account_id",
        "event_id",
        "user_id",
        "occurred_at",
        "properties",
        "received_at",
        "source",
        "type",
        "author",
        "kind",
        "note",
    }
)
# (value on 0..1, words) of each outcome answer.
OUTCOMES = {"yes": (1.0, "yes"), "partly": (0.5, "partly"), "no": (0.0, "no")}


def structured_fields(event: Any) -> dict[str, Any]:
    """The kind's own fields of a rep_observation, as JSON data (dates as ISO text); a custom
    kind's (observations.yaml) are its `fields` object as it came."""
    if isinstance(event, CustomObservation):
        return dict(event.fields)
    data = event.model_dump(mode="json")
    return {k: v for k, v in data.items() if k not in _ENVELOPE}


def fold_observation(obs: dict, evidence: dict, event: Any, ts: float) -> None:
    """Fold one rep_observation into the state's `obs` and `evidence` (in place). A custom
    kind (observations.yaml) is stored in the `observations` table only: it moves no score and
    fires no rule, so the state keeps nothing of it."""
    if isinstance(event, CustomObservation):
        return
    fields = structured_fields(event)
    if event.kind == "phase_evidence":
        criterion = fields["criterion"]
        held = evidence.get(criterion)
        if held is None or (ts, event.author) > (held[0], held[1]):
            evidence[criterion] = [ts, event.author, event.event_id]
        return
    entries = obs.setdefault(event.kind, [])
    if any(entry[1] == event.event_id and entry[0] == ts for entry in entries):
        return
    entries.append([ts, event.event_id, event.author, fields])
    entries.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
    del entries[KEPT_PER_KIND:]


def standing(evidence: dict, config: PhaseConfig, now: datetime) -> Standing:
    """The account's phase at `now` from the evidence the state keeps."""
    return phase_of(
        config,
        (
            Evidence(criterion, datetime.fromtimestamp(ts, UTC), author)
            for criterion, (ts, author, _) in evidence.items()
        ),
        now,
    )


def next_expiry(evidence: dict, config: PhaseConfig, now: datetime) -> datetime | None:
    """The next moment a piece of evidence expires (or a future-dated one starts to count):
    the phase can move then with no new event, so the sweep must look again."""
    by_id = {c.id: c for p in config.phases for c in p.criteria}
    moments: list[datetime] = []
    for criterion_id, (ts, _, _) in evidence.items():
        criterion = by_id.get(criterion_id)
        if criterion is None:  # a criterion phases.yaml no longer has
            continue
        at = datetime.fromtimestamp(ts, UTC)
        moment = at if at > now else at + config.expiry(criterion)
        if moment > now:
            moments.append(moment + timedelta(seconds=1))
    return min(moments, default=None)


def facts(obs: dict) -> list[dict]:
    """The observations the rules read, newest first, in ObservationFact's JSON form."""
    out = [
        {
            "observation_id": event_id,
            "kind": kind,
            "occurred_at": datetime.fromtimestamp(ts, UTC),
            "author": author,
            "fields": fields,
        }
        for kind, entries in obs.items()
        for ts, event_id, author, fields in entries
    ]
    out.sort(key=lambda fact: (fact["occurred_at"], fact["observation_id"]), reverse=True)
    return out


@dataclass(frozen=True, slots=True)
class Observed:
    """What the scores read of an account's observations: the newest of each kind and the
    relationship phase (None when no rep ever logged phase evidence)."""

    latest: dict[str, list]
    phase: int | None
    # The newest evidence that holds the phase up: [ts, event id, author], or None.
    phase_by: list | None = None

    @classmethod
    def of(cls, obs: dict, phase: int | None, held: Standing | None = None) -> "Observed":
        by = None
        if held is not None:
            met = [m for m in held.met if m.phase <= held.phase]
            if met:
                newest = max(met, key=lambda m: (m.occurred_at, m.author))
                by = [newest.occurred_at.timestamp(), newest.criterion, newest.author]
        return cls({kind: entries[0] for kind, entries in obs.items() if entries}, phase, by)


NOTHING_OBSERVED = Observed({}, None)


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _by(entry: list) -> str:
    return f"logged by {entry[2]} on {_day(entry[0])}"


def _half_life(norm: float, neutral: float, ts: float, now: float, days: float) -> float:
    age_d = max(0.0, now - ts) / DAY_S
    return neutral + (norm - neutral) * 0.5 ** (age_d / days)


# (raw value, normalised 0..1, sentence), as kizashi.scoring.indices.Part. A part with
# nothing logged is normalised to None: left out of its index (config.OBSERVED_PARTS).
Part = tuple[float | None, float | None, str]
# A part with nothing logged: no line, no weight (kizashi.scoring.indices._index).
_LEFT_OUT: Part = (None, None, "")
# Where a fading answer tends: the middle of its scale.
NEUTRAL = 0.5


def cs_parts(seen: Observed, cfg: Any, now: float, explain: bool) -> dict[str, Part]:
    """CS: the customer's satisfaction with the rep (1–5) and whether they got the outcome
    they bought for; each pulled back towards neutral with its half-life."""
    rules = cfg.observations
    entry = seen.latest.get("satisfaction_with_rep")
    if entry is None:
        satisfaction: Part = _LEFT_OUT
    else:
        value = float(entry[3]["satisfaction"])
        norm = _half_life(
            (value - 1) / 4, NEUTRAL, entry[0], now, rules.satisfaction_half_life_days
        )
        said = f"Satisfaction with the rep {value:.0f}/5, {_by(entry)}" if explain else ""
        satisfaction = (value, norm, said)
    entry = seen.latest.get("outcome_realised")
    if entry is None:
        outcome: Part = _LEFT_OUT
    else:
        value, words = OUTCOMES[entry[3]["outcome"]]
        norm = _half_life(value, NEUTRAL, entry[0], now, rules.outcome_half_life_days)
        said = f"Outcome realised: {words}, {_by(entry)}" if explain else ""
        outcome = (value, norm, said)
    return {"rep_satisfaction": satisfaction, "outcome_realised": outcome}


def _key_person(entry: list) -> tuple[float, str]:
    f = entry[3]
    who = f"{f['person']} ({f['role']}{', a decision maker' if f['is_decision_maker'] else ''})"
    if f["change"] == "joined":
        if f["is_decision_maker"]:
            return 1.0, f"A new decision maker, {who}, joined"
        return 0.6, f"{who} joined"
    return (0.0 if f["is_decision_maker"] else 0.3), f"{who} left"


def op_parts(seen: Observed, cfg: Any, now: float, explain: bool) -> dict[str, Part]:
    """OP: a key person's change (role and influence; a new decision maker is the opening),
    a policy change (toward expansion or cost cutting), each counted for its max age, and the
    relationship phase (an offer lands better from `normalise.relationship_phase.high` up)."""
    rules = cfg.observations
    entry = seen.latest.get("key_person_change")
    if entry is None or now - entry[0] > rules.key_person_max_age_days * DAY_S:
        key_person: Part = _LEFT_OUT
    else:
        norm, words = _key_person(entry)
        key_person = (norm, norm, f"{words}, {_by(entry)}" if explain else "")
    entry = seen.latest.get("policy_change")
    if entry is None or now - entry[0] > rules.policy_change_max_age_days * DAY_S:
        policy: Part = _LEFT_OUT
    else:
        direction = entry[3]["direction"]
        norm = 1.0 if direction == "expansion" else 0.0
        words = "toward expansion" if direction == "expansion" else "toward cost cutting"
        policy = (norm, norm, f"Policy change {words}, {_by(entry)}" if explain else "")
    ramp = cfg.normalise.relationship_phase
    if seen.phase is None:
        phase: Part = _LEFT_OUT
    else:
        phase = (
            float(seen.phase),
            ramp(seen.phase),
            f"Relationship phase {seen.phase}"
            + (f", newest evidence {_by(seen.phase_by)}" if seen.phase_by else "")
            + f"; an offer lands best from phase {ramp.high:.0f}"
            if explain
            else "",
        )
    return {"key_person": key_person, "policy_change": policy, "relationship_phase": phase}


def next_observed_check(obs: dict, cfg: Any, now: datetime) -> datetime | None:
    """When time alone can next move a score part fed by observations: an answer still
    fading (checked every `sweep.recheck_hours` while its pull is worth half a meaningful
    move) or a piece of news reaching its max age."""
    t = now.timestamp()
    moments: list[float] = []
    cs, rules = cfg.cs.weights, cfg.observations
    for kind, weight, half_life in (
        ("satisfaction_with_rep", cs.rep_satisfaction, rules.satisfaction_half_life_days),
        ("outcome_realised", cs.outcome_realised, rules.outcome_half_life_days),
    ):
        entries = obs.get(kind)
        if not entries:
            continue
        entry = entries[0]
        norm = (
            (entry[3]["satisfaction"] - 1) / 4
            if kind == "satisfaction_with_rep"
            else OUTCOMES[entry[3]["outcome"]][0]
        )
        pull = 100.0 * weight / cs.total * abs(norm - NEUTRAL)
        if _half_life(pull, 0.0, entry[0], t, half_life) >= cfg.changes.min_points / 2:
            moments.append(t + cfg.sweep.recheck_hours * 3600.0)
    for kind, max_age in (
        ("key_person_change", rules.key_person_max_age_days),
        ("policy_change", rules.policy_change_max_age_days),
    ):
        entries = obs.get(kind)
        if entries and entries[0][0] + max_age * DAY_S > t:
            moments.append(entries[0][0] + max_age * DAY_S + 1.0)
    return datetime.fromtimestamp(min(moments), UTC) if moments else None
