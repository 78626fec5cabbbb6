#!/bin/sh
# Runs examples/avatar-embed: generated poses and a recorded pose file pushed
# through appsrc, frames pulled from appsink; the program itself checks frames
# in = frames out and increasing timestamps; here we check its report and the
# PPM frames it writes.
#   test-embed.sh PATH/TO/avatar-embed
set -u
embed=${1:?avatar-embed}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check () { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

if gst-inspect-1.0 avatardiffuse >/dev/null 2>&1 && gst-inspect-1.0 latentfuse >/dev/null 2>&1
then mode=""; what="avatar chain"
else mode="--guidance-only"; what="guidance only (no avatardiffuse/latentfuse yet)"
fi
echo "avatar-embed: $what"

"$embed" $mode --frames 6 --steps 2 --output "$tmp/gen" > "$tmp/gen.log" 2>&1
rc=$?
cat "$tmp/gen.log"
check "generated poses: runs" "[ $rc -eq 0 ]"
check "generated poses: 6 in, 6 out at 256x256" \
  "grep -q '6 pose frames in, 6 frames out, 256x256 RGB' '$tmp/gen.log'"
check "generated poses: 6 PPM frames of 256x256" \
  "[ \$(ls '$tmp/gen' | wc -l) -eq 6 ] && head -c 15 '$tmp/gen/frame-0005.ppm' | grep -q '256 256'"
check "frames are not blank" \
  "! cmp -s '$tmp/gen/frame-0000.ppm' /dev/zero 2>/dev/null && [ \$(od -An -tu1 -v '$tmp/gen/frame-0003.ppm' | tr -s ' ' '\n' | sort -u | wc -l) -gt 8 ]"

gst-launch-1.0 -q posetestsrc num-buffers=9 width=256 height=256 seed=3 ! \
  filesink location="$tmp/talk.jsonl"
"$embed" $mode --poses "$tmp/talk.jsonl" --frames 100 --steps 2 > "$tmp/file.log" 2>&1
rc=$?
cat "$tmp/file.log"
check "pose file: runs and stops at the file's 9 frames" \
  "[ $rc -eq 0 ] && grep -q '9 pose frames in, 9 frames out' '$tmp/file.log'"

"$embed" --poses "$tmp/missing.jsonl" > "$tmp/bad.log" 2>&1
rc=$?
check "a missing pose file is an error naming it" \
  "[ $rc -ne 0 ] && grep -q 'missing.jsonl' '$tmp/bad.log'"
exit $fail
