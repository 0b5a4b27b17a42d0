"""`kizashi up --broker kafka`: a single-node Apache Kafka (KRaft: broker and controller in one
JVM) instead of the embedded Tansu, with its log on disk under the data folder, so that what
it acknowledged survives a stop or a crash: a durable install on one machine without Docker.

It runs from the jars that `deploy/install-test-tools.sh` fetches with Maven into the tools
cache (`$KIZASHI_TOOLS_DIR`, else ~/.cache/kizashi-tools), and needs Java 17 or later.
"""

import base64
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kizashi.tools.embedded import _stop, _wait_for_port, free_port

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""


class KafkaNotInstalled(RuntimeError):
    """Java or the Kafka jars are missing; the message says how to get them."""


def tools_dir() -> Path:
    return Path(os.environ.get("KIZASHI_TOOLS_DIR") or Path.home() / ".cache" / "kizashi-tools")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def kafka_lib() -> Path:
    """The newest `kafka-<version>/lib` in the tools cache (for `java -cp '<lib>/*'`)."""
    if not shutil.which("java"):
        raise KafkaNotInstalled("`--broker kafka` needs Java 17 or later (`java` is not found)")
    libs = sorted(tools_dir().glob("kafka-*/lib"), key=_version_key)
    libs = [lib for lib in libs if any(lib.glob("kafka_2.13-*.jar"))]
    if not libs:
        raise KafkaNotInstalled(
            f"`--broker kafka` needs Apache Kafka's jars in {tools_dir()}: run "
            "`sh deploy/install-test-tools.sh` (it fetches them with Maven)"
        )
    return libs[-1]


@dataclass
class LocalKafka:
    """One KRaft node on 127.0.0.1:`port`, its data in `<data dir>/kafka`."""

    data_dir: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def folder(self) -> Path:
        return self.data_dir / "kafka"

    def start(self, timeout_s: float = 120) -> None:
        lib = kafka_lib()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "log4j2.properties").write_text(LOG4J2)
        properties = self._write_properties()
        if not (self.folder / "data" / "meta.properties").exists():
            cluster_id = new_cluster_id()
            subprocess.run(
                [*self._java(lib), "kafka.tools.StorageTool", "format", "-t", cluster_id]
                + ["-c", str(properties)],
                check=True,
                capture_output=True,
                timeout=120,
            )
        server_log = self.folder / "server.log"
        offset = server_log.stat().st_size if server_log.exists() else 0
        stdout = (self.folder / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            [*self._java(lib), "kafka.Kafka", str(properties)],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stdout.close()
        _wait_for_port(self.port, self.process, "Apache Kafka", timeout_s)
        deadline = time.monotonic() + timeout_s
        while b"Kafka Server started" not in _read_from(server_log, offset):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Apache Kafka did not start; see {server_log}")
            time.sleep(0.2)

    def stop(self) -> None:
        # SIGTERM is Kafka's controlled shutdown: it flushes and closes its log.
        _stop(self.process, signal.SIGTERM, timeout_s=60)

    def _controller_port(self) -> int:
        """Chosen once and kept: the controller's address is part of the quorum's state."""
        saved = self.folder / "controller.port"
        if not saved.exists():
            saved.write_text(str(free_port()))
        return int(saved.read_text())

    def _write_properties(self) -> Path:
        controller = f"127.0.0.1:{self._controller_port()}"
        path = self.folder / "server.properties"
        path.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{controller}",
                    f"listeners=PLAINTEXT://{self.bootstrap_servers},CONTROLLER://{controller}",
                    f"advertised.listeners=PLAINTEXT://{self.bootstrap_servers}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.folder / 'data'}",
                    "num.partitions=4",
                    "default.replication.factor=1",
                    "min.insync.replicas=1",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        return path

    def _java(self, lib: Path) -> list[str]:
        return [
            "java",
            "-Xmx512m",
            "-Xms128m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.folder / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.folder}",
            "-cp",
            f"{lib}/*",
        ]


def _read_from(path: Path, offset: int) -> bytes:
    if not path.exists():
        return b""
    with path.open("rb") as log:
        log.seek(offset)
        return log.read()


def new_cluster_id() -> str:
    """A random cluster id in Kafka's form (base64 of a UUID, 22 characters), never starting
    with "-": kafka-storage would read `-t -abc…` as an option (1 id in 64; Kafka's own
    Uuid.randomUuid skips them too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
