#!/bin/sh
# The whole test suite: installs what is missing, builds, runs every test,
# and ends with a line "N passed, N failed[, N skipped]".
set -u
cd "$(dirname "$0")/.."
if ! pkg-config --exists gstreamer-check-1.0 json-glib-1.0 openblas libpng vulkan \
    || ! command -v glslc >/dev/null || ! command -v meson >/dev/null; then
  sh scripts/install-deps.sh || exit 1
fi
BUILD=${BUILD:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" || exit 1
meson compile -C "$BUILD" || { echo "0 passed, 1 failed"; exit 1; }
meson test -C "$BUILD" --print-errorlogs --num-processes 2 "$@"
rc=$?
/usr/bin/python3 scripts/summarize-tests.py "$BUILD/meson-logs/testlog.json"
exit $rc
