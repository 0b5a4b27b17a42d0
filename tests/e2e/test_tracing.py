"""One alert's trace spans all four services (architecture §9.1).

A stack of its own (its own broker and database, so no other stack's consumers share its
groups) exports its spans by OTLP/HTTP to a real local HTTP server that decodes each protobuf
ExportTraceServiceRequest. One event fires an alert; its trace must hold spans of ingest,
scoring, triggers and the notifier, each the child of the one before, in that order."""

import asyncio
import contextlib
import uuid

import pytest

from kizashi.tools.bench.hops import STAMPS, alert_stamps
from kizashi.tools.embedded import EmbeddedBroker, free_port
from kizashi.tools.migrate import upgrade
from kizashi.tools.otlp import OtlpReceiver
from tests.support import infra
from tests.support.stack import start_stack

pytestmark = pytest.mark.e2e  # it starts a stack of its own

SERVICES = ["kizashi-ingest", "kizashi-scoring", "kizashi-triggers", "kizashi-notifier"]


@pytest.fixture(scope="module")
async def traced(tmp_path_factory, database_url, webhook):
    otlp = OtlpReceiver()
    await otlp.start()
    workdir = tmp_path_factory.mktemp("traced-stack")
    broker = EmbeddedBroker(workdir / "broker", free_port())
    await asyncio.to_thread(broker.start)
    database = f"kizashi_traced_{uuid.uuid4().hex[:8]}"
    await infra._create_database(database_url, database)
    url = infra._with_database(database_url, database)
    await asyncio.to_thread(upgrade, url)
    try:
        running = await asyncio.to_thread(
            start_stack,
            workdir,
            database_url=url,
            bootstrap_servers=broker.bootstrap_servers,
            slack_webhook_url=webhook.url("/traced"),
            smtp_url=None,
            extra_env={
                "KIZASHI_OTLP_ENDPOINT": otlp.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            },
        )
        try:
            yield running, otlp
        finally:
            code = await asyncio.to_thread(running.stop)
            assert code == 0, f"kizashi up exited with {code}:\n{running.log()}"
    finally:
        await asyncio.to_thread(broker.stop)
        await otlp.stop()
        with contextlib.suppress(Exception):
            await infra._drop_database(database_url, database)


async def test_one_alerts_trace_spans_ingest_scoring_triggers_and_notifier(traced, webhook):
    stack, otlp = traced
    account = f"traced-{uuid.uuid4().hex[:8]}"
    await stack.post_events(
        [
            {
                "type": "account_update",
                "account_id": account,
                "event_id": uuid.uuid4().hex,
                "name": f"Traced {account}",
                "owner_slack": "@ana",
            }
        ]
    )

    async def facts_applied():
        response = await stack.get("scoring", f"/v1/accounts/{account}")
        return response.status_code == 200

    await stack.wait_for(facts_applied)
    survey = {
        "type": "survey_response",
        "account_id": account,
        "event_id": uuid.uuid4().hex,
        "survey_id": "q4",
        "nps": 2,
    }
    await stack.post_events([survey])

    async def slack_message():
        return [r for r in webhook.requests_to("/traced") if account in r.body.decode()]

    await stack.wait_for(slack_message)

    def alert_trace():
        for trace_id, spans in otlp.traces().items():
            if alert_stamps(spans, account) is not None:
                return trace_id, spans
        return None

    async def whole_trace():
        return alert_trace()

    trace_id, spans = await stack.wait_for(whole_trace)
    assert otlp.bad_requests == 0

    # Every span of the alert's path is in this one trace, and all four services made them.
    assert sorted({s.service for s in spans} & set(SERVICES)) == sorted(SERVICES)
    by_id = {s.span_id: s for s in spans}
    # The Slack message (the email, with no SMTP server here, fails: a span of its own).
    send = next(
        s for s in spans if s.name == "notifier send" and s.attributes["kizashi.channel"] == "slack"
    )
    chain = [send]
    while chain[-1].parent_span_id in by_id:
        chain.append(by_id[chain[-1].parent_span_id])
    chain.reverse()
    # ingest's request, then each service's span the child of the one before.
    assert [(s.service, s.name) for s in chain] == [
        ("kizashi-ingest", "POST /v1/events"),
        ("kizashi-scoring", "scoring publish"),
        ("kizashi-triggers", "triggers signal"),
        ("kizashi-notifier", "notifier route"),
        ("kizashi-notifier", "notifier send"),
    ]
    assert chain[1].attributes["kizashi.account_id"] == account
    assert chain[2].attributes["kizashi.rule"] == "detractor"
    assert chain[4].attributes["kizashi.outcome"] == "ok"
    starts = [s.start_ns for s in chain]
    assert starts == sorted(starts), "each hop starts after the one before it"
    assert all(s.end_ns >= s.start_ns for s in chain)
    # The hop timestamps the bench reads. Only causal orders are asserted: each service
    # publishes before it commits, so a read may come before the commit that published it.
    stamps = alert_stamps(spans, account)
    assert stamps is not None and list(stamps) == list(STAMPS)
    assert stamps["triggers read"] <= stamps["signal committed"]
    assert stamps["notifier read"] <= stamps["row committed"] <= stamps["message sent"]

    # Each consumer's batch span (a trace of its own) links to the records' trace.
    async def batches_linked():
        linked = {
            s.service for s in otlp.spans if s.name.endswith(" process") and trace_id in s.links
        }
        return linked >= {"kizashi-scoring", "kizashi-triggers", "kizashi-notifier"}

    await stack.wait_for(batches_linked)
