#!/usr/bin/env bash
# LocalStack (KMS only) as a local Python process: install, up, down, status.
#
# The venv is cached in $KMS_JWT_CACHE (default ~/.cache/kms-jwt) and keyed by the hash of
# scripts/localstack-requirements.txt, so a changed pin means a fresh venv. The process state
# (pid, log, data) lives in $LOCALSTACK_STATE (default .localstack/ in the repository).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
requirements="$here/localstack-requirements.txt"
cache=${KMS_JWT_CACHE:-$HOME/.cache/kms-jwt}
venv="$cache/localstack-venv-$(sha256sum "$requirements" | cut -c1-12)"
state=${LOCALSTACK_STATE:-$repo/.localstack}
port=${LOCALSTACK_PORT:-4566}
endpoint="http://127.0.0.1:$port"

say() { printf 'localstack: %s\n' "$*" >&2; }

healthy() {
  curl -fsS --max-time 2 "$endpoint/_localstack/health" 2>/dev/null | grep -q '"kms": "\(available\|running\)"'
}

python_for_venv() {
  # LocalStack 2026.3 needs Python 3.12 or 3.13; pyenv has them but not as the default, and
  # the pyenv shim for python3.13 refuses to run, so take the interpreter by path.
  local root candidates
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  candidates=$(ls -d "$root"/versions/3.1[23]*/bin/python3 2>/dev/null || true)
  for py in $(printf '%s\n' $candidates | sort -V | tail -1) python3.13 python3.12; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3,12),(3,13)) else 1)'; then
      echo "$py"; return 0
    fi
  done
  say "no Python 3.12 or 3.13 found (pyenv install 3.13, or put python3.13 on PATH)"; return 1
}

install() {
  if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ]; then
    return 0
  fi
  local py; py=$(python_for_venv)
  say "installing LocalStack into $venv (first run only, about a minute)"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  touch "$venv/.complete"
}

up() {
  if healthy; then
    say "already running at $endpoint"
    echo "$endpoint"; return 0
  fi
  install
  mkdir -p "$state/data"
  say "starting LocalStack (KMS) on $endpoint, log in $state/localstack.log"
  # setsid: a process group of its own, so that `down` stops it and all its children.
  GATEWAY_LISTEN="127.0.0.1:$port" SERVICES=kms DNS_ADDRESS=0 EAGER_SERVICE_LOADING=1 \
    LOCALSTACK_VOLUME_DIR="$state/data" SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
    setsid "$venv/bin/python" -m localstack.runtime.main >"$state/localstack.log" 2>&1 < /dev/null &
  echo $! >"$state/pid"
  for _ in $(seq 1 120); do
    if healthy; then
      say "ready"
      echo "$endpoint"; return 0
    fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      say "LocalStack exited during start-up; last lines of its log:"
      tail -n 20 "$state/localstack.log" >&2
      return 1
    fi
    sleep 1
  done
  say "LocalStack did not become healthy within 120 s; see $state/localstack.log"
  return 1
}

down() {
  if [ -f "$state/pid" ]; then
    local pid; pid=$(cat "$state/pid")
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping pid $pid"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$state/pid"
  else
    say "not started by this script (no $state/pid)"
  fi
}

status() {
  if healthy; then say "running at $endpoint"; echo "$endpoint"; else say "not running"; return 1; fi
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  status) status ;;
  python) install; echo "$venv/bin/python" ;;
  *) echo "usage: $0 install|up|down|status|python" >&2; exit 2 ;;
esac
