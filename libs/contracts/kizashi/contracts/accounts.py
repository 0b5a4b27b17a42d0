"""What is known of an account, as carried in scores and signals."""

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AccountFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str
    name: str | None = None
    plan: str | None = None
    arr: float | None = None
    seats: int | None = None
    renewal_date: date | None = None
    owner_email: str | None = None
    owner_slack: str | None = None
    industry: str | None = None
    employees: int | None = None
    decision_makers: list[str] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    # "active" or "churned" (account_update's status), None when never given.
    status: str | None = None
    # The customer's contact (account_update), whom the customer playbooks may email.
    contact_email: str | None = None
    contact_name: str | None = None
    # The month (1-12) the fiscal year ends in, as the CRM said (account_update
    # fiscal_year_end); the inferred month is the feature fiscal_year_end_month.
    fiscal_year_end: int | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.account_id
