"""routing.yaml: loading, validation errors, ordered matching, redaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kizashi.contracts.signals import Signal, signal_adapter
from kizashi.notifier.routing import (
    EmailReceiver,
    RoutingConfigError,
    SlackReceiver,
    build_tree,
    load_routing_config,
)

HOOK = "https://hooks.slack.com/services/T000/B000/SECRETSECRET"
ANA_HOOK = "https://hooks.slack.com/services/T000/B111/ANASECRET"


def make_signal(**overrides: Any) -> Signal:
    account = {"account_id": "acme", "name": "Acme", "owner_email": "ana@example.com"}
    account |= overrides.pop("account", {})
    data: dict[str, Any] = {
        "kind": "opportunity",
        "signal_id": "sig-1",
        "rule": "upsell_intent",
        "account_id": "acme",
        "priority": "high",
        "episode": "e1",
        "fired_at": datetime(2025, 1, 10, 9, 30, tzinfo=UTC),
        "reasons": ["Upsell intent 9/10"],
        "suggested_play": "Offer the upgrade.",
        "account": account,
        "scores": {"cs": 70, "op": 80, "segment": "expand", "priority": "high"},
    }
    data |= overrides
    return signal_adapter.validate_python(data)


def tree_from(text: str, *, env: dict[str, str] | None = None, smtp: bool = True):
    return build_tree(
        yaml.safe_load(text), source="routing.yaml", environ=env or {}, smtp_configured=smtp
    )


CONFIG = f"""
receivers:
  - {{name: sales, type: slack, webhook_url: "{HOOK}"}}
  - name: owners
    type: slack
    webhook_url_env: OWNERS_HOOK
    by_owner: {{ana@example.com: "{ANA_HOOK}"}}
  - {{name: owner-mail, type: email, to: account_owner}}
  - {{name: cs-team, type: email, to: [cs@example.com, lead@example.com]}}
routes:
  - name: vip churn
    match: {{kind: churn_risk, priority: high}}
    receivers: [sales, owners, owner-mail]
  - name: example.com owners
    match: {{owner: "~.*@example\\\\.com", rule: [upsell_intent, "~seat_.*"]}}
    receivers: [owners]
    continue: true
  - name: expansion digest
    match: {{segment: expand}}
    receivers: [cs-team, owners]
    digest: {{interval: 1d}}
default:
  receivers: [owner-mail]
