#!/usr/bin/env bash
# parliament over every IAM policy template in infra/ (scripts/iam_lint.py), offline, from the
# tools venv pinned by scripts/tools-requirements.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
venv=$(venv_for tools "$here/tools-requirements.txt")
exec "$venv/bin/python" "$here/iam_lint.py" "$@"
