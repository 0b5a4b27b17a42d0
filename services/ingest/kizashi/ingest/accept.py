"""Turning a parsed request into records for Kafka: validate each event, stamp it, and list
what was rejected by index, field and reason."""

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from kizashi.contracts.observations import (
    CUSTOM_TAG,
    OBSERVATION_KINDS,
    CustomObservation,
    PhaseEvidence,
    ingest_event_adapter,
)
from kizashi.contracts.text import error_reason
from kizashi.contracts.topics import INGEST_TOPICS
from kizashi.ingest.limits import MAX_EVENT_BYTES, MAX_EVENTS_PER_BATCH, MAX_FUTURE_SKEW_S
from kizashi.runtime.kafka import OutgoingRecord
from kizashi.runtime.observation_kinds import ObservationConfig, packaged_observation_config

SERVER_FIELDS = ("received_at", "source")


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    reason: str
    event_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "field": self.field, "reason": self.reason}
        if self.event_id:
            out["event_id"] = self.event_id
        return out


@dataclass
class Accepted:
    records: list[OutgoingRecord] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # Per accepted record: its index in the request, and an observation's author.
    indexes: list[int] = field(default_factory=list)
    authors: list[str | None] = field(default_factory=list)

    def authors_to_check(self) -> set[str]:
        return {author for author in self.authors if author is not None}

    def refuse_unknown_authors(self, known: Collection[str]) -> None:
        """Move every observation whose author is not in `known` to the rejected."""
        keep = [a is None or a in known for a in self.authors]
        if all(keep):
            return
        for i, kept in enumerate(keep):
            if not kept:
                self.rejected.append(
                    Rejection(
                        self.indexes[i],
                        "author",
                        f"'{self.authors[i]}' is not a known user",
                        self.event_ids[i],
                    )
                )
        self.rejected.sort(key=lambda r: r.index)
        for name in ("records", "event_ids", "types", "indexes", "authors"):
            values = getattr(self, name)
            setattr(self, name, [v for v, kept in zip(values, keep, strict=True) if kept])


class BatchShapeError(ValueError):
    """The request as a whole is unusable (not an event, not a list, too many events)."""


def events_of(payload: object) -> list[Any]:
    """One event, or `{"events": [...]}`."""
    if isinstance(payload, dict) and "events" in payload and "type" not in payload:
        extra = sorted(set(payload) - {"events"})
        if extra:
            raise BatchShapeError(f"unknown top-level keys {extra}; a batch holds only 'events'")
        events = payload["events"]
        if not isinstance(events, list):
            raise BatchShapeError("'events' must be a list of event objects")
        if not events:
            raise BatchShapeError("'events' is empty")
        if len(events) > MAX_EVENTS_PER_BATCH:
            raise BatchShapeError(
                f"a batch holds at most {MAX_EVENTS_PER_BATCH} events, got {len(events)}"
            )
        return events
    if isinstance(payload, dict):
        return [payload]
    raise BatchShapeError('the body must be an event object or {"events": [...]}')


def _first_error(error: ValidationError) -> tuple[str, str]:
    item = error.errors()[0]
    # The discriminator ("type") is the first element of the location for typed fields.
    loc = [str(part) for part in item.get("loc", ())]
    if len(loc) > 1 and loc[0] in INGEST_TOPICS:
        loc = loc[1:]
    # An observation's kind is the second tag: rep_observation.<kind>.<field>, or
    # rep_observation.custom.<field> for a kind that is not built-in.
    if len(loc) > 1 and (loc[0] in OBSERVATION_KINDS or loc[0] == CUSTOM_TAG):
        loc = loc[1:]
    reason = error_reason(item)
    if loc[:1] == ["fields"] and len(loc) > 2:
        # A custom field's value that is none of the contract's types: said once, unless it
        # is text the contract refuses (a NUL, too long), which says why itself.
        loc, reason = loc[:2], "must be text, a number or true/false"
        for other in error.errors():
            if str(other["loc"][-1]).endswith("str") and other["type"] != "string_type":
                reason = error_reason(other)
                break
    if item.get("type") == "union_tag_invalid":
        loc = ["type"]
        reason = f"unknown event type; expected one of {', '.join(INGEST_TOPICS)}"
    elif item.get("type") == "union_tag_not_found":
        loc, reason = ["type"], "missing event type"
    elif item.get("type") == "missing_kind":
        loc, reason = ["kind"], "missing observation kind"
    return ".".join(loc) or "(event)", reason


def accept(
    raw_events: list[Any],
    *,
    source: str,
    now: datetime | None = None,
    criteria: Collection[str] | None = None,
    kinds: ObservationConfig | None = None,
) -> Accepted:
    """`criteria`: the phase_evidence criteria phases.yaml names; `kinds`: observations.yaml,
    the kinds enabled and custom kinds' fields (None: the packaged file's)."""
    kinds = kinds or packaged_observation_config()
    now = now or datetime.now(UTC)
    latest_allowed = now + timedelta(seconds=MAX_FUTURE_SKEW_S)
    result = Accepted()
    for index, raw in enumerate(raw_events):
        event_id = raw.get("event_id") if isinstance(raw, dict) else None
        event_id = event_id if isinstance(event_id, str) else None
        if not isinstance(raw, dict):
            result.rejected.append(Rejection(index, "(event)", "must be a JSON object"))
            continue
        for server_field in SERVER_FIELDS:
            if server_field in raw:
                result.rejected.append(
                    Rejection(index, server_field, "is set by the server", event_id)
                )
                break
        else:
            # The kind first: fields a kind does not have say less than that it is off.
            kind = raw.get("kind") if raw.get("type") == "rep_observation" else None
            refused = kinds.kind_refusal(kind) if isinstance(kind, str) else None
            if refused is not None:
                result.rejected.append(Rejection(index, *refused, event_id))
                continue
            # The server fields go in before validation: one pass, no model copy afterwards.
            stamped = {**raw, "received_at": now, "source": source}
            if stamped.get("occurred_at") is None:
                stamped["occurred_at"] = now
            try:
                event = ingest_event_adapter.validate_python(stamped)
            except ValidationError as error:
                field_name, reason = _first_error(error)
                result.rejected.append(Rejection(index, field_name, reason, event_id))
                continue
            if event.occurred_at > latest_allowed:
                result.rejected.append(
                    Rejection(
                        index,
                        "occurred_at",
                        f"is more than {MAX_FUTURE_SKEW_S // 60} minutes in the future",
                        event.event_id,
                    )
                )
                continue
            value = event.__pydantic_serializer__.to_json(event)
            if len(value) > MAX_EVENT_BYTES:
                result.rejected.append(
                    Rejection(
                        index, "(event)", f"is larger than {MAX_EVENT_BYTES} bytes", event.event_id
                    )
                )
                continue
            if isinstance(event, CustomObservation):
                refused = kinds.fields_refusal(event.kind, event.fields)
                if refused is not None:
                    result.rejected.append(Rejection(index, *refused, event.event_id))
                    continue
            if criteria is not None and isinstance(event, PhaseEvidence):
                if event.criterion not in criteria:
                    result.rejected.append(
                        Rejection(
                            index,
                            "criterion",
                            f"'{event.criterion[:64]}' is not a criterion in phases.yaml",
                            event.event_id,
                        )
                    )
                    continue
            result.records.append(
                OutgoingRecord(INGEST_TOPICS[event.type], event.account_id, value)
            )
            result.event_ids.append(event.event_id)
            result.types.append(event.type)
            result.indexes.append(index)
            result.authors.append(getattr(event, "author", None))
    return result
