"""The account page's "Customer emails" section (issue #20, item 5): each email sent or held
back, the address's unsubscribe, and the contact, all as text."""

from datetime import UTC, datetime

from kizashi.console.views import template_env

HOSTILE = "<script>alert(1)</script> <b>bold</b>"
AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def _section(facts: dict, emails: list[dict]) -> str:
    template = template_env().get_template("_customer_emails.html")
    return template.render(facts=facts, customer_emails=emails)


def test_the_section_lists_sent_and_held_back_emails_as_text() -> None:
    rows = [
        {
            "contact_email": "pat@acme.example",
            "playbook": "renewal_window",
            "template": "renewal_window",
            "status": "suppressed",
            "reason": "the contact unsubscribed",
            "created_at": AT,
            "sent_at": None,
            "unsubscribed_at": AT,
        },
        {
            "contact_email": "pat@acme.example",
            "playbook": "renewal_window",
            "template": "renewal_window",
            "status": "sent",
            "reason": None,
            "created_at": AT,
            "sent_at": AT,
            "unsubscribed_at": AT,
        },
    ]
    html = _section({"contact_email": "pat@acme.example", "contact_name": HOSTILE}, rows)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count('<tr class="customer-email') == 2
    assert "suppressed: the contact unsubscribed" in html
    assert "renewal_window (renewal_window)" in html and "unsubscribed 2026-12-03" in html


def test_no_contact_and_no_email_say_so() -> None:
    html = _section({}, [])
    assert "No contact known" in html and "No customer email." in html
