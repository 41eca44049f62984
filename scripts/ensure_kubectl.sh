#!/usr/bin/env bash
# Makes sure `kubectl` (with its built-in kustomize) is there for config/tests/test_deployment_files.py, which
# renders platform/k8s/overlays/* offline (no cluster is contacted). When it is missing and apt-get can run as
# root, Debian's `kubernetes-client` package is installed; elsewhere this says what to install and exits
# non-zero. Returns at once when kubectl is on PATH. `make test` runs it before pytest.
set -euo pipefail

if command -v kubectl >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [[ $(id -u) -ne 0 ]]; then
    echo "ensure_kubectl: the deployment tests need kubectl (it renders the kustomize overlays offline)." >&2
    echo "ensure_kubectl: install it (Debian: apt-get install kubernetes-client; macOS: brew install kubectl)." >&2
    exit 1
fi
started=$SECONDS
echo "ensure_kubectl: installing Debian's kubernetes-client for kubectl kustomize..."
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends kubernetes-client >/dev/null
echo "ensure_kubectl: $(kubectl version --client 2>/dev/null | head -1) ready in $((SECONDS - started)) s"
