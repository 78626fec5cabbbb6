# Sourced by the pipeline scripts: finds the freshly built plugin and tools,
# and sets $AVATAR_CHAIN, the part of every avatar pipeline between
# posemapper and videoconvert.
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac
export GST_PLUGIN_PATH_1_0="$BUILD/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
TOOLS="$BUILD/tools"
SINK=${SINK:-autovideosink}
FRAMES=${FRAMES:-100}

# The avatar: the embedded model (models/avatar-default) renders SIZE x SIZE
# from pose guidance drawn at that size. MODEL and REFERENCE default to the
# element's own defaults (the bundled model and its first reference).
# WINDOW, OVERLAP and QOS (true/false: drop frames that come too late in a
# live pipeline) are passed on when set; DIFFUSE_OPTS adds any other
# avatardiffuse properties ("scheduler=euler pose-scale=1.2"). Values here
# must not contain spaces.
SIZE=${SIZE:-256}
STEPS=${STEPS:-4}
# CFG scale of the embedded model at 4 steps: 1.5 measured best on the
# held-out clips (docs/quality.md); the element's own default (2.5) suits
# longer schedules.
GUIDANCE=${GUIDANCE:-1.5}
SEED=${SEED:-1}
# AVATAR=auto: diffuse when the plugin has avatardiffuse and latentfuse;
# AVATAR=on: require them; AVATAR=off: the pose guidance only.
AVATAR=${AVATAR:-auto}

have_avatar_elements () {
  gst-inspect-1.0 avatardiffuse >/dev/null 2>&1 && gst-inspect-1.0 latentfuse >/dev/null 2>&1
}

case "$AVATAR" in
  auto) if have_avatar_elements; then AVATAR=on; else AVATAR=off; fi ;;
  on) have_avatar_elements || {
      echo "$(basename "$0"): AVATAR=on but the plugin in $BUILD/gst has no" \
        "avatardiffuse/latentfuse" >&2; exit 1; } ;;
  off) ;;
  *) echo "$(basename "$0"): AVATAR must be auto, on or off" >&2; exit 2 ;;
esac

# Pose guidance at the model's size, then (when on) diffusion and decoding.
AVATAR_CHAIN="video/x-raw,width=$SIZE,height=$SIZE !"
if [ "$AVATAR" = on ]; then
  AVATAR_CHAIN="$AVATAR_CHAIN avatardiffuse steps=$STEPS seed=$SEED guidance-scale=$GUIDANCE \
${MODEL:+model=$MODEL} ${REFERENCE:+reference=$REFERENCE} \
${WINDOW:+window=$WINDOW} ${OVERLAP:+overlap=$OVERLAP} ${QOS:+qos=$QOS} \
${DIFFUSE_OPTS:-} ! latentfuse !"
fi
# What the scripts say they render, for their messages.
if [ "$AVATAR" = on ]; then
  AVATAR_WHAT="the avatar (${SIZE}x$SIZE, $STEPS steps, guidance $GUIDANCE)"
else
  AVATAR_WHAT="the pose guidance only (AVATAR=off: no diffusion)"
fi
