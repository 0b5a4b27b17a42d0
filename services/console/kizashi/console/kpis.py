"""The managers' KPIs (issue #18), per rep, over a period: `GET /v1/kpis` (JSON),
`GET /v1/kpis.csv` and the console page `/kpis` (a phase funnel per rep, drawn as SVG, with a
table beside it); opportunities per stage and the recycle list at `GET /v1/kpis/stages` and on
the same page (kizashi.console.stages). The figures and how each is counted: docs/kpis.md.

Who sees what follows the console's roles: a rep sees their own figures; a manager, an admin
and the service token see everyone's, or one rep's with `owner=`. The API takes a session
cookie (the console's own pages link to it) or `Authorization: Bearer` with the service token
or a personal token (kizashi.runtime.auth), like the other services' read APIs."""

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from kizashi.console import repository
from kizashi.console.deps import EngineDep, PageError, SignInRequired, StateDep, UserDep
from kizashi.console.deps import current_user as session_user
from kizashi.console.funnel import funnel_svg
from kizashi.console.security import BadInput, normalise_email
from kizashi.console.stages import compute_stages
from kizashi.console.views import render
from kizashi.runtime.auth import require_caller, unauthorized
from kizashi.runtime.db import raw_transaction

router = APIRouter(include_in_schema=False)

DEFAULT_PERIOD = "30d"
MAX_PERIOD_DAYS = 366
COVERAGE_DAYS = 90
_DAYS = re.compile(r"([1-9][0-9]{0,2})d")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


