"""Pydantic models from data already known to be valid, for the hot paths that build one per
account per batch.

`model_construct` skips validation but still walks every field in Python to fill defaults
(about 6 µs a model); when every field is given, setting the instance dictionary directly
gives the same model in a fraction of that. tests/unit/test_trusted.py holds the two equal.
"""

from typing import Any, TypeVar

from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)
_set = object.__setattr__


def trusted(model: type[Model], values: dict[str, Any]) -> Model:
    """`model` from `values`: every field present, each already valid. Not for models with
    extra fields allowed or private attributes (none of the contracts has either)."""
    instance = model.__new__(model)
    _set(instance, "__dict__", values)
    _set(instance, "__pydantic_fields_set__", set(values))
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance
