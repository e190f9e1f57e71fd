#!/usr/bin/env bash
# Builds the `kms-jwt serve` image (Containerfile) with Podman and prints its name.
#
#   scripts/image.sh [--binary PATH] [--tag TAG]
#
# No registry is reachable on this project's machines, so neither the Rust image nor the
# distroless base can be pulled:
# - the binary is built on the host (cargo build --release) and copied in (BINARY=prebuilt);
#   --binary takes one already built instead;
# - the runtime base is gcr.io/distroless/cc-debian12:nonroot when it can be pulled, or else one
#   built from this machine's Debian 12 files, as distroless builds it from Debian's packages:
#   glibc, libgcc, CA certificates, time zones, and a nonroot user (65532), no shell.
# Where a registry answers, `podman build -f Containerfile .` builds the whole image itself.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

binary="" tag=dev
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--tag TAG]" >&2; exit 2 ;;
  esac
done

bash "$here/podman.sh" install

if [ -z "$binary" ]; then
  say "building kms-jwt (release)"
  (cd "$repo" && cargo build --release --locked -p kms-jwt-cli >&2)
  binary=$repo/target/release/kms-jwt
fi
[ -x "$binary" ] || { say "$binary is not an executable"; exit 1; }
mkdir -p "$repo/target/image"
install -m 0755 -s "$binary" "$repo/target/image/kms-jwt"

runtime=${RUNTIME_IMAGE:-gcr.io/distroless/cc-debian12:nonroot}
if ! podman image exists "$runtime" && ! timeout 30 podman pull -q "$runtime" >/dev/null 2>&1; then
  runtime=localhost/kms-jwt-runtime:debian12
  packages="libc6 libgcc-s1 ca-certificates netbase tzdata"
  hash=$( { cat "$0"; dpkg-query -W $packages; sha256sum /etc/ssl/certs/ca-certificates.crt; } | sha256sum | cut -c1-12)
  if [ "$(podman image inspect --format '{{ index .Labels "kms-jwt.base" }}' "$runtime" 2>/dev/null || true)" != "$hash" ]; then
    say "no registry: building $runtime from this machine's $packages"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    # The packages' files and links, without documentation, at their /usr paths (Debian 12
    # merged /lib into /usr/lib); the root gets the same compatibility links.
    dpkg -L $packages \
      | grep -Ev '^/usr/share/(doc|man|lintian|locale|info|bug)/|^/usr/share/zoneinfo/(right|posix)/' \
      | sed -E 's#^/(lib|lib64|bin|sbin)/#/usr/\1/#' \
      | while read -r path; do
          if [ -f "$path" ] || { [ -L "$path" ] && [ ! -d "$path" ]; }; then printf '%s\n' "${path#/}"; fi
        done | sort -u >"$root.files"
    mkdir -p "$root/usr/lib" "$root/usr/lib64" "$root/usr/bin" "$root/usr/sbin"
    for dir in lib lib64 bin sbin; do ln -s "usr/$dir" "$root/$dir"; done
    tar -C / --no-recursion -cf - -T "$root.files" | tar -C "$root" -xf -
    rm -f "$root.files"
    mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
    chmod 1777 "$root/tmp"
    chown 65532:65532 "$root/home/nonroot"
    tar -C "$root" --numeric-owner -cf - . | podman import \
      --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
      --change "LABEL kms-jwt.base=$hash" - "$runtime" >&2
  fi
fi

image=localhost/kms-jwt:$tag
say "building $image on $runtime"
podman build --quiet --format docker --build-arg BINARY=prebuilt --build-arg "RUNTIME_IMAGE=$runtime" \
  -t "$image" -f "$repo/Containerfile" "$repo" >&2
size=$(podman image inspect --format '{{.Size}}' "$image")
say "built $image: $((size / 1000000)) MB ($size bytes)"
echo "$image"
