#!/usr/bin/env bash
# Build the C shim with AddressSanitizer + UndefinedBehaviorSanitizer and run integration
# tests against it. msquic itself is the normal cached build; the shim (every msquic callback,
# the event queue, send blocks, stream/connection lifetimes) is what gets instrumented.
#
#   tools/sanitize.sh            # the full integration suite (slow: several minutes)
#   tools/sanitize.sh --ci       # the subset CI runs (QUIC layer, WebTransport, abusive peers)
#   tools/sanitize.sh -- PYTEST-ARGS...
#
# The build happens in a scratch copy of the checkout, so the normal in-place extension is
# left alone. Leak checking is off: CPython and cffi keep allocations alive until exit on
# purpose, which LeakSanitizer would report; lifetimes of native objects are checked by the
# tests themselves (pwt_live_objects returns to its baseline).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
tests=(tests/integration)
if [ "${1:-}" = "--ci" ]; then
  tests=(tests/integration/test_quic.py tests/integration/test_webtransport.py tests/integration/test_abusive_peers.py)
  shift
fi
if [ "${1:-}" = "--" ]; then shift; tests=("$@"); fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pwt-sanitize.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work")
cd "$work"
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1"
echo "[sanitize] building the shim with: $flags"
CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" "$PY" setup.py -q build_ext --inplace >build.log 2>&1 ||
  { tail -30 build.log; exit 1; }
nm -D pywebtransport/_native/_msquic*.so | grep __asan_init >/dev/null || { echo "[sanitize] ASan not linked"; exit 1; }

asan=$(cc -print-file-name=libasan.so)
ubsan=$(cc -print-file-name=libubsan.so)
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONMALLOC=malloc
loaded=$("$PY" -c "import pywebtransport._native._msquic as m; print(m.__file__)")
case "$loaded" in "$work"/*) ;; *) echo "[sanitize] tests would load $loaded, not the instrumented build"; exit 1;; esac
echo "[sanitize] running: pytest ${tests[*]}"
set +e
"$PY" -m pytest -q -x -p no:cacheprovider -o addopts="" "${tests[@]}" 2>&1 | tee pytest.log
rc=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: AddressSanitizer|runtime error:" pytest.log; then
  echo "[sanitize] sanitizer reports found"; exit 1
fi
echo "[sanitize] exit $rc, no sanitizer reports"
exit "$rc"