class KpiError(ValueError):
    """A query parameter that cannot be used; `status_code` is 403 or 422."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    label: str


def parse_period(value: str, now: datetime) -> Period:
    """`30d` (the last 30 days up to now, 1–366), `2026-11` (a calendar month, UTC) or
    `2026-11-01..2026-11-30` (whole days, both included, UTC)."""
    value = (value or DEFAULT_PERIOD).strip()
    if m := _DAYS.fullmatch(value):
        days = int(m.group(1))
        if days > MAX_PERIOD_DAYS:
            raise KpiError(422, f"period: at most {MAX_PERIOD_DAYS} days")
        return Period(now - timedelta(days=days), now, value)
    try:
        if m := _MONTH.fullmatch(value):
            first = date(int(m.group(1)), int(m.group(2)), 1)
            following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            return Period(_midnight(first), _midnight(following), value)
        first_s, sep, last_s = value.partition("..")
        if sep:
            first, last = date.fromisoformat(first_s), date.fromisoformat(last_s)
            if last < first:
                raise KpiError(422, "period: the end is before the start")
            if (last - first).days + 1 > MAX_PERIOD_DAYS:
                raise KpiError(422, f"period: at most {MAX_PERIOD_DAYS} days")
            return Period(_midnight(first), _midnight(last + timedelta(days=1)), value)
    except (ValueError, OverflowError) as error:
        if isinstance(error, KpiError):
            raise
        raise KpiError(422, f"period: {value[:40]!r} is not a date or month") from error
    raise KpiError(
        422, "period: 30d (last N days), 2026-11 (a month) or 2026-11-01..2026-11-30 (days)"
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


@dataclass(frozen=True)
class Viewer:
    email: str | None  # None: the service token
    role: str


def scope(viewer: Viewer, owner: str) -> str | None:
    """The rep whose figures are asked for (None: everyone's); KpiError when not allowed."""
    asked = (owner or "").strip().lower()
    if asked in ("", "all", "mine") and viewer.role == "rep":
        return viewer.email
    if asked in ("", "all"):
        return None
    if asked == "mine":
        if viewer.email is None:
            raise KpiError(422, "owner: 'mine' means nobody with the service token")
        return viewer.email
    try:
        email = normalise_email(asked)
    except BadInput as error:
        raise KpiError(422, f"owner: {error}") from error
    if viewer.role == "rep" and email != viewer.email:
        raise KpiError(403, "owner: a rep sees their own KPIs only")
    return email


async def compute(engine, owner: str | None, period: Period, now: datetime, phases) -> dict:
    """Every figure, per rep; `phases` is the ladder (for names and the funnel's steps)."""
    as_of = min(period.end, now)
    window = {"owner": owner, "start": period.start, "end": period.end}
    async with raw_transaction(engine) as connection:
        per_phase = await repository.accounts_per_phase(conn=connection, owner=owner)
        moves = await repository.phase_moves(conn=connection, **window)
        stays = await repository.phase_stays(conn=connection, **window)
        logged = await repository.observations_logged(
            conn=connection, author=owner, start=period.start, end=period.end
        )
        acted = await repository.signals_acted(conn=connection, **window)
        covered = await repository.coverage(
            conn=connection, owner=owner, as_of=as_of, days=COVERAGE_DAYS
        )
        people = {r["email"]: r["name"] for r in await repository.owners(conn=connection)}
    top = max([len(phases) - 1] + [r["phase"] for r in per_phase] + [r["phase"] for r in stays])
    reps: dict[str, dict[str, Any]] = {}

    def rep(email: str) -> dict[str, Any]:
        if email not in reps:
            reps[email] = {
                "rep": email,
                "name": people.get(email),
                "accounts": 0,
                "accounts_per_phase": [0] * (top + 1),
                "moves": {"up": 0, "down": 0},
                "median_days_in_phase": [None] * (top + 1),
                "stays_ended": [0] * (top + 1),
                "observations_logged": 0,
                "signals": {
                    "fired": 0,
                    "acted_on": 0,
                    "first_action_p50_s": None,
                    "first_action_p90_s": None,
                },
                "coverage": {"owned": 0, "without_observation_90d": 0, "share": None},
            }
        return reps[email]

    for r in per_phase:
        rep(r["rep"])["accounts_per_phase"][r["phase"]] = r["n"]
        reps[r["rep"]]["accounts"] += r["n"]
    for r in moves:
        rep(r["rep"])["moves"] = {"up": r["up"], "down": r["down"]}
    for r in stays:
        rep(r["rep"])["median_days_in_phase"][r["phase"]] = round(r["median_s"] / 86_400, 3)
        reps[r["rep"]]["stays_ended"][r["phase"]] = r["stays"]
    for r in logged:
        rep(r["rep"])["observations_logged"] = r["n"]
    for r in acted:
        rep(r["rep"])["signals"] = {
            "fired": r["fired"],
            "acted_on": r["acted"],
            "first_action_p50_s": _seconds(r["p50_s"]),
            "first_action_p90_s": _seconds(r["p90_s"]),
        }
    for r in covered:
        share = r["without"] / r["owned"] if r["owned"] else None
        rep(r["rep"])["coverage"] = {
            "owned": r["owned"],
            "without_observation_90d": r["without"],
            "share": None if share is None else round(share, 4),
        }
    return {
        "period": {
            "label": period.label,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
        },
        "owner": owner,
        "coverage_as_of": as_of.isoformat(),
        "phases": [{"phase": p.phase, "name": p.name} for p in phases],
        "reps": [reps[k] for k in sorted(reps)],
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


async def api_viewer(request: Request, engine: EngineDep) -> Viewer:
    """A bearer token (service or personal), else the console session; 401 without either."""
    if request.headers.get("authorization"):
        caller = await require_caller(request)
        return Viewer(caller.email, caller.role or "service")
    try:
        user = await session_user(request, engine)
    except SignInRequired as error:
        raise unauthorized(
            "sign in on the console, or send 'Authorization: Bearer <token>' (a personal token "
            "or the service token)"
        ) from error
    return Viewer(user.email, user.role)


async def _figures(request: Request, engine, state, owner: str, period: str) -> dict:
    viewer = await api_viewer(request, engine)
    now = datetime.now(UTC)
    try:
        chosen = scope(viewer, owner)
        window = parse_period(period, now)
    except KpiError as error:
        raise HTTPException(error.status_code, detail=str(error)) from error
    return await compute(engine, chosen, window, now, state.phases.phases)


def param(request: Request, name: str) -> str:
    values = request.query_params.getlist(name)
    if len(values) > 1 or any(len(v) > 320 for v in values):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"{name}: give it once")
    return values[0] if values else ""


@router.get("/v1/kpis")
async def kpis_json(request: Request, engine: EngineDep, state: StateDep) -> JSONResponse:
    figures = await _figures(
        request, engine, state, param(request, "owner"), param(request, "period")
    )
    return JSONResponse(figures, headers={"Cache-Control": "no-store"})


@router.get("/v1/kpis/stages")
async def stages_json(request: Request, engine: EngineDep) -> JSONResponse:
    """Opportunities per stage and the recycle list (kizashi.console.stages)."""
    viewer = await api_viewer(request, engine)
    try:
        chosen = scope(viewer, param(request, "owner"))
        window = parse_period(param(request, "period"), datetime.now(UTC))
    except KpiError as error:
        raise HTTPException(error.status_code, detail=str(error)) from error
    figures = await compute_stages(engine, chosen, window)
    return JSONResponse(figures, headers={"Cache-Control": "no-store"})


@router.get("/v1/kpis.csv")
async def kpis_csv(request: Request, engine: EngineDep, state: StateDep) -> Response:
    figures = await _figures(
        request, engine, state, param(request, "owner"), param(request, "period")
    )
    return Response(
        to_csv(figures),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="kizashi-kpis.csv"',
            "Cache-Control": "no-store",
        },
    )


