#!/usr/bin/env bash
# Builds the LocalStack image locally, without any registry: a Debian trixie root
# (debootstrap, Python 3.13) with LocalStack pinned by localstack-requirements.txt, imported
# into Podman as docker.io/localstack/localstack:$LOCALSTACK_TAG. Reused while the pins and the
# tag are unchanged (the image carries the requirements hash as a label).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

tag=$(localstack_tag)
image="docker.io/localstack/localstack:$tag"
requirements="$here/localstack-requirements.txt"
hash=$(cat "$requirements" "$0" | sha256sum | cut -c1-12)

if podman image exists "$image" \
  && [ "$(podman image inspect --format '{{ index .Labels "kms-jwt.requirements" }}' "$image" 2>/dev/null)" = "$hash" ]; then
  say "reusing $image"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  say "building the image needs root (debootstrap, chroot); run as root, or use a Docker engine with the upstream image"
  exit 1
fi
for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { say "$tool is missing: apt-get install -y podman runc debootstrap"; exit 1; }
done

root="$cache/localstack-rootfs-$hash"
if [ ! -f "$root/.complete" ]; then
  say "building a Debian trixie root in $root (a few minutes, once)"
  rm -rf "$root"
  mkdir -p "$root"
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates trixie "$root" "${mirror:-http://deb.debian.org/debian}" >&2
  # Package downloads go through a TLS-re-signing proxy: the root must trust its CA.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >&2
  fi
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp "$requirements" "$root/tmp/requirements.txt"
  chroot "$root" python3 -m venv /opt/localstack
  chroot "$root" env PIP_DISABLE_PIP_VERSION_CHECK=1 /opt/localstack/bin/pip install --quiet -r /tmp/requirements.txt >&2
  mkdir -p "$root/var/lib/localstack"
  rm -rf "$root/tmp/requirements.txt" "$root/var/cache/apt/archives"/*.deb "$root/root/.cache"
  touch "$root/.complete"
fi

say "importing $image"
tar -C "$root" --exclude=./.complete -c . | podman import \
  --change 'ENTRYPOINT ["/opt/localstack/bin/python", "-m", "localstack.runtime.main"]' \
  --change 'ENV GATEWAY_LISTEN=0.0.0.0:4566' \
  --change 'ENV DNS_ADDRESS=0' \
  --change 'ENV SKIP_SSL_CERT_DOWNLOAD=1' \
  --change 'EXPOSE 4566/tcp' \
  --change "LABEL kms-jwt.requirements=$hash" \
  - "$image" >&2
say "built $image"
