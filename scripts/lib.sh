# Shared by the scripts in this directory: find a Python and build cached venvs.
# shellcheck shell=bash

cache=${KMS_JWT_CACHE:-$HOME/.cache/kms-jwt}

say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

python_for_venv() {
  # The pinned LocalStack runs on Python 3.12 or 3.13; pyenv has them but not as the default, and
  # the pyenv shim for python3.13 refuses to run, so take the interpreter by path.
  local root candidates py
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  candidates=$(ls -d "$root"/versions/3.1[23]*/bin/python3 2>/dev/null | sort -V | tail -1 || true)
  for py in $candidates python3.13 python3.12; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3,12),(3,13)) else 1)'; then
      echo "$py"; return 0
    fi
  done
  say "no Python 3.12 or 3.13 found (pyenv install 3.13, or put python3.13 on PATH)"; return 1
}

# venv_for NAME REQUIREMENTS: prints the path of a venv with exactly REQUIREMENTS installed,
# creating it on first use. Keyed by the requirements' hash: a changed pin is a new venv.
venv_for() {
  local name=$1 requirements=$2 venv py
  venv="$cache/$name-venv-$(sha256sum "$requirements" | cut -c1-12)"
  if [ ! -f "$venv/.complete" ]; then
    py=$(python_for_venv)
    say "installing $name into $venv (first run only, about a minute)"
    rm -rf "$venv"
    mkdir -p "$cache"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    touch "$venv/.complete"
  fi
  echo "$venv"
}

# The one LocalStack pin: the localstack-core version in localstack-requirements.txt, which is
# also the tag of the image (upstream, or built locally) that the container harness runs.
localstack_tag() {
  local dir
  dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  sed -n 's/^localstack-core==//Ip' "$dir/localstack-requirements.txt"
}
