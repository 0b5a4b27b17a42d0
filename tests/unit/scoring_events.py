"""Events and states for the scoring unit tests: one account ("acme"), a fixed clock."""

from datetime import UTC, datetime
from itertools import count
from typing import Any

from kizashi.contracts.events import input_event_adapter
from kizashi.scoring.config import load_scoring_config
from kizashi.scoring.features import AccountState

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = load_scoring_config(None)
_ids = count()


def event(kind: str, at: datetime, **fields: Any):
    body = {
        "type": kind,
        "account_id": "acme",
        "event_id": fields.pop("event_id", f"e{next(_ids):06d}"),
        "occurred_at": at.isoformat(),
        **fields,
    }
    return input_event_adapter.validate_python(body)


def state_of(*events: Any) -> AccountState:
    state = AccountState()
    for item in events:
        state.apply(item)
    return state
