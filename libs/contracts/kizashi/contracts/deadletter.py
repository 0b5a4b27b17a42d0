"""`kizashi.deadletter`: a record that could not be processed, with the reason and its origin."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str
    topic: str
    partition: int
    offset: int
    key: str | None
    # The original bytes, decoded as UTF-8 with replacement so that bad bytes stay visible.
    value: str
    reason: str
    error_type: str
    failed_at: datetime
