#!/bin/sh
# Live: pose frames arrive one per UDP datagram (from pose-udp-send.sh or any
# tracker) and are drawn as they come. NUM=N stops after N datagrams.
set -e
. "$(dirname "$0")/common.sh"
PORT=${PORT:-5000}
gst-launch-1.0 -q udpsrc port="$PORT" ${NUM:+num-buffers=$NUM} ! posemapper ! \
  videoconvert ! $SINK
