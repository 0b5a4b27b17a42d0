"""One account's page: its facts and scores, the CS/OP history, the relationship phase (what
meets it, what the next phase needs), the observation form, and a timeline of the signals
(with their deliveries and actions) beside the observations reps logged (issue #18). Posting
the form is kizashi.console.observations; it answers with this page when something is wrong."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from kizashi.console import cutoffs, outcomes, repository
from kizashi.console.charts import Signal, history_svg
from kizashi.console.deps import EngineDep, PageError, StateDep, User, UserDep
from kizashi.console.obsform import Kind, kinds_of, new_form_id
from kizashi.console.state import ConsoleState
from kizashi.console.views import render
from kizashi.runtime.db import raw_transaction
from kizashi.runtime.phases import Evidence, Standing, phase_of

router = APIRouter(include_in_schema=False)

HISTORY_DAYS = 90
OBSERVATIONS_SHOWN = 200
CUSTOMER_EMAILS_SHOWN = 50


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _timeline(signals, deliveries, actions, observations, questions, kinds) -> list[dict]:
    """Signals (with their deliveries and actions) and observations, newest first;
    `questions`: criterion id → its question, to show phase evidence in words; `kinds`: kind →
    its form (obsform.kinds_of), for the labels of the kind and its fields."""
    by_signal: dict[str, dict] = {
        s["signal_id"]: {
            "type": "signal",
            "at": s["fired_at"],
            "signal": s,
            "deliveries": [],
            "actions": [],
        }
        for s in signals
    }
    for delivery in deliveries:
        by_signal[delivery["signal_id"]]["deliveries"].append(delivery)
    for action in actions:
        by_signal[action["signal_id"]]["actions"].append(action)
    items = list(by_signal.values())
    for row in observations:
        kind: Kind | None = kinds.get(row["kind"])
        fields = orjson.loads(row["fields"]) if row["fields"] else {}
        known = [(f.name, f.label) for f in kind.fields] if kind else []
        shown = [(label, _shown(fields[name])) for name, label in known if name in fields]
        if row["kind"] == "phase_evidence" and fields.get("criterion") in questions:
            shown = [("Criterion met", f"{questions[fields['criterion']]} ({fields['criterion']})")]
        names = {name for name, _ in known}
        shown += [(k, _shown(v)) for k, v in sorted(fields.items()) if k not in names]
        items.append(
            {
                "type": "observation",
                "at": row["occurred_at"],
                "observation": row,
                "label": kind.label if kind else row["kind"],
                "fields": shown,
            }
        )
    items.sort(key=lambda item: item["at"], reverse=True)
    return items


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "—" if value is None else str(value)


def _renewal(value: Any, today: date) -> str | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    days = (day - today).days
    when = f"in {days} days" if days >= 0 else f"{-days} days ago"
    return f"{day.isoformat()} ({when})"


def standing_of(state: ConsoleState, rows, now: datetime) -> Standing:
    evidence = [Evidence(r["criterion"], r["occurred_at"], r["author"]) for r in rows]
    return phase_of(state.phases, evidence, now)


def may_log(user: User, owner: str | None) -> bool:
    """Who may log an observation about an account: its owner, a manager or admin, and anyone
    about an account nobody owns yet."""
    return not owner or user.may_act_on(owner)


@router.get("/accounts/{account_id:path}", response_class=HTMLResponse)
async def account_page(
    request: Request, engine: EngineDep, state: StateDep, user: UserDep, account_id: str
) -> Response:
    logged = request.query_params.get("logged")
    offered = {k.kind: k for k in kinds_of(state.observation_kinds)}
    notice = f"Logged: {offered[logged].label}." if logged in offered else None
    if request.query_params.get("done") == "outcome":
        notice = "Outcome recorded."
    return await account_view(request, state, user, account_id, notice=notice)


async def account_view(
    request: Request,
    state: ConsoleState,
    user: User,
    account_id: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    now = datetime.now(UTC)
    since = now - timedelta(days=HISTORY_DAYS)
    async with raw_transaction(state.engine) as connection:
        row = await repository.account(conn=connection, account_id=account_id)
        signals = await repository.account_signals(conn=connection, account_id=account_id)
        if row is None and not signals:
            raise PageError(404, "No such account", "There is no account with that id.")
        history = await repository.account_history(
            conn=connection, account_id=account_id, since=since, limit=2_000
        )
        ids = [s["signal_id"] for s in signals]
        deliveries = await repository.deliveries_of(conn=connection, signal_ids=ids)
        actions = await repository.actions_of(conn=connection, signal_ids=ids)
        observations = await repository.account_observations(
            conn=connection, account_id=account_id, limit=OBSERVATIONS_SHOWN
        )
        evidence = await repository.phase_evidence(conn=connection, account_id=account_id)
        customer_emails = await repository.customer_emails_of(
            conn=connection, account_id=account_id, limit=CUSTOMER_EMAILS_SHOWN
        )
    known = await cutoffs.current(state.scoring)
    happened = await outcomes.account_outcomes(state, account_id)
    facts = orjson.loads(row["facts"]) if row is not None else {}
    breakdown = orjson.loads(row["breakdown"]) if row is not None and row["breakdown"] else []
    marks = [
        Signal(at=s["fired_at"], headline=s["headline"] or s["rule"], kind=s["kind"])
        for s in signals
        if s["fired_at"] >= since
    ]
    chart = history_svg([dict(p) for p in history], known.cutoffs, marks, since=since, until=now)
    shown = {"name", "owner_email", "owner_slack", "plan", "arr", "seats", "renewal_date"}
    shown |= {"contact_email", "contact_name"}  # in the "Customer emails" section
    standing = standing_of(state, evidence, now)
    return render(
        request,
        "account.html",
        status_code=status_code,
        user=user,
        account_id=account_id,
        name=facts.get("name") or account_id,
        facts=facts,
        other_facts={k: v for k, v in facts.items() if k not in shown},
        arr=_number(facts.get("arr")),
        seats=facts.get("seats"),
        renewal=_renewal(facts.get("renewal_date"), now.date()),
        scores=row if row is not None and row["cs"] is not None else None,
        breakdown={
            index: [line for line in breakdown if line.get("index") == index]
            for index in ("cs", "op")
        },
        chart=Markup(chart),  # noqa: S704 - charts.py escapes every text it draws
        history_days=HISTORY_DAYS,
        points=len(history),
        cutoffs=known,
        timeline=_timeline(
            signals,
            deliveries,
            actions,
            observations,
            {c.id: c.question for p in state.phases.phases for c in p.criteria},
            {k.kind: k for k in kinds_of(state.observation_kinds, every=True)},
        ),
        standing=standing,
        scored_phase=row["phase"] if row is not None and row["cs"] is not None else None,
        ladder=state.phases.phases,
        kinds=kinds_of(state.observation_kinds),
        outcomes=happened,
        outcome_kinds=outcomes.KINDS,
        customer_emails=customer_emails,
        may_log=row is not None and may_log(user, facts.get("owner_email")),
        form=form or {},
        errors=errors or {},
        new_form_id=new_form_id,
        today=now.date().isoformat(),
        notice=notice,
        nav="accounts",
    )