def to_csv(figures: dict) -> str:
    phases = range(len(figures["reps"][0]["accounts_per_phase"])) if figures["reps"] else []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "rep",
            "name",
            "period_start",
            "period_end",
            "accounts",
            *(f"accounts_phase_{p}" for p in phases),
            "moves_up",
            "moves_down",
            *(f"median_days_in_phase_{p}" for p in phases),
            "observations_logged",
            "signals_fired",
            "signals_acted_on",
            "first_action_p50_s",
            "first_action_p90_s",
            "accounts_owned",
            "without_observation_90d",
            "share_without_observation_90d",
        ]
    )
    for r in figures["reps"]:
        s, c = r["signals"], r["coverage"]
        row = [
            r["rep"],
            r["name"] or "",
            figures["period"]["start"],
            figures["period"]["end"],
            r["accounts"],
            *r["accounts_per_phase"],
            r["moves"]["up"],
            r["moves"]["down"],
            *r["median_days_in_phase"],
            r["observations_logged"],
            s["fired"],
            s["acted_on"],
            s["first_action_p50_s"],
            s["first_action_p90_s"],
            c["owned"],
            c["without_observation_90d"],
            c["share"],
        ]
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _cell(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ gets a leading '."""
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


@router.get("/kpis", response_class=HTMLResponse)
async def kpis_page(
    request: Request, engine: EngineDep, state: StateDep, user: UserDep
) -> Response:
    owner, period = request.query_params.get("owner", ""), request.query_params.get("period", "")
    now = datetime.now(UTC)
    try:
        chosen = scope(Viewer(user.email, user.role), owner[:320])
        window = parse_period(period[:64], now)
    except KpiError as error:
        raise PageError(error.status_code, "Not understood", str(error)) from error
    figures = await compute(engine, chosen, window, now, state.phases.phases)
    stages = await compute_stages(engine, chosen, window)
    names = [p["name"] for p in figures["phases"]]
    charts = {
        r["rep"]: Markup(funnel_svg(r["accounts_per_phase"], names))  # noqa: S704 - escaped
        for r in figures["reps"]
    }
    async with raw_transaction(engine) as connection:
        people = await repository.owners(conn=connection)
    return render(
        request,
        "kpis.html",
        user=user,
        figures=figures,
        stages=stages,
        charts=charts,
        # What the owner filter shows as chosen (a manager's default is everyone's).
        owner=owner.strip().lower() or ("mine" if user.role == "rep" else "all"),
        period=window.label,
        people=people,
        query=request.url.query,
        nav="kpis",
    )
