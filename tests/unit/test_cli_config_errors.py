"""A bad config file stops `kizashi serve` and `kizashi up` at start-up with a message naming
the file, the key and the problem: no traceback, and `up` starts nothing (no embedded server,
no service restarting in a loop)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kizashi.tools.embedded import free_port

# One broken file per service, each with the line its error must say.
BROKEN = {
    "scoring": ("scoring.yaml", "version: x\n", "scoring.yaml: cs: required key is missing"),
    "triggers": ("rules.yaml", "rules:\n  detractor:\n    colour: red\n", "detractor.colour"),
    "notifier": ("routing.yaml", "receivers: 3\n", "receivers"),
    "ingest": ("segment.yaml", "accounts: [1\n", "not valid YAML"),
}


def _run(
    args: list[str], config_dir: Path, data_dir: Path, *, servers: bool = True
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIZASHI_")}
    env.update(
        KIZASHI_CONFIG_DIR=str(config_dir),
        KIZASHI_DATA_DIR=str(data_dir),
        KIZASHI_API_TOKEN="t" * 32,
        KIZASHI_INGEST_KEYS="k" * 32,
        **{f"KIZASHI_{s}_PORT": str(free_port()) for s in BROKEN},
    )
    if servers:
        # Nothing listens there: a service that got past its config would fail differently.
        env.update(
            KIZASHI_DATABASE_URL=f"postgresql://127.0.0.1:{free_port()}/none",
            KIZASHI_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        )
    return subprocess.run(
        [sys.executable, "-m", "kizashi.tools.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("service", sorted(BROKEN))
def test_serve_stops_on_a_bad_file_with_one_line(service: str, tmp_path: Path) -> None:
    file_name, text, said = BROKEN[service]
    (tmp_path / file_name).write_text(text, encoding="utf-8")
    result = _run(["serve", service], tmp_path, tmp_path / "data")
    assert result.returncode == 2, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("kizashi: ") and file_name in first, result.stderr
    assert said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_up_checks_every_file_before_starting_anything(tmp_path: Path) -> None:
    # routing.yaml is the last file checked; nothing configured, so `up` would start an
    # embedded PostgreSQL and broker in the data folder if it got past the check.
    file_name, text, said = BROKEN["notifier"]
    (tmp_path / file_name).write_text(text, encoding="utf-8")
    data_dir = tmp_path / "data"
    result = _run(["up"], tmp_path, data_dir, servers=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr  # one message, no warnings
    assert result.stderr.startswith(f"kizashi: {tmp_path / file_name}: ") and said in result.stderr
    assert "starting" not in result.stdout  # no embedded server, no service
    assert not data_dir.exists() or not any(data_dir.iterdir())


@pytest.mark.parametrize("command", [["serve", "ingest"], ["up"]])
def test_a_bad_phases_yaml_stops_ingest_and_up(command: list[str], tmp_path: Path) -> None:
    (tmp_path / "phases.yaml").write_text("phases:\n  - {phase: 1, name: A}\n")
    result = _run(command, tmp_path, tmp_path / "data", servers=command != ["up"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (
        f"kizashi: {tmp_path / 'phases.yaml'}: phases: "
        "must be numbered 0, 1, 2, … in order, got [1]\n"
    )
    assert "starting" not in result.stdout


@pytest.mark.parametrize("command", [["serve", "ingest"], ["up"]])
def test_a_bad_observations_yaml_stops_ingest_and_up(command: list[str], tmp_path: Path) -> None:
    (tmp_path / "observations.yaml").write_text("kinds:\n  site_visit: {label: Visit}\n")
    result = _run(command, tmp_path, tmp_path / "data", servers=command != ["up"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(
        f"kizashi: {tmp_path / 'observations.yaml'}: kinds: 'site_visit' is not a built-in kind"
    ), result.stderr
    assert "starting" not in result.stdout


def test_a_custom_rules_file_is_named_by_its_path(tmp_path: Path) -> None:
    file_name, text, said = BROKEN["triggers"]
    (tmp_path / file_name).write_text(text, encoding="utf-8")
    result = _run(["up"], tmp_path, tmp_path / "data")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == f"kizashi: {tmp_path / file_name}: rules.{said}: unknown key\n"
