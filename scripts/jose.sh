#!/usr/bin/env bash
# jose (npm) on Node.js 24, whose Web Crypto has ML-DSA: an independent verifier and signer for
# the interop tests. Installs once into a cached directory keyed by the hash of scripts/jose/
# (package.json, its lock file and interop.mjs) and prints that directory; the tests run
# "$dir/node_modules/.bin/node" "$dir/interop.mjs". Needs npm (any Node.js) and the npm registry.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
src="$here/jose"
dir="$cache/jose-$(cat "$src/package.json" "$src/package-lock.json" "$src/interop.mjs" | sha256sum | cut -c1-12)"

if [ ! -f "$dir/.complete" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    say "npm not found: install Node.js (any version: npm fetches the Node.js 24 the tests run)"
    exit 1
  fi
  say "installing jose and Node.js 24 into $dir (first run only, about 15 s)"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$src/package.json" "$src/package-lock.json" "$src/interop.mjs" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  "$dir/node_modules/.bin/node" --version >/dev/null
  touch "$dir/.complete"
fi
echo "$dir"
