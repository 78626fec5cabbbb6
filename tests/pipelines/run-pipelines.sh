#!/bin/sh
# Runs every script in pipelines/ the way a user would, with short lengths
# and fakesink, and checks what each produced.
set -u
top=${AVATAR_SOURCE_DIR:?}
export BUILD=${1:?build dir}
export SINK=fakesink FRAMES=20
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check () { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

sh "$top/pipelines/pose-preview.sh"
check "pose-preview runs" "[ $? -eq 0 ]"

sh "$top/pipelines/pose-record.sh" "$tmp/talk.jsonl"
check "pose-record writes one line a frame" "[ \$(wc -l < '$tmp/talk.jsonl') -eq 20 ]"

sh "$top/pipelines/pose-file-preview.sh" "$tmp/talk.jsonl"
check "pose-file-preview runs" "[ $? -eq 0 ]"

OUT="$tmp" FRAMES=10 sh "$top/pipelines/demo.sh"
frames=$(ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=nb_read_frames,width,height -of csv=p=0 "$tmp/demo.mp4")
check "demo writes 10 frames of 512x512 H.264 (got: $frames)" "[ '$frames' = '512,512,10' ]"

port=$(( 20000 + $$ % 20000 ))
PORT=$port NUM=20 timeout 60 sh "$top/pipelines/pose-udp-receive.sh" &
rx=$!
sleep 1
PORT=$port FRAMES=60 sh "$top/pipelines/pose-udp-send.sh" &
tx=$!
wait $rx
check "pose-udp-receive gets 20 datagrams" "[ $? -eq 0 ]"
kill $tx 2>/dev/null; wait $tx 2>/dev/null
exit $fail
