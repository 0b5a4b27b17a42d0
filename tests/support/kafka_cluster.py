"""A real Apache Kafka 4.x cluster for the tests: three KRaft nodes, each broker and
controller at once, on free loopback ports, from the jars that `deploy/install-test-tools.sh`
put in the tools cache (`$KIZASHI_TOOLS_DIR`, else ~/.cache/kizashi-tools).

Topics and the internal topics (consumer offsets, transaction state) are replicated three
times with `min.insync.replicas=2`, so one node may be stopped, killed or paused while the
cluster keeps accepting `acks=all` writes. Each node writes `server.log` (log4j) and
`stdout.log` in its own folder under the workdir: the first place to look when a case fails.

    cluster = KafkaCluster(workdir / "kafka")
    cluster.start()              # formats the storage, starts three JVMs, waits for 3 brokers
    cluster.kill(2)              # SIGKILL node 2; cluster.start_node(2) brings it back
    cluster.pause(3); cluster.resume(3)   # SIGSTOP / SIGCONT
    cluster.stop()               # every node, SIGTERM then SIGKILL
"""

import asyncio
import atexit
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kizashi.tools.embedded import free_port
from kizashi.tools.localkafka import LOG4J2 as LOCAL_LOG4J2
from kizashi.tools.localkafka import new_cluster_id, tools_dir

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "deploy" / "install-test-tools.sh"
NODES = 3
HEAP = "-Xmx512m"


class KafkaUnavailable(RuntimeError):
    """The jars or java are missing: the Kafka runs cannot happen on this machine."""


def kafka_version() -> str:
    """The one version the install script fetches (its `KAFKA_VERSION=` line)."""
    match = re.search(r"^KAFKA_VERSION=([\w.\-]+)", INSTALL_SCRIPT.read_text(), re.M)
    assert match, f"no KAFKA_VERSION= line in {INSTALL_SCRIPT}"
    return match.group(1)


def kafka_lib() -> Path:
    """The folder of jars for `java -cp '<lib>/*'`; KafkaUnavailable when not installed."""
    lib = tools_dir() / f"kafka-{kafka_version()}" / "lib"
    if not shutil.which("java"):
        raise KafkaUnavailable("java is not installed (see deploy/install-test-tools.sh)")
    if not (lib / f"kafka_2.13-{kafka_version()}.jar").is_file():
        raise KafkaUnavailable(
            f"Apache Kafka {kafka_version()} is not in {lib}: run sh deploy/install-test-tools.sh"
        )
    return lib


