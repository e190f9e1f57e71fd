#!/usr/bin/env bash
# A Docker-compatible API from Podman, on loopback TCP, for testcontainers: up, down, env.
# `up` prints the DOCKER_HOST to use. A unix socket is not used on purpose: this machine has
# a /.dockerenv, which makes testcontainers take the bridge gateway as the container host.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
state=${PODMAN_STATE:-$repo/.podman}
port=${PODMAN_PORT:-23750}
docker_host="tcp://127.0.0.1:$port"

api_up() { curl -fsS --max-time 2 "http://127.0.0.1:$port/_ping" >/dev/null 2>&1; }

case "${1:-}" in
  install)
    if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
      if [ "$(id -u)" != 0 ]; then
        say "podman, runc and debootstrap are missing; installing them needs root: sudo apt-get install -y podman runc debootstrap"
        exit 1
      fi
      say "installing podman, runc and debootstrap from Debian (once per machine)"
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >&2
    fi
    ;;
  up)
    command -v podman >/dev/null || { say "podman is missing: apt-get install -y podman runc debootstrap"; exit 1; }
    if ! api_up; then
      mkdir -p "$state"
      say "starting the Podman API on $docker_host"
      setsid podman system service --time=0 "$docker_host" >"$state/service.log" 2>&1 </dev/null &
      echo $! >"$state/pid"
      for _ in $(seq 1 30); do api_up && break; sleep 0.5; done
      api_up || { say "the Podman API did not come up; see $state/service.log"; exit 1; }
    fi
    echo "$docker_host"
    ;;
  down)
    # Containers the tests left (testcontainers labels them) go first, then the service.
    ids=$(podman ps -aq --filter label=org.testcontainers.managed-by=testcontainers 2>/dev/null || true)
    [ -z "$ids" ] || { say "removing test containers"; podman rm -f $ids >/dev/null; }
    if [ -f "$state/pid" ]; then
      pid=$(cat "$state/pid")
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      rm -f "$state/pid"
      say "stopped the Podman API"
    fi
    ;;
  *) echo "usage: $0 install|up|down" >&2; exit 2 ;;
esac
