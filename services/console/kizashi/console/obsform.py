"""The observation form of the account page (issue #18): the kinds it suggests, each with its
structured fields, and the check of what a person typed. The check is the contract's own
(kizashi.contracts.observations' adapter) plus the criteria of phases.yaml and the kinds of
observations.yaml (which are on, their labels and hints, custom kinds' fields), so the form
refuses exactly what ingest would refuse, and says why next to the field, before anything is
sent."""

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import ValidationError

from kizashi.contracts.limits import MAX_NOTE_LENGTH, MAX_SHORT_TEXT_LENGTH
from kizashi.contracts.observations import CUSTOM_TAG, OBSERVATION_KINDS, rep_observation_adapter
from kizashi.contracts.text import error_reason
from kizashi.runtime.observation_kinds import (
    RESERVED_FIELD_NAMES,
    ObservationConfig,
    packaged_observation_config,
)
from kizashi.runtime.phases import PhaseConfig


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    # "text", "number", "date", "select", "checkbox" or "criterion" (a select of phases.yaml's
    # criteria)
    input: str
    choices: tuple[tuple[str, str], ...] = ()
    required: bool = True
    max_length: int = MAX_SHORT_TEXT_LENGTH


@dataclass(frozen=True)
class Kind:
    kind: str
    label: str
    fields: tuple[Field, ...]
    hint: str = ""
    # A kind of observations.yaml's own: its values travel in the event's `fields` object.
    custom: bool = False


KINDS: tuple[Kind, ...] = (
    Kind(
        "key_person_change",
        "Key person change",
        (
            Field("person", "Who", "text"),
            Field("role", "Their role", "text"),
            Field("change", "Change", "select", (("left", "left"), ("joined", "joined"))),
            Field("is_decision_maker", "A decision maker", "checkbox", required=False),
        ),
    ),
    Kind("phase_evidence", "Phase evidence", (Field("criterion", "Criterion met", "criterion"),)),
    Kind("renewal_timing", "Renewal timing", (Field("due_date", "Contract ends on", "date"),)),
    Kind("relocation", "Relocation", (Field("moving_on", "Moving on", "date", required=False),)),
    Kind(
        "policy_change",
        "Policy change",
        (
            Field(
                "direction",
                "Direction",
                "select",
                (("expansion", "expansion"), ("cost_cutting", "cost cutting")),
            ),
        ),
    ),
    Kind(
        "competitor_trouble",
        "Competitor trouble",
        (Field("competitor", "Competitor", "text"), Field("what", "What happened", "text")),
    ),
    Kind(
        "customer_pain",
        "Customer pain",
        (
            Field(
                "pain",
                "Pain",
                "select",
                (("urgent", "urgent need"), ("inexperienced_staff", "inexperienced staff")),
            ),
        ),
    ),
    Kind(
        "satisfaction_with_rep",
        "Satisfaction with the rep",
        (
            Field(
                "satisfaction",
                "The customer's answer (1–5)",
                "select",
                tuple((str(n), str(n)) for n in range(1, 6)),
            ),
        ),
    ),
    Kind(
        "outcome_realised",
        "Outcome realised",
        (
            Field(
                "outcome",
                "Did they get the result they bought for?",
                "select",
                (("yes", "yes"), ("partly", "partly"), ("no", "no")),
            ),
        ),
    ),
)
BY_KIND = {k.kind: k for k in KINDS}
assert set(BY_KIND) == set(OBSERVATION_KINDS), "a kind of the contract has no form"  # noqa: S101

# A custom field's type (observations.yaml) -> the form's input for it.
INPUTS = {"text": "text", "number": "number", "boolean": "checkbox", "date": "date"}


def kinds_of(config: ObservationConfig, *, every: bool = False) -> tuple[Kind, ...]:
    """The kinds the form offers: the enabled built-in ones, labelled and hinted as
    observations.yaml says, then the custom ones. `every`: the switched-off built-in kinds
    too (the timeline still shows what was logged of them)."""
    builtin = tuple(
        replace(k, label=config.label(k.kind), hint=config.spec(k.kind).hint or "")
        for k in KINDS
        if every or k.kind in config.enabled
    )
    custom = tuple(
        Kind(
            name,
            config.label(name),
            tuple(
                Field(
                    field_name,
                    spec.label or field_name.replace("_", " ").capitalize(),
                    INPUTS.get(spec.type, "select"),
                    tuple((c, c) for c in spec.choices),
                    required=spec.required,
                    max_length=spec.longest,
                )
                for field_name, spec in (config.spec(name).fields or {}).items()
            ),
            config.spec(name).hint or "",
            custom=True,
        )
        for name in config.enabled
        if config.is_custom(name)
    )
    return builtin + custom


