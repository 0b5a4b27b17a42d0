"""Customer playbooks (kizashi.notifier.playbooks): the customer-or-rep decision, the frequency
cap, the config section, the unsubscribe token and the escaping of the customer's email."""

from datetime import UTC, date, datetime, timedelta
from email import policy
from email.parser import BytesParser
from email.utils import formataddr
from types import SimpleNamespace
from typing import Any

import pytest

from kizashi.notifier.app import create_app
from kizashi.notifier.customer import _context, customer_intent, wants_current_contact
from kizashi.notifier.links import unsubscribe_link, verify_unsubscribe
from kizashi.notifier.playbooks import (
    CustomerEmailsConfig,
    FrequencyCap,
    customer_playbook,
    playbook_name,
    receiver_name,
    unreachable_unsubscribe,
    within_cap,
)
from kizashi.notifier.render import Renderer
from kizashi.notifier.routing import build_tree, load_routing_config
from kizashi.notifier.routing_config import RoutingConfigError
from kizashi.notifier.settings import NotifierSettings
from kizashi.notifier.transport import SmtpSender
from kizashi.runtime.signing import InvalidActionToken, sign_action, verify_action_for
from kizashi.tools.settings import ToolSettings
from kizashi.tools.supervisor import local_trial_env
from tests.unit.test_notifier_render import churn_signal

SECRET = "customer-test-secret"  # noqa: S105
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def renewal(priority: str = "medium", rule: str = "renewal_window", **account: Any):
    facts = {"account_id": "acme", "name": "Acme", "owner_email": "rep@reps.example", **account}
    return churn_signal(
        kind="opportunity",
        rule=rule,
        priority=priority,
        account=facts,
        scores={"cs": 70, "op": 50, "segment": "expand", "priority": priority},
    )


def config(enabled: bool = True, **playbook: Any) -> CustomerEmailsConfig:
    entry = {"enabled": enabled, "template": "renewal_window", **playbook}
    return CustomerEmailsConfig.model_validate({"playbooks": {"renewal_window": entry}})


@pytest.mark.parametrize(
    ("priority", "contact", "enabled", "customer"),
    [
        ("medium", "pat@acme.example", True, True),
        ("low", "pat@acme.example", True, True),
        ("high", "pat@acme.example", True, False),  # a high-priority account alerts its rep
        ("medium", None, True, False),  # no contact to write to: the rep, as routed
        ("medium", "pat@acme.example", False, False),  # off (the default): the rep
    ],
)
def test_customer_or_rep(priority: str, contact: str | None, enabled: bool, customer: bool) -> None:
    signal = renewal(priority, contact_email=contact)
    chosen = customer_playbook(config(enabled), signal, contact)
    assert (chosen is not None) is customer


def test_the_accounts_priority_decides_not_the_rules_own() -> None:
    # A rule with a fixed priority (renewal_timing: high) still follows the account's priority.
    signal = renewal("medium", contact_email="pat@acme.example").model_copy(
        update={"priority": "high"}
    )
    assert customer_playbook(config(), signal, "pat@acme.example") is not None


def test_other_rules_and_chosen_priorities() -> None:
    other = renewal("medium", rule="usage_drop", contact_email="pat@acme.example")
    assert customer_playbook(config(), other, "pat@acme.example") is None
    only_low = config(priorities=["low"])
    assert customer_playbook(only_low, renewal("medium"), "pat@acme.example") is None
    assert customer_playbook(only_low, renewal("low"), "pat@acme.example") is not None
    assert playbook_name(receiver_name("renewal_window")) == "renewal_window"
    assert playbook_name("email") is None


def test_frequency_cap() -> None:
    cap = FrequencyCap(max=1, per="30d")
    assert within_cap(cap, [], NOW).allowed
    ten_days_ago = NOW - timedelta(days=10)
    held = within_cap(cap, [ten_days_ago], NOW)
    assert not held.allowed and held.sent == 1
    assert held.next_allowed_at == ten_days_ago + timedelta(days=30)
    assert within_cap(cap, [NOW - timedelta(days=30, seconds=1)], NOW).allowed
    two = FrequencyCap(max=2, per="12h")
    assert two.period == timedelta(hours=12)
    assert within_cap(two, [NOW - timedelta(hours=1)], NOW).allowed
    both = [NOW - timedelta(hours=1), NOW - timedelta(hours=3)]
    check = within_cap(two, both, NOW)
    assert not check.allowed and check.next_allowed_at == NOW + timedelta(hours=9)


