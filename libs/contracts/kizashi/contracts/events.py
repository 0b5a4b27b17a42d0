"""Input events (architecture §3.2): the envelope every event carries, and the five typed bodies."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kizashi.contracts.currencies import CurrencyCode
from kizashi.contracts.limits import (
    EARLIEST_EVENT_TIME,
    LATEST_EVENT_TIME,
    MAX_ATTRIBUTE_BYTES,
    MAX_ATTRIBUTE_KEY_LENGTH,
    MAX_ATTRIBUTE_KEYS,
)
from kizashi.contracts.text import Identifier, JsonObject, ShortText, Text

PageCategory = Literal["pricing", "product", "docs", "support", "blog", "other"]
EmailAddress = Annotated[
    str, StringConstraints(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
]


# Compared in UTC by pydantic-core, in Rust: every accepted time converts to UTC and to epoch
# seconds in every consumer.
EventTime = Annotated[AwareDatetime, Field(ge=EARLIEST_EVENT_TIME, le=LATEST_EVENT_TIME)]


def _bounded_attributes(value: dict[str, Any]) -> dict[str, Any]:
    """At most MAX_ATTRIBUTE_KEYS keys of 1..MAX_ATTRIBUTE_KEY_LENGTH characters, each attribute
    at most MAX_ATTRIBUTE_BYTES as JSON. Runs after `JsonObject`'s check, so the depth is
    bounded before orjson serialises anything."""
    if len(value) > MAX_ATTRIBUTE_KEYS:
        raise PydanticCustomError(
            "too_many_attributes",
            "holds {count} keys; at most {limit} attributes per update",
            {"count": len(value), "limit": MAX_ATTRIBUTE_KEYS},
        )
    for key, item in value.items():
        if not key or len(key) > MAX_ATTRIBUTE_KEY_LENGTH:
            raise PydanticCustomError(
                "attribute_key",
                "attribute key '{key}' must be 1 to {limit} characters",
                {"key": key[:32], "limit": MAX_ATTRIBUTE_KEY_LENGTH},
            )
        size = len(orjson.dumps(key)) + len(orjson.dumps(item))
        if size > MAX_ATTRIBUTE_BYTES:
            raise PydanticCustomError(
                "attribute_too_large",
                "attribute '{key}' is {size} bytes as JSON (key and value); at most {limit}",
                {"key": key[:32], "size": size, "limit": MAX_ATTRIBUTE_BYTES},
            )
    return value


Attributes = Annotated[JsonObject, AfterValidator(_bounded_attributes)]


def new_event_id() -> str:
    return uuid.uuid4().hex


class EventEnvelope(BaseModel):
    """What every event carries. `received_at` and `source` are set by ingest, never by clients."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: Identifier
    event_id: Identifier = Field(default_factory=new_event_id)
    user_id: Identifier | None = None
    occurred_at: EventTime | None = None
    properties: JsonObject = Field(default_factory=dict)
    received_at: EventTime | None = None
    source: ShortText | None = None


class ProductUsage(EventEnvelope):
    type: Literal["product_usage"]
    action: ShortText
    feature: ShortText | None = None
    # Strict numbers: a boolean or a string is not a quantity (nor an NPS, an ARR, …).
    quantity: float = Field(default=1.0, ge=0, le=1e9, allow_inf_nan=False, strict=True)


class EmailEngagement(EventEnvelope):
    type: Literal["email_engagement"]
    action: Literal["open", "click"]
    campaign_id: ShortText
    link_url: Annotated[Text, StringConstraints(max_length=2048)] | None = None
    tags: list[ShortText] = Field(default_factory=list, max_length=32)


def page_category_of(url: str) -> PageCategory:
    """Derive a page category from a URL's path when the client did not send one."""
    path = urlsplit(url).path.lower()
    for needle, category in (
        ("pricing", "pricing"),
        ("plans", "pricing"),
        ("upgrade", "pricing"),
        ("docs", "docs"),
        ("support", "support"),
        ("help", "support"),
        ("blog", "blog"),
        ("product", "product"),
        ("features", "product"),
    ):
        if needle in path:
            return category  # type: ignore[return-value]
    return "other"


class WebVisit(EventEnvelope):
    type: Literal["web_visit"]
    url: Annotated[Text, StringConstraints(min_length=1, max_length=2048)]
    page_category: PageCategory | None = None
    product: ShortText | None = None
    duration_s: float | None = Field(
        default=None, ge=0, le=86_400, allow_inf_nan=False, strict=True
    )

    @model_validator(mode="after")
    def _derive_category(self) -> "WebVisit":
        if self.page_category is None:
            object.__setattr__(self, "page_category", page_category_of(self.url))
        return self


class SurveyResponse(EventEnvelope):
    type: Literal["survey_response"]
    survey_id: ShortText
    nps: int | None = Field(default=None, ge=0, le=10, strict=True)
    csat: int | None = Field(default=None, ge=1, le=5, strict=True)
    upsell_intent: int | None = Field(default=None, ge=0, le=10, strict=True)
    referral_intent: int | None = Field(default=None, ge=0, le=10, strict=True)
    comment: Annotated[Text, StringConstraints(max_length=4096)] | None = None

    @model_validator(mode="after")
    def _has_an_answer(self) -> "SurveyResponse":
        if all(
            answer is None
            for answer in (self.nps, self.csat, self.upsell_intent, self.referral_intent)
        ):
            raise ValueError(
                "a survey_response needs at least one of nps, csat, upsell_intent, referral_intent"
            )
        return self


