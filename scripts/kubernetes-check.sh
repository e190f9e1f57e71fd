#!/usr/bin/env bash
# deploy/kubernetes, offline: every manifest against the Kubernetes API schemas with
# kubernetes-validate (strict: an unknown or misspelt field fails), for the oldest Kubernetes
# the manifests support (1.30: the preStop sleep action) and a current one; then what a schema
# cannot say (scripts/kubernetes_check.py): the kustomization lists every manifest, the drain
# fits in the grace period, the probes are serve's, and the binary accepts serve's arguments.
#
#   scripts/kubernetes-check.sh path/to/kms-jwt
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
binary=$(realpath "${1:?usage: $0 path/to/kms-jwt}")
venv=$(venv_for tools "$here/tools-requirements.txt")
cd "$here/../deploy/kubernetes"
manifests=$(ls ./*.yaml | grep -v '/kustomization.yaml$')
for version in 1.30.0 1.33.0; do
  # shellcheck disable=SC2086
  "$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" $manifests
done
"$venv/bin/python" "$here/kubernetes_check.py" . "$binary"
say "deploy/kubernetes: valid for Kubernetes 1.30 and 1.33, and consistent with kms-jwt serve"
