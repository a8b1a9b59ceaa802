#!/bin/sh
# promtool, for the alert rules' checks and unit tests (tests/deploy): Debian's prometheus
# package ships it. A no-op when promtool is on PATH. Needs root (apt) the first time; the
# package's service is not started (a container's policy-rc.d refuses, and the tests only
# call promtool).
set -eu
if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
# Wait for another apt or dpkg run (an unattended upgrade, a parallel install) to finish.
APT_WAIT="-o DPkg::Lock::Timeout=600"
apt-get $APT_WAIT update -qq
DEBIAN_FRONTEND=noninteractive apt-get $APT_WAIT install -y -qq --no-install-recommends \
    prometheus >/dev/null
echo "install-promtool: installed $(promtool --version 2>&1 | head -n 1)"
