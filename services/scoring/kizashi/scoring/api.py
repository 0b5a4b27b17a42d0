"""The accounts API: one account with its breakdown, a filtered list, and segment counts."""

from datetime import datetime
from typing import Annotated, Any, get_args

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from kizashi.contracts.scores import Priority, ScoreComponent, Segment
from kizashi.runtime.db import raw_transaction
from kizashi.runtime.paging import BadCursor, decode_cursor, encode_cursor
from kizashi.scoring import repository
from kizashi.scoring.deps import ApiCaller, EngineDep, StateDep
from kizashi.scoring.features import AccountState, event_counts

# Every segment, insufficient_data (too little evidence for the scores) last.
SEGMENTS: tuple[Segment, ...] = get_args(Segment)

router = APIRouter(prefix="/v1", tags=["accounts"])


class AccountView(BaseModel):
    account_id: str
    attributes: dict[str, Any]
    cs: float | None
    op: float | None
    segment: Segment | None
    priority: Priority | None
    # How much evidence the scores stand on, 0..1 (the breakdown's `confidence` lines say
    # what would raise it); below min_confidence the segment is insufficient_data.
    confidence: float | None = None
    # `segment` is the segment held (scoring.yaml's margins and min_dwell, issue #20); the one
    # the scores point to while they wait out min_dwell, and since when (else null).
    segment_pending: Segment | None = None
    segment_pending_since: datetime | None = None
    breakdown: list[ScoreComponent]
    features: dict[str, float | None]
    event_counts: dict[str, int]
    config_version: str | None
    computed_at: datetime | None
    first_seen_at: datetime
    updated_at: datetime


class AccountSummary(BaseModel):
    account_id: str
    name: str | None
    cs: float
    op: float
    segment: Segment
    priority: Priority
    computed_at: datetime


class AccountPage(BaseModel):
    items: list[AccountSummary]
    next_cursor: str | None


class SegmentCount(BaseModel):
    segment: Segment
    priority: Priority
    accounts: int


class SegmentCutoffs(BaseModel):
    """The cut-offs this scoring process segments with (its scoring.yaml): "high" means ≥."""

    cs_high: float
    op_high: float


class SegmentChart(BaseModel):
    segments: list[Segment]
    priorities: list[Priority]
    counts: list[SegmentCount]
    totals: dict[str, int]
    # What the console draws its quadrant lines at (it cannot read scoring's config file).
    cutoffs: SegmentCutoffs


@router.get("/accounts/", include_in_schema=False)
async def accounts_with_a_slash(request: Request, _: ApiCaller) -> RedirectResponse:
    """The list, asked for with a trailing slash (the id route below would take it as an
    empty id)."""
    return RedirectResponse(str(request.url.replace(path=request.url.path.rstrip("/"))))


# `:path`, because an account id may hold "/" (ingest accepts any 1–128 characters but NUL);
# a client sends it percent-encoded or as is.
@router.get("/accounts/{account_id:path}", response_model=AccountView)
async def get_account(account_id: str, engine: EngineDep, _: ApiCaller) -> AccountView:
    async with raw_transaction(engine) as connection:
        row = await repository.get_account(conn=connection, account_id=account_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no account {account_id!r}")
    features = row["features"] or {}
    confidence = features.pop("confidence", None)  # kept with the features (pipeline)
    return AccountView(
        account_id=row["account_id"],
        attributes=row["facts"],
        cs=row["cs"],
        op=row["op"],
        segment=row["segment"],
        priority=row["priority"],
        confidence=confidence,
        segment_pending=row["segment_candidate"],
        segment_pending_since=row["segment_candidate_since"],
        breakdown=row["breakdown"] or [],
        features=features,
        event_counts=event_counts(AccountState.from_json(row["state"])),
        config_version=row["config_version"],
        computed_at=row["computed_at"],
        first_seen_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@router.get("/accounts", response_model=AccountPage)
async def list_accounts(
    engine: EngineDep,
    _: ApiCaller,
    segment: Segment | None = None,
    priority: Priority | None = None,
    order: Annotated[repository.Order, Query(description="cs, -cs, op or -op")] = "-op",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AccountPage:
    listing = [order, segment, priority]
    try:
        after = decode_cursor(cursor, listing) if cursor else None
    except BadCursor as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error
    async with raw_transaction(engine) as connection:
        # One more than a page: whether it comes back says if there is a next page.
        rows = await repository.list_accounts(
            conn=connection,
            segment=segment,
            priority=priority,
            order=order,
            after=after,
            limit=limit + 1,
        )
    items = rows[:limit]
    column = repository.ORDER_SQL[order][0]
    next_cursor = (
        encode_cursor(listing, items[-1][column], items[-1]["account_id"])
        if len(rows) > limit
        else None
    )
    return AccountPage(items=[AccountSummary(**item) for item in items], next_cursor=next_cursor)


@router.get("/segments", response_model=SegmentChart)
async def segments(engine: EngineDep, state: StateDep, _: ApiCaller) -> SegmentChart:
    async with raw_transaction(engine) as connection:
        rows = await repository.segment_counts(conn=connection)
    counts = [SegmentCount(**row) for row in rows]
    totals: dict[str, int] = dict.fromkeys(SEGMENTS, 0)
    for count in counts:
        totals[count.segment] += count.accounts
    return SegmentChart(
        segments=list(SEGMENTS),
        priorities=["high", "medium", "low"],
        counts=counts,
        totals=totals,
        cutoffs=SegmentCutoffs(
            cs_high=state.config.segments.cs_high, op_high=state.config.segments.op_high
        ),
    )
