#!/bin/sh
# Offline, with the face restored: avatar-file.sh's pipeline (an OpenPose
# pose file -> the avatar -> H.264 MP4) with facerecapture after latentfuse
# (docs/facerecapture.md).
#   pipelines/avatar-face.sh talk.jsonl avatar.mp4
#   REFERENCE=me.png FACE_OPTS="steps=2 strength=0.8" \
#     pipelines/avatar-face.sh talk.jsonl avatar.mp4
# MODEL and REFERENCE go to avatardiffuse and facerecapture alike; the
# reference's face points come from its sidecar OpenPose JSON (me.json).
# FACE_OPTS adds facerecapture properties (no spaces inside a value).
set -e
. "$(dirname "$0")/common.sh"
in=${1:?pose file}
out=${2:-avatar-face.mp4}
if [ "$AVATAR" != on ] || ! gst-inspect-1.0 facerecapture >/dev/null 2>&1; then
  echo "avatar-face: needs avatardiffuse, latentfuse and facerecapture" \
    "(plugin in $BUILD/gst, AVATAR=$AVATAR)" >&2
  exit 1
fi
echo "avatar-face: rendering $in as $AVATAR_WHAT, face restored, to $out"
"$TOOLS/avatar-launch" --label avatar-face -- \
  filesrc location="$in" ! posemapper ! $AVATAR_CHAIN \
  facerecapture ${MODEL:+model=$MODEL} ${REFERENCE:+reference=$REFERENCE} \
  ${FACE_OPTS:-} ! \
  videoconvert name=progress ! video/x-raw,format=I420 ! x264enc ! mp4mux ! \
  filesink location="$out"
