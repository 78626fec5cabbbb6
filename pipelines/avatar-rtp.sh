#!/bin/sh
# Live: pose frames arrive one per UDP datagram on PORT (from
# pose-udp-send.sh or any tracker); the avatar leaves as RTP/H.264 to
# HOST:RTP_PORT. The stream is described in SDP (written when SDP=FILE is
# set) for players: ffplay -protocol_whitelist file,udp,rtp FILE.
# NUM=N stops after N pose datagrams (EOS flushes the last window).
#   PORT=5000 RTP_PORT=5004 SDP=avatar.sdp pipelines/avatar-rtp.sh
set -e
. "$(dirname "$0")/common.sh"
PORT=${PORT:-5000}
HOST=${HOST:-127.0.0.1}
RTP_PORT=${RTP_PORT:-5004}
if [ -n "${SDP:-}" ]; then
  cat > "$SDP" <<SDPEOF
v=0
o=- 0 0 IN IP4 $HOST
s=gst-avatar
c=IN IP4 $HOST
t=0 0
m=video $RTP_PORT RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1
SDPEOF
fi
echo "avatar-rtp: poses on udp port $PORT -> $AVATAR_WHAT -> rtp://$HOST:$RTP_PORT" >&2
# The queue keeps reading the socket while the diffusion works (up to 10 s
# of poses), so datagrams are not lost in bursts. Plain RTP has no end of
# stream: receivers see the last frame once their timeout passes.
exec gst-launch-1.0 -q udpsrc port="$PORT" ${NUM:+num-buffers=$NUM} ! \
  queue max-size-buffers=0 max-size-bytes=0 max-size-time=10000000000 ! \
  posemapper ! $AVATAR_CHAIN videoconvert ! video/x-raw,format=I420 ! \
  x264enc tune=zerolatency speed-preset=veryfast key-int-max=25 ! \
  rtph264pay config-interval=-1 pt=96 ! udpsink host="$HOST" port="$RTP_PORT"
