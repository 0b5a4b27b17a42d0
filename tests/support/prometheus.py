"""Prometheus for the tests: the real tools (Debian's `prometheus` package, installed by
deploy/install-test-tools.sh), the metric names the code exports, and a real server."""

import importlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY

from kizashi.tools.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRICS_MODULES = (
    "kizashi.runtime.metrics",
    "kizashi.ingest.metrics",
    "kizashi.scoring.metrics",
    "kizashi.triggers.metrics",
    "kizashi.notifier.metrics",
    "kizashi.console.metrics",
)
METRIC_NAME = re.compile(r"\bkizashi_[a-z0-9_]+\b")


def tool(name: str) -> str:
    """The path of a Prometheus tool; fails (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed: run deploy/install-test-tools.sh "
            "(Debian's prometheus package provides prometheus and promtool)",
            pytrace=False,
        )
    return path


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [tool("promtool"), *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def kizashi_metrics() -> dict[str, object]:
    """Every kizashi_ metric the code defines, by its base name (as `collect()` reports it)."""
    for module in METRICS_MODULES:
        importlib.import_module(module)
    return {m.name: m for m in REGISTRY.collect() if m.name.startswith("kizashi_")}


def exported_series_names() -> set[str]:
    """The series names a scrape can hold: counters' _total, histograms' _bucket/_sum/_count."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names = set()
    for name, metric in kizashi_metrics().items():
        names.update(name + suffix for suffix in suffixes[metric.type])
    return names


def metric_names_in(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


@contextmanager
def prometheus_server(workdir: Path, scrape_config: dict) -> Iterator[str]:
    """A real `prometheus` on a free port with this config; yields its base URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config, sort_keys=False))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {process.returncode}:\n"
                    + (workdir / "prometheus.log").read_text(errors="replace")
                )
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus did not become ready in 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
