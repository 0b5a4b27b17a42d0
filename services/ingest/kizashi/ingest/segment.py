"""Segment calls → Kizashi events, following the mapping in `segment.yaml`.

Pure functions: the caller looks up the user → account links first (one set-based query,
see kizashi.ingest.identities), then `translate` walks the calls in order. An identify or
group call links its user at that point of the batch, so a later track call of the same
user in the same batch resolves to it.
"""

from dataclasses import dataclass, field
from typing import Any

from kizashi.contracts.limits import MAX_ID_LENGTH
from kizashi.ingest.accept import Rejection
from kizashi.ingest.segment_config import EventRule, SegmentMapping

SEGMENT_TYPES = ("track", "identify", "group", "page")
_MISSING = object()


@dataclass
class Translated:
    events: list[dict[str, Any]] = field(default_factory=list)
    # For each event: the index of its call, and which call path each event field came from.
    indexes: list[int] = field(default_factory=list)
    origins: list[dict[str, str]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # (call index, user, account): identify links stand alone; group links stand or fall
    # with their account_update event.
    links: list[tuple[int, str, str]] = field(default_factory=list)
    identifies: int = 0


def get_path(message: dict[str, Any], path: str) -> Any:
    head, star, rest = path.partition(".*.")
    if star:  # every list item's field: products.*.name (the items that have it)
        items = get_path(message, head)
        if not isinstance(items, list):
            return _MISSING
        found = [v for item in items if (v := get_path({"_": item}, f"_.{rest}")) is not _MISSING]
        return found or _MISSING
    value: Any = message
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit():  # a list item: products.0.name
            index = int(part)
            value = value[index] if index < len(value) else _MISSING
        elif not isinstance(value, dict):
            return _MISSING
        else:
            value = value.get(part, _MISSING)
        if value is _MISSING or value is None:
            return _MISSING
    return value


def first_of(message: dict[str, Any], paths: list[str]) -> tuple[str | None, Any]:
    for path in paths:
        value = get_path(message, path)
        if value is not _MISSING:
            return path, value
    return None, _MISSING


ID_RULE = f"must be a string or number of 1 to {MAX_ID_LENGTH} characters, without NUL"


def _as_id(value: Any) -> str | None:
    """Segment ids are strings; SDKs also send numbers. Anything else is not an id, and neither
    is a string the contracts' `Identifier` refuses (too long, NUL): the same rule for every
    call, identify included, so a link identify makes can always be used by track."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH or "\x00" in value:
        return None
    return value


def message_type(message: Any, forced: str | None) -> str | None:
    if forced:
        return forced
    kind = message.get("type") if isinstance(message, dict) else None
    return kind if kind in SEGMENT_TYPES else None


def users_to_look_up(messages: list[Any], mapping: SegmentMapping, forced: str | None) -> set[str]:
    """Users of track/page calls that name no account: their link must be looked up."""
    users: set[str] = set()
    for message in messages:
        if message_type(message, forced) in ("track", "page"):
            user = _as_id(message.get("userId"))
            if user and first_of(message, mapping.account_paths)[0] is None:
                users.add(user)
    return users


class _Reject(Exception):
    def __init__(self, field_name: str, reason: str) -> None:
        self.field = field_name
        self.reason = reason


def _envelope(message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    event: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if "messageId" in message and message["messageId"] is not None:
        message_id = _as_id(message["messageId"])
        if message_id is None:
            raise _Reject("messageId", ID_RULE)
        event["event_id"], origins["event_id"] = message_id, "messageId"
    if message.get("userId") is not None:
        user = _as_id(message["userId"])
        if user is None:
            raise _Reject("userId", ID_RULE)
        event["user_id"], origins["user_id"] = user, "userId"
    for name in ("timestamp", "originalTimestamp"):
        if message.get(name) is not None:
            event["occurred_at"], origins["occurred_at"] = message[name], name
            break
    for name in ("properties", "traits", "context"):
        if name in message and message[name] is not None and not isinstance(message[name], dict):
            raise _Reject(name, "must be an object")
    return event, origins


def _apply_rule(
    message: dict[str, Any], rule: EventRule, event: dict[str, Any], origins: dict[str, str]
) -> None:
    event["type"] = rule.type
    for name, paths in rule.fields.items():
        path, value = first_of(message, paths)
        origins[name] = path or paths[0]
        if value is not _MISSING:
            event[name] = value
    for name, value in rule.defaults.items():
        event.setdefault(name, value)
    if isinstance(message.get("properties"), dict):
        event["properties"], origins["properties"] = message["properties"], "properties"


def _account_of_call(
    message: dict[str, Any], mapping: SegmentMapping, known: dict[str, str]
) -> tuple[str, str]:
    path, value = first_of(message, mapping.account_paths)
    if path is not None:
        account = _as_id(value)
        if account is None:
            raise _Reject(path, f"{ID_RULE} (the account id)")
        return account, path
    user = _as_id(message.get("userId"))
    if user is None:
        raise _Reject(
            "userId",
            "cannot resolve the account: send context.groupId, or a userId linked to an "
            "account by an identify or group call",
        )
    if user not in known:
        raise _Reject(
            "userId",
            f"user {user[:64]!r} is not linked to an account: call identify (traits.groupId) "
            "or group first, or send context.groupId",
        )
    return known[user], "userId"


def _group(message: dict[str, Any], mapping: SegmentMapping, event: dict, origins: dict) -> str:
    account = _as_id(message.get("groupId"))
    if account is None:
        reason = "a group call needs a groupId (the account id)"
        raise _Reject("groupId", reason if message.get("groupId") is None else ID_RULE)
    event["type"] = "account_update"
    event["account_id"], origins["account_id"] = account, "groupId"
    traits = message.get("traits") or {}
    attributes: dict[str, Any] = {}
    for trait, value in traits.items():
        target = mapping.group.traits.get(trait)
        if target is None:
            attributes[trait] = value
        elif value is not None:
            event[target], origins[target] = value, f"traits.{trait}"
    if attributes:
        event["attributes"], origins["attributes"] = attributes, "traits"
    # The "needs at least one account field" error of an empty update is about the traits.
    origins["(event)"] = origins["account_update"] = "traits"
    return account


def translate(
    messages: list[Any],
    mapping: SegmentMapping,
    known: dict[str, str],
    *,
    forced: str | None = None,
    batch_context: dict[str, Any] | None = None,
) -> Translated:
    """`known` (user → account) is updated as identify/group calls link users."""
    out = Translated()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            out.rejected.append(Rejection(index, "(message)", "must be a JSON object"))
            continue
        kind = message_type(message, forced)
        if kind is None:
            out.rejected.append(
                Rejection(
                    index,
                    "type",
                    f"unknown call type {str(message.get('type'))[:32]!r}; "
                    f"expected one of {', '.join(SEGMENT_TYPES)}",
                )
            )
            continue
        if batch_context and isinstance(message.get("context", {}), dict):
            message = {**message, "context": {**batch_context, **(message.get("context") or {})}}
        try:
            event, origins = _envelope(message)
            user = event.get("user_id")
            if kind == "identify":
                path, value = first_of(message, mapping.identify.account_paths)
                if path is not None and user is not None:
                    account = _as_id(value)
                    if account is None:
                        raise _Reject(path, f"{ID_RULE} (the account id)")
                    out.links.append((index, user, account))
                    known[user] = account
                out.identifies += 1
                continue
            if kind == "group":
                account = _group(message, mapping, event, origins)
                if user is not None:
                    out.links.append((index, user, account))
                    known[user] = account
            else:
                if kind == "track":
                    name = message.get("event")
                    if not isinstance(name, str) or not name.strip():
                        raise _Reject("event", "a track call needs an event name")
                    rule = mapping.track.rule_for(name)
                else:
                    rule = mapping.page
                event["account_id"], origins["account_id"] = _account_of_call(
                    message, mapping, known
                )
                _apply_rule(message, rule, event, origins)
        except _Reject as problem:
            out.rejected.append(Rejection(index, problem.field, problem.reason))
            continue
        out.events.append(event)
        out.indexes.append(index)
        out.origins.append(origins)
    return out
