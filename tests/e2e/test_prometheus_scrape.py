"""A real Prometheus scrapes the running stack: after the demo's stories, the key series have
moved, as seen through Prometheus's HTTP API; every live /metrics passes promtool; the alert
rules load in the real server."""

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from kizashi.tools.demo import story_events
from tests.support.prometheus import DEPLOY, prometheus_server, promtool

pytestmark = pytest.mark.e2e

KEY_SERIES = {
    "accepted": "sum(kizashi_ingest_events_accepted_total)",
    "consumed": 'sum(kizashi_consumer_records_total{service="scoring"})',
    "score_updates": "sum(kizashi_scoring_score_updates_total)",
    "signals_fired": "sum(kizashi_triggers_signals_fired_total)",
    "delivered": 'sum(kizashi_notifier_deliveries_total{outcome="sent"})',
    "latency_observed": "sum(kizashi_end_to_end_latency_seconds_count)",
}


def _scrape_config(urls: dict[str, str]) -> dict:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
        "scrape_configs": [
            {
                "job_name": "kizashi",
                "static_configs": [
                    {"targets": [url.removeprefix("http://")], "labels": {"component": name}}
                    for name, url in urls.items()
                ],
            }
        ],
    }


async def _query(client: httpx.AsyncClient, expr: str) -> list[dict]:
    response = await client.get("/api/v1/query", params={"query": expr})
    assert response.status_code == 200, response.text
    return response.json()["data"]["result"]


async def _value(client: httpx.AsyncClient, expr: str) -> float:
    result = await _query(client, f"({expr}) or vector(0)")
    return float(result[0]["value"][1])


def _renamed(events: list[dict], suffix: str) -> list[dict]:
    """Fresh account ids, so that no earlier test's cooldown holds this run's signals back."""
    return [{**e, "account_id": f"{e['account_id']}-{suffix}"} for e in events]


async def test_prometheus_sees_the_pipeline_move(stack, tmp_path):
    for name, url in stack.urls.items():
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"{url}/metrics")).text
        assert "kizashi_http_requests_total" in text or name != "ingest"
        promtool("check", "metrics", stdin=text)

    with prometheus_server(tmp_path / "prometheus", _scrape_config(stack.urls)) as prometheus:
        async with httpx.AsyncClient(base_url=prometheus, timeout=10) as client:

            async def all_up():
                series = await _query(client, 'up{job="kizashi"} == 1')
                return {s["metric"]["component"] for s in series} == set(stack.urls)

            await stack.wait_for(all_up, within=60)
            before = {key: await _value(client, expr) for key, expr in KEY_SERIES.items()}

            suffix = uuid.uuid4().hex[:8]
            history, news = story_events(datetime.now(UTC))
            history, news = _renamed(history, suffix), _renamed(news, suffix)
            for start in range(0, len(history), 500):
                await stack.post_events(history[start : start + 500])

            async def history_scored():
                response = await stack.get("scoring", f"/v1/accounts/globex-{suffix}")
                return response.status_code == 200

            await stack.wait_for(history_scored, within=90)
            await stack.post_events(news)
            sent = len(history) + len(news)

            seen: dict[str, float] = {}

            async def moved():
                now = {key: await _value(client, expr) for key, expr in KEY_SERIES.items()}
                grown = {key: now[key] - before[key] for key in now}
                seen.update(grown)
                done = (
                    grown["accepted"] >= sent
                    and grown["consumed"] >= sent
                    and all(grown[key] > 0 for key in grown)
                )
                return grown if done else None

            try:
                grown = await stack.wait_for(moved, within=120, interval=1)
            except AssertionError as error:
                raise AssertionError(f"sent {sent} events; series grew by {seen}") from error
            assert grown["score_updates"] >= 3  # three accounts at least

            async def segments_reported():
                series = await _query(client, "kizashi_scoring_accounts")
                sizes = {s["metric"]["segment"]: float(s["value"][1]) for s in series}
                return sizes if sum(sizes.values()) >= 3 else None

            sizes = await stack.wait_for(segments_reported, within=60, interval=1)
            assert set(sizes) == {"expand", "recover", "nurture", "at_risk", "insufficient_data"}

            lag = await _query(client, 'kizashi_consumer_lag_records{service="scoring"}')
            assert lag and {"topic", "partition"} <= set(lag[0]["metric"])
            routes = await _query(
                client, 'kizashi_http_requests_total{service="ingest",route="/v1/events"}'
            )
            assert {s["metric"]["status"] for s in routes} >= {"202"}

            # Both sweeps run on the stack's 1 s interval (the silence and inactivity paths),
            # each run succeeding: a sweep that failed every time would fire
            # KizashiPeriodicTaskStale.
            sweeps = await _query(client, 'kizashi_periodic_task_runs_total{task="sweep"} > 0')
            ran = {(s["metric"]["service"], s["metric"]["outcome"]) for s in sweeps}
            assert ran == {("scoring", "ok"), ("triggers", "ok")}, ran
            fresh = await _query(
                client, "time() - kizashi_periodic_task_last_success_timestamp_seconds < 60"
            )
            assert {s["metric"]["task"] for s in fresh} >= {"sweep", "segment-sizes"}

            rules = (await client.get("/api/v1/rules")).json()["data"]["groups"]
            loaded = {rule["name"]: rule["health"] for g in rules for rule in g["rules"]}
            assert "KizashiServiceDown" in loaded and set(loaded.values()) == {"ok"}, loaded
            firing = await _query(client, 'ALERTS{alertname="KizashiServiceDown"}')
            assert firing == []
