"""String types that PostgreSQL can store: text and jsonb reject U+0000 (architecture §5.11).

A string's NUL check is a `pattern`, so pydantic-core makes it in Rust while it parses: as
Python after-validators it was five Python calls per event, in the decode that scoring pays
for every record it consumes. Nested JSON (`properties`, `attributes`) keeps one Python check,
made only when the object is not empty. (A recursive JSON type with the same pattern was as
fast, but its union reported a NUL as a failure of every JSON type at once.)
"""

import re
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, StringConstraints
from pydantic_core import ErrorDetails, PydanticCustomError

NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
NO_NUL_PATTERN = r"^[^\x00]*$"

Text = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL_PATTERN)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL_PATTERN)]
# Nested JSON, walked by orjson's C encoder: it writes a NUL, wherever it hides (keys,
# nested values), as \u0000.
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _reject_nested_nul(value: dict[str, Any]) -> dict[str, Any]:
    if value and _ESCAPED_NUL.search(orjson.dumps(value)):
        raise PydanticCustomError("nul_character", NUL_MESSAGE)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_reject_nested_nul)]


def error_reason(error: ErrorDetails) -> str:
    """A validation error's reason as a client should read it: the NUL pattern in words."""
    if error.get("type") == "string_pattern_mismatch":
        if (error.get("ctx") or {}).get("pattern") == NO_NUL_PATTERN:
            return NUL_MESSAGE
    return error.get("msg", "invalid")
