"""`kizashi backtest --outcomes FILE.jsonl`: the replayed signals and scores held against what
happened to the accounts (issue #19, item 5). Pure: the replay's result and the outcomes in,
figures out.

- Per rule: a signal is a hit when an outcome it foresees follows within the window (an
  opportunity `won`, a churn risk `confirmed`: kizashi.contracts.outcomes, as triggers counts
  them), a miss when its window ended with none, open while its window is still running at the
  horizon, and left out once its account has churned. Precision = hits / (hits + misses), with
  its 95 % Wilson interval. Recall = foreseen outcomes (expansions for an opportunity rule,
  churns and contractions for a churn-risk rule) with a signal of the rule in the window
  before them / all such outcomes since the history began. Lead time: from the rule's first
  signal in that window to the outcome, in days (median and p90, nearest rank).
- Scores: every account's CS and OP as published on `as_of` (default: one window before the
  horizon), against whether it churned or contracted (CS) or expanded (OP) in the window
  after. Accounts gone (churned) by then, or not yet scored, are left out. A calibration table
  per decile and the AUC (Mann-Whitney, ties count a half) of -CS for churn and of OP for
  expansion.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from kizashi.contracts.feedback import wilson_interval
from kizashi.contracts.outcomes import (
    CONFIRMED_BY,
    FORESEEN,
    WON_BY,
    OutcomeKind,
    signal_result,
    within_window,
)
from kizashi.contracts.signals import SignalBase
from kizashi.contracts.text import Identifier, error_reason
from kizashi.tools.stats import percentile

DAY_S = 86_400.0
DECILES = 10


class OutcomeLine(BaseModel):
    """One line of an outcomes file."""

    model_config = ConfigDict(extra="forbid")

    account_id: Identifier
    kind: OutcomeKind
    occurred_at: AwareDatetime
    amount: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False)


@dataclass
class LoadedOutcomes:
    outcomes: list[OutcomeLine] = field(default_factory=list)
    # (line number, reason)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0


def read_outcomes(path: Path) -> LoadedOutcomes:
    """Every outcome of a JSON Lines file, oldest first; bad lines kept aside with their
    number and the reason (the caller refuses the file), never a crash."""
    loaded = LoadedOutcomes()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            loaded.lines = number
            if not raw.strip():
                continue
            outcome, reason = parse_outcome(raw)
            if outcome is None:
                loaded.invalid.append((number, reason))
            else:
                loaded.outcomes.append(outcome)
    loaded.outcomes.sort(key=lambda o: o.occurred_at)
    return loaded


def parse_outcome(raw: bytes) -> tuple[OutcomeLine | None, str]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return None, f"not JSON ({error})"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    try:
        return OutcomeLine.model_validate(data), ""
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "outcome"
        extra = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        return None, f"{where}: {error_reason(first)}{extra}"


# ---------------------------------------------------------------------------- the rules


def rule_figures(
    signals: Sequence[SignalBase],
    outcomes: Sequence[OutcomeLine],
    *,
    rule: str,
    kind: str,
    window: timedelta,
    started_at: datetime | None,
    horizon: datetime,
) -> dict[str, Any]:
    """One rule's signals against the outcomes (see the module's docstring)."""
    by_account = _by_account(outcomes)
    mine = [s for s in signals if s.rule == rule]
    hits = misses = still_open = after_churn = averted = 0
    for signal in mine:
        facts = by_account.get(signal.account_id, [])
        if any(o.kind == "churn" and o.occurred_at <= signal.fired_at for o in facts):
            after_churn += 1
            continue
        followed = [o.kind for o in facts if within_window(signal.fired_at, o.occurred_at, window)]
        result = signal_result(kind, followed)
        if result in ("won", "confirmed"):
            hits += 1
        elif signal.fired_at + window <= horizon:
            misses += 1
            averted += result == "averted"
        else:
            still_open += 1
    fired_by_account: dict[str, list[datetime]] = defaultdict(list)
    for signal in mine:
        fired_by_account[signal.account_id].append(signal.fired_at)
    foreseen = [
        o
        for o in outcomes
        if o.kind in FORESEEN[kind] and (started_at is None or o.occurred_at >= started_at)
    ]
    leads = []
    for outcome in foreseen:
        before = [
            at
            for at in fired_by_account.get(outcome.account_id, [])
            if within_window(at, outcome.occurred_at, window)
        ]
        if before:
            leads.append((outcome.occurred_at - min(before)).total_seconds() / DAY_S)
    decided = hits + misses
    precision = wilson_interval(hits, decided)
    recall = wilson_interval(len(leads), len(foreseen))
    return {
        "fired": len(mine),
        "hits": hits,
        "misses": misses,
        "averted": averted,
        "open": still_open,
        "after_churn": after_churn,
        "precision": None if precision is None else hits / decided,
        "precision_low": None if precision is None else precision.low,
        "precision_high": None if precision is None else precision.high,
        "foreseen": len(foreseen),
        "recalled": len(leads),
        "recall": None if recall is None else len(leads) / len(foreseen),
        "recall_low": None if recall is None else recall.low,
        "recall_high": None if recall is None else recall.high,
        "lead_days_median": _days(percentile(leads, 50)),
        "lead_days_p90": _days(percentile(leads, 90)),
    }


def _days(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _by_account(outcomes: Iterable[OutcomeLine]) -> dict[str, list[OutcomeLine]]:
    grouped: dict[str, list[OutcomeLine]] = defaultdict(list)
    for outcome in outcomes:
        grouped[outcome.account_id].append(outcome)
    return grouped


# ---------------------------------------------------------------------------- the scores


def score_as_of(history: Sequence[tuple[datetime, float, float]], at: datetime):
    """The last published (CS, OP) at or before `at`; None before the first score."""
    latest = None
    for moment, cs, op in history:
        if moment > at:
            break
        latest = (cs, op)
    return latest


def score_figures(
    scores: dict[str, list[tuple[datetime, float, float]]],
    outcomes: Sequence[OutcomeLine],
    *,
    as_of: datetime,
    window: timedelta,
) -> dict[str, Any]:
    """CS against churn (or contraction) and OP against expansion in (as_of, as_of + window],
    over the accounts scored by `as_of` and not churned by then."""
    by_account = _by_account(outcomes)
    churn_samples: list[tuple[float, bool]] = []
    expansion_samples: list[tuple[float, bool]] = []
    left_out = 0
    for account_id in sorted(scores):
        facts = by_account.get(account_id, [])
        if any(o.kind == "churn" and o.occurred_at <= as_of for o in facts):
            left_out += 1
            continue
        scored = score_as_of(scores[account_id], as_of)
        if scored is None:
            left_out += 1
            continue
        after = {o.kind for o in facts if as_of < o.occurred_at <= as_of + window}
        churn_samples.append((scored[0], bool(after.intersection(CONFIRMED_BY))))
        expansion_samples.append((scored[1], bool(after.intersection(WON_BY))))
    return {
        "as_of": as_of.isoformat(),
        "until": (as_of + window).isoformat(),
        "accounts": len(churn_samples),
        "left_out": left_out,
        "churn": _index_figures(churn_samples, lower_is_riskier=True),
        "expansion": _index_figures(expansion_samples, lower_is_riskier=False),
    }


def _index_figures(samples: list[tuple[float, bool]], *, lower_is_riskier: bool) -> dict:
    positives = [score for score, label in samples if label]
    negatives = [score for score, label in samples if not label]
    sign = -1.0 if lower_is_riskier else 1.0
    area = auc([sign * s for s in positives], [sign * s for s in negatives])
    return {
        "positives": len(positives),
        "rate": len(positives) / len(samples) if samples else None,
        "auc": None if area is None else round(area, 4),
        "deciles": deciles(samples),
    }


def deciles(samples: Sequence[tuple[float, bool]], bins: int = DECILES) -> list[dict]:
    """Samples (score, outcome) in up to `bins` groups of (nearly) equal size by score, lowest
    first (ties broken by order of arrival, the accounts' ids): each group's score range, size,
    outcomes and rate."""
    ordered = sorted(samples, key=lambda sample: sample[0])
    count = min(bins, len(ordered))
    groups = []
    for index in range(count):
        part = ordered[index * len(ordered) // count : (index + 1) * len(ordered) // count]
        hits = sum(1 for _, label in part if label)
        groups.append(
            {
                "decile": index + 1,
                "low": round(part[0][0], 1),
                "high": round(part[-1][0], 1),
                "accounts": len(part),
                "outcomes": hits,
                "rate": hits / len(part),
            }
        )
    return groups


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """The probability that a random positive scores above a random negative, a tie counting
    a half (the Mann-Whitney U over P·N, from mid-ranks); None without both classes."""
    if not positives or not negatives:
        return None
    ranked = sorted([(s, True) for s in positives] + [(s, False) for s in negatives])
    rank_sum = 0.0
    start = 0
    while start < len(ranked):
        end = start
        while end + 1 < len(ranked) and ranked[end + 1][0] == ranked[start][0]:
            end += 1
        mid_rank = (start + end) / 2 + 1  # ranks from 1; a tie shares the mean of its ranks
        rank_sum += mid_rank * sum(1 for i in range(start, end + 1) if ranked[i][1])
        start = end + 1
    p, n = len(positives), len(negatives)
    return (rank_sum - p * (p + 1) / 2) / (p * n)


# ---------------------------------------------------------------------------- the report


def evaluate(
    result: Any,
    rule_kinds: dict[str, str],
    loaded: LoadedOutcomes,
    *,
    source: str,
    window: timedelta,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The `outcomes` section of the report: per rule (in `rule_kinds`' order) and for the
    scores, from a ReplayResult (its signals, its score histories and its span)."""
    outcomes = loaded.outcomes
    ends = (result.ended_at, outcomes[-1].occurred_at if outcomes else None, as_of)
    horizon = max((moment for moment in ends if moment is not None), default=datetime.now(UTC))
    known = {account for account in result.scores} | {s.account_id for s in result.signals}
    rules = {
        name: rule_figures(
            result.signals,
            outcomes,
            rule=name,
            kind=kind,
            window=window,
            started_at=result.started_at,
            horizon=horizon,
        )
        for name, kind in rule_kinds.items()
    }
    cut = as_of or horizon - window
    counts: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        counts[outcome.kind] += 1
    return {
        "source": source,
        "outcomes": len(outcomes),
        "by_kind": dict(sorted(counts.items())),
        "unknown_accounts": len({o.account_id for o in outcomes} - known),
        "window_days": window.total_seconds() / DAY_S,
        "horizon": horizon.isoformat(),
        "rules": rules,
        "scores": score_figures(result.scores, outcomes, as_of=cut, window=window),
    }


def render_outcomes_text(section: dict[str, Any]) -> str:
    kinds = ", ".join(f"{n} {kind}" for kind, n in section["by_kind"].items()) or "none"
    lines = [
        f"Against {section['outcomes']} outcomes in {section['source']} ({kinds}); window "
        f"{section['window_days']:g} days, outcomes known until {section['horizon'][:10]}",
    ]
    if section["unknown_accounts"]:
        lines.append(f"({section['unknown_accounts']} accounts with outcomes have no events)")
    lines.append("")
    rules = {name: r for name, r in section["rules"].items() if r["fired"] or r["recalled"]}
    width = max([len("rule")] + [len(name) for name in rules])
    lines.append(
        f"{'rule':<{width}}  {'fired':>5}  {'hits':>4}  {'miss':>4}  {'open':>4}  {'gone':>4}  "
        f"{'precision (95% CI)':<19} {'recall':<14} {'lead days p50/p90':>17}"
    )
    for name, rule in rules.items():
        precision = _share(rule["precision"], rule["precision_low"], rule["precision_high"])
        recall = f"{rule['recalled']}/{rule['foreseen']}"
        if rule["recall"] is not None:
            recall += f" = {rule['recall']:.2f}"
        lead = "-"
        if rule["lead_days_median"] is not None:
            lead = f"{rule['lead_days_median']:g} / {rule['lead_days_p90']:g}"
        lines.append(
            f"{name:<{width}}  {rule['fired']:>5}  {rule['hits']:>4}  {rule['misses']:>4}  "
            f"{rule['open']:>4}  {rule['after_churn']:>4}  {precision:<19} {recall:<14} {lead:>17}"
        )
    lines.append(
        "(hits: won or confirmed within the window; miss: the window ended without; open: its "
        "window runs past the horizon; gone: fired after the account churned)"
    )
    quiet = [name for name, r in section["rules"].items() if name not in rules]
    if quiet:
        lines.append(f"(no signal: {', '.join(quiet)})")
    lines.append("")
    scores = section["scores"]
    lines.append(
        f"Scores as of {scores['as_of'][:10]} against outcomes until {scores['until'][:10]}: "
        f"{scores['accounts']} accounts ({scores['left_out']} left out: churned or not scored yet)"
    )
    if scores["until"] > section["horizon"]:
        lines.append(
            f"(outcomes are known only until {section['horizon'][:10]}: the window after "
            f"{scores['as_of'][:10]} is cut short, and late churns count as none)"
        )
    for key, index, what in (("churn", "CS", "churned"), ("expansion", "OP", "expanded")):
        figures = scores[key]
        auc_text = "n/a (needs both)" if figures["auc"] is None else f"{figures['auc']:.3f}"
        direction = "lower CS" if key == "churn" else "higher OP"
        lines.append("")
        lines.append(
            f"{index} against {what if key == 'expansion' else 'churned or contracted'}: "
            f"AUC {auc_text} ({direction} ranks first); {figures['positives']} of "
            f"{scores['accounts']} {what}"
        )
        lines.append(f"  {'decile':>6}  {index + ' range':>9}  {'accounts':>8}  {what:>8}  rate")
        if not figures["deciles"]:
            lines.append("  (no account scored by then)")
        for group in figures["deciles"]:
            span = f"{group['low']:.0f}–{group['high']:.0f}"
            lines.append(
                f"  {group['decile']:>6}  {span:>9}  {group['accounts']:>8}  "
                f"{group['outcomes']:>8}  {group['rate']:.0%}"
            )
    return "\n".join(lines) + "\n"


def _share(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ({low:.2f}–{high:.2f})"
