"""The observation kinds a team uses (issue #18): observations.yaml. The nine built-in kinds
(kizashi.contracts.observations) can each be switched off and given the console form's label
and hint; a team adds kinds of its own, each with typed fields. Ingest refuses a kind that is
not enabled here and checks a custom kind's fields against its spec (`refusal`); the console
form offers the enabled kinds with their labels, hints and fields.

Custom kinds are stored and shown like the others, but move no score and fire no rule: those
read the built-in kinds' fields, which only the contract fixes.
"""

from __future__ import annotations

from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from kizashi.contracts.limits import MAX_NOTE_LENGTH, MAX_SHORT_TEXT_LENGTH
from kizashi.contracts.observations import MAX_CUSTOM_FIELDS, OBSERVATION_KINDS
from kizashi.contracts.text import ShortText
from kizashi.runtime.yamlconfig import ConfigFile, ConfigFileError

# Kind and field names: what a form input, a JSON key and a rule's text can all carry.
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
FieldType = Literal["text", "number", "boolean", "date", "choice"]
# Names a custom field may not take: the event's own keys, and the console form's inputs
# beside the kind's fields (kizashi.console.obsform.COMMON_FIELDS).
RESERVED_FIELD_NAMES = frozenset(
    {"type", "kind", "author", "note", "fields", "account_id", "event_id", "csrf", "occurred_on"}
)


class ObservationConfigError(ConfigFileError):
    """observations.yaml cannot be used; the message names the key."""


class FieldSpec(BaseModel):
    """One field of a custom kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    label: ShortText | None = None
    required: bool = Field(default=False, strict=True)
    # text only: the longest value, in characters.
    max_length: int | None = Field(default=None, ge=1, le=MAX_NOTE_LENGTH, strict=True)
    # choice only: the values a rep picks from.
    choices: tuple[ShortText, ...] = ()

    @model_validator(mode="after")
    def _fits_type(self) -> FieldSpec:
        if self.max_length is not None and self.type != "text":
            raise ValueError("max_length is for text fields only")
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice field needs a list of choices")
        if self.choices and self.type != "choice":
            raise ValueError("choices are for choice fields only")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError("a choice is listed twice")
        return self

    @property
    def longest(self) -> int:
        return self.max_length or MAX_SHORT_TEXT_LENGTH

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this field, or None."""
        if self.type == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return None if ok else f"must be a number, got {_shown(value)}"
        if self.type == "boolean":
            ok = isinstance(value, bool)
            return None if ok else f"must be true or false, got {_shown(value)}"
        if not isinstance(value, str):
            return f"must be text, got {_shown(value)}"
        if self.type == "date":
            return None if _is_day(value) else f"must be a date like 2026-12-03, got {value!r}"
        if self.type == "choice":
            if value not in self.choices:
                return f"must be one of {', '.join(self.choices)}, got {_shown(value)}"
            return None
        if self.required and not value.strip():
            return "must not be empty"
        if len(value) > self.longest:
            return f"must be at most {self.longest} characters, got {len(value)}"
        return None


class KindSpec(BaseModel):
    """One kind: a built-in one (no `fields`: the contract fixes them) or a custom one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, strict=True)
    label: ShortText | None = None
    hint: ShortText | None = None
    fields: dict[Name, FieldSpec] | None = Field(default=None, max_length=MAX_CUSTOM_FIELDS)

    @field_validator("fields")
    @classmethod
    def _names_free(cls, fields: dict[str, FieldSpec] | None) -> dict[str, FieldSpec] | None:
        taken = sorted(set(fields or ()) & RESERVED_FIELD_NAMES)
        if taken:
            raise ValueError(f"{', '.join(taken)}: a name the observation itself uses")
        return fields


class ObservationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: dict[Name, KindSpec] = Field(default_factory=dict)

    @field_validator("kinds")
    @classmethod
    def _custom_kinds_have_fields(cls, kinds: dict[str, KindSpec]) -> dict[str, KindSpec]:
        for name, spec in kinds.items():
            if name in OBSERVATION_KINDS and spec.fields is not None:
                raise ValueError(
                    f"'{name}' is a built-in kind: its fields are the contract's, not `fields`"
                )
            if name not in OBSERVATION_KINDS and spec.fields is None:
                raise ValueError(
                    f"'{name}' is not a built-in kind ({', '.join(OBSERVATION_KINDS)}), "
                    "so it needs `fields` (`fields: {}` for none)"
                )
        return kinds

    @cached_property
    def enabled(self) -> tuple[str, ...]:
        """The kinds reps may log, built-in ones first (in the contract's order)."""
        builtin = [k for k in OBSERVATION_KINDS if self.spec(k).enabled]
        return (*builtin, *(k for k, s in self.kinds.items() if s.fields is not None and s.enabled))

    def spec(self, kind: str) -> KindSpec:
        """A kind's spec; a built-in kind the file does not name is enabled, unlabelled."""
        return self.kinds.get(kind) or KindSpec()

    def label(self, kind: str) -> str:
        return self.spec(kind).label or kind.replace("_", " ").capitalize()

    def is_custom(self, kind: str) -> bool:
        return kind not in OBSERVATION_KINDS

    def kind_refusal(self, kind: str) -> tuple[str, str] | None:
        """("kind", reason) when reps may not log `kind` (off, or not configured), else None."""
        if kind in self.enabled:
            return None
        known = kind in OBSERVATION_KINDS or kind in self.kinds
        what = "is switched off in observations.yaml" if known else "is not configured"
        return (
            "kind",
            f"unknown observation kind: '{kind[:64]}' {what}; "
            f"expected one of {', '.join(self.enabled)}",
        )

    def fields_refusal(self, kind: str, fields: dict[str, Any]) -> tuple[str, str] | None:
        """(field, reason) when a custom kind's `fields` do not meet its spec, else None."""
        spec = self.spec(kind)
        if spec.fields is None:
            return None
        values = fields
        for name in values:
            if name not in spec.fields:
                known = ", ".join(spec.fields) or "none"
                return (f"fields.{name[:64]}", f"unknown field of '{kind}'; its fields: {known}")
        for name, field in spec.fields.items():
            if name not in values:
                if field.required:
                    return (f"fields.{name}", "required field is missing")
                continue
            reason = field.problem(values[name])
            if reason is not None:
                return (f"fields.{name}", reason)
        return None


def _is_day(value: str) -> bool:
    """YYYY-MM-DD, a real day (fromisoformat alone also takes 20261203 and week dates)."""
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10 and value[4] == "-"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _reword(keys: tuple[str | int, ...], error: dict[str, Any]) -> str | None:
    if error["type"] == "string_pattern_mismatch":
        return "a name is lower-case letters, digits and _, starting with a letter (≤ 64)"
    return None


OBSERVATIONS_FILE = ConfigFile(
    name="observations.yaml",
    package="kizashi.runtime",
    model=ObservationConfig,
    error=ObservationConfigError,
    overlay=True,
    reword=_reword,
)


def load_observation_config(config_dir: Path | None) -> ObservationConfig:
    """The packaged observations.yaml with `<config_dir>/observations.yaml` laid over it."""
    return OBSERVATIONS_FILE.load(config_dir)


@cache
def packaged_observation_config() -> ObservationConfig:
    """observations.yaml as packaged, for callers that pass none (tools, tests)."""
    return load_observation_config(None)
