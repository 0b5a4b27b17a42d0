"""The stack's whole log output: JSON lines with the service and the ids that trace an event
to its alert, and never a key, token, webhook URL or webhook signing secret, even on the
paths that handle them (this test's owner also gets the signed webhook: STACK_ROUTING)."""

import uuid

import httpx
import orjson
import pytest

from kizashi.runtime.settings import ActionLinkSettings
from kizashi.tools.stack import credentials_file, read_env_file
from tests.support.stack import CRM_WEBHOOK_PATH, CRM_WEBHOOK_SECRET

pytestmark = pytest.mark.e2e


async def _exercise_the_secret_paths(stack, account: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=stack.urls["ingest"], timeout=15) as client:
        # A wrong key, a key in the wrong scheme, and the API token used as an ingest key.
        for header in (f"Bearer x{stack.ingest_key}", f"Basic {stack.ingest_key}",
                       f"Bearer {stack.api_token}"):  # fmt: skip
            response = await client.post(
                "/v1/events", json={"type": "x"}, headers={"Authorization": header}
            )
            assert response.status_code == 401
    async with stack.ingest() as client:
        bad = await client.post("/v1/events", json={"type": "survey_response", "nps": 99})
        assert bad.status_code == 422
    # The facts first, applied before the survey is sent: in one request the two would travel
    # on different topics (docs/ingest.md), and the signal could be built before the owner
    # is known.
    await stack.post_events(
        [
            {
                "type": "account_update",
                "account_id": account,
                "name": "Secretive Inc",
                "owner_email": "sam@reps.example",
                "owner_slack": "@sam",
            }
        ]
    )

    async def facts_applied():
        response = await stack.get("scoring", f"/v1/accounts/{account}")
        return response.status_code == 200 and response.json()["attributes"].get("owner_email")

    await stack.wait_for(facts_applied)
    await stack.post_events(
        [
            {
                "type": "survey_response",
                "account_id": account,
                "survey_id": "q4",
                "nps": 2,
                "upsell_intent": 9,
            }
        ]
    )

    async def delivered():
        signals = (await stack.get("triggers", "/v1/signals", account_id=account)).json()
        sent = []
        for signal in signals:
            response = await stack.get("notifier", "/v1/deliveries", signal_id=signal["signal_id"])
            sent += [d for d in response.json() if d["status"] == "sent"]
        # Slack, email and the signed webhook, each signal.
        return signals if len(signals) >= 2 and len(sent) >= 3 * len(signals) else None

    return await stack.wait_for(delivered, within=90)


async def test_logs_are_json_with_trace_ids_and_no_secrets(stack, webhook, smtp):
    account = f"secretive-{uuid.uuid4().hex[:8]}"
    signals = await _exercise_the_secret_paths(stack, account)
    signal_ids = {s["signal_id"] for s in signals}

    async def lines_for_the_deliveries():
        lines = [
            orjson.loads(line)
            for line in stack.log_path.read_bytes().splitlines()
            if line.startswith(b"{")
        ]
        seen = {line.get("signal_id") for line in lines if line.get("msg") == "delivery sent"}
        return lines if signal_ids <= seen else None

    lines = await stack.wait_for(lines_for_the_deliveries, within=30)
    for line in lines:
        assert {"ts", "level", "service", "logger", "msg"} <= set(line), line
    assert {line["service"] for line in lines} >= {"ingest", "scoring", "triggers", "notifier"}
    fired = [line for line in lines if line["msg"] == "signal fired"]
    assert signal_ids <= {line["signal_id"] for line in fired}
    sent = [
        line for line in lines if line["msg"] == "delivery sent" and line["signal_id"] in signal_ids
    ]
    assert {line["channel"] for line in sent} == {"slack", "email", "webhook"}
    assert all(line["delivery_id"] for line in sent)

    text = stack.log_path.read_text(errors="replace")
    derived = ActionLinkSettings(api_token=stack.api_token).signing_secret()
    webhook_url = webhook.url("/slack")
    # The CRM received them signed, and its check passed.
    signed = [r for r in webhook.requests_to(CRM_WEBHOOK_PATH) if account in r.body.decode()]
    assert len(signed) >= len(signals) and all(r.verified for r in signed)
    for name, secret in {
        "ingest key": stack.ingest_key,
        "API token": stack.api_token,
        "action-link signing secret": derived,
        "Slack webhook URL": webhook_url,
        "webhook receiver's URL (its token)": CRM_WEBHOOK_PATH,
        "webhook signing secret": CRM_WEBHOOK_SECRET,
        "webhook signing key": CRM_WEBHOOK_SECRET.removeprefix("whsec_"),
    }.items():
        assert secret and secret not in text, f"the {name} appears in the stack's log"
    # The console's first admin's password, when this stack made that admin.
    admin_password = read_env_file(credentials_file(stack.data_dir)).get("CONSOLE_ADMIN_PASSWORD")
    assert not admin_password or admin_password not in text
