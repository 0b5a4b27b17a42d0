"""The links an alert carries: signed action links bound to the person the alert goes to, and
the console's page of the signal when KIZASHI_CONSOLE_URL is set."""

from types import SimpleNamespace

from kizashi.contracts.accounts import AccountFacts
from kizashi.notifier.links import action_links, console_link, feedback_links, recipient_of
from kizashi.notifier.render import Renderer
from kizashi.runtime.signing import verify_action, verify_action_for
from tests.unit.test_notifier_render import churn_signal

SECRET = "links-test-secret"  # noqa: S105


def _service(console_url: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        public_url="https://kizashi.example/", action_secret=SECRET, console_url=console_url
    )


def test_the_recipient_is_the_one_address_else_the_owner() -> None:
    account = AccountFacts(account_id="a", owner_email="Owner@Reps.Example", owner_slack="@o")
    assert recipient_of(account, ["Rep@Reps.Example"]) == "rep@reps.example"
    assert recipient_of(account, ["a@x.example", "b@x.example"]) == "owner@reps.example"
    assert recipient_of(account) == "owner@reps.example"
    assert recipient_of(AccountFacts(account_id="a", owner_slack="@o")) == "@o"
    assert recipient_of(AccountFacts(account_id="a")) is None


def test_action_links_carry_the_recipient_and_old_style_links_still_verify() -> None:
    signal = churn_signal()
    ack, snooze = action_links(_service(), signal, "rep@reps.example")
    assert ack.startswith("https://kizashi.example/v1/actions/")
    token = ack.rsplit("/", 1)[1]
    assert verify_action_for(token, SECRET) == (signal.signal_id, "ack", "rep@reps.example")
    assert verify_action(token, SECRET) == (signal.signal_id, "ack")
    anonymous = action_links(_service(), signal)[1].rsplit("/", 1)[1]
    assert verify_action_for(anonymous, SECRET) == (signal.signal_id, "snooze", None)


def test_alerts_link_to_the_console_only_when_its_url_is_set() -> None:
    signal = churn_signal()
    assert console_link(_service(), signal) is None
    url = console_link(_service("https://console.example/"), signal)
    assert url == f"https://console.example/signals/{signal.signal_id}"
    renderer = Renderer()
    slack = renderer.slack(signal, ack_url=None, snooze_url=None, open_url=url)
    buttons = [e for b in slack["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["text"]["text"], b["url"]) for b in buttons] == [("Open in Kizashi", url)]
    email = renderer.email(signal, ack_url=None, snooze_url=None, open_url=url)
    assert f"Open in Kizashi: {url}" in email.text and f'href="{url}"' in email.html
    plain = renderer.email(signal, ack_url=None, snooze_url=None)
    assert "Open in Kizashi" not in plain.text


def test_feedback_links_are_signed_for_the_recipient_and_shown_in_every_message() -> None:
    signal = churn_signal()
    useful, not_useful = feedback_links(_service(), signal, "rep@reps.example")
    for url, action in ((useful, "useful"), (not_useful, "not_useful")):
        assert url.startswith("https://kizashi.example/v1/actions/")
        token = url.rsplit("/", 1)[1]
        assert verify_action_for(token, SECRET) == (signal.signal_id, action, "rep@reps.example")
    renderer = Renderer()
    # A URL with Slack's and HTML's control characters, to see each channel escape it.
    odd = ("https://k.example/u?a=1&b=<2>", "https://k.example/n?a=1&b=<2>")
    slack = renderer.slack(signal, ack_url=None, snooze_url=None, feedback_urls=odd)
    buttons = [e for b in slack["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["text"]["text"], b["action_id"]) for b in buttons] == [
        ("Useful", "kizashi_useful"),
        ("Not useful", "kizashi_not_useful"),
    ]
    email = renderer.email(
        signal, ack_url=None, snooze_url=None, feedback_urls=(useful, not_useful)
    )
    assert f"Useful:      {useful}" in email.text and f"Not useful:  {not_useful}" in email.text
    assert f'href="{useful}"' in email.html and f'href="{not_useful}"' in email.html
    hostile = renderer.email(signal, ack_url=None, snooze_url=None, feedback_urls=odd)
    assert "b=&lt;2&gt;" in hostile.html and "<2>" not in hostile.html
    assert (
        "Was this signal useful?" not in renderer.email(signal, ack_url=None, snooze_url=None).text
    )
    digest = renderer.digest([signal], links={}, feedback={signal.signal_id: odd}, title="Digest")
    line = digest.slack["blocks"][1]["text"]["text"]
    assert "<https://k.example/u?a=1&amp;b=&lt;2&gt;|Useful>" in line
    assert "<https://k.example/n?a=1&amp;b=&lt;2&gt;|Not useful>" in line
    assert f"Useful:      {odd[0]}" in digest.email.text
    assert "b=&lt;2&gt;" in digest.email.html and "<2>" not in digest.email.html
