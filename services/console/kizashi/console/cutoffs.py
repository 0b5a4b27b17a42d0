"""The segment cut-offs the map and the history chart draw: the ones scoring segments with.

Services do not import each other, and the console cannot read scoring's config file (another
container, maybe another version of it), so it asks scoring: `GET /v1/segments` answers the
cut-offs of the `scoring.yaml` the running scoring process loaded. The answer is kept for
`TTL_S` seconds (a new scoring.yaml needs a scoring restart anyway). When scoring does not
answer, the last answer is used; before any answer, scoring.yaml's defaults, flagged so the
page can say the lines may be off."""

import asyncio
import logging
import time
from dataclasses import dataclass

import httpx

from kizashi.console.charts import Cutoffs

log = logging.getLogger(__name__)

TTL_S = 60.0
DEFAULTS = Cutoffs(cs_high=60.0, op_high=50.0)  # scoring's shipped scoring.yaml


@dataclass
class _Cache:
    value: Cutoffs | None = None
    fetched_at: float = float("-inf")


_cache = _Cache()
_lock = asyncio.Lock()


@dataclass(frozen=True)
class Known:
    cutoffs: Cutoffs
    confirmed: bool  # False: scoring never answered; the defaults are shown


def _fresh() -> Known | None:
    if time.monotonic() - _cache.fetched_at >= TTL_S:
        return None
    return Known(_cache.value, True) if _cache.value else Known(DEFAULTS, False)


async def current(client: httpx.AsyncClient) -> Known:
    if (known := _fresh()) is not None:
        return known
    async with _lock:
        if (known := _fresh()) is not None:
            return known
        try:
            response = await client.get("/v1/segments")
            response.raise_for_status()
            body = response.json()["cutoffs"]
            _cache.value = Cutoffs(float(body["cs_high"]), float(body["op_high"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            log.warning("segment cut-offs: scoring did not answer (%s)", type(error).__name__)
            # Ask again in 5 s rather than at every page.
            _cache.fetched_at = time.monotonic() - TTL_S + 5
            if _cache.value is None:
                return Known(DEFAULTS, False)
            return Known(_cache.value, True)
        _cache.fetched_at = time.monotonic()
        return Known(_cache.value, True)


def forget() -> None:
    """For tests: the next call asks scoring again."""
    _cache.value, _cache.fetched_at = None, float("-inf")
