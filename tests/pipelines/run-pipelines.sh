#!/bin/sh
# Runs the scripts in pipelines/ the way a user would, with short lengths
# and fakesink, and checks what each produced with a real client (ffprobe,
# ffmpeg as RTP and RTSP receiver, a GStreamer RTP receiver).
#   run-pipelines.sh BUILD_DIR [GROUP...]
# Groups: pose (guidance-only scripts), tools (avatar-launch and
# avatar-rtsp-server error paths), demo, file, face (avatar-face.sh and
# avatar-meta-launch), rtp, rtsp; default all.
# Loopback ports are picked free (pipelines/ports.py), so groups may run in
# parallel. AVATAR=auto|on|off as in pipelines/common.sh (auto: the avatar
# chain when the plugin has avatardiffuse and latentfuse).
set -u
top=${AVATAR_SOURCE_DIR:?}
export BUILD=${1:?build dir}
shift
groups=${*:-pose tools demo file face rtp rtsp}
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
      avatar-face.sh|avatar-rtp.sh|avatar-rtp-receive.sh|avatar-rtsp.sh) ;;
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
  if [ "$AVATAR" = on ] && [ -x "$BUILD/engine/avatar-engine" ]; then
    # The elements in a pipeline give exactly the frames the engine's own
    # renderer gives for the same poses and settings (two windows fused
    # over their overlap, the last one partial at EOS).
    gst-launch-1.0 -q filesrc location="$tmp/in.jsonl" ! posemapper ! \
      video/x-raw,width=$SIZE,height=$SIZE ! avatardiffuse steps=$STEPS \
      window=$WINDOW overlap=$OVERLAP seed=1 ! latentfuse ! videoconvert ! \
      video/x-raw,format=RGB ! pngenc ! multifilesink location="$tmp/gst-%05d.png"
    "$BUILD/engine/avatar-engine" render --model "$top/models/avatar-default" \
      --poses "$tmp/in.jsonl" --out "$tmp/engine" --steps $STEPS \
      --window $WINDOW --overlap $OVERLAP --seed 1 > /dev/null
    psnr=$(ffmpeg -nostdin -i "$tmp/engine/%05d.png" -i "$tmp/gst-%05d.png" \
      -lavfi "[0:v]format=rgb24[a];[1:v]format=rgb24[b];[a][b]psnr" -f null - 2>&1 |
      sed -n 's/.*PSNR.*average:\([^ ]*\).*/\1/p')
    n_gst=$(ls "$tmp"/gst-*.png | wc -l)
    check "pipeline frames = avatar-engine render frames ($n_gst frames, PSNR $psnr)" \
      "[ $n_gst -eq 12 ] && [ '$psnr' = inf ]"
  fi
  ;;

