#!/bin/sh
# Installs what the deploy and monitoring tests need when it is missing: Prometheus and
# promtool, from Debian's `prometheus` package. Its system service is NOT started: the tests
# run their own prometheus process on a free port.
set -eu

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: no apt-get; install Prometheus (prometheus and promtool) yourself" >&2
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
cleanup() {
    if [ -n "$CREATED_POLICY" ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT

$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus

command -v prometheus >/dev/null && command -v promtool >/dev/null
echo "install-test-tools: $(prometheus --version 2>&1 | head -n 1)"
