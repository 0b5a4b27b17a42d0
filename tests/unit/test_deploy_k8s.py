"""deploy/k8s (Kustomize): probes, resources, ports, settings and Secret references match the
code; the build (`kubectl kustomize`) resolves the generated ConfigMap."""

import shutil
import subprocess

import pytest
import yaml

from kizashi.runtime.settings import SERVICE_PORTS
from kizashi.tools.cli import build_parser
from tests.support.prometheus import DEPLOY
from tests.support.settings import read_by, read_by_any_service

K8S = DEPLOY / "k8s"
SECRET_KEYS = {"database-url", "ingest-keys", "console-ingest-key", "api-token",
               "action-secret", "action-secret-previous", "slack-webhook-url",
               "smtp-url", "webhook-url", "webhook-secret"}  # fmt: skip


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _resources() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        path = K8S / resource
        if path.is_file():
            docs += _docs(resource)
    return docs


def _of_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _resources() if d["kind"] == kind}


def _check_env(container: dict, process: str) -> None:
    """Each variable set on the container is one that process reads (its own settings class)."""
    known = read_by(process)
    for item in container.get("env", []):
        assert item["name"] in known, f"{process}: {item['name']}"
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "kizashi-secrets" and ref["key"] in SECRET_KEYS


@pytest.mark.parametrize("name", SERVICE_PORTS)
def test_deployment(name):
    deployment = _of_kind("Deployment")[f"kizashi-{name}"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser(container["args"]).parse_args(container["args"])
    assert (args.command, args.service) == ("serve", name)
    assert container["ports"] == [{"name": "http", "containerPort": SERVICE_PORTS[name]}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    _check_env(container, name)
    secrets = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]}
    assert "database-url" in secrets
    assert ("ingest-keys" in secrets) == (name == "ingest"), "only ingest holds the ingest keys"
    # The console holds its one key, for the observations it sends to ingest.
    assert ("console-ingest-key" in secrets) == (name == "console")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "kizashi-config"
    settings = _of_kind("ConfigMap")["kizashi-settings"]["data"]
    assert mounts["config"] == settings["KIZASHI_CONFIG_DIR"]
    assert settings["KIZASHI_HOST"] == "0.0.0.0"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(SERVICE_PORTS[name])
    service = _of_kind("Service")[f"kizashi-{name}"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == SERVICE_PORTS[name]


def test_settings_configmap_names_are_settings():
    # One ConfigMap for the four services: each variable is read by at least one of them.
    known = read_by_any_service()
    for variable in _of_kind("ConfigMap")["kizashi-settings"]["data"]:
        assert variable in known, variable


def test_migrations_job_and_ingest_autoscaler():
    (container,) = _of_kind("Job")["kizashi-migrate"]["spec"]["template"]["spec"]["containers"]
    assert build_parser(container["args"]).parse_args(container["args"]).command == "migrate"
    _check_env(container, "migrate")
    hpa = _of_kind("HorizontalPodAutoscaler")["kizashi-ingest"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "kizashi-ingest"
    assert hpa["spec"]["minReplicas"] >= 2


def test_example_secret_has_every_referenced_key():
    (secret,) = _docs("secret.example.yaml")
    assert set(secret["stringData"]) == SECRET_KEYS


def test_prometheus_scrape_job_labels_match_the_alerts():
    (job,) = yaml.safe_load((K8S / "prometheus-scrape.yml").read_text())["scrape_configs"]
    assert job["job_name"] == "kizashi"
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert "component" in targets and "service" not in targets


def test_kustomize_build_resolves_the_generated_config():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the file checks above still ran")
    built = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    (config,) = [d for d in docs if d["metadata"]["name"].startswith("kizashi-config-")]
    assert set(config["data"]) == {
        "scoring.yaml",
        "rules.yaml",
        "routing.yaml",
        "segment.yaml",
        "phases.yaml",
        "observations.yaml",
    }
    for doc in docs:
        if doc["kind"] == "Deployment":
            assert doc["metadata"]["namespace"] == "kizashi"
            volumes = doc["spec"]["template"]["spec"]["volumes"]
            assert {"name": "config", "configMap": {"name": config["metadata"]["name"]}} in volumes