face)
  if [ "$AVATAR" != on ] || ! gst-inspect-1.0 facerecapture >/dev/null 2>&1; then
    echo "face: skipped (no avatardiffuse, latentfuse and facerecapture here)"
    continue
  fi
  # Offline with the face restored: 12 poses -> 12 frames of SIZE x SIZE.
  FRAMES=12 sh "$top/pipelines/pose-record.sh" "$tmp/in.jsonl"
  sh "$top/pipelines/avatar-face.sh" "$tmp/in.jsonl" "$tmp/face.mp4"
  check "avatar-face runs" "[ $? -eq 0 ]"
  frames=$(ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=nb_read_frames,width,height -of csv=p=0 "$tmp/face.mp4")
  check "avatar-face writes one ${SIZE}x$SIZE frame per pose, 12 (got: $frames)" \
    "[ '$frames' = '$SIZE,$SIZE,12' ]"
  # The same chain split after latentfuse: facerecapture changes every
  # frame of the presenter (a confident face in each), enabled=false none.
  gst-launch-1.0 -q filesrc location="$tmp/in.jsonl" ! posemapper ! \
    video/x-raw,width=$SIZE,height=$SIZE ! avatardiffuse steps=$STEPS \
    window=$WINDOW overlap=$OVERLAP seed=1 ! latentfuse ! tee name=t \
    t. ! queue ! facerecapture enabled=false ! videoconvert ! pngenc ! \
    multifilesink location="$tmp/off-%05d.png" \
    t. ! queue ! facerecapture ! videoconvert ! pngenc ! \
    multifilesink location="$tmp/on-%05d.png"
  changed=0
  for f in "$tmp"/off-*.png; do
    cmp -s "$f" "$tmp/on-${f##*/off-}" || changed=$((changed + 1))
  done
  check "facerecapture after latentfuse restores 12 of 12 frames (got $changed)" \
    "[ \$(ls '$tmp'/on-*.png | wc -l) -eq 12 ] && [ $changed -eq 12 ]"

  # avatar-meta-launch: the bundled identity image as 3 frames, 2 poses
  # (its sidecar JSON twice): frames 0 and 1 get the meta and a restored
  # face, frame 2 none and passes through byte for byte.
  meta="$BUILD/tools/avatar-meta-launch"
  ref="$top/models/avatar-default/references/identity_00"
  cat "$ref.json" "$ref.json" > "$tmp/two.json"
  still="filesrc location=$ref.png ! pngdec ! imagefreeze num-buffers=3 ! \
    videoconvert ! video/x-raw,format=RGB"
  gst-launch-1.0 -q $still ! videoconvert ! pngenc ! \
    multifilesink location="$tmp/still-%d.png"
  "$meta" --poses "$tmp/two.json" -- $still ! identity name=meta ! \
    facerecapture ! videoconvert ! pngenc ! \
    multifilesink location="$tmp/meta-%d.png" 2> "$tmp/m1.err"
  check "avatar-meta-launch runs facerecapture on 3 frames, 2 with a pose" \
    "[ $? -eq 0 ] && grep -q '3 buffers, 2 with a pose' '$tmp/m1.err'"
  check "frames with a pose are restored, the frame past the poses passes" \
    "! cmp -s '$tmp/meta-0.png' '$tmp/still-0.png' && \
     ! cmp -s '$tmp/meta-1.png' '$tmp/still-1.png' && \
     cmp -s '$tmp/meta-2.png' '$tmp/still-2.png'"
  "$meta" --poses "$tmp/no-such.jsonl" -- $still ! identity name=meta ! \
    fakesink 2> "$tmp/m2.err"
  check "avatar-meta-launch: a missing pose file fails naming it" \
    "[ $? -eq 1 ] && grep -q no-such.jsonl '$tmp/m2.err'"
  printf '%s\n' "$(tr -d '\n' < "$ref.json")" '{"people": [}' > "$tmp/bad.jsonl"
  "$meta" --poses "$tmp/bad.jsonl" -- $still ! identity name=meta ! \
    fakesink 2> "$tmp/m3.err"
  check "avatar-meta-launch: a bad pose fails naming the file and line" \
    "[ $? -eq 1 ] && grep -q 'bad.jsonl: pose 1 cannot be read: line 2' '$tmp/m3.err'"
  "$meta" --poses "$tmp/two.json" -- $still ! fakesink 2> "$tmp/m4.err"
  check "avatar-meta-launch without an element named meta fails and says so" \
    "[ $? -eq 1 ] && grep -q \"no element named 'meta'\" '$tmp/m4.err'"
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
  while [ ! -s "$tmp/url" ] && [ $i -lt 1200 ] && kill -0 $srv 2>/dev/null; do
    sleep 0.1; i=$((i + 1))
  done
  url=$(head -n 1 "$tmp/url")
  check "avatar-rtsp prints its URL (got: $url)" \
    "echo '$url' | grep -Eq '^rtsp://127.0.0.1:[0-9]+/avatar$'"
  timeout 120 ffmpeg -nostdin -v error -rtsp_transport tcp -i "$url" \
    -frames:v $n -f framecrc "$tmp/rtsp.crc" \
    -frames:v 1 -f rawvideo "$tmp/rtsp.yuv"
  check "ffmpeg plays the RTSP stream" "[ $? -eq 0 ]"
  check "RTSP: $n frames of ${SIZE}x$SIZE, consecutive timestamps" \
    "framecrc_ok '$tmp/rtsp.crc' $n"
  # The URL comes once the first rendered frame is out: what a client sees
  # is that frame (or a later one), not the black of an empty channel.
  levels=$(od -An -tu1 -v -N $((SIZE * SIZE)) "$tmp/rtsp.yuv" | tr -s ' ' '\n' | sort -u | wc -l)
  check "RTSP: the first frame has content ($levels grey levels)" "[ $levels -gt 16 ]"
  # A second client joins the same running pipeline (shared, started once).
  timeout 120 ffmpeg -nostdin -v error -rtsp_transport tcp -i "$url" \
    -frames:v 4 -f framecrc "$tmp/rtsp2.crc"
  check "a second client gets 4 frames of the same stream" \
    "[ $? -eq 0 ] && framecrc_ok '$tmp/rtsp2.crc' 4"
  check "one pipeline serves both clients" \
    "[ \$(grep -c 'pipeline created' '$tmp/rtsp.err') -eq 1 ]"
  kill $srv; wait $srv
  check "avatar-rtsp-server stops cleanly on SIGTERM" "[ $? -eq 0 ]"
  cat "$tmp/rtsp.err"
  ;;

