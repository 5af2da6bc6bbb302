#!/usr/bin/env bash
# Build the browser runtime: native/'s C (kernels and graph runner, unchanged) plus wasm/'s kernel
# table and exports, compiled by clang + wasm-ld to two modules in wasm/web/:
#   efm-simd128.wasm   SIMD128 kernels (explicit wasm_simd128.h intrinsics), for engines with SIMD
#   efm-portable.wasm  the portable table only, for engines without it
# The loader (wasm/web/efm.mjs) picks one by feature detection. Needs clang and lld (requirements/apt.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-wasm/web}
CLANG=${CLANG:-clang}
command -v "$CLANG" >/dev/null && command -v wasm-ld >/dev/null || {
  echo "wasm/build.sh: clang and wasm-ld (Debian: clang lld) are needed" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the runner's C files, from the one list native/sources.txt (cpu.c is native-only: wasm has cpu_wasm.c)
native=()
while read -r name kind; do
  if [ "$kind" = runner ]; then native+=("native/$name"); fi
done < <(grep -v '^#' native/sources.txt)
common=(--target=wasm32 -O3 -std=c11 -ffreestanding -fno-math-errno -nostdlib -Wall -Werror -Inative -Iwasm
        -mbulk-memory -mnontrapping-fptoint -msign-ext -mmutable-globals)
link=(-Wl,--no-entry -Wl,--export=__heap_base -Wl,-z,stack-size=1048576
      -Wl,--initial-memory=2097152 -Wl,--max-memory=4294967296 -Wl,--strip-debug)
build() { # name, extra flags, extra sources
  local name=$1; shift; local flags=($1); shift
  local objs=()
  for src in "${native[@]}" wasm/cpu_wasm.c wasm/efm_wasm.c "$@"; do
    local obj="$tmp/$name-$(basename "$src" .c).o"
    "$CLANG" "${common[@]}" "${flags[@]}" -c "$src" -o "$obj"
    objs+=("$obj")
  done
  "$CLANG" --target=wasm32 -nostdlib "${link[@]}" -o "$out/efm-$name.wasm" "${objs[@]}"
}
build simd128 "-msimd128" wasm/kernels_simd128.c
build portable "-mno-simd128"
echo "wasm/build.sh: $(cd "$out" && ls -l efm-simd128.wasm efm-portable.wasm | awk '{print $9" "$5" bytes"}' | paste -sd' ')"
