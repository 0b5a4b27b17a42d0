"""The console's pages about accounts: the map (the home page), the segments and their moves,
and the filtered account list they link to (one account's page is kizashi.console.account).
All read straight from the tables (architecture §11.2), a few indexed statements per page,
but for what only a pass over every account can tell: everyone's map and segment counts
(kizashi.console.mapdigest) and the segment moves (kizashi.console.moves), computed in the
background. The charts are server-rendered SVG (kizashi.console.charts), so every page reads
with JavaScript off."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from kizashi.console import cutoffs, repository
from kizashi.console.charts import (
    INSUFFICIENT,
    PRIORITY_COLOURS,
    SEGMENTS,
    UNKNOWN_COLOUR,
    density_cell,
    map_svg,
)
from kizashi.console.deps import EngineDep, PageError, StateDep, User, UserDep
from kizashi.console.mapdigest import MAP_GRID, MAP_POINTS, MapView
from kizashi.console.views import render
from kizashi.runtime.db import raw_transaction

router = APIRouter(include_in_schema=False)

PRIORITIES = ("high", "medium", "low")
TRAIL_DAYS = (0, 7, 30, 90)
MOVE_DAYS = (7, 30)
PAGE_SIZE = 50

Text = Annotated[str, Query(max_length=320)]


def _choice(name: str, value: str, allowed: Sequence[str]) -> str | None:
    """'' (a form's "any") is None; anything else must be one of `allowed`."""
    if not value:
        return None
    if value not in allowed:
        raise PageError(422, "Not understood", f"{name}: one of {', '.join(allowed)}")
    return value


def _owner(user: User, owner: str) -> tuple[str, str | None]:
    """(the filter's value as shown, the owner email to filter on or None for everyone).
    A rep sees their own accounts unless they ask for everyone's."""
    chosen = owner.strip().lower() or ("mine" if user.role == "rep" else "all")
    if chosen == "mine":
        return chosen, user.email
    if chosen == "all":
        return chosen, None
    return chosen, chosen


@router.get("/", response_class=HTMLResponse)
async def account_map(
    request: Request,
    engine: EngineDep,
    state: StateDep,
    user: UserDep,
    owner: Text = "",
    segment: Text = "",
    priority: Text = "",
    trail: Annotated[int, Query(ge=0, le=90)] = 7,
) -> Response:
    shown_owner, owner_email = _owner(user, owner)
    segment_f = _choice("segment", segment, SEGMENTS)
    priority_f = _choice("priority", priority, PRIORITIES)
    if trail not in TRAIL_DAYS:
        raise PageError(422, "Not understood", "trail: one of 0, 7, 30, 90 (days)")
    known = await cutoffs.current(state.scoring)
    if owner_email is None:
        await state.map.ready(engine)
        view = state.map.view(segment_f, priority_f)
        unscored = state.map.unscored
    async with raw_transaction(engine) as connection:
        if owner_email is not None:
            view = await _owners_map(connection, owner_email, segment_f, priority_f)
            unscored = await repository.unscored_count(conn=connection, owner=owner_email)
        trails = {}
        if trail and view.points:
            trails = await repository.positions_then(
                conn=connection,
                account_ids=[p["account_id"] for p in view.points],
                as_of=datetime.now(UTC) - timedelta(days=trail),
            )
        people = await repository.owners(conn=connection)
    svg = map_svg(
        view.points,
        known.cutoffs,
        trails,
        max_points=MAP_POINTS,
        grid=MAP_GRID,
        density=view.density,
        apart=[p["account_id"] for p in view.points if p.get("segment") == INSUFFICIENT],
    )
    return render(
        request,
        "map.html",
        user=user,
        svg=Markup(svg),  # noqa: S704 - charts.py escapes every text it draws
        drawn=len(view.points),
        total=view.total,
        unscored=unscored if segment_f is None and priority_f is None else 0,
        as_of=state.map.computed_at if owner_email is None else None,
        cutoffs=known,
        colours=PRIORITY_COLOURS,
        unknown_colour=UNKNOWN_COLOUR,
        owner=shown_owner,
        owner_email=owner_email,
        people=people,
        segment=segment_f or "",
        priority=priority_f or "",
        trail=trail,
        segments=SEGMENTS,
        priorities=PRIORITIES,
        trail_days=TRAIL_DAYS,
        nav="map",
    )


async def _owners_map(connection, owner: str, segment: str | None, priority: str | None) -> MapView:
    """One owner's map, read at once: the owner index keeps it small."""
    points = await repository.map_points(
        conn=connection, owner=owner, segment=segment, priority=priority, limit=MAP_POINTS
    )
    if len(points) < MAP_POINTS:
        return MapView(points=[dict(p) for p in points], density=None, total=len(points))
    density = await repository.map_density(
        conn=connection, owner=owner, segment=segment, priority=priority, grid=MAP_GRID
    )
    total = sum(density.values())
    for point in points:  # the cells count the accounts not drawn as points
        density[density_cell(point["cs"], point["op"], MAP_GRID)] -= 1
    return MapView(points=[dict(p) for p in points], density=density, total=total)


@router.get("/segments", response_class=HTMLResponse)
async def segments_page(
    request: Request, engine: EngineDep, state: StateDep, user: UserDep, owner: Text = ""
) -> Response:
    shown_owner, owner_email = _owner(user, owner)
    await state.moves.ready(engine)
    if owner_email is None:
        await state.map.ready(engine)
        grid = state.map.counts()
    async with raw_transaction(engine) as connection:
        if owner_email is not None:
            counts = await repository.segment_counts(conn=connection, owner=owner_email)
            grid = {(r["segment"], r["priority"]): r["n"] for r in counts}
        people = await repository.owners(conn=connection)
    return render(
        request,
        "segments.html",
        user=user,
        grid=grid,
        row_totals={s: sum(grid.get((s, p), 0) for p in PRIORITIES) for s in SEGMENTS},
        column_totals={p: sum(grid.get((s, p), 0) for s in SEGMENTS) for p in PRIORITIES},
        total=sum(grid.values()),
        moves={days: state.moves.counts(days, owner_email) for days in MOVE_DAYS},
        moves_at=state.moves.computed_at,
        counts_at=state.map.computed_at if owner_email is None else None,
        segments=SEGMENTS,
        priorities=PRIORITIES,
        owner=shown_owner,
        people=people,
        nav="segments",
    )


@router.get("/accounts", response_class=HTMLResponse)
async def account_list(
    request: Request,
    engine: EngineDep,
    state: StateDep,
    user: UserDep,
    owner: Text = "",
    segment: Text = "",
    priority: Text = "",
    moved_from: Text = "",
    days: Annotated[int, Query(ge=1, le=365)] = 7,
    unscored: bool = False,
    after: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    shown_owner, owner_email = _owner(user, owner)
    segment_f = _choice("segment", segment, SEGMENTS)
    priority_f = _choice("priority", priority, PRIORITIES)
    moved_f = _choice("moved_from", moved_from, SEGMENTS)
    among = None
    if moved_f:
        if days not in MOVE_DAYS:
            raise PageError(422, "Not understood", "days: 7 or 30")
        await state.moves.ready(engine)
        among = state.moves.accounts(days, moved_f, owner_email)
    async with raw_transaction(engine) as connection:
        rows = await repository.account_list(
            conn=connection,
            owner=owner_email,
            segment=segment_f,
            priority=priority_f,
            among=among,
            unscored=unscored,
            after=after or None,
            limit=PAGE_SIZE + 1,
        )
    query = {
        "owner": shown_owner,
        "segment": segment_f or "",
        "priority": priority_f or "",
        "moved_from": moved_f or "",
        "days": days if moved_f else "",
        "unscored": "1" if unscored else "",
    }
    query = {k: v for k, v in query.items() if v}
    return render(
        request,
        "accounts.html",
        user=user,
        rows=rows[:PAGE_SIZE],
        next_after=rows[PAGE_SIZE - 1]["account_id"] if len(rows) > PAGE_SIZE else None,
        first_page=not after,
        query=query,
        owner=shown_owner,
        segment=segment_f,
        priority=priority_f,
        moved_from=moved_f,
        days=days,
        unscored=unscored,
        moves_at=state.moves.computed_at if moved_f else None,
        nav="accounts",
    )
