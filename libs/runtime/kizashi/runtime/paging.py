"""Keyset cursors for the APIs' lists (scoring's accounts, triggers' recycle list): an opaque
position, (a number, a key), that only continues the listing it was made for (the same order
and filters)."""

import base64
import math

import orjson


class BadCursor(ValueError):
    pass


def encode_cursor(listing: list[str | None], value: float, account_id: str) -> str:
    """The position after (value, account_id) in the listing (e.g. `[order, segment,
    priority]`: whatever fixes the list's order and contents)."""
    data = orjson.dumps([*listing, value, account_id])
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str, listing: list[str | None]) -> tuple[float, str]:
    """The position a cursor holds, if it was made for this very listing: a cursor of another
    order or filter would silently skip or repeat accounts."""
    try:
        *made_for, value, account_id = orjson.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        value, account_id = float(value), str(account_id)
    except Exception as error:
        raise BadCursor("cursor is not one this API returned") from error
    if "\x00" in account_id or not math.isfinite(value):
        raise BadCursor("cursor is not one this API returned")
    if made_for != listing:
        raise BadCursor(
            "cursor belongs to another order or filter: "
            "repeat that request's parameters, or start again without a cursor"
        )
    return value, account_id