def test_packaged_routing_has_every_playbook_off() -> None:
    tree = load_routing_config(None, slack_webhook_url=None, smtp_configured=True)
    playbooks = tree.customer.playbooks
    assert set(playbooks) >= {"renewal_window", "support_surge"}
    assert not any(p.enabled for p in playbooks.values())
    assert tree.customer.frequency_cap == FrequencyCap(max=1, per="30d")
    assert customer_playbook(tree.customer, renewal(), "pat@acme.example") is None
    assert tree.describe()["customer_emails"]["playbooks"]["support_surge"]["enabled"] is False


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"frequency_cap": {"max": 1, "per": "monthly"}}, "customer_emails.frequency_cap.per"),
        ({"frequency_cap": {"max": 0}}, "customer_emails.frequency_cap.max"),
        (
            {"playbooks": {"renewal_window": {}}},
            "customer_emails.playbooks.renewal_window.template",
        ),
        (
            {"playbooks": {"renewal_window": {"template": "../etc/passwd"}}},
            "customer_emails.playbooks.renewal_window.template",
        ),
        (
            {"playbooks": {"renewal_window": {"template": "x", "priorities": ["urgent"]}}},
            "customer_emails.playbooks.renewal_window.priorities",
        ),
        ({"playbooks": {"x": {"template": "x", "to": "a@b"}}}, "unknown key"),
        ({"from": "not an address"}, "customer_emails.from"),
    ],
)
def test_bad_sections_are_refused_by_name(section: dict, expected: str) -> None:
    raw = {"default": {"receivers": ["mail"]}, "customer_emails": section}
    raw["receivers"] = [{"name": "mail", "type": "email", "to": "account_owner"}]
    with pytest.raises(RoutingConfigError) as caught:
        build_tree(raw, source="routing.yaml", environ={}, smtp_configured=True)
    assert expected in str(caught.value)


def _service() -> SimpleNamespace:
    return SimpleNamespace(
        unsubscribe_base_url="https://mail.kizashi.example/",
        action_secret=SECRET,
        verifying_secrets=(SECRET, "older-secret"),
    )


def test_unsubscribe_links_verify_and_are_not_alert_actions() -> None:
    url = unsubscribe_link(_service(), "d-1", "pat@acme.example")
    assert url.startswith("https://mail.kizashi.example/v1/unsubscribe/")
    token = url.rsplit("/", 1)[1]
    assert verify_unsubscribe(_service(), token) == ("d-1", "pat@acme.example")
    # Keys of its own: the triggers' alert links refuse it, and an alert link is refused here.
    with pytest.raises(InvalidActionToken):
        verify_action_for(token, SECRET)
    alert = sign_action("d-1", "unsubscribe", NOW + timedelta(days=1), SECRET, "pat@acme.example")
    with pytest.raises(InvalidActionToken):
        verify_unsubscribe(_service(), alert)
    with pytest.raises(InvalidActionToken):
        verify_unsubscribe(_service(), token[:-2])


def test_the_customer_email_escapes_names_in_body_and_headers() -> None:
    signal = renewal(
        name='Acme <script>alert("x")</script>\r\nBcc: evil@x.example',
        contact_email="pat@acme.example",
        contact_name='Pat "the boss", <b>Smith</b>\nBcc: evil@x.example',
        plan="Growth",
        renewal_date=date.today() + timedelta(days=90),
    )
    url = "https://mail.kizashi.example/v1/unsubscribe/tok"
    context = _context(signal, url, "renewals@vendor.example")
    message = Renderer().customer("renewal_window", context)
    assert "\n" not in message.subject and "Bcc" in message.subject  # one line, kept as text
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html
    assert "&lt;b&gt;Smith&lt;/b&gt;" in message.html
    assert url in message.text and f'href="{url}"' in message.html
    assert "in 90 days" in message.text
    sender = SmtpSender.from_url("smtp://127.0.0.1:1", sender="kizashi@localhost")
    built = sender.build_message(
        ["pat@acme.example"],
        message.subject,
        message.text,
        message.html,
        {"To": formataddr((context["contact_name"], "pat@acme.example"))},
    )
    parsed = BytesParser(policy=policy.default).parsebytes(built.as_bytes())
    assert parsed["Bcc"] is None
    [to] = parsed["To"].addresses
    assert to.addr_spec == "pat@acme.example"
    assert to.display_name == 'Pat "the boss", <b>Smith</b> Bcc: evil@x.example'


