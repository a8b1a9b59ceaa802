#!/bin/sh
# A real OpenID Provider for the single sign-on tests (tests/oidc/provider.mjs): npm's
# oidc-provider, an OpenID Certified implementation, at the version pinned in
# tests/oidc/package.json and package-lock.json (8.x: 9.x does not support Node 20), into
# tests/oidc/node_modules (gitignored). A no-op when that version is installed already.
# Needs node and npm; Debian's nodejs and npm packages are installed (root, apt) if absent.
set -eu
cd "$(dirname "$0")/../tests/oidc"
WANT=$(sed -n 's/.*"oidc-provider": "\([^"]*\)".*/\1/p' package.json)
if [ -f node_modules/oidc-provider/package.json ] &&
    grep -q "\"version\": \"$WANT\"" node_modules/oidc-provider/package.json; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    APT_WAIT="-o DPkg::Lock::Timeout=600"
    apt-get $APT_WAIT update -qq
    DEBIAN_FRONTEND=noninteractive apt-get $APT_WAIT install -y -qq --no-install-recommends \
        nodejs npm >/dev/null
fi
# npm ci: exactly the lock file's tree; no install scripts run (none are needed)
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "install-oidc-provider: installed oidc-provider $WANT"
