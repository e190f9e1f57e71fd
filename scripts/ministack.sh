#!/usr/bin/env bash
# MiniStack (KMS only) as a local Python process: install, up, down, status.
#
# The second KMS emulator: LocalStack 4.14 refuses Ed25519 keys (its issue 13886), MiniStack
# signs with them. Its venv is cached like LocalStack's (scripts/lib.sh), keyed by the hash of
# scripts/ministack-requirements.txt; its state (pid, log) lives in $MINISTACK_STATE (default
# .ministack/ in the repository).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
requirements="$here/ministack-requirements.txt"
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
state=${MINISTACK_STATE:-$repo/.ministack}
port=${MINISTACK_PORT:-4567}
endpoint="http://127.0.0.1:$port"

healthy() {
  curl -fsS --max-time 2 "$endpoint/_ministack/health" 2>/dev/null | grep -q '"kms"'
}

install() {
  venv=$(venv_for ministack "$requirements")
}

up() {
  if healthy; then
    say "already running at $endpoint"
    echo "$endpoint"; return 0
  fi
  install
  mkdir -p "$state"
  say "starting MiniStack (KMS) on $endpoint, log in $state/ministack.log"
  # IOT_MTLS_ENABLED=0: otherwise it also listens on 8883 for IoT, which nothing here needs.
  GATEWAY_PORT="$port" BIND_HOST=127.0.0.1 SERVICES=kms IOT_MTLS_ENABLED=0 LOG_LEVEL=WARNING \
    setsid "$venv/bin/python" -m ministack >"$state/ministack.log" 2>&1 < /dev/null &
  echo $! >"$state/pid"
  for _ in $(seq 1 60); do
    if healthy; then
      say "ready"
      echo "$endpoint"; return 0
    fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      say "MiniStack exited during start-up; last lines of its log:"
      tail -n 20 "$state/ministack.log" >&2
      return 1
    fi
    sleep 0.5
  done
  say "MiniStack did not become healthy within 30 s; see $state/ministack.log"
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
  *) echo "usage: $0 install|up|down|status" >&2; exit 2 ;;
esac
