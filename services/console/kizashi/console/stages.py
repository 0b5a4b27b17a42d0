"""KPIs per stage (issue #21, item 4): for opportunities, signals → acted on → won, per rule
and per rep, as counts and conversion rates over a period, and what waits on the recycle
list, per reason. Served by kizashi.console.kpis: `GET /v1/kpis/stages?owner=&period=` (JSON)
and a section of the KPI page, with the same callers, scope and period as `GET /v1/kpis`. How
each figure is counted: docs/kpis.md, "Stages"."""

from typing import Any

from kizashi.console import repository
from kizashi.contracts.resolutions import NOT_NOW
from kizashi.runtime.db import raw_transaction

STAGES = ("signals", "acted_on", "won")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def funnel(counts: dict[str, int]) -> dict[str, Any]:
    """Counts of each stage with the conversion rates between them (None over zero)."""
    signals, acted, won = (counts.get(s, 0) for s in STAGES)
    return {
        "signals": signals,
        "acted_on": acted,
        "won": won,
        "acted_on_rate": _rate(acted, signals),
        "won_of_acted_rate": _rate(won, acted),
        "won_rate": _rate(won, signals),
    }


def _add(into: dict[str, dict[str, int]], key: str, row: Any) -> None:
    counts = into.setdefault(key, dict.fromkeys(STAGES, 0))
    for stage in STAGES:
        counts[stage] += row[stage]


async def compute_stages(engine, owner: str | None, period: Any) -> dict[str, Any]:
    """Every figure for `owner` (None: everyone) over `period` (kizashi.console.kpis.Period)."""
    async with raw_transaction(engine) as connection:
        rows = await repository.opportunity_stages(
            conn=connection, owner=owner, start=period.start, end=period.end
        )
        waiting = await repository.recycle_waiting(conn=connection, owner=owner)
    by_rule: dict[str, dict[str, int]] = {}
    by_rep: dict[str, dict[str, int]] = {}
    total: dict[str, dict[str, int]] = {}
    for row in rows:
        _add(by_rule, row["rule"], row)
        _add(total, "all", row)
        if row["rep"]:
            _add(by_rep, row["rep"], row)
    recycle = {reason: waiting.get(reason, 0) for reason in sorted(NOT_NOW)}
    return {
        "period": {
            "label": period.label,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
        },
        "owner": owner,
        "total": funnel(total.get("all", {})),
        "by_rule": [{"rule": k, **funnel(by_rule[k])} for k in sorted(by_rule)],
        "by_owner": [{"rep": k, **funnel(by_rep[k])} for k in sorted(by_rep)],
        "recycle_waiting": {"total": sum(recycle.values()), "by_reason": recycle},
    }
