"""The `webhook` receiver: its routing.yaml entry and errors, the Standard Webhooks signature
(checked against the spec's published example and an HMAC computed here, independently of
the library that signs), and the documented payload."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, date, datetime

import pytest
import yaml

from kizashi.notifier.routing import RoutingConfigError
from kizashi.notifier.webhook import (
    PAYLOAD_VERSION,
    WebhookReceiver,
    WebhookSigner,
    check_secret,
    retraction_payload,
    webhook_payload,
)
from tests.unit.test_notifier_routing import make_signal, tree_from

URL = "https://crm.example.com/hooks/kizashi?token=URLSECRET"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
ENV = {"CRM_URL": URL, "CRM_SECRET": SECRET}
CONFIG = """
receivers:
  - {name: crm, type: webhook, url_env: CRM_URL, secret_env: CRM_SECRET}
default:
  receivers: [crm]
"""


def test_signature_matches_the_specs_example() -> None:
    # The example of the Standard Webhooks spec and its reference libraries' tests.
    signer = WebhookSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    at = datetime.fromtimestamp(1614265330, UTC)
    headers = signer.headers("msg_p5jXN8AQM9LWM0D4loKWxJek", b'{"test": 2432232314}', at)
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_signature_is_hmac_sha256_over_id_timestamp_body() -> None:
    body = json.dumps({"name": "Ça coûte 5 €"}, ensure_ascii=False).encode()
    headers = WebhookSigner(SECRET).headers("d-1", body, datetime(2026, 12, 3, 20, 0, 1, 999, UTC))
    assert headers["webhook-timestamp"] == "1796328001"
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, b"d-1.1796328001." + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "must start with 'whsec_'"),
        ("whsec_not base64!!", "followed by base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24-64 bytes, not 5"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "24-64 bytes, not 65"),
    ],
)
def test_bad_secrets_say_why_without_the_value(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as error:
        check_secret(secret)
    assert secret not in str(error.value)


def test_a_webhook_receiver_is_built_from_the_environment() -> None:
    tree = tree_from(CONFIG, env=ENV)
    receiver = tree.receivers["crm"]
    assert isinstance(receiver, WebhookReceiver) and receiver.enabled
    assert [r.name for r in tree.match(make_signal())] == ["crm"]
    described = json.dumps(tree.describe())
    assert receiver.describe()["url"] == "https://crm.example.com/…"
    # Neither the URL (it may hold a token) nor the secret, in GET /v1/routes or a repr.
    for text in (described, repr(tree), repr(receiver)):
        assert "URLSECRET" not in text and SECRET not in text
        assert SECRET.removeprefix("whsec_") not in text


def test_an_unset_url_variable_disables_the_receiver() -> None:
    tree = tree_from(CONFIG, env={"CRM_SECRET": SECRET})
    receiver = tree.receivers["crm"]
    assert not receiver.enabled and receiver.disabled_reason == "CRM_URL is not set"
    assert tree.match(make_signal()) == []


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        (
            "{name: crm, type: webhook, secret_env: CRM_SECRET}",
            ENV,
            "receiver #0 ('crm'): url_env: required",
        ),
        (
            "{name: crm, type: webhook, url_env: CRM_URL}",
            ENV,
            "receiver #0 ('crm'): secret_env: required",
        ),
        (
            "{name: crm, type: webhook, url_env: 'not a var', secret_env: CRM_SECRET}",
            ENV,
            "receiver #0 ('crm'): url_env:",
        ),
        (
            "{name: crm, type: webhook, url_env: CRM_URL, secret_env: CRM_SECRET}",
            {"CRM_URL": URL},
            "receiver #0 ('crm'): secret_env: CRM_SECRET is not set; a webhook receiver never"
            " sends unsigned",
        ),
        (
            "{name: crm, type: webhook, url_env: CRM_URL, secret_env: CRM_SECRET}",
            {"CRM_URL": URL, "CRM_SECRET": "hunter2-hunter2"},
            "receiver #0 ('crm'): secret_env: CRM_SECRET must start with 'whsec_'",
        ),
        (
            "{name: crm, type: webhook, url_env: CRM_URL, secret_env: CRM_SECRET}",
            {"CRM_URL": "ftp://crm.example.com/x", "CRM_SECRET": SECRET},
            "receiver #0 ('crm'): url_env: CRM_URL is not an http(s) URL",
        ),
    ],
)
def test_config_errors_are_clear(config: str, env: dict[str, str], expected: str) -> None:
    text = f"receivers:\n  - {config}\ndefault:\n  receivers: [crm]\n"
    with pytest.raises(RoutingConfigError) as error:
        tree_from(text, env=env)
    message = str(error.value)
    assert message.startswith("routing.yaml: ") and expected in message, message
    assert "hunter2" not in message and "ftp://" not in message
    assert SECRET not in message


def test_a_digest_route_cannot_name_a_webhook_receiver() -> None:
    text = CONFIG.replace("receivers: [crm]", "receivers: [crm]\n  digest: {interval: 1d}")
    with pytest.raises(RoutingConfigError, match="digest: webhook receiver 'crm' takes each"):
        tree_from(text, env=ENV)


def test_payload_carries_the_documented_fields() -> None:
    signal = make_signal(
        account={"plan": "Growth", "arr": 48000, "renewal_date": date(2027, 3, 1)},
        scores_before={"cs": 60, "op": 70, "segment": "nurture", "priority": "medium"},
        phase=3,
    )
    links = {"console": None, "acknowledge": "https://n/ack", "snooze": "https://n/snooze"}
    payload = json.loads(json.dumps(webhook_payload(signal, links)))
    assert payload["type"] == "kizashi.signal" and payload["version"] == PAYLOAD_VERSION == 1
    assert payload["timestamp"] == "2025-01-10T09:30:00Z"
    data = payload["data"]
    assert data["signal_id"] == "sig-1" and data["kind"] == "opportunity"
    assert data["rule"] == "upsell_intent" and data["priority"] == "high"
    assert data["headline"].startswith("Opportunity: Acme")
    assert data["account"] == {
        "id": "acme",
        "name": "Acme",
        "plan": "Growth",
        "arr": 48000,
        "renewal_date": "2027-03-01",
    }
    assert data["owner"] == {"email": "ana@example.com", "slack": None}
    assert data["reasons"] == ["Upsell intent 9/10"] and data["next_step"] == "Offer the upgrade."
    assert data["scores"]["cs"] == 70 and data["scores"]["segment"] == "expand"
    assert data["scores_before"] == {"cs": 60, "op": 70, "segment": "nurture"}
    assert data["phase"] == 3 and data["links"] == links
    assert data["reopened_at"] is None


def test_a_reopened_signal_says_when_it_reopened_under_the_same_signal_id() -> None:
    reopened = make_signal(reopened_at=datetime(2025, 1, 12, 8, 0, tzinfo=UTC))
    data = webhook_payload(reopened, {})["data"]
    assert data["signal_id"] == "sig-1" and data["reopened_at"] == "2025-01-12T08:00:00Z"


def test_a_retraction_is_its_own_event_type_in_the_same_envelope() -> None:
    retracted = make_signal(
        retracted={"at": datetime(2025, 1, 11, 7, 0, tzinfo=UTC), "reason": "usage arrived late"}
    )
    payload = json.loads(json.dumps(retraction_payload(retracted, corrects="d-1")))
    assert payload == {
        "type": "kizashi.signal.retracted",
        "version": PAYLOAD_VERSION,
        "timestamp": "2025-01-11T07:00:00Z",
        "data": {
            "signal_id": "sig-1",
            "kind": "opportunity",
            "rule": "upsell_intent",
            "fired_at": "2025-01-10T09:30:00Z",
            "reopened_at": None,
            "account": {"id": "acme", "name": "Acme"},
            "retracted_at": "2025-01-11T07:00:00Z",
            "reason": "usage arrived late",
            "corrects": "d-1",
        },
    }


def test_the_packaged_example_works_once_uncommented() -> None:
    from kizashi.notifier.routing_config import ROUTING_FILE

    text = ROUTING_FILE.default_path().read_text()
    # Off by default: only a comment.
    assert [r["type"] for r in yaml.safe_load(text)["receivers"]] == ["slack", "email"]
    lines = text.splitlines()
    start = lines.index("  # - name: crm")
    example = [line.replace("  # ", "  ", 1) for line in lines[start : start + 4]]
    text = "\n".join(lines[:start] + example + lines[start + 4 :])
    text = text.replace("receivers: [slack, email]", "receivers: [slack, email, crm]")
    env = {"KIZASHI_WEBHOOK_URL": URL, "KIZASHI_WEBHOOK_SECRET": SECRET}
    tree = tree_from(text, env=env)
    assert tree.receivers["crm"].enabled
    assert "crm" in [r.name for r in tree.match(make_signal())]
