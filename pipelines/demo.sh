#!/bin/sh
# The README's demo: procedural presenter motion -> pose guidance -> MP4.
# (The avatar diffusion elements join this line as they land; see docs/.)
set -e
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=${OUT:-out}
FRAMES=${FRAMES:-125}
mkdir -p "$OUT"
export GST_PLUGIN_PATH_1_0="$PWD/$BUILD/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
gst-launch-1.0 -e posetestsrc num-buffers="$FRAMES" seed=1 ! posemapper ! \
  videoconvert ! x264enc ! mp4mux ! filesink location="$OUT/demo.mp4"
echo "demo: wrote $OUT/demo.mp4 ($FRAMES frames)"
