#!/usr/bin/env bash
# The container engine for the testcontainers pass of `cargo xtask ci`: up prints the
# DOCKER_HOST to use, down stops what up started.
#
# - A Docker engine that answers (DOCKER_HOST, else the default socket) is used as it is, with
#   the pinned upstream image: a developer's laptop.
# - Otherwise Podman serves the Docker API with a LocalStack image built locally from the same
#   pins (scripts/podman.sh, scripts/localstack-image.sh): machines without Docker and without
#   a reachable registry, such as this project's. Installing Podman and building the image need
#   root; without it this says what to install and stops.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

docker_answers() {
  local host=$1
  case "$host" in
    unix://*) curl -fsS --max-time 2 --unix-socket "${host#unix://}" http://localhost/_ping >/dev/null 2>&1 ;;
    tcp://*) curl -fsS --max-time 2 "http://${host#tcp://}/_ping" >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

up() {
  local candidate
  for candidate in "${DOCKER_HOST:-}" unix:///var/run/docker.sock; do
    if [ -n "$candidate" ] && docker_answers "$candidate"; then
      say "using the Docker engine at $candidate with the upstream image localstack/localstack:$(localstack_tag)"
      echo "$candidate"
      return 0
    fi
  done
  say "no Docker engine answers: using Podman with a LocalStack image built locally from the same pins"
  if [ "$(id -u)" != 0 ] && ! { command -v podman && command -v runc && command -v debootstrap; } >/dev/null 2>&1; then
    say "podman, runc and debootstrap are missing and installing them needs root: sudo apt-get install -y podman runc debootstrap"
    return 1
  fi
  bash "$here/podman.sh" install
  bash "$here/localstack-image.sh"
  bash "$here/podman.sh" up
}

case "${1:-}" in
  up) up ;;
  down)
    # The tests' containers outlive their test processes (one per process, kept for its life):
    # remove them by testcontainers' label, on whichever engine ran them.
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
      ids=$(docker ps -aq --filter label=org.testcontainers.managed-by=testcontainers || true)
      [ -z "$ids" ] || { say "removing test containers"; docker rm -f $ids >/dev/null; }
    fi
    bash "$here/podman.sh" down
    ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
