"""The Segment mapping file: validation names the key; translation follows the rules."""

import pytest

from kizashi.ingest.segment import translate, users_to_look_up
from kizashi.ingest.segment_config import (
    SegmentConfigError,
    load_segment_config,
    parse_segment_config,
)

MAPPING = load_segment_config(None)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("identify: {account_paths: []}", "identify.account_paths"),
        ("identify: {account_paths: [cookie.x]}", "must start with one of"),
        ("track: {default: {type: telepathy}}", "track.default.type"),
        ("page: {type: web_visit, fields: {colour: [event]}}", "'colour' is not a field of"),
        ("group: {traits: {plan: tier}}", "group.traits"),
        ("surprise: 1", "surprise"),
        ("- a list", "mapping at the top level"),
    ],
)
def test_errors_name_the_key(text, says):
    with pytest.raises(SegmentConfigError, match=says):
        parse_segment_config(text)


def test_an_override_in_the_config_dir_wins(tmp_path):
    (tmp_path / "segment.yaml").write_text(
        "identify: {account_paths: [traits.company_id]}\n"
        "page: {type: web_visit, fields: {url: [properties.url]}}\n"
        "track: {default: {type: product_usage, fields: {action: [event]}}}\n"
    )
    mapping = load_segment_config(tmp_path)
    known: dict[str, str] = {}
    out = translate(
        [
            {"type": "identify", "userId": "u1", "traits": {"company_id": "acme"}},
            {"type": "track", "userId": "u1", "event": "Email Link Clicked"},
        ],
        mapping,
        known,
    )
    assert out.links == [(0, "u1", "acme")]
    assert out.events[0]["type"] == "product_usage"  # no email rule in this mapping


def test_calls_become_events_and_links_resolve_in_order():
    calls = [
        {"type": "track", "userId": "u1", "event": "Logged In"},
        {"type": "identify", "userId": "u1", "traits": {"groupId": "acme"}},
        {
            "type": "track",
            "userId": "u1",
            "event": "Email Link Clicked",
            "messageId": "m1",
            "properties": {"campaign_id": "spring", "tags": ["upsell"]},
            "timestamp": "2026-01-01T00:00:00Z",
        },
        {
            "type": "page",
            "userId": "u2",
            "properties": {"url": "https://x.io/pricing"},
            "context": {"groupId": "beta"},
        },
        {
            "type": "group",
            "userId": "u3",
            "groupId": "gamma",
            "traits": {
                "name": "Gamma",
                "renewalDate": "2027-01-01",
                "tier": "gold",
                "decisionMakers": ["u3", "u9"],
            },
        },
        {
            "type": "track",
            "userId": "u1",
            "event": "NPS Survey Submitted",
            "properties": {"score": 4},
        },
    ]
    assert users_to_look_up(calls, MAPPING, None) == {"u1"}
    known: dict[str, str] = {}
    out = translate(calls, MAPPING, known)
    assert [(r.index, r.field) for r in out.rejected] == [(0, "userId")]
    email, page, group, survey = out.events
    assert email == {
        "type": "email_engagement",
        "event_id": "m1",
        "user_id": "u1",
        "account_id": "acme",
        "occurred_at": "2026-01-01T00:00:00Z",
        "action": "click",
        "campaign_id": "spring",
        "tags": ["upsell"],
        "properties": {"campaign_id": "spring", "tags": ["upsell"]},
    }
    assert page["type"] == "web_visit" and page["account_id"] == "beta"
    assert page["url"] == "https://x.io/pricing"
    assert group["type"] == "account_update" and group["account_id"] == "gamma"
    assert group["renewal_date"] == "2027-01-01" and group["attributes"] == {"tier": "gold"}
    assert group["decision_makers"] == ["u3", "u9"]
    assert survey["type"] == "survey_response" and survey["nps"] == 4
    assert survey["survey_id"] == "nps"
    assert out.origins[3]["nps"] == "properties.score"
    assert known == {"u1": "acme", "u3": "gamma"}


def test_helpdesk_and_order_calls_become_tickets_and_purchases():
    """Issue #21: "Ticket Created/Solved/Reopened" and "Order Completed" (Segment's e-commerce
    spec: the product from `products.0.name`, USD when no currency is sent)."""
    from kizashi.contracts.events import input_event_adapter

    group = {"context": {"groupId": "acme"}}
    calls = [
        {
            "type": "track",
            "event": "Ticket Created",
            **group,
            "properties": {"ticket_id": 4711, "priority": "high", "via": "email"},
        },
        {
            "type": "track",
            "event": "Ticket Solved",
            **group,
            "properties": {"ticket_id": 4711, "first_response_s": 5400},
        },
        {"type": "track", "event": "ticket reopened", **group, "properties": {"id": "4711"}},
        {
            "type": "track",
            "event": "Order Completed",
            **group,
            "properties": {
                "order_id": "o-1",
                "total": 1200,
                "products": [{"name": "SSO add-on"}, {"product_id": "p-9"}, {"name": "Audit log"}],
            },
        },
        {"type": "group", "groupId": "acme", "traits": {"fiscalYearEnd": 3}},
    ]
    out = translate(calls, MAPPING, {})
    assert out.rejected == []
    opened, solved, reopened, order, update = (
        input_event_adapter.validate_python(e) for e in out.events
    )
    assert (opened.type, opened.ticket_id, opened.status) == ("support_ticket", "4711", "opened")
    assert (opened.priority, opened.channel) == ("high", "email")
    assert (solved.status, solved.first_response_s) == ("solved", 5400)
    assert (reopened.status, reopened.ticket_id) == ("reopened", "4711")
    assert order.type == "purchase" and order.amount == 1200 and order.currency == "USD"
    assert (order.product, order.kind, order.order_id) == ("SSO add-on", "new", "o-1")
    # Every product of the order, not only the first: each item's name (`products.*.name`).
    assert order.products == ["SSO add-on", "Audit log"]
    assert update.fiscal_year_end == 3
