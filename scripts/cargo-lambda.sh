#!/usr/bin/env bash
# cargo-lambda (PyPI: one static binary) in a cached venv: its Lambda runtime emulator runs the
# function in the tests (`path` prints the binary), and with Zig (ziglang, also from PyPI) it
# cross-builds the function's arm64 zip (`zig` prints a directory to put first on PATH).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
version=1.9.2
zig_version=0.15.2
venv="$cache/cargo-lambda-$version"

install() {
  if [ ! -f "$venv/.complete" ]; then
    local py
    py=$(python_for_venv)
    say "installing cargo-lambda $version into $venv (first run only)"
    rm -rf "$venv"
    mkdir -p "$cache"
    "$py" -m venv "$venv"
    # --no-deps: its one dependency, ziglang (about 100 MB), only cross builds need (`zig`).
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "cargo-lambda==$version" >&2
    touch "$venv/.complete"
  fi
}

zig() {
  install
  if [ ! -f "$venv/.zig-$zig_version" ]; then
    say "installing ziglang $zig_version into $venv for the cross build (first run only)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "ziglang==$zig_version" >&2
    touch "$venv/.zig-$zig_version"
  fi
}

case "${1:-}" in
  path) install; echo "$venv/bin/cargo-lambda" ;;
  zig) zig; echo "$venv/bin" ;;
  *) echo "usage: $0 path|zig" >&2; exit 2 ;;
esac
