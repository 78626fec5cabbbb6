# Sourced by the pipeline scripts: finds the freshly built plugin.
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac
export GST_PLUGIN_PATH_1_0="$BUILD/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"
SINK=${SINK:-autovideosink}
FRAMES=${FRAMES:-100}
