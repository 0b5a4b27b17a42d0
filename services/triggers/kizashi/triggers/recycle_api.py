"""`GET /v1/recycle`: the recycle list (kizashi.triggers.recycle), what waits and when it
comes back, or the OP it waits for. Authenticated as the other triggers APIs; filters by
owner, reason and status; paged by an opaque cursor as the accounts list is."""

from datetime import datetime
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from kizashi.contracts.resolutions import NOT_NOW
from kizashi.runtime.db import raw_transaction
from kizashi.runtime.paging import BadCursor, decode_cursor, encode_cursor
from kizashi.triggers.deps import ApiCaller, EngineDep
from kizashi.triggers.recycle import returned_signal_id
from kizashi.triggers.repository import recycle as recycle_sql

router = APIRouter(prefix="/v1", tags=["recycle"])

NotNow = Literal["not_contacted", "timing", "no_budget", "no_need"]
if set(get_args(NotNow)) != NOT_NOW:
    raise ImportError("NotNow must list kizashi.contracts.resolutions.NOT_NOW")
EntryStatus = Literal["waiting", "returned", "superseded", "all"]


class RecycleEntry(BaseModel):
    """One "not now": the opportunity it came from, who set it and when, and its return:
    `returns_at` (timing, no_budget, not_contacted) or `op_target` (no_need: the OP that
    returns it, against `op_now`)."""

    signal_id: str
    account_id: str
    account_name: str | None
    rule: str
    reason: NotNow
    months: int | None
    set_at: datetime
    set_by: str
    owner: str | None
    return_to: str | None
    returns_at: datetime | None
    # no_budget: whether the account's fiscal year end was known (else a year on).
    fiscal_year_known: bool | None
    op_at_set: float | None
    op_target: float | None
    op_now: float | None
    status: str
    returned_at: datetime | None
    # The opportunity it came back as (status returned only).
    returned_signal_id: str | None


class RecyclePage(BaseModel):
    items: list[RecycleEntry]
    next_cursor: str | None


@router.get("/recycle", response_model=RecyclePage)
async def recycle_list(
    engine: EngineDep,
    _: ApiCaller,
    owner: Annotated[str | None, Query(max_length=320)] = None,
    reason: NotNow | None = None,
    status_: Annotated[EntryStatus, Query(alias="status")] = "waiting",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RecyclePage:
    """Soonest return first; those waiting for an OP rise last. `owner` matches the owner at
    the resolution or who it goes back to (case ignored)."""
    who = owner.strip().lower() if owner and owner.strip() else None
    listing = [who, reason, status_]
    try:
        after = decode_cursor(cursor, listing) if cursor else None
    except BadCursor as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error
    async with raw_transaction(engine) as connection:
        rows = await recycle_sql.list_entries(
            conn=connection,
            owner=who,
            reason=reason,
            status=None if status_ == "all" else status_,
            after=after,
            limit=limit + 1,
        )
    items = rows[:limit]
    next_cursor = (
        encode_cursor(listing, items[-1]["sort_key"], items[-1]["signal_id"])
        if len(rows) > limit
        else None
    )
    return RecyclePage(
        items=[
            RecycleEntry(
                **{k: row[k] for k in RecycleEntry.model_fields if k != "returned_signal_id"},
                returned_signal_id=returned_signal_id(row["account_id"], row["signal_id"])
                if row["status"] == "returned"
                else None,
            )
            for row in items
        ],
        next_cursor=next_cursor,
    )
