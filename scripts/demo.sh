#!/bin/sh
# Installs the dependencies, builds, and runs the main demo pipeline.
set -e
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build
meson compile -C build
exec sh pipelines/demo.sh
