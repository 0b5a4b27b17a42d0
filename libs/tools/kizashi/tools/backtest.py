"""`kizashi backtest --events FILE.jsonl`: how many signals each rule would have fired on an
event history, and for whom, before a rules.yaml goes live. With `--outcomes FILE.jsonl`, how
often each rule was right, how much it caught and how early, and how well CS and OP ranked
the accounts that churned or expanded (kizashi.tools.backtest_outcomes).

Offline: no broker, no database, no service. The events go through the same scoring and
rule code as the services (kizashi.tools.replay), on a simulated clock.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_start
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import ValidationError

from kizashi.contracts.events import EventEnvelope, input_event_adapter
from kizashi.contracts.text import error_reason
from kizashi.scoring.config import ConfigError, load_scoring_config
from kizashi.tools.backtest_outcomes import evaluate, read_outcomes, render_outcomes_text
from kizashi.tools.calibration_chart import calibration_svg
from kizashi.tools.replay import Replay, ReplayResult, processing_time
from kizashi.tools.settings import ToolSettings
from kizashi.triggers.rules import RuleBook, RulesConfigError, load_rules_config

# Below this many events the run is over before a bar is worth drawing.
PROGRESS_FROM_EVENTS = 5_000
MAX_REPORTED_ERRORS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", required=True, type=Path, metavar="FILE.jsonl",
        help="one input event per line, as POST /v1/events takes them, with occurred_at",
    )  # fmt: skip
    parser.add_argument(
        "--rules", type=Path, metavar="DIR",
        help="a folder with the rules.yaml to try (or the file itself); laid over the "
        "packaged defaults. Default: KIZASHI_CONFIG_DIR, else the packaged defaults",
    )  # fmt: skip
    parser.add_argument(
        "--until", type=date.fromisoformat, metavar="YYYY-MM-DD",
        help="keep the clock running to the end of this day (UTC) after the last event, so "
        "silence and the renewal calendar have their say. Default: the last event's time",
    )  # fmt: skip
    parser.add_argument(
        "--outcomes", type=Path, metavar="FILE.jsonl",
        help="what happened: one outcome per line, {account_id, kind (renewal, churn, "
        "expansion, contraction), occurred_at, amount?}; adds precision, recall and lead time "
        "per rule, and the scores' calibration and AUC",
    )  # fmt: skip
    parser.add_argument(
        "--window-days", type=_positive_days, metavar="DAYS",
        help="how long after a signal an outcome still counts for it "
        "(default: rules.yaml's outcome_window, 90 days)",
    )  # fmt: skip
    parser.add_argument(
        "--scores-at", type=date.fromisoformat, metavar="YYYY-MM-DD",
        help="read each account's CS and OP as of the start of this day (UTC) against the "
        "outcomes of the window after it (default: one window before the last outcome or event)",
    )  # fmt: skip
    parser.add_argument(
        "--chart", type=Path, metavar="FILE.svg",
        help="write the calibration chart (churn rate per CS decile, expansion rate per OP "
        "decile) as SVG; needs --outcomes",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="draw a progress bar on stderr (default: on a terminal, for long files)",
    )  # fmt: skip


@dataclass
class LoadedEvents:
    events: list[EventEnvelope] = field(default_factory=list)
    # (line number, reason)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0


def _positive_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 < days <= 3660:
        raise argparse.ArgumentTypeError("the window must be more than 0 and at most 3660 days")
    return days


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    try:
        rules = _rules(args.rules, settings)
        scoring = load_scoring_config(settings.config_dir)
    except (RulesConfigError, ConfigError) as error:
        print(f"kizashi backtest: {error}", file=sys.stderr)
        return 2
    for path in (args.events, args.outcomes):
        if path is not None and not path.is_file():
            print(f"kizashi backtest: no such file: {path}", file=sys.stderr)
            return 2
    if args.chart is not None and args.outcomes is None:
        print("kizashi backtest: --chart needs --outcomes", file=sys.stderr)
        return 2
    if args.chart is not None and not args.chart.resolve().parent.is_dir():
        print(f"kizashi backtest: no such folder for the chart: {args.chart}", file=sys.stderr)
        return 2
    outcomes = None
    if args.outcomes is not None:
        outcomes = read_outcomes(args.outcomes)
        if outcomes.invalid:  # the truth the rules are judged by: all of it or nothing
            _print_invalid(args.outcomes, outcomes.invalid, "invalid")
            print(f"kizashi backtest: {args.outcomes}: fix these lines first", file=sys.stderr)
            return 2
    progress = Progress(sys.stderr, forced=args.progress)
    loaded = read_events(args.events, progress)
    _print_invalid(args.events, loaded.invalid, "skipped")
    until = (
        datetime.combine(args.until + timedelta(days=1), day_start(), tzinfo=UTC)
        if args.until
        else None
    )
    result = backtest(loaded.events, rules=rules, scoring=scoring, until=until, progress=progress)
    report = build_report(result, rules, loaded, source=str(args.events))
    if outcomes is not None:
        window = timedelta(days=args.window_days) if args.window_days else rules.outcome_window
        as_of = (
            datetime.combine(args.scores_at, day_start(), tzinfo=UTC) if args.scores_at else None
        )
        kinds = {name: cfg.kind for name, cfg in rules.items()}
        report["outcomes"] = evaluate(
            result, kinds, outcomes, source=str(args.outcomes), window=window, as_of=as_of
        )
        if args.chart is not None:
            title = f"Calibration: {args.events.name} against {args.outcomes.name}"
            try:
                args.chart.write_text(calibration_svg(report["outcomes"]["scores"], title=title))
            except OSError as error:
                print(f"kizashi backtest: cannot write {args.chart}: {error}", file=sys.stderr)
                return 2
            print(f"kizashi backtest: wrote {args.chart}", file=sys.stderr)
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_text(report))
    return 0 if loaded.events or not loaded.lines else 1


def _print_invalid(path: Path, invalid: list[tuple[int, str]], verb: str) -> None:
    for line, reason in invalid[:MAX_REPORTED_ERRORS]:
        print(f"{path}:{line}: {verb}: {reason}", file=sys.stderr)
    if len(invalid) > MAX_REPORTED_ERRORS:
        more = len(invalid) - MAX_REPORTED_ERRORS
        print(f"{path}: ... and {more} more invalid lines", file=sys.stderr)


def _rules(path: Path | None, settings: ToolSettings) -> RuleBook:
    if path is None:
        return load_rules_config(settings.config_dir)
    if path.is_file():
        if path.name != "rules.yaml":
            raise RulesConfigError(f"{path}: the rules file must be named rules.yaml")
        path = path.parent
    if not (path / "rules.yaml").is_file():
        raise RulesConfigError(f"{path}: no rules.yaml in this folder")
    return load_rules_config(path)


def read_events(path: Path, progress: Progress | None = None) -> LoadedEvents:
    """Every valid event of a JSON Lines file, sorted by processing time (stable); invalid
    lines are kept aside with their line number and the reason, never a crash."""
    loaded = LoadedEvents()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            loaded.lines = number
            done += len(raw)
            if progress and number % 1000 == 0:
                progress.show("reading", done, total, unit="bytes")
            if not raw.strip():
                continue
            event, reason = parse_line(raw)
            if event is None:
                loaded.invalid.append((number, reason))
            else:
                loaded.events.append(event)
    loaded.events.sort(key=processing_time)
    return loaded


def parse_line(raw: bytes) -> tuple[EventEnvelope | None, str]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return None, f"not JSON ({error})"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    try:
        event = input_event_adapter.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        extra = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        return None, f"{where}: {error_reason(first)}{extra}"
    if event.occurred_at is None and event.received_at is None:
        return None, "occurred_at: required in a history (when did it happen?)"
    return event, ""


def backtest(
    events: list[EventEnvelope],
    *,
    rules: RuleBook,
    scoring: Any,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    replay = Replay(scoring=scoring, rules=rules)
    for done, event in enumerate(events, start=1):
        replay.feed(event)
        if progress and done % 500 == 0:
            progress.show("replaying", done, len(events), unit="events")
    if progress:
        progress.show("replaying", len(events), len(events), unit="events")
        progress.done()
    return replay.finish(until)


def build_report(
    result: ReplayResult, rules: RuleBook, loaded: LoadedEvents, *, source: str
) -> dict[str, Any]:
    fired: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for signal in result.signals:
        fired[signal.rule][signal.account_id].append(signal.fired_at.isoformat())
    resolved: dict[str, int] = defaultdict(int)
    for resolution in result.resolutions:
        if resolution.by is None:  # resolved by itself, not by a scripted rep
            resolved[resolution.rule] += 1
    per_rule = {
        name: {
            "kind": cfg.kind,
            "enabled": cfg.enabled,
            "signals": sum(len(times) for times in fired[name].values()),
            "accounts": {account: fired[name][account] for account in sorted(fired[name])},
            "suppressed": result.suppressed.get(name, 0),
            "auto_resolved": resolved[name],
        }
        for name, cfg in rules.items()
    }
    return {
        "source": source,
        "events": result.events,
        "duplicates": result.duplicates,
        "invalid_lines": [{"line": line, "error": reason} for line, reason in loaded.invalid],
        "accounts": result.accounts,
        "from": result.started_at.isoformat() if result.started_at else None,
        "to": result.ended_at.isoformat() if result.ended_at else None,
        "signals": len(result.signals),
        "accounts_with_signals": len({s.account_id for s in result.signals}),
        "rules": per_rule,
    }


def render_text(report: dict[str, Any]) -> str:
    lines = [f"Backtest of {report['source']}"]
    span = ""
    if report["from"]:
        span = f", {report['from'][:10]} → {report['to'][:10]}"
    extras = []
    if report["duplicates"]:
        extras.append(f"{report['duplicates']} duplicate ids skipped")
    if report["invalid_lines"]:
        extras.append(f"{len(report['invalid_lines'])} invalid lines skipped")
    extra = f" ({', '.join(extras)})" if extras else ""
    lines.append(f"{report['events']:,} events for {report['accounts']:,} accounts{span}{extra}")
    lines.append("")
    width = max(len(name) for name in report["rules"])
    lines.append(f"{'rule':<{width}}  {'kind':<11}  {'signals':>7}  {'accounts':>8}")
    for name, rule in report["rules"].items():
        note = "" if rule["enabled"] else "  (disabled)"
        if rule["suppressed"]:
            note += f"  ({rule['suppressed']} held back by the daily cap)"
        lines.append(
            f"{name:<{width}}  {rule['kind']:<11}  {rule['signals']:>7}  "
            f"{len(rule['accounts']):>8}{note}"
        )
        if "outcomes" in report:
            continue  # the figures below say more than every account's days (--json has both)
        for account, times in rule["accounts"].items():
            days = ", ".join(moment[:10] for moment in times)
            lines.append(f"{'':<{width}}    {account}: {days}")
    lines.append("")
    lines.append(
        f"{report['signals']} signals for {report['accounts_with_signals']} of "
        f"{report['accounts']} accounts"
    )
    resolved = sum(rule["auto_resolved"] for rule in report["rules"].values())
    held = sum(rule["suppressed"] for rule in report["rules"].values())
    if resolved:
        lines.append(f"{resolved} churn-risk signals would have resolved themselves")
    if held:
        lines.append(f"{held} firings held back by the daily cap (they fire on a later day)")
    text = "\n".join(lines) + "\n"
    if "outcomes" in report:
        text += "\n" + render_outcomes_text(report["outcomes"])
    return text


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    WIDTH = 30

    def __init__(self, stream: IO[str], *, forced: bool | None = None) -> None:
        self.stream = stream
        self.enabled = forced if forced is not None else stream.isatty()
        self.forced = bool(forced)
        self._last = 0.0
        self._drawn = False

    def show(self, label: str, done: int, total: int, *, unit: str) -> None:
        if not self.enabled or total <= 0:
            return
        if not self.forced and unit == "events" and total < PROGRESS_FROM_EVENTS:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        share = min(1.0, done / total)
        filled = round(self.WIDTH * share)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        if unit == "bytes":
            count = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"
        else:
            count = f"{done:,}/{total:,} {unit}"
        self.stream.write(f"\r{label:<9} [{bar}] {share:4.0%} {count}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def done(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
