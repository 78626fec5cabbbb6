#!/bin/sh
# The README's demo: procedural presenter motion -> pose guidance -> MP4.
# (The diffusion elements join this line as they land; see docs/.)
set -e
. "$(dirname "$0")/common.sh"
OUT=${OUT:-$top/out}
FRAMES=${FRAMES:-125}
mkdir -p "$OUT"
echo "demo: rendering $FRAMES frames ..."
gst-launch-1.0 -q -e posetestsrc num-buffers="$FRAMES" seed=1 ! posemapper ! \
  videoconvert ! x264enc ! mp4mux ! filesink location="$OUT/demo.mp4"
echo "demo: wrote $OUT/demo.mp4"
