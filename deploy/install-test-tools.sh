#!/bin/sh
# Installs what the tests need when it is missing:
#  - Prometheus and promtool (deploy and monitoring tests), from Debian's `prometheus` package.
#    Its system service is NOT started: the tests run their own prometheus on a free port.
#  - Debian's `chromium`, which the console's end-to-end tests drive through Playwright (no
#    browser is ever downloaded), and a Japanese font (fonts-ipafont-gothic) for the 兆し in
#    the console's header on the README's screenshots.
#  - Apache Kafka (the end-to-end and fault suites run on a three-node cluster as well as on
#    the embedded broker): the kafka_2.13 artifact and its runtime dependencies, fetched with
#    Maven into a cache outside the repository, $KIZASHI_TOOLS_DIR/kafka-<version>/lib
#    (default ~/.cache/kizashi-tools). Skipped, loudly, when java or mvn is missing; the test
#    run then says that its Kafka runs were skipped.
set -eu

# tests/support/kafka_cluster.py reads this line.
KAFKA_VERSION=4.1.1
LOG4J_VERSION=2.24.3
SLF4J_VERSION=2.0.17

install_apt_packages() {
    packages=""
    if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
        packages="prometheus"
    fi
    if [ ! -x /usr/bin/chromium ]; then
        packages="$packages chromium"
    fi
    if ! dpkg-query -W -f '${Status}' fonts-ipafont-gothic 2>/dev/null | grep -q "ok installed"; then
        packages="$packages fonts-ipafont-gothic"
    fi
    if [ -z "$packages" ]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-tools: no apt-get; install these yourself: $packages" >&2
        exit 1
    fi

    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi

    # policy-rc.d answering 101 keeps the package's service from starting (invoke-rc.d and
    # deb-systemd-invoke both honour it); an existing policy is left alone.
    POLICY=/usr/sbin/policy-rc.d
    CREATED_POLICY=""
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
        $SUDO chmod 755 "$POLICY"
        CREATED_POLICY=1
    fi

    $SUDO apt-get update -qq
    status=0
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $packages \
        || status=$?
    if [ -n "$CREATED_POLICY" ]; then
        $SUDO rm -f "$POLICY"
    fi
    [ "$status" -eq 0 ] || exit "$status"

    command -v prometheus >/dev/null && command -v promtool >/dev/null && [ -x /usr/bin/chromium ]
    echo "install-test-tools: $(prometheus --version 2>&1 | head -n 1); $(/usr/bin/chromium --version 2>/dev/null)"
}

install_kafka() {
    tools="${KIZASHI_TOOLS_DIR:-$HOME/.cache/kizashi-tools}"
    home="$tools/kafka-$KAFKA_VERSION"
    if [ -f "$home/.complete" ]; then
        return 0
    fi
    missing=""
    command -v java >/dev/null 2>&1 || missing="java"
    command -v mvn >/dev/null 2>&1 || missing="${missing:+$missing and }mvn"
    if [ -n "$missing" ]; then
        echo "" >&2
        echo "install-test-tools: WARNING: $missing not found: Apache Kafka NOT installed." >&2
        echo "install-test-tools: the end-to-end and fault suites will run on the embedded" >&2
        echo "install-test-tools: broker only (install a JDK 17+ and Maven, then run again)." >&2
        echo "" >&2
        return 0
    fi
    echo "install-test-tools: fetching Apache Kafka $KAFKA_VERSION with Maven into $home …"
    work="$(mktemp -d)"
    cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kizashi.tests</groupId>
  <artifactId>kafka-server-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- slf4j 2 first: kafka-clients' pom names slf4j 1.7, which the log4j binding ignores -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
    rm -rf "$home.partial"
    mkdir -p "$home.partial"
    if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$home.partial/lib" >"$work/mvn.log" 2>&1; then
        cat "$work/mvn.log" >&2
        echo "install-test-tools: Maven could not fetch Apache Kafka $KAFKA_VERSION" >&2
        rm -rf "$work" "$home.partial"
        exit 1
    fi
    rm -rf "$work"
    test -f "$home.partial/lib/kafka_2.13-$KAFKA_VERSION.jar"
    touch "$home.partial/.complete"
    rm -rf "$home"
    mv "$home.partial" "$home"
    echo "install-test-tools: Apache Kafka $KAFKA_VERSION ($(ls "$home/lib" | wc -l) jars) in $home"
}

install_apt_packages
install_kafka
