"""deploy/prometheus: the scrape config and alert rules pass promtool's checks, the rules'
unit tests pass, and every metric they name is one the code exports."""

import yaml

from kizashi.runtime.settings import SERVICE_PORTS
from tests.support.prometheus import DEPLOY, exported_series_names, metric_names_in, promtool

PROMETHEUS = DEPLOY / "prometheus"


def test_promtool_check_config_and_rules():
    promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    output = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert "SUCCESS" in output


def test_alert_rules_unit_tests_pass():
    output = promtool("test", "rules", "alerts.test.yml", cwd=PROMETHEUS)
    assert "SUCCESS" in output


def test_every_alert_has_a_unit_test():
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested
    assert {
        "KizashiServiceDown",
        "KizashiConsumerLagGrowing",
        "KizashiDeadLetters",
        "KizashiDeliveryFailures",
        "KizashiIngestErrors",
        "KizashiIngestBrokerUnavailable",
        "KizashiEndToEndLatencySlow",
    } <= alerts


def test_rules_name_only_exported_metrics():
    text = (PROMETHEUS / "alerts.yml").read_text()
    named = metric_names_in(text)
    assert named, "no kizashi_ metric in the rules?"
    assert named <= exported_series_names(), named - exported_series_names()


def test_scrape_config_covers_the_four_services_with_component_labels():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "kizashi"]
    targets = {group["labels"]["component"]: group["targets"] for group in job["static_configs"]}
    assert targets == {name: [f"{name}:{port}"] for name, port in SERVICE_PORTS.items()}
    # `service` is the services' own label; a target label of that name would rename it.
    assert all("service" not in group["labels"] for group in job["static_configs"])
    assert config["rule_files"] == ["alerts.yml"]
