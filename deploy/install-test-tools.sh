#!/bin/sh
# Installs what the deploy, monitoring and browser tests need when it is missing: Prometheus
# and promtool, from Debian's `prometheus` package (its system service is NOT started: the
# tests run their own prometheus process on a free port), and Debian's `chromium`, which the
# console's end-to-end tests drive through Playwright (no browser is ever downloaded).
set -eu

PACKAGES=""
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    PACKAGES="prometheus"
fi
if [ ! -x /usr/bin/chromium ]; then
    PACKAGES="$PACKAGES chromium"
fi
if [ -z "$PACKAGES" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: no apt-get; install these yourself: $PACKAGES" >&2
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
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES

command -v prometheus >/dev/null && command -v promtool >/dev/null && [ -x /usr/bin/chromium ]
echo "install-test-tools: $(prometheus --version 2>&1 | head -n 1); $(/usr/bin/chromium --version 2>/dev/null)"
