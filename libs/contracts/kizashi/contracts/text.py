"""String types that PostgreSQL can store: text and jsonb reject U+0000 (architecture §5.11); and
the one check of nested JSON (`properties`, `attributes`).

A string's NUL check is a `pattern`, so pydantic-core makes it in Rust while it parses: as
Python after-validators it was five Python calls per event, in the decode that scoring pays
for every record it consumes. Nested JSON keeps one Python check, made only when the object is
not empty: a walk without recursion that refuses a NUL in any key or string and nesting deeper
than MAX_JSON_DEPTH (it replaced `orjson.dumps` and a regex, which hit orjson's recursion limit
on 255 levels, a 500, and is faster on the small objects events carry). (A recursive JSON type
with the same pattern was as fast, but its union reported a NUL as a failure of every JSON
type at once.)
"""

from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints
from pydantic_core import ErrorDetails, PydanticCustomError

from kizashi.contracts.limits import MAX_ID_LENGTH, MAX_JSON_DEPTH, MAX_SHORT_TEXT_LENGTH

NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
NO_NUL_PATTERN = r"^[^\x00]*$"
DEPTH_MESSAGE = f"must not nest objects or lists more than {MAX_JSON_DEPTH} levels deep"

Text = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)]
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SHORT_TEXT_LENGTH, pattern=NO_NUL_PATTERN)
]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL_PATTERN)
]


def _nul() -> PydanticCustomError:
    return PydanticCustomError("nul_character", NUL_MESSAGE)


def check_json(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse a NUL anywhere (keys, strings at any depth) and nesting past MAX_JSON_DEPTH."""
    if not value:
        return value
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            for key in node:
                if isinstance(key, str) and "\x00" in key:
                    raise _nul()
            children = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is str:
                if "\x00" in child:
                    raise _nul()
            elif kind is dict or kind is list or isinstance(child, dict | list | tuple):
                if depth >= MAX_JSON_DEPTH:
                    raise PydanticCustomError("json_too_deep", DEPTH_MESSAGE)
                pending.append((child, depth + 1))
            elif isinstance(child, str) and "\x00" in child:
                raise _nul()
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]


def error_reason(error: ErrorDetails) -> str:
    """A validation error's reason as a client should read it: the NUL pattern in words."""
    if error.get("type") == "string_pattern_mismatch":
        if (error.get("ctx") or {}).get("pattern") == NO_NUL_PATTERN:
            return NUL_MESSAGE
    return error.get("msg", "invalid")
