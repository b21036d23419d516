#!/usr/bin/env bash
# Runs the native shim's tests against the AddressSanitizer + UBSan build
# (`npm run build:cmake:asan`, CMakeLists.txt option CUBBYDB_SANITIZE).
#
# Node itself is not built with ASan, so the ASan runtime is preloaded
# (LD_PRELOAD must name it first) and src/native.ts loads the sanitized addon
# through CUBBYDB_NATIVE. Leak detection is off: Node and V8 keep memory until
# exit by design, and every such block would be reported. Any ASan or UBSan
# report aborts the process, which fails the test file that caused it.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent build:cmake:asan >/dev/null
addon="$PWD/build-asan/RelWithDebInfo/cubbydb.node"
libasan="$(g++ -print-file-name=libasan.so)"
if [ ! -f "$addon" ] || [ ! -f "$libasan" ]; then
  echo "test-asan: missing $addon or the ASan runtime ($libasan)" >&2
  exit 1
fi

npm run --silent build:ts
npm run --silent build:test

export CUBBYDB_NATIVE="$addon"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:handle_segv=0:allow_user_segv_handler=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
LD_PRELOAD="$libasan" npx ava dist-test/test/native-*.test.js dist-test/test/file-volume*.test.js dist-test/test/loop-device*.test.js
