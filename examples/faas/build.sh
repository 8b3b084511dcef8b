#!/bin/sh
# Builds the example functions into OUT (default: ./out) with Debian's clang
# and wasm-ld (apt-get install clang lld); no libc, no Rust wasm target.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"
cc() {
    clang --target=wasm32 -O2 -ffreestanding -fno-builtin -nostdlib -Wall -Wno-unused-parameter -Wno-unused-function \
        -Wl,--no-entry -Wl,--export=__heap_base -Wl,--initial-memory=131072 -Wl,-z,stack-size=65536 "$@"
}
cc -o "$out/function_1.wasm" "$here/function_1.c"
cc -o "$out/function_2.wasm" "$here/function_2.c"
cc -o "$out/echo.wasm" "$here/echo.c"
cc -DFUNCTION_ID='"echo"' -DPREFIX='"v2"' -o "$out/echo_v2.wasm" "$here/echo.c"
cc -DFUNCTION_ID='"faulty"' -o "$out/faulty.wasm" "$here/echo.c"
cc -DNO_ID -o "$out/no_id.wasm" "$here/echo.c"
