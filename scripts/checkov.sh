#!/usr/bin/env bash
# checkov over infra/, from a cached venv pinned by scripts/tools-requirements.txt.
# Skips are inline in the Terraform, each with its reason; any failed check fails this script.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
venv=$(venv_for tools "$here/tools-requirements.txt")
cd "$here/.."
exec "$venv/bin/checkov" --directory infra --framework terraform --compact --quiet --skip-download "$@"
