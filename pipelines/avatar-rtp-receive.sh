#!/bin/sh
# Receives the avatar's RTP/H.264 stream (from avatar-rtp.sh) on RTP_PORT
# and shows it. NUM=N stops after N video frames.
#   RTP_PORT=5004 pipelines/avatar-rtp-receive.sh
set -e
. "$(dirname "$0")/common.sh"
RTP_PORT=${RTP_PORT:-5004}
exec gst-launch-1.0 -q udpsrc port="$RTP_PORT" \
  caps="application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96" ! \
  rtpjitterbuffer latency=200 ! rtph264depay ! h264parse ! avdec_h264 ! \
  identity ${NUM:+eos-after=$NUM} ! videoconvert ! $SINK
