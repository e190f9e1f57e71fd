#!/usr/bin/env bash
# What `cargo xtask bench` runs besides kms-jwt: wrk (the load) and nginx (the baseline for
# serving the JWKS), from Debian's packages, installed once per machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
if command -v wrk >/dev/null && command -v nginx >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "wrk and nginx are missing; installing them needs root: sudo apt-get install -y wrk nginx-light"
  exit 1
fi
say "installing wrk and nginx-light from Debian (once per machine)"
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk nginx-light >&2
