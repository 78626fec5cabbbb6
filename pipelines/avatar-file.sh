#!/bin/sh
# Offline: an OpenPose pose file (JSON Lines, or pretty-printed objects from
# a pose editor) drives the avatar into an H.264 MP4, with a progress line.
#   pipelines/avatar-file.sh talk.jsonl avatar.mp4
#   STEPS=8 REFERENCE=me.png pipelines/avatar-file.sh talk.jsonl avatar.mp4
set -e
. "$(dirname "$0")/common.sh"
in=${1:?pose file}
out=${2:-avatar.mp4}
echo "avatar-file: rendering $in as $AVATAR_WHAT to $out"
"$TOOLS/avatar-launch" --label avatar-file -- \
  filesrc location="$in" ! posemapper ! $AVATAR_CHAIN \
  videoconvert name=progress ! video/x-raw,format=I420 ! x264enc ! mp4mux ! \
  filesink location="$out"
