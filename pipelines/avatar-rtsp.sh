#!/bin/sh
# Serves the live avatar over RTSP (gst-rtsp-server) at
# rtsp://127.0.0.1:RTSP_PORT/avatar, one stream shared by every client. The
# URL is printed on stdout once the first avatar frame is out; RTSP_PORT=0
# picks a free port. The poses come from posetestsrc, or, with POSE_PORT=N,
# as UDP datagrams on port N.
#   pipelines/avatar-rtsp.sh &   ffplay rtsp://127.0.0.1:8554/avatar
# The avatar renders in its own pipeline (--render) and reaches the served
# one through intervideosink/intervideosrc: the stream runs at 25 fps from
# the start, repeating the latest avatar frame while the next one renders
# (on a CPU slower than real time, viewers see it update at the speed the
# machine renders; for up to an hour without a new frame).
set -e
. "$(dirname "$0")/common.sh"
RTSP_PORT=${RTSP_PORT:-8554}
if [ -n "${POSE_PORT:-}" ]; then
  poses="udpsrc port=$POSE_PORT ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=10000000000"
else
  poses="posetestsrc is-live=true seed=${POSE_SEED:-1}"
fi
echo "avatar-rtsp: $AVATAR_WHAT over RTSP on port $RTSP_PORT" >&2
exec "$TOOLS/avatar-rtsp-server" --port "$RTSP_PORT" --mount /avatar \
  --render "$poses ! posemapper ! $AVATAR_CHAIN videoconvert ! \
video/x-raw,format=I420 ! intervideosink channel=avatar sync=false" -- \
  intervideosrc channel=avatar timeout=3600000000000 ! \
  video/x-raw,format=I420,width=$SIZE,height=$SIZE,framerate=25/1 ! \
  x264enc tune=zerolatency speed-preset=veryfast key-int-max=25 ! \
  rtph264pay name=pay0 config-interval=-1 pt=96