class AccountUpdate(EventEnvelope):
    type: Literal["account_update"]
    name: ShortText | None = None
    plan: ShortText | None = None
    arr: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False, strict=True)
    seats: int | None = Field(default=None, ge=0, le=10_000_000, strict=True)
    renewal_date: date | None = None
    owner_email: EmailAddress | None = None
    owner_slack: ShortText | None = None
    industry: ShortText | None = None
    employees: int | None = Field(default=None, ge=0, le=100_000_000, strict=True)
    # The user ids of the people who decide on a purchase (the CRM's decision-maker or
    # economic-buyer contact roles); the OP index counts whether they engage.
    decision_makers: list[Identifier] | None = Field(default=None, max_length=50)
    attributes: Attributes | None = None
    # The customer's standing in the CRM; `churned` records a churn outcome (issue #19).
    status: Literal["active", "churned"] | None = None
    # The customer's contact for the customer playbooks' emails (docs/notifications.md):
    # renewal reminders go to this address when a playbook is enabled (issue #20, item 5).
    contact_email: EmailAddress | None = None
    contact_name: ShortText | None = None
    # The month (1-12) the customer's fiscal year ends in (issue #21); when never given,
    # scoring infers it from the months the account buys in (docs/features.md).
    fiscal_year_end: int | None = Field(default=None, ge=1, le=12, strict=True)

    @model_validator(mode="after")
    def _has_a_fact(self) -> "AccountUpdate":
        if not self.facts():
            raise ValueError("an account_update needs at least one account field")
        return self

    def facts(self) -> dict:
        """The CRM fields this update sets (unset fields are left as they were)."""
        return self.model_dump(mode="json", include=ACCOUNT_FACT_FIELDS, exclude_none=True)


ACCOUNT_FACT_FIELDS = frozenset(
    {
        "name",
        "plan",
        "arr",
        "seats",
        "renewal_date",
        "owner_email",
        "owner_slack",
        "industry",
        "employees",
        "decision_makers",
        "attributes",
        "status",
        "contact_email",
        "contact_name",
        "fiscal_year_end",
    }
)


def _number_as_id(value: Any) -> Any:
    """Helpdesks and shops number their tickets and orders (Zendesk's 4711): a whole number is
    read as its digits; a boolean or a fraction is not an id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# A ticket or order id: an Identifier, or a whole number written as one.
ExternalId = Annotated[Identifier, BeforeValidator(_number_as_id)]


class SupportTicket(EventEnvelope):
    """A helpdesk ticket's step (issue #21): opened, solved or reopened.

    A `solved` or `reopened` for a ticket Kizashi never saw open is accepted, not refused: the
    ticket may have opened before Kizashi was connected, or its `opened` may still be on its
    way (each account's events are applied in any order, architecture §5.4), and ingest holds
    no ticket state to check against. Such a solve counts its first response and nothing
    else; it never makes the open-ticket count negative (docs/features.md)."""

    type: Literal["support_ticket"]
    ticket_id: ExternalId
    status: Literal["opened", "solved", "reopened"]
    priority: ShortText | None = None
    channel: ShortText | None = None
    topic: ShortText | None = None
    # Seconds from the ticket's opening to the first answer; only on a solve.
    first_response_s: float | None = Field(
        default=None, ge=0, le=31_536_000, allow_inf_nan=False, strict=True
    )

    @field_validator("first_response_s")
    @classmethod
    def _response_on_solve(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("status", "solved") != "solved":
            raise PydanticCustomError(
                "first_response_not_solved",
                "is given only with status 'solved' (this ticket's status is '{status}')",
                {"status": info.data.get("status")},
            )
        return value


class Purchase(EventEnvelope):
    """A completed order (issue #21). `occurred_at` is when it was placed."""

    type: Literal["purchase"]
    order_id: ExternalId
    # strict: a string or a boolean is not an amount; a negative one (a refund) is refused.
    amount: float = Field(ge=0, le=1e12, allow_inf_nan=False, strict=True)
    currency: CurrencyCode
    product: ShortText
    # The order's other products, when it has several (Segment's `products[]`): each counts
    # as owned; `amount` is the whole order's.
    products: list[ShortText] = Field(default_factory=list, max_length=100)
    kind: Literal["new", "upsell", "cross_sell", "renewal"]


InputEvent = Annotated[
    ProductUsage
    | EmailEngagement
    | WebVisit
    | SurveyResponse
    | AccountUpdate
    | SupportTicket
    | Purchase,
    Field(discriminator="type"),
]
EVENT_MODELS: dict[str, type[EventEnvelope]] = {
    "product_usage": ProductUsage,
    "email_engagement": EmailEngagement,
    "web_visit": WebVisit,
    "survey_response": SurveyResponse,
    "account_update": AccountUpdate,
    "support_ticket": SupportTicket,
    "purchase": Purchase,
}
input_event_adapter: TypeAdapter[InputEvent] = TypeAdapter(InputEvent)


def occurred(event: EventEnvelope) -> datetime:
    """When the event happened; ingest always fills `occurred_at`, so this is a safety net."""
    return event.occurred_at or event.received_at  # type: ignore[return-value]
