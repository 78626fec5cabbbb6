#!/bin/sh
# Draws a pose file (JSON Lines or pretty-printed objects) letterboxed into
# 512x512 in the plain DWPose colours.
#   pipelines/pose-file-preview.sh poses.json
set -e
. "$(dirname "$0")/common.sh"
gst-launch-1.0 -q filesrc location="${1:?pose file}" ! \
  posemapper style=dwpose keep-aspect=true ! video/x-raw,width=512,height=512 ! \
  videoconvert ! $SINK
