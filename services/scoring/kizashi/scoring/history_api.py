"""The score-history API: one account's CS, OP, segment and priority over time (the console's
history chart), and every account's position as of a past time (the map's trails).

Its router is included before the accounts router, whose `/accounts/{account_id:path}` would
otherwise take `acme/history` for an account id."""

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from kizashi.contracts.scores import Priority, Segment
from kizashi.runtime.db import raw_transaction
from kizashi.scoring import repository
from kizashi.scoring.deps import ApiCaller, EngineDep

router = APIRouter(prefix="/v1", tags=["history"])

DEFAULT_WINDOW = timedelta(days=90)
# A query string's "+" arrives as a space: "…T00:00:00 02:00" meant "+02:00".
_SPACE_FOR_PLUS = re.compile(r" (\d\d:?\d\d)$")


class HistoryPoint(BaseModel):
    at: datetime
    cs: float
    op: float
    segment: Segment
    priority: Priority


class History(BaseModel):
    account_id: str
    since: datetime
    until: datetime
    points: list[HistoryPoint]
    # True when the window held more than `limit` points: the latest ones are returned; ask
    # again with `until` before the first point for the earlier ones.
    truncated: bool


class Position(HistoryPoint):
    account_id: str


class Positions(BaseModel):
    as_of: datetime
    items: list[Position]
    # The `after` of the next page; null on the last one.
    next_after: str | None


def parse_time(name: str, value: str | None) -> datetime | None:
    """An ISO-8601 time with a UTC offset (or Z), else a 422 naming the parameter."""
    if value is None:
        return None
    text = _SPACE_FOR_PLUS.sub(r"+\1", value.strip())
    try:
        parsed = datetime.fromisoformat(text)
        parsed = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: year 1 with a positive offset
        parsed = None
    if parsed is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"{name}: not an ISO-8601 time with a UTC offset, such as "
            "2026-11-01T00:00:00Z or 2026-11-01T09:00:00+09:00 (send + as %2B)",
        )
    return parsed


def _minus(when: datetime, span: timedelta) -> datetime:
    try:
        return when - span
    except OverflowError:  # before year 1
        return datetime.min.replace(tzinfo=UTC)


TimeParam = Annotated[str | None, Query(max_length=64, description="ISO-8601 with an offset")]


@router.get("/accounts/{account_id:path}/history", response_model=History)
async def account_history(
    account_id: str,
    engine: EngineDep,
    _: ApiCaller,
    since: TimeParam = None,
    until: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 2_000,
) -> History:
    """The account's published scores in [since, until] (both inclusive), oldest first.
    `until` defaults to now and `since` to 90 days before `until`."""
    end = parse_time("until", until) or datetime.now(UTC)
    start = parse_time("since", since) or _minus(end, DEFAULT_WINDOW)
    if start > end:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="since: must not be after until"
        )
    async with raw_transaction(engine) as connection:
        if not await repository.account_exists(conn=connection, account_id=account_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no account {account_id!r}")
        rows = await repository.score_history(
            conn=connection, account_id=account_id, since=start, until=end, limit=limit + 1
        )
    return History(
        account_id=account_id,
        since=start,
        until=end,
        points=[HistoryPoint(**row) for row in rows[-limit:]],
        truncated=len(rows) > limit,
    )


@router.get("/positions", response_model=Positions)
async def positions(
    engine: EngineDep,
    _: ApiCaller,
    as_of: TimeParam = None,
    days_ago: Annotated[int | None, Query(ge=0, le=3650)] = None,
    after: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 5_000,
) -> Positions:
    """Every scored account's last published CS, OP, segment and priority at or before a
    time (`as_of`, or `days_ago` days before now; default 7 days ago), by account id;
    accounts with no point by then are left out. Page with `after` = `next_after`."""
    when = parse_time("as_of", as_of)
    if when is not None and days_ago is not None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="as_of: give as_of or days_ago, not both"
        )
    if when is None:
        when = _minus(datetime.now(UTC), timedelta(days=7 if days_ago is None else days_ago))
    async with raw_transaction(engine) as connection:
        rows = await repository.positions_at(
            conn=connection, as_of=when, after=after, limit=limit + 1
        )
    items = [Position(**row) for row in rows[:limit]]
    return Positions(
        as_of=when,
        items=items,
        next_after=items[-1].account_id if len(rows) > limit else None,
    )
