#!/bin/sh
# Writes procedural presenter motion as an OpenPose JSON Lines file.
#   pipelines/pose-record.sh talk.jsonl
set -e
. "$(dirname "$0")/common.sh"
out=${1:-talk.jsonl}
gst-launch-1.0 -q posetestsrc seed=7 num-buffers="$FRAMES" ! filesink location="$out"