# The local node's log setup, with the chattiest loggers turned down for the test logs.
LOG4J2 = (
    LOCAL_LOG4J2
    + """\
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""
)


@dataclass
class KafkaNode:
    node_id: int
    folder: Path
    port: int
    controller_port: int
    process: subprocess.Popen | None = None
    log_offset: int = 0  # server.log's size when this process started

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties(self) -> Path:
        return self.folder / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def started(self) -> bool:
        """This process logged that it is up: caught up with the metadata and unfenced."""
        if not self.running() or not self.log_path.exists():
            return False
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return b"Kafka Server started" in log.read()


@dataclass
class KafkaCluster:
    workdir: Path
    size: int = NODES
    cluster_id: str = ""
    nodes: list[KafkaNode] = field(default_factory=list)

    flavour = "kafka"  # what KIZASHI_KAFKA_FLAVOUR the services on it may be told

    def __post_init__(self) -> None:
        self.lib = kafka_lib()
        if not self.nodes:
            self.nodes = [
                KafkaNode(n, self.workdir / f"node-{n}", free_port(), free_port())
                for n in range(1, self.size + 1)
            ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 90) -> None:
        """Format every node's storage (first start only), start them all, and wait until the
        metadata lists every broker and the offsets topic is fully replicated."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        atexit.register(self._kill_all)
        if not self.cluster_id:
            self.cluster_id = new_cluster_id()
            (self.workdir / "log4j2.properties").write_text(LOG4J2)
            self._write_configs()
            self._format_all()
        for node in self.nodes:
            self._launch(node)
        self.wait_ready(timeout_s)

    def stop(self) -> None:
        """Every node: SIGTERM (a clean shutdown), SIGKILL after 20 s."""
        for node in self.nodes:
            self._signal(node, signal.SIGCONT)  # a paused node cannot shut down
            self._signal(node, signal.SIGTERM)
        for node in self.nodes:
            self._reap(node, 20)
        atexit.unregister(self._kill_all)

    def close(self) -> None:
        """The end of a session: SIGKILL every node (its data is thrown away anyway)."""
        self._kill_all()
        for node in self.nodes:
            self._reap(node, 10)
        atexit.unregister(self._kill_all)

    def restart(self, timeout_s: float = 90) -> None:
        """Stop every node and start them again on the same ports and logs."""
        self.stop()
        self.start(timeout_s)

    def stop_node(self, node_id: int, timeout_s: float = 20) -> None:
        node = self.node(node_id)
        self._signal(node, signal.SIGCONT)
        self._signal(node, signal.SIGTERM)
        self._reap(node, timeout_s)

    def kill(self, node_id: int) -> None:
        node = self.node(node_id)
        self._signal(node, signal.SIGKILL)
        self._reap(node, 10)

    def pause(self, node_id: int) -> None:
        self._signal(self.node(node_id), signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self._signal(self.node(node_id), signal.SIGCONT)

    def start_node(self, node_id: int, timeout_s: float = 60) -> None:
        """Start a stopped or killed node again and wait until the cluster has all brokers."""
        node = self.node(node_id)
        assert not node.running(), f"node {node_id} is running"
        self._launch(node)
        self.wait_ready(timeout_s)

    def restart_node(self, node_id: int, timeout_s: float = 60) -> None:
        self.stop_node(node_id)
        self.start_node(node_id, timeout_s)

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(
                        f"Kafka node {node.node_id} exited with {node.process.returncode}:\n"
                        + self.log_tail(node.node_id)
                    )
            ready, last = asyncio.run(self._probe())
            if ready:
                return
            time.sleep(0.3)
        raise TimeoutError(
            f"the Kafka cluster was not ready within {timeout_s}s ({last}):\n"
            + "\n".join(self.log_tail(n.node_id) for n in self.nodes)
        )

    def log_tail(self, node_id: int, lines: int = 40) -> str:
        node = self.node(node_id)
        text = ""
        for path in (node.log_path, node.folder / "stdout.log"):
            if path.exists():
                text += (
                    f"--- {path}\n"
                    + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                    + "\n"
                )
        return text

    # --- internals -------------------------------------------------------------------------

    async def _probe(self) -> tuple[bool, str]:
        """Every running node says it started, and the metadata lists exactly those brokers."""
        from aiokafka.admin import AIOKafkaAdminClient

        waiting = [n.node_id for n in self.nodes if n.running() and not n.started()]
        if waiting:
            return False, f"nodes {waiting} starting"
        live = [n.address for n in self.nodes if n.running()]
        if not live:
            return False, "no node running"
        admin = AIOKafkaAdminClient(bootstrap_servers=",".join(live), request_timeout_ms=3000)
        try:
            async with asyncio.timeout(5):
                await admin.start()
                cluster = await admin.describe_cluster()
        except Exception as error:  # not up yet, whatever the reason
            return False, f"{type(error).__name__}: {error}"
        finally:
            try:
                await admin.close()
            except Exception:
                pass
        listed = sorted(b["node_id"] for b in cluster["brokers"])
        wanted = [n.node_id for n in self.nodes if n.running()]
        return listed == wanted, f"brokers {listed} in the metadata, {wanted} running"

    def _java(self, node: KafkaNode | None, main: str, *args: str) -> list[str]:
        logs = node.folder if node else self.workdir
        return [
            "java",
            HEAP,
            "-Xms128m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # C1 only: far less JIT work on a small, busy machine
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={logs}",
            "-cp",
            f"{self.lib}/*",
            main,
            *args,
        ]

    def _write_configs(self) -> None:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replicas = min(3, self.size)
        min_isr = min(2, replicas)
        for node in self.nodes:
            node.folder.mkdir(parents=True, exist_ok=True)
            node.properties.write_text(
                "\n".join(
                    [
                        "process.roles=broker,controller",
                        f"node.id={node.node_id}",
                        f"controller.quorum.voters={voters}",
                        f"listeners=PLAINTEXT://{node.address},"
                        f"CONTROLLER://127.0.0.1:{node.controller_port}",
                        f"advertised.listeners=PLAINTEXT://{node.address}",
                        "controller.listener.names=CONTROLLER",
                        "inter.broker.listener.name=PLAINTEXT",
                        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                        f"log.dirs={node.folder / 'data'}",
                        # Every topic, and the internal ones, on three nodes; a write needs two.
                        "num.partitions=4",
                        f"default.replication.factor={replicas}",
                        f"min.insync.replicas={min_isr}",
                        f"offsets.topic.replication.factor={replicas}",
                        "offsets.topic.num.partitions=10",
                        f"transaction.state.log.replication.factor={replicas}",
                        f"transaction.state.log.min.isr={min_isr}",
                        "transaction.state.log.num.partitions=10",
                        f"share.coordinator.state.topic.replication.factor={replicas}",
                        f"share.coordinator.state.topic.min.isr={min_isr}",
                        "unclean.leader.election.enable=false",
                        # Fast tests on two shared cores.
                        "group.initial.rebalance.delay.ms=0",
                        "num.network.threads=2",
                        "num.io.threads=2",
                        "background.threads=2",
                        "num.recovery.threads.per.data.dir=1",
                        "log.cleaner.threads=1",
                        "replica.lag.time.max.ms=10000",
                        # A killed node is fenced (its partitions led elsewhere) within 6 s.
                        "broker.session.timeout.ms=6000",
                        "broker.heartbeat.interval.ms=1000",
                        "controlled.shutdown.enable=true",
                        "",
                    ]
                )
            )

    def _format_all(self) -> None:
        formats = [
            subprocess.Popen(
                self._java(
                    node,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    self.cluster_id,
                    "-c",
                    str(node.properties),
                ),
                stdout=(node.folder / "format.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for node in self.nodes
        ]
        for node, process in zip(self.nodes, formats, strict=True):
            if process.wait(timeout=60) != 0:
                raise RuntimeError(
                    f"formatting Kafka node {node.node_id} failed:\n"
                    + (node.folder / "format.log").read_text(errors="replace")
                )

    def _launch(self, node: KafkaNode) -> None:
        node.log_offset = node.log_path.stat().st_size if node.log_path.exists() else 0
        stdout = (node.folder / "stdout.log").open("ab")
        node.process = subprocess.Popen(
            self._java(node, "kafka.Kafka", str(node.properties)),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stdout.close()

    @staticmethod
    def _signal(node: KafkaNode, signum: int) -> None:
        if node.running():
            assert node.process is not None
            try:
                node.process.send_signal(signum)
            except ProcessLookupError:
                pass

    @staticmethod
    def _reap(node: KafkaNode, timeout_s: float) -> None:
        if node.process is None:
            return
        try:
            node.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
        node.process = None  # down on purpose (a node that dies by itself keeps its process)

    def _kill_all(self) -> None:
        for node in self.nodes:
            self._signal(node, signal.SIGCONT)
            self._signal(node, signal.SIGKILL)