def test_support_surge_template_renders() -> None:
    signal = renewal(rule="support_surge", contact_email="pat@acme.example")
    context = _context(signal, "https://u.example/x", "s@vendor.example")
    message = Renderer().customer("support_surge", context)
    assert "support plan" in message.text and "https://u.example/x" in message.html


def test_a_missing_template_is_named(tmp_path) -> None:
    renderer = Renderer(tmp_path)
    assert renderer.missing_customer_templates(["renewal_window", "support_surge"]) == []
    assert renderer.missing_customer_templates(["winback"]) == [
        "templates/customer/winback_subject.txt",
        "templates/customer/winback.txt",
        "templates/customer/winback.html",
    ]
    # A team's own template, in the config folder, is found (and overrides a packaged one).
    (tmp_path / "templates" / "customer").mkdir(parents=True)
    for suffix in ("_subject.txt", ".txt", ".html"):
        (tmp_path / "templates" / "customer" / f"winback{suffix}").write_text("{{ account_name }}")
    renderer = Renderer(tmp_path)
    assert renderer.missing_customer_templates(["winback"]) == []
    assert renderer.customer("winback", {"account_name": "A&B"}).html == "A&amp;B"


def _routing_service(enabled: bool = True, smtp: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        routing=SimpleNamespace(customer=config(enabled)), smtp=object() if smtp else None
    )


def test_the_batchs_current_contacts_decide_without_a_read_per_signal() -> None:
    service = _routing_service()
    bare = renewal("medium", contact_email=None)
    assert wants_current_contact(service, bare)
    # A contact in the snapshot, a high-priority account, no SMTP, a playbook off: no read.
    assert not wants_current_contact(service, renewal("medium", contact_email="p@acme.example"))
    assert not wants_current_contact(service, renewal("high"))
    assert not wants_current_contact(_routing_service(smtp=False), bare)
    assert not wants_current_contact(_routing_service(enabled=False), bare)
    # The account's current facts (read for the whole batch) supply the contact.
    current = {bare.account_id: {"contact_email": "pat@acme.example", "contact_name": "Pat"}}
    receiver, carried = customer_intent(service, bare, current)
    assert receiver == "customer:renewal_window"
    assert (carried.account.contact_email, carried.account.contact_name) == (
        "pat@acme.example",
        "Pat",
    )
    # No contact anywhere: the rep, as routed.
    assert customer_intent(service, bare, {}) is None
    assert customer_intent(service, bare, {bare.account_id: {"contact_email": None}}) is None


def test_customer_emails_need_a_reachable_unsubscribe_link() -> None:
    on, off = config(), config(enabled=False)
    said = unreachable_unsubscribe(on, smtp_configured=True, public_url=None)
    assert said and "KIZASHI_NOTIFIER_PUBLIC_URL" in said and "renewal_window" in said
    assert unreachable_unsubscribe(on, smtp_configured=True, public_url=" ") == said
    assert unreachable_unsubscribe(on, smtp_configured=True, public_url="https://u.example") is None
    # No customer email can go: nothing to refuse.
    assert unreachable_unsubscribe(on, smtp_configured=False, public_url=None) is None
    assert unreachable_unsubscribe(off, smtp_configured=True, public_url=None) is None


def test_the_notifier_refuses_to_start_with_an_unreachable_unsubscribe_link(tmp_path) -> None:
    routing = "receivers: [{name: mail, type: email, to: account_owner}]\n"
    routing += "default: {receivers: [mail]}\n"
    routing += "customer_emails:\n  playbooks:\n"
    routing += "    renewal_window: {enabled: true, template: renewal_window}\n"
    (tmp_path / "routing.yaml").write_text(routing)
    settings = {
        "config_dir": tmp_path,
        "api_token": "t" * 32,
        "smtp_url": "smtp://127.0.0.1:1",
        "notifier_public_url": None,
    }
    with pytest.raises(RoutingConfigError) as caught:
        create_app(NotifierSettings(**settings))
    assert "KIZASHI_NOTIFIER_PUBLIC_URL" in str(caught.value)
    assert str(tmp_path / "routing.yaml") in str(caught.value)
    settings["notifier_public_url"] = "https://unsubscribe.vendor.example"
    assert create_app(NotifierSettings(**settings)) is not None


def test_kizashi_up_sets_the_unsubscribe_address_for_its_local_trial() -> None:
    trial = ToolSettings(notifier_port=18004, notifier_public_url=None)
    assert local_trial_env(trial) == {"KIZASHI_NOTIFIER_PUBLIC_URL": "http://127.0.0.1:18004"}
    given = ToolSettings(notifier_public_url="https://u.vendor.example")
    assert local_trial_env(given) == {}