tools)
  # avatar-launch and avatar-rtsp-server on their error paths and Ctrl-C.
  launch="$BUILD/tools/avatar-launch"
  "$launch" -- posetestsrc num-buffers=3 ! fakesink > /dev/null 2> "$tmp/l1.err"
  check "avatar-launch without a 'progress' element fails and says so" \
    "[ $? -eq 1 ] && grep -q \"no element named 'progress'\" '$tmp/l1.err'"
  "$launch" -- posetestsrc ! nosuchelement ! fakesink > /dev/null 2> "$tmp/l2.err"
  check "avatar-launch with an unknown element fails naming it" \
    "[ $? -eq 1 ] && grep -q nosuchelement '$tmp/l2.err'"
  "$launch" --frames 5 -- posetestsrc num-buffers=5 ! posemapper ! \
    videoconvert name=progress ! filesink location="$tmp/no/such/dir/x" 2> "$tmp/l3.err"
  check "avatar-launch reports a runtime error with its element and exits 1" \
    "[ $? -eq 1 ] && grep -q 'ERROR from filesink' '$tmp/l3.err'"
  # A live render stopped by SIGINT still ends in a playable MP4 (EOS).
  "$launch" --label live -- posetestsrc is-live=true ! posemapper ! \
    video/x-raw,width=$SIZE,height=$SIZE ! videoconvert name=progress ! \
    video/x-raw,format=I420 ! x264enc ! mp4mux ! \
    filesink location="$tmp/live.mp4" 2> "$tmp/l4.err" &
  lp=$!
  sleep 3
  kill -INT $lp
  wait $lp
  rc=$?
  frames=$(ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=nb_read_frames -of csv=p=0 "$tmp/live.mp4" 2>/dev/null)
  check "avatar-launch: Ctrl-C finishes the MP4 (exit $rc, $frames frames)" \
    "[ $rc -eq 0 ] && [ '${frames:-0}' -gt 0 ]"
  srv="$BUILD/tools/avatar-rtsp-server"
  if [ -x "$srv" ]; then
    "$srv" --port 0 -- videotestsrc ! fakesink > /dev/null 2> "$tmp/s1.err"
    check "avatar-rtsp-server without pay0 fails and says so" \
      "[ $? -eq 1 ] && grep -q pay0 '$tmp/s1.err'"
    "$srv" --port 0 -- videotestsrc ! nosuchelement name=pay0 > /dev/null 2> "$tmp/s2.err"
    check "avatar-rtsp-server with a bad description fails naming it" \
      "[ $? -eq 1 ] && grep -q nosuchelement '$tmp/s2.err'"
    "$srv" --port 0 --render "videotestsrc ! nosuchelement ! fakesink" -- \
      videotestsrc ! x264enc ! rtph264pay name=pay0 > /dev/null 2> "$tmp/s3.err"
    check "avatar-rtsp-server with a bad --render fails naming it" \
      "[ $? -eq 1 ] && grep -q nosuchelement '$tmp/s3.err'"
  fi
  ;;

*) echo "unknown group $g"; fail=1 ;;
esac
done
exit $fail
