"""Rendering: Slack Block Kit and email, compared with committed snapshots.

Snapshots live in tests/unit/snapshots/. After an intended change, regenerate them with
`KIZASHI_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_notifier_render.py` and review
the diff; without that variable a missing or different snapshot fails the test.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from kizashi.contracts.signals import Signal, signal_adapter
from kizashi.notifier.render import (
    BLOCKS_MAX,
    BUTTON_MAX,
    HEADER_MAX,
    SECTION_MAX,
    Renderer,
    clip,
    render_digest,
    render_email,
    render_slack,
    slack_escape,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
ACK = "https://kizashi.example.com/v1/actions?token=v1.abc.def&action=ack"
SNOOZE = "https://kizashi.example.com/v1/actions?token=v1.ghi.jkl"


def make_signal(**overrides: Any) -> Signal:
    data: dict[str, Any] = {
        "kind": "opportunity",
        "signal_id": "sig-acme-upsell-1",
        "rule": "upsell_intent",
        "account_id": "acme",
        "priority": "high",
        "episode": "survey-42",
        "fired_at": datetime(2025, 1, 10, 9, 30, tzinfo=UTC),
        "reasons": [
            "Upsell intent 9/10 in the Q1 survey (jane@acme.com)",
            "3 pricing-page visits in 7 days",
        ],
        "suggested_play": "Offer the Enterprise plan & book a demo this week.",
        "account": {
            "account_id": "acme",
            "name": "Acme Corp",
            "plan": "Growth",
            "arr": 120000,
            "seats": 50,
            "renewal_date": date(2025, 3, 1),
            "owner_email": "ana@example.com",
            "owner_slack": "U012ABCDEF",
        },
        "scores": {"cs": 78, "op": 86.4, "segment": "expand", "priority": "high"},
        "scores_before": {"cs": 76, "op": 64, "segment": "nurture", "priority": "medium"},
    }
    data |= overrides
    return signal_adapter.validate_python(data)


def churn_signal(**overrides: Any) -> Signal:
    data: dict[str, Any] = {
        "kind": "churn_risk",
        "signal_id": "sig-globex-detractor-1",
        "rule": "detractor",
        "account_id": "globex",
        "priority": "medium",
        "reasons": ["NPS 2 from the admin: <script>alert('hi')</script> & \"slow support\""],
        "suggested_play": "Call the admin within 48 hours; review open tickets.",
        "account": {"account_id": "globex", "name": "Globex", "owner_email": "bo@example.com"},
        "scores": {"cs": 31, "op": 40, "segment": "at_risk", "priority": "medium"},
        "scores_before": {"cs": 52, "op": 41, "segment": "at_risk", "priority": "medium"},
    }
    data |= overrides
    return make_signal(**data)


def check_snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("KIZASHI_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no snapshot {path}; create it with KIZASHI_UPDATE_SNAPSHOTS=1")
    assert actual == path.read_text(encoding="utf-8"), f"{name} drifted from its snapshot"


def as_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def test_slack_opportunity_snapshot() -> None:
    payload = render_slack(make_signal(), ack_url=ACK, snooze_url=SNOOZE)
    check_snapshot("notifier_slack_opportunity.json", as_json(payload))


def test_slack_churn_snapshot() -> None:
    payload = render_slack(churn_signal(), ack_url=None, snooze_url=None)
    check_snapshot("notifier_slack_churn_risk.json", as_json(payload))


def test_email_opportunity_snapshot() -> None:
    email = render_email(make_signal(), ack_url=ACK, snooze_url=SNOOZE)
    assert email.subject == "Opportunity: Acme Corp — upsell intent 9/10"
    check_snapshot("notifier_email_opportunity.txt", email.text)
    check_snapshot("notifier_email_opportunity.html", email.html)


def test_email_churn_snapshot() -> None:
    email = render_email(churn_signal(), ack_url=ACK, snooze_url=None)
    assert email.subject == "Churn risk: Globex — detractor, NPS 2"
    check_snapshot("notifier_email_churn_risk.txt", email.text)
    check_snapshot("notifier_email_churn_risk.html", email.html)


def test_digest_snapshot() -> None:
    digest = render_digest(
        [churn_signal(), make_signal()],
        links={"sig-acme-upsell-1": (ACK, SNOOZE)},
    )
    assert digest.email.subject == "Kizashi digest: 2 signals"
    check_snapshot("notifier_digest_slack.json", as_json(digest.slack))
    check_snapshot("notifier_digest_email.txt", digest.email.text)
    check_snapshot("notifier_digest_email.html", digest.email.html)


def test_slack_escapes_mrkdwn_control_characters() -> None:
    signal = churn_signal(
        account={"account_id": "x", "name": "<!channel> & Co", "owner_slack": "@bo"},
        suggested_play="Ping <@U123> & <https://evil.example|click>",
    )
    payload = render_slack(signal, ack_url=None, snooze_url=None)
    text = json.dumps(payload["blocks"][1:])
    assert "<!channel>" not in text and "<@U123>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; Co" in payload["text"]
    assert "&lt;script&gt;" in text
    # A handle that is not a Slack user id is shown, escaped, but never turned into a mention.
    assert "Slack: @bo" in text


def test_slack_respects_block_kit_limits() -> None:
    signal = make_signal(
        account={"account_id": "x", "name": "N" * 400, "owner_email": "a@b.c"},
        reasons=[f"reason {i} " + "&" * 200 for i in range(60)],
        suggested_play="P" * 5000,
    )
    long_url = "https://k.example/" + "x" * 100
    payload = render_slack(signal, ack_url=long_url, snooze_url=long_url)
    blocks = payload["blocks"]
    assert len(blocks) <= BLOCKS_MAX
    assert len(blocks[0]["text"]["text"]) <= HEADER_MAX and blocks[0]["text"]["text"].endswith("…")
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= SECTION_MAX
        for button in block.get("elements", []):
            if button.get("type") == "button":
                assert len(button["text"]["text"]) <= BUTTON_MAX
    why = blocks[4]["text"]["text"]
    assert why.endswith("…") and not why[:-1].endswith(("&", "&a", "&am", "&amp"))


def test_digest_caps_blocks() -> None:
    signals = [make_signal(signal_id=f"s{i}") for i in range(80)]
    digest = render_digest(signals)
    assert len(digest.slack["blocks"]) <= BLOCKS_MAX
    assert digest.slack["blocks"][-1]["type"] == "context"
    assert "32 more" in digest.slack["blocks"][-1]["elements"][0]["text"]
    assert digest.email.text.count("Opportunity: Acme Corp") == 80


def test_email_html_is_autoescaped_and_text_is_not() -> None:
    email = render_email(churn_signal(), ack_url=ACK, snooze_url=None)
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert "action=ack" in email.html and "&amp;action=ack" in email.html
    assert "<script>alert('hi')</script>" in email.text


def test_subject_is_one_line() -> None:
    signal = make_signal(account={"account_id": "x", "name": "Evil\r\nBcc: all@x.com"})
    subject = render_email(signal, ack_url=None, snooze_url=None).subject
    assert "\n" not in subject and "\r" not in subject


def test_templates_can_be_overridden(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "email_subject.txt").write_text(
        "[{{ v.signal.priority }}] {{ v.name }}"
    )
    renderer = Renderer(tmp_path)
    email = render_email(make_signal(), ack_url=None, snooze_url=None, renderer=renderer)
    assert email.subject == "[high] Acme Corp"
    assert "Suggested play" in email.text  # the packaged text template still applies


def test_clip_and_escape() -> None:
    assert slack_escape("a<b>&c") == "a&lt;b&gt;&amp;c"
    assert clip("abcdef", 4) == "abc…"
    assert clip("ab&amp;cd", 5) == "ab…"
    assert clip("short", 10) == "short"


def test_missing_facts_and_scores_before() -> None:
    signal = make_signal(
        account={"account_id": "bare"},
        scores_before=None,
        reasons=[],
    )
    email = render_email(signal, ack_url=None, snooze_url=None)
    assert email.subject == "Opportunity: bare — upsell intent"
    assert "ARR:      —" in email.text and "CS:       78\n" in email.text
