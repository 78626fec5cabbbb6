#!/bin/sh
# Live: sends procedural presenter motion as one OpenPose JSON datagram per
# frame, paced at the frame rate, to 127.0.0.1:$PORT.
set -e
. "$(dirname "$0")/common.sh"
PORT=${PORT:-5000}
gst-launch-1.0 -q posetestsrc is-live=true num-buffers="$FRAMES" ! \
  udpsink host=127.0.0.1 port="$PORT"
