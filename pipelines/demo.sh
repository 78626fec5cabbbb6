#!/bin/sh
# The README's demo: procedural presenter motion -> pose guidance -> the
# bundled avatar (avatardiffuse + latentfuse, models/avatar-default, 256x256)
# -> H.264 MP4, with a progress line. 3 s of video at 4 steps by default;
# FRAMES, STEPS, SEED and OUT change that.
#   sh pipelines/demo.sh            (after meson setup build && ninja -C build)
set -e
FRAMES=${FRAMES:-75}
. "$(dirname "$0")/common.sh"
OUT=${OUT:-$top/out}
mkdir -p "$OUT"
echo "demo: rendering $FRAMES frames of $AVATAR_WHAT to $OUT/demo.mp4"
"$TOOLS/avatar-launch" --label demo --frames "$FRAMES" -- \
  posetestsrc num-buffers="$FRAMES" seed=1 ! posemapper ! $AVATAR_CHAIN \
  videoconvert name=progress ! video/x-raw,format=I420 ! x264enc ! mp4mux ! \
  filesink location="$OUT/demo.mp4"
echo "demo: wrote $OUT/demo.mp4 (play it with: ffplay $OUT/demo.mp4)"
