#!/bin/sh
# Runs the scripts in pipelines/ the way a user would, with short lengths
# and fakesink, and checks what each produced with a real client (ffprobe,
# ffmpeg as RTP and RTSP receiver, a GStreamer RTP receiver).
#   run-pipelines.sh BUILD_DIR [GROUP...]
# Groups: pose (guidance-only scripts), demo, file, rtp, rtsp; default all.
# Loopback ports are picked free (pipelines/ports.py), so groups may run in
# parallel. AVATAR=auto|on|off as in pipelines/common.sh (auto: the avatar
# chain when the plugin has avatardiffuse and latentfuse).
set -u
top=${AVATAR_SOURCE_DIR:?}
export BUILD=${1:?build dir}
shift
groups=${*:-pose demo file rtp rtsp}
export SINK=fakesink FRAMES=20
# Short avatar renders: few steps, short windows (so that the 12-frame runs
# cross a window overlap and end in a partial window), small frame counts
# below. QoS off: the live runs check that every frame arrives, even on a
# machine too slow to keep up with the live sources.
export STEPS=${STEPS:-2} WINDOW=${WINDOW:-8} OVERLAP=${OVERLAP:-2} QOS=false
tmp=$(mktemp -d)
pids=""
cleanup () {
  for p in $pids; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
check () { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
ports () { python3 "$top/pipelines/ports.py" "$@"; }

# Which chain the avatar scripts use here (same rule as common.sh).
export GST_PLUGIN_PATH_1_0="$BUILD/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
if [ "${AVATAR:-auto}" = auto ]; then
  if gst-inspect-1.0 avatardiffuse >/dev/null 2>&1 && gst-inspect-1.0 latentfuse >/dev/null 2>&1
  then AVATAR=on; else AVATAR=off; fi
fi
export AVATAR
echo "avatar chain: $AVATAR (steps $STEPS, window $WINDOW, overlap $OVERLAP)"
SIZE=256
I420=$((SIZE * SIZE * 3 / 2))

# framecrc_ok FILE N: ffmpeg's framecrc output holds exactly N decoded frames
# of SIZE x SIZE I420 with consecutive timestamps (no frame lost between).
framecrc_ok () {
  awk -F', *' -v n="$2" -v size="$I420" '
    /^#dimensions/ { dims = $0 }
    /^[0-9]/ { if ($5 != size) bad = 1
               if (count > 0 && $2 - last != step && step) bad = 1
               if (count == 1) step = $2 - last
               last = $2; count++ }
    END { exit !(count == n && !bad && step > 0) }' "$1"
}

for g in $groups; do
case $g in
pose)
  # Every script in pipelines/ is run by one of the groups.
  for s in "$top"/pipelines/*.sh; do
    name=$(basename "$s")
    case $name in
      common.sh|pose-preview.sh|pose-record.sh|pose-file-preview.sh|\
      pose-udp-receive.sh|pose-udp-send.sh|demo.sh|avatar-file.sh|\
      avatar-rtp.sh|avatar-rtp-receive.sh|avatar-rtsp.sh) ;;
      *) echo "FAIL: pipelines/$name is not run by tests/pipelines/run-pipelines.sh"
         fail=1 ;;
    esac
  done

  sh "$top/pipelines/pose-preview.sh"
  check "pose-preview runs" "[ $? -eq 0 ]"

  sh "$top/pipelines/pose-record.sh" "$tmp/talk.jsonl"
  check "pose-record writes one line a frame" "[ \$(wc -l < '$tmp/talk.jsonl') -eq 20 ]"

  sh "$top/pipelines/pose-file-preview.sh" "$tmp/talk.jsonl"
  check "pose-file-preview runs" "[ $? -eq 0 ]"

  port=$(ports free 1)
  PORT=$port NUM=20 timeout 60 sh "$top/pipelines/pose-udp-receive.sh" &
  rx=$!
  ports wait "$port" 20
  PORT=$port FRAMES=60 sh "$top/pipelines/pose-udp-send.sh" &
  tx=$!
  pids="$pids $tx"
  wait $rx
  check "pose-udp-receive gets 20 datagrams" "[ $? -eq 0 ]"
  kill $tx 2>/dev/null; wait $tx 2>/dev/null
  ;;

demo)
  OUT="$tmp" FRAMES=10 sh "$top/pipelines/demo.sh" 2> "$tmp/demo.err"
  rc=$?
  cat "$tmp/demo.err"
  check "demo runs" "[ $rc -eq 0 ]"
  check "demo prints a progress line" "grep -q '^demo: frame 10/10 (100%)' '$tmp/demo.err'"
  frames=$(ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=nb_read_frames,width,height,pix_fmt -of csv=p=0 "$tmp/demo.mp4")
  check "demo writes 10 frames of ${SIZE}x$SIZE yuv420p H.264 (got: $frames)" \
    "[ '$frames' = '$SIZE,$SIZE,yuv420p,10' ]"
  ;;

file)
  # Offline: a pose file of 12 frames (not a multiple of any window) -> MP4.
  FRAMES=12 sh "$top/pipelines/pose-record.sh" "$tmp/in.jsonl"
  sh "$top/pipelines/avatar-file.sh" "$tmp/in.jsonl" "$tmp/file.mp4"
  check "avatar-file runs" "[ $? -eq 0 ]"
  frames=$(ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=nb_read_frames,width,height -of csv=p=0 "$tmp/file.mp4")
  check "avatar-file writes one ${SIZE}x$SIZE frame per pose, 12 (got: $frames)" \
    "[ '$frames' = '$SIZE,$SIZE,12' ]"
  ;;

rtp)
  # Live: poses as UDP datagrams -> avatar -> RTP/H.264 on loopback,
  # received by ffmpeg (from the SDP the script writes) and by GStreamer.
  # Plain RTP has no end-of-stream: ffmpeg completes frame k only when frame
  # k+1 starts, so it is sent one frame more than it is asked for.
  n=12
  set -- $(ports free 3)
  pose_port=$1 rtp_port=$2 rtp_port2=$3
  PORT=$pose_port RTP_PORT=$rtp_port SDP="$tmp/avatar.sdp" NUM=$((n + 1)) \
    timeout 120 sh "$top/pipelines/avatar-rtp.sh" &
  sender=$!
  pids="$pids $sender"
  ports wait "$pose_port" 30
  timeout 120 ffmpeg -nostdin -v error -threads 1 -listen_timeout 100 \
    -analyzeduration 0 -probesize 32 \
    -protocol_whitelist file,udp,rtp -i "$tmp/avatar.sdp" \
    -frames:v $n -f framecrc "$tmp/rtp.crc" &
  ff=$!
  pids="$pids $ff"
  ports wait "$rtp_port" 30
  PORT=$pose_port FRAMES=$((n + 1)) sh "$top/pipelines/pose-udp-send.sh"
  wait $sender
  check "avatar-rtp sends $((n + 1)) poses through and ends at EOS" "[ $? -eq 0 ]"
  wait $ff
  check "ffmpeg receives the RTP stream" "[ $? -eq 0 ]"
  check "RTP: $n frames of ${SIZE}x$SIZE, consecutive timestamps" \
    "framecrc_ok '$tmp/rtp.crc' $n"

  # The GStreamer receiver script, same stream again.
  RTP_PORT=$rtp_port2 NUM=$n timeout 120 sh "$top/pipelines/avatar-rtp-receive.sh" &
  rx=$!
  pids="$pids $rx"
  ports wait "$rtp_port2" 30
  PORT=$pose_port RTP_PORT=$rtp_port2 NUM=$n \
    timeout 120 sh "$top/pipelines/avatar-rtp.sh" &
  sender=$!
  pids="$pids $sender"
  ports wait "$pose_port" 30
  PORT=$pose_port FRAMES=$n sh "$top/pipelines/pose-udp-send.sh"
  wait $sender
  wait $rx
  check "avatar-rtp-receive decodes $n frames and ends" "[ $? -eq 0 ]"
  ;;

rtsp)
  # RTSP: the server picks a free port and prints its URL; ffmpeg plays it.
  n=8
  RTSP_PORT=0 sh "$top/pipelines/avatar-rtsp.sh" > "$tmp/url" 2> "$tmp/rtsp.err" &
  srv=$!
  pids="$pids $srv"
  i=0
  while [ ! -s "$tmp/url" ] && [ $i -lt 300 ] && kill -0 $srv 2>/dev/null; do
    sleep 0.1; i=$((i + 1))
  done
  url=$(head -n 1 "$tmp/url")
  check "avatar-rtsp prints its URL (got: $url)" \
    "echo '$url' | grep -Eq '^rtsp://127.0.0.1:[0-9]+/avatar$'"
  timeout 120 ffmpeg -nostdin -v error -rtsp_transport tcp -i "$url" \
    -frames:v $n -f framecrc "$tmp/rtsp.crc"
  check "ffmpeg plays the RTSP stream" "[ $? -eq 0 ]"
  check "RTSP: $n frames of ${SIZE}x$SIZE, consecutive timestamps" \
    "framecrc_ok '$tmp/rtsp.crc' $n"
  kill $srv; wait $srv
  check "avatar-rtsp-server stops cleanly on SIGTERM" "[ $? -eq 0 ]"
  cat "$tmp/rtsp.err"
  ;;

*) echo "unknown group $g"; fail=1 ;;
esac
done
exit $fail
