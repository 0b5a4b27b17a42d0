"""deploy/grafana: the provisioned dashboard queries only metrics the code exports, with
PromQL that parses, through the provisioned datasource."""

import json
import re

import yaml

from tests.support.prometheus import DEPLOY, exported_series_names, metric_names_in, promtool

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "kizashi.json"


def _queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_every_metric_in_the_dashboard_is_exported():
    queries = _queries()
    named = set().union(*(metric_names_in(expr) for _, expr in queries))
    missing = named - exported_series_names()
    assert not missing, f"the dashboard queries metrics nobody exports: {sorted(missing)}"
    # The panels: ingest, pipeline latency, lag, signals, deliveries, segment sizes.
    for needed in (
        "kizashi_ingest_events_accepted_total",
        "kizashi_ingest_events_rejected_total",
        "kizashi_end_to_end_latency_seconds_bucket",
        "kizashi_consumer_lag_records",
        "kizashi_triggers_signals_fired_total",
        "kizashi_notifier_deliveries_total",
        "kizashi_notifier_deliveries_failed_total",
        "kizashi_scoring_accounts",
    ):
        assert needed in named, needed


def test_every_query_is_valid_promql(tmp_path):
    """promtool parses each expression as a recording rule (Grafana's $__rate_interval → 1m)."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:query_{i}",
                        "expr": expr.replace("$__rate_interval", "1m"),
                    }
                    for i, (_, expr) in enumerate(_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    promtool("check", "rules", str(path))


def test_panels_use_the_provisioned_datasource_and_provider_path():
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/kizashi.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert not [e for _, e in _queries() if re.search(r"account_id", e)], "no per-account queries"