COMMON_FIELDS = ("csrf", "account_id", "kind", "event_id", "occurred_on", "note")
# A custom kind's field never shares a name with these (observations.yaml refuses it).
assert set(COMMON_FIELDS) <= RESERVED_FIELD_NAMES  # noqa: S101
MAX_VALUE_LENGTH = max(MAX_NOTE_LENGTH, MAX_SHORT_TEXT_LENGTH) * 4  # bytes, well before parsing


def new_form_id() -> str:
    """The event id a form is drawn with: sending the same form twice (a double click, a
    retry after an error) logs one observation, since each event id is applied once."""
    return f"obs-{uuid.uuid4().hex}"


class FormRefused(ValueError):
    """The form cannot be sent: `errors` maps a field's name to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _day(value: str, label: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise FormRefused({label: "a date like 2026-12-03"}) from error


def observation_of(
    form: dict[str, str],
    *,
    author: str,
    phases: PhaseConfig,
    kinds: ObservationConfig | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `rep_observation` event the form describes, as ingest's API takes it (no
    received_at or source: ingest stamps those). Raises FormRefused naming each bad field."""
    now = now or datetime.now(UTC)
    kinds = kinds or packaged_observation_config()
    offered = {k.kind: k for k in kinds_of(kinds)}
    kind = offered.get(form.get("kind", ""))
    if kind is None:
        raise FormRefused({"kind": f"one of {', '.join(offered)}"})
    errors: dict[str, str] = {}
    for name, value in form.items():
        if len(value) > MAX_VALUE_LENGTH:
            errors[name] = "far too long"
    if errors:
        raise FormRefused(errors)
    event: dict[str, Any] = {
        "type": "rep_observation",
        "kind": kind.kind,
        "account_id": form.get("account_id", ""),
        "author": author,
        "note": form.get("note", "").replace("\r\n", "\n"),
    }
    if form.get("event_id"):
        event["event_id"] = form["event_id"]
    on = form.get("occurred_on", "").strip()
    if on:
        try:
            day = _day(on, "occurred_on")
        except FormRefused as refused:
            errors.update(refused.errors)
        else:
            if day > now.date():
                errors["occurred_on"] = "is in the future: log what already happened"
            elif day < now.date():
                event["occurred_at"] = datetime.combine(day, time(12), UTC).isoformat()
    values: dict[str, Any] = {}
    if kind.custom:
        event["fields"] = values
    for field in kind.fields:
        value = form.get(field.name, "").strip()
        target = values if kind.custom else event
        if field.input == "checkbox":
            target[field.name] = value in ("on", "true", "1", "yes")
        elif value and field.input == "number":
            try:
                number = float(value)
            except ValueError:
                errors[field.name] = "a number, like 3 or 2.5"
            else:
                target[field.name] = int(number) if number.is_integer() else number
        elif value and kind.custom and field.input == "date":
            try:
                target[field.name] = _day(value, field.name).isoformat()
            except FormRefused as refused:
                errors.update(refused.errors)
        elif value and kind.custom:
            target[field.name] = value
        elif not value:
            if field.required:
                errors[field.name] = "is required"
        elif field.input == "date":
            try:
                event[field.name] = _day(value, field.name).isoformat()
            except FormRefused as refused:
                errors.update(refused.errors)
        elif field.name == "satisfaction":
            event[field.name] = int(value) if value.isdigit() and len(value) < 3 else value
        else:
            event[field.name] = value
    if kind.kind == "phase_evidence" and "criterion" in event:
        if event["criterion"] not in phases.criteria:
            errors["criterion"] = f"'{event['criterion'][:64]}' is not a criterion in phases.yaml"
    if len(event["note"]) > MAX_NOTE_LENGTH:
        errors["note"] = (
            f"is {len(event['note'])} characters long; at most {MAX_NOTE_LENGTH} are kept"
        )
    if not errors:
        try:
            rep_observation_adapter.validate_python({**event, "received_at": now})
        except ValidationError as error:
            for item in error.errors():
                loc = [str(p) for p in item.get("loc", ()) if str(p) not in OBSERVATION_KINDS]
                if loc[:1] == [CUSTOM_TAG]:  # custom: fields.<name>.<type tag>
                    loc = loc[2:3] if loc[1:2] == ["fields"] else loc[1:]
                errors.setdefault(".".join(loc) or "kind", error_reason(item))
    if not errors and kind.custom:
        refused = kinds.fields_refusal(kind.kind, values)
        if refused is not None:
            errors[refused[0].removeprefix("fields.")] = refused[1]
    if errors:
        raise FormRefused(errors)
    return event
