#!/usr/bin/env bash
# LocalStack (KMS, STS, IAM and S3) as a local Python process: install, up, down, status.
#
# The venv is cached in $KMS_JWT_CACHE (default ~/.cache/kms-jwt) and keyed by the hash of
# scripts/localstack-requirements.txt, so a changed pin means a fresh venv. The process state
# (pid, log, data) lives in $LOCALSTACK_STATE (default .localstack/ in the repository).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
requirements="$here/localstack-requirements.txt"
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
state=${LOCALSTACK_STATE:-$repo/.localstack}
port=${LOCALSTACK_PORT:-4566}
endpoint="http://127.0.0.1:$port"

healthy() {
  local health
  health=$(curl -fsS --max-time 2 "$endpoint/_localstack/health" 2>/dev/null) || return 1
  grep -q '"kms": "\(available\|running\)"' <<<"$health" && grep -q '"s3": "\(available\|running\)"' <<<"$health"
}

install() {
  venv=$(venv_for localstack "$requirements")
}

up() {
  if healthy; then
    say "already running at $endpoint"
    echo "$endpoint"; return 0
  fi
  install
  mkdir -p "$state/data"
  say "starting LocalStack (KMS, STS, IAM, S3) on $endpoint, log in $state/localstack.log"
  # setsid: a process group of its own, so that `down` stops it and all its children.
  GATEWAY_LISTEN="127.0.0.1:$port" SERVICES=kms,sts,iam,s3 DNS_ADDRESS=0 EAGER_SERVICE_LOADING=1 \
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