"""


def names(receivers: list[Any]) -> list[str]:
    return [r.name for r in receivers]


def test_first_match_wins_and_stops() -> None:
    tree = tree_from(CONFIG, env={"OWNERS_HOOK": HOOK})
    signal = make_signal(kind="churn_risk", rule="detractor", priority="high")
    assert names(tree.match(signal)) == ["sales", "owners", "owner-mail"]


def test_continue_goes_on_and_receivers_are_deduplicated() -> None:
    tree = tree_from(CONFIG, env={"OWNERS_HOOK": HOOK})
    matches = tree.route(make_signal(rule="seat_pressure"))
    assert [(m.receiver.name, m.route) for m in matches] == [
        ("owners", "example.com owners"),
        ("cs-team", "expansion digest"),
    ]
    # The receiver keeps the first route that chose it, so "owners" is not digested.
    assert matches[0].digest is None
    assert matches[1].digest is not None and matches[1].digest.days == 1


def test_regex_must_match_whole_value_and_owner_checks_slack_handle() -> None:
    tree = tree_from(CONFIG, env={"OWNERS_HOOK": HOOK})
    other = make_signal(rule="seat_pressure", account={"owner_email": "ana@example.com.evil"})
    assert [m.route for m in tree.route(other)] == ["expansion digest", "expansion digest"]
    by_slack = tree_from(
        CONFIG.replace('"~.*@example\\\\.com"', "[U999, bob]"), env={"OWNERS_HOOK": HOOK}
    )
    signal = make_signal(account={"owner_email": None, "owner_slack": "bob"})
    assert names(by_slack.match(signal))[0] == "owners"


def test_default_route_only_when_nothing_matched() -> None:
    tree = tree_from(CONFIG, env={"OWNERS_HOOK": HOOK})
    signal = make_signal(
        rule="renewal_window",
        scores={"cs": 80, "op": 20, "segment": "nurture", "priority": "low"},
    )
    assert names(tree.match(signal)) == ["owner-mail"]


def test_receiver_targets() -> None:
    tree = tree_from(CONFIG, env={"OWNERS_HOOK": HOOK})
    owners = tree.receivers["owners"]
    mail = tree.receivers["owner-mail"]
    team = tree.receivers["cs-team"]
    assert isinstance(owners, SlackReceiver) and isinstance(mail, EmailReceiver)
    assert isinstance(team, EmailReceiver)
    assert owners.webhook_for(make_signal().account) == ANA_HOOK
    assert owners.webhook_for(make_signal(account={"owner_email": "Ana@Example.com"}).account) == (
        ANA_HOOK
    )
    assert owners.webhook_for(make_signal(account={"owner_email": "bo@x.io"}).account) == HOOK
    assert mail.recipients_for(make_signal().account) == ["ana@example.com"]
    assert mail.recipients_for(make_signal(account={"owner_email": None}).account) == []
    assert team.recipients_for(make_signal().account) == ["cs@example.com", "lead@example.com"]


def test_disabled_receivers_are_skipped_but_described() -> None:
    tree = tree_from(CONFIG, env={}, smtp=False)
    signal = make_signal(kind="churn_risk", priority="high")
    # "owners" has no env webhook but still has a by_owner map, so it stays enabled.
    assert names(tree.match(signal)) == ["sales", "owners"]
    described = {r["name"]: r for r in tree.describe()["receivers"]}
    assert described["owner-mail"]["enabled"] is False
    assert described["owner-mail"]["disabled_reason"] == "SMTP is not configured"


def test_describe_redacts_webhook_urls() -> None:
    tree = tree_from(CONFIG, env={"OWNERS_HOOK": HOOK})
    text = json.dumps(tree.describe(), ensure_ascii=False)
    assert "SECRET" not in text and "/services/" not in text
    described = {r["name"]: r for r in tree.describe()["receivers"]}
    assert described["sales"]["webhook"] == "https://hooks.slack.com/…"
    assert described["owners"]["by_owner"] == {"ana@example.com": "https://hooks.slack.com/…"}
    routes = tree.describe()["routes"]
    assert routes[1]["match"] == {
        "owner": ["~.*@example\\.com"],
        "rule": ["upsell_intent", "~seat_.*"],
    }
    assert routes[2]["digest"] == {"interval": "1d"}


def test_no_file_uses_packaged_default(tmp_path: Path) -> None:
    both = load_routing_config(tmp_path, slack_webhook_url=HOOK, smtp_configured=True)
    signal = make_signal()
    [slack, email] = both.match(signal)
    assert isinstance(slack, SlackReceiver) and slack.name == "slack"
    assert slack.webhook_for(signal.account) == HOOK
    assert isinstance(email, EmailReceiver) and email.name == "email" and email.to_account_owner
    assert names(
        load_routing_config(None, slack_webhook_url=None, smtp_configured=True).match(signal)
    ) == ["email"]
    nothing = load_routing_config(None, slack_webhook_url=None, smtp_configured=False, environ={})
    assert nothing.match(signal) == []


def test_setting_overrides_process_environment(tmp_path: Path) -> None:
    # The settings value wins, and an unset setting is not rescued by a stray env var.
    tree = load_routing_config(
        None,
        slack_webhook_url=None,
        smtp_configured=False,
        environ={"KIZASHI_SLACK_WEBHOOK_URL": HOOK},
    )
    assert tree.match(make_signal()) == []


def test_file_in_config_dir_is_used(tmp_path: Path) -> None:
    (tmp_path / "routing.yaml").write_text(CONFIG, encoding="utf-8")
    tree = load_routing_config(tmp_path, slack_webhook_url=None, smtp_configured=True, environ={})
    assert tree.source.endswith("routing.yaml") and str(tmp_path) in tree.source
    assert [r.name for r in tree.routes] == ["vip churn", "example.com owners", "expansion digest"]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (lambda c: c.replace("kind: churn_risk", "kind: churn"), None),
        (
            lambda c: c.replace("priority: high}", "priority: high, colour: red}"),
            "route #0 ('vip churn'): match.colour: unknown key",
        ),
        (
            lambda c: c.replace("[sales, owners, owner-mail]", "[sales, nobody]"),
            "route #0 ('vip churn'): receivers: unknown receiver 'nobody'",
        ),
        (
            lambda c: c.replace('"~seat_.*"', '"~seat_(("'),
            "route #1 ('example.com owners'): match.rule: bad regular expression",
        ),
        (
            lambda c: c.replace("interval: 1d", "interval: daily"),
            "route #2 ('expansion digest'): digest.interval:",
        ),
        (
            lambda c: c.replace("continue: true", "continue: maybe"),
            "route #1 ('example.com owners'): continue:",
        ),
        (
            lambda c: c.replace("to: [cs@example.com, lead@example.com]", "to: []"),
            "receiver #3 ('cs-team'): to:",
        ),
        (
            lambda c: c.replace(f'webhook_url: "{HOOK}"', "webhook_url: ftp://x"),
            "receiver #0 ('sales'): (whole entry): must be an http(s) URL",
        ),
        (
            lambda c: c.replace("name: owners\n", "name: sales\n"),
            "receiver #1 ('sales'): name: duplicate receiver name",
        ),
        (
            lambda c: c.replace("default:\n  receivers: [owner-mail]\n", ""),
            "default: required key is missing",
        ),
        (
            lambda c: c.replace(
                "default:\n  receivers: [owner-mail]\n", "default:\n  receivers: []\n"
            ),
            "route default: receivers: must hold at least 1 item",
        ),
        (
            lambda c: c.replace("match: {segment: expand}", "match: {}").replace(
                "    digest: {interval: 1d}\n",
                "    digest: {interval: 1d}\n  - receivers: [sales]\n",
            ),
            "route #2 ('expansion digest'): match: matches every signal",
        ),
    ],
)
def test_validation_errors_name_route_and_key(patch: Any, expected: str | None) -> None:
    # Unknown enum values are not errors: matchers are strings, so "churn" just never matches.
    if expected is None:
        tree_from(patch(CONFIG))
        return
    with pytest.raises(RoutingConfigError) as caught:
        tree_from(patch(CONFIG))
    assert expected in str(caught.value)


def test_unreadable_yaml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "routing.yaml").write_text("receivers: [unclosed", encoding="utf-8")
    with pytest.raises(RoutingConfigError, match="cannot read"):
        load_routing_config(tmp_path, slack_webhook_url=None, smtp_configured=False)
    with pytest.raises(RoutingConfigError, match="must be a mapping"):
        build_tree(["x"], source="r.yaml", environ={}, smtp_configured=False)


PHASE_CONFIG = f"""
receivers:
  - {{name: sales, type: slack, webhook_url: "{HOOK}"}}
  - {{name: partners, type: email, to: [partners@example.com]}}
  - {{name: early, type: email, to: [early@example.com]}}
routes:
  - name: partners
    match: {{phase: [3, 4]}}
    receivers: [partners]
  - name: early on
    match: {{phase: "~[0-1]"}}
    receivers: [early]
default:
  receivers: [sales]
"""


@pytest.mark.parametrize(
    ("phase", "receivers"),
    [(4, ["partners"]), (3, ["partners"]), (2, ["sales"]), (0, ["early"]), (None, ["sales"])],
)
def test_phase_is_a_routing_attribute(phase: int | None, receivers: list[str]) -> None:
    tree = tree_from(PHASE_CONFIG)
    assert names(tree.match(make_signal(phase=phase))) == receivers


def test_a_single_phase_number_matches_that_phase_only() -> None:
    tree = tree_from(PHASE_CONFIG.replace("phase: [3, 4]", "phase: 3"))
    assert names(tree.match(make_signal(phase=3))) == ["partners"]
    assert names(tree.match(make_signal(phase=4))) == ["sales"]
    assert '"phase": ["3"]' in json.dumps(tree.describe())
