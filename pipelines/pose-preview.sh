#!/bin/sh
# Procedural presenter motion drawn as pose guidance, on screen.
#   SINK=fakesink FRAMES=50 pipelines/pose-preview.sh
set -e
. "$(dirname "$0")/common.sh"
gst-launch-1.0 -q posetestsrc num-buffers="$FRAMES" ! posemapper ! videoconvert ! $SINK
