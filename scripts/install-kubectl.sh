#!/bin/sh
# kubectl, whose `kubectl kustomize` renders deploy/k8s in the tests (no cluster needed).
# A no-op when kubectl is on PATH; otherwise Debian's kubernetes-client package (kubectl
# 1.20, with kustomize 2.0.3 built in: the overlays keep to what that version reads).
# Needs root (apt) the first time.
set -eu
if command -v kubectl >/dev/null 2>&1; then
    exit 0
fi
# Wait for another apt or dpkg run (an unattended upgrade, a parallel install) to finish.
APT_WAIT="-o DPkg::Lock::Timeout=600"
apt-get $APT_WAIT update -qq
DEBIAN_FRONTEND=noninteractive apt-get $APT_WAIT install -y -qq --no-install-recommends \
    kubernetes-client >/dev/null
echo "install-kubectl: installed $(kubectl version --client --short 2>/dev/null || kubectl version --client)"
