#!/bin/sh
# Debian's Chromium for the browser tests (Python playwright drives it; its wheel carries
# the driver, and nothing downloads a browser build). A no-op when /usr/bin/chromium exists.
# Needs root (apt) the first time.
set -eu
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
# Wait for another apt or dpkg run (an unattended upgrade, a parallel install) to finish.
APT_WAIT="-o DPkg::Lock::Timeout=600"
apt-get $APT_WAIT update -qq
DEBIAN_FRONTEND=noninteractive apt-get $APT_WAIT install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
echo "install-chromium: installed $(/usr/bin/chromium --version)"
