"""The Segment mapping file (`segment.yaml`): its shape, validation with errors that name the
key, and loading from KIZASHI_CONFIG_DIR or the packaged default."""

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from kizashi.contracts.events import ACCOUNT_FACT_FIELDS, EVENT_MODELS
from kizashi.runtime.yamlconfig import ConfigFile, ConfigFileError

FILE_NAME = "segment.yaml"
PATH_ROOTS = (
    "event",
    "name",
    "userId",
    "anonymousId",
    "groupId",
    "properties",
    "traits",
    "context",
)
# Fields the mapping fills itself, never through `fields`.
ENVELOPE_FIELDS = {
    "type",
    "account_id",
    "event_id",
    "user_id",
    "occurred_at",
    "received_at",
    "source",
    "properties",
}


class SegmentConfigError(ConfigFileError):
    pass


def _check_paths(paths: list[str]) -> list[str]:
    for path in paths:
        if path.split(".")[0] not in PATH_ROOTS or "" in path.split("."):
            raise ValueError(f"path {path!r} must start with one of {', '.join(PATH_ROOTS)}")
    return paths


# A list of message paths, the first present one wins.
Paths = Annotated[list[str], AfterValidator(_check_paths)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventRule(_Strict):
    type: str
    fields: dict[str, Paths] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in EVENT_MODELS or value == "account_update":
            raise ValueError(
                f"must be one of {', '.join(t for t in EVENT_MODELS if t != 'account_update')}"
            )
        return value

    @model_validator(mode="after")
    def _known_fields(self) -> "EventRule":
        allowed = set(EVENT_MODELS[self.type].model_fields) - ENVELOPE_FIELDS
        for name in [*self.fields, *self.defaults]:
            if name not in allowed:
                raise ValueError(
                    f"{name!r} is not a field of {self.type}; expected one of {sorted(allowed)}"
                )
        return self


class TrackRule(EventRule):
    events: list[str] = Field(min_length=1)


class TrackMapping(_Strict):
    rules: list[TrackRule] = Field(default_factory=list)
    default: EventRule

    def rule_for(self, event_name: str) -> EventRule:
        folded = event_name.casefold()
        for rule in self.rules:
            if any(folded == name.casefold() for name in rule.events):
                return rule
        return self.default


class IdentifyMapping(_Strict):
    account_paths: Annotated[Paths, Field(min_length=1)]


class GroupMapping(_Strict):
    traits: dict[str, str] = Field(default_factory=dict)

    @field_validator("traits")
    @classmethod
    def _account_fields(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = ACCOUNT_FACT_FIELDS - {"attributes"}
        for trait, target in value.items():
            if target not in allowed:
                raise ValueError(f"trait {trait!r}: {target!r} is not one of {sorted(allowed)}")
        return value


class SegmentMapping(_Strict):
    version: int = 1
    account_paths: Paths = Field(default_factory=list)
    identify: IdentifyMapping
    group: GroupMapping = Field(default_factory=GroupMapping)
    page: EventRule
    track: TrackMapping


SEGMENT_FILE = ConfigFile(
    name=FILE_NAME, package="kizashi.ingest", model=SegmentMapping, error=SegmentConfigError
)


def parse_segment_config(text: str, source: str = FILE_NAME) -> SegmentMapping:
    """Parse and validate the text of a segment.yaml; `source` prefixes every error."""
    return SEGMENT_FILE.parse(text, source)


def load_segment_config(config_dir: Path | None) -> SegmentMapping:
    """`<config_dir>/segment.yaml` when it exists, else the packaged default."""
    return SEGMENT_FILE.load(config_dir)
