"""String types that PostgreSQL can store: text and jsonb reject U+0000 (DESIGN §3)."""

from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints


def reject_nul(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain the NUL character (\\u0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key)
            reject_nul(item)
    elif isinstance(value, list):
        for item in value:
            reject_nul(item)
    return value


Text = Annotated[str, AfterValidator(reject_nul)]
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(reject_nul)
]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(reject_nul)
]
JsonObject = Annotated[dict[str, Any], AfterValidator(reject_nul)]
