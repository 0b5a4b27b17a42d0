"""`trusted` builds the same models as validation does, from data known to be valid."""

from datetime import date

import pytest

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.runtime.trusted import trusted
from kizashi.scoring.features import AccountState, facts_model


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (
            ScoreSnapshot,
            {"cs": 71.5, "op": 12.0, "segment": "nurture", "priority": "low", "confidence": 0.8},
        ),
        (
            AccountFacts,
            {
                **dict.fromkeys(AccountFacts.model_fields),
                "account_id": "acme",
                "plan": "pro",
                "seats": 40,
                "renewal_date": date(2027, 3, 1),
                "attributes": {"region": "emea"},
            },
        ),
    ],
)
def test_trusted_equals_validated(model, values) -> None:
    built, validated = trusted(model, dict(values)), model.model_validate(values)
    assert built == validated
    assert built.model_dump(mode="json") == validated.model_dump(mode="json")
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_fields_set == validated.model_fields_set
    assert model.model_validate(built.model_dump()) == built


def test_facts_model_reads_the_json_form_back() -> None:
    state = AccountState(
        crm={
            "plan": [1.0, "e1", "pro"],
            "arr": [1.0, "e1", 48000.0],
            "renewal_date": [2.0, "e2", "2027-03-01"],
            "attributes.region": [2.0, "e2", "emea"],
        }
    )
    data = state.facts_json("acme")
    facts = facts_model(data)
    assert facts == AccountFacts.model_validate(data)
    assert facts.renewal_date == date(2027, 3, 1)
    assert facts.model_dump(mode="json") == data


def test_every_crm_fact_is_an_account_facts_field() -> None:
    """facts_json goes out unvalidated as scores.changed's `account`: a fact AccountFacts does
    not know would make every such message a schema violation downstream."""
    from kizashi.contracts.events import ACCOUNT_FACT_FIELDS

    assert ACCOUNT_FACT_FIELDS <= set(AccountFacts.model_fields)
    assert set(AccountState().facts_json("a")) == set(AccountFacts.model_fields)
