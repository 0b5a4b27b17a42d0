"""String types that PostgreSQL can store: text and jsonb reject U+0000 (DESIGN §3)."""

import re
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, StringConstraints

NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
# An escaped NUL in JSON text: \u0000 after an even number of backslashes (a literal
# backslash-u-0000 in a string is written \\u0000 and is not a NUL).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def reject_nul(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(NUL_MESSAGE)
    # orjson writes NUL as \u0000 wherever it hides (keys, nested values): one C-speed pass
    # instead of a Python walk over every event's properties.
    elif isinstance(value, dict | list) and _ESCAPED_NUL.search(orjson.dumps(value)):
        raise ValueError(NUL_MESSAGE)
    return value


Text = Annotated[str, AfterValidator(reject_nul)]
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(reject_nul)
]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(reject_nul)
]
JsonObject = Annotated[dict[str, Any], AfterValidator(reject_nul)]
