/* posetestsrc: procedural talking-presenter keypoints as OpenPose JSON.
 *
 * Thin element over the avatar world's motion code (world/motion.c), the
 * same code that drives the avatar-world renderer: caps, properties,
 * timestamps and latency live here, the motion lives there.
 */

/**
 * SECTION:element-posetestsrc
 * @title: posetestsrc
 *
 * posetestsrc generates the keypoints of a procedural news presenter
 * talking: speech-like mouth movement (2-7 Hz), blinks, head nods and
 * turns, idle sway, beat and pointing gestures, counting on the fingers and
 * hands entering and leaving the frame. Each buffer holds one frame as one
 * line of OpenPose JSON (COCO-18 body, 70 face points, two 21-point hands,
 * with `canvas_width` and `canvas_height`), ending in a newline, so the
 * stream is JSON Lines: it feeds posemapper, a file or a UDP socket.
 *
 * The output is a pure function of #GstPoseTestSrc:seed,
 * #GstPoseTestSrc:identity, the canvas size, the framerate and the frame
 * number: frame n is stamped n / framerate and lasts one frame. Confidences
 * are detector-like: points off the canvas or hidden are written as 0,0,0
 * and fast-moving hands score lower.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 posetestsrc num-buffers=100 ! posemapper ! videoconvert ! autovideosink
 * ]| Draws 4 seconds of a presenter's pose guidance.
 * |[
 * gst-launch-1.0 posetestsrc seed=7 num-buffers=250 ! filesink location=talk.jsonl
 * ]| Writes 10 seconds of motion as a JSON Lines file.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "gstposetestsrc.h"

#include "avatar-world.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_pose_test_src_debug);
#define GST_CAT_DEFAULT gst_pose_test_src_debug

#define DEFAULT_PROP_SEED 0
#define DEFAULT_PROP_IDENTITY 0
#define DEFAULT_PROP_WIDTH 512
#define DEFAULT_PROP_HEIGHT 512
#define DEFAULT_PROP_FPS_N 25
#define DEFAULT_PROP_FPS_D 1
#define DEFAULT_PROP_IS_LIVE FALSE

enum
{
  PROP_0,
  PROP_SEED,
  PROP_IDENTITY,
  PROP_WIDTH,
  PROP_HEIGHT,
  PROP_FRAMERATE,
  PROP_IS_LIVE,
};

struct _GstPoseTestSrc
{
  GstPushSrc parent;

  /* Properties, under the object lock. */
  guint seed, identity;
  gint width, height;
  gint fps_n, fps_d;

  /* Streaming state: set in start(), used by the streaming thread. */
  AwMotion *motion;
  AwIdentity ident;
  gint run_width, run_height, run_fps_n, run_fps_d;
  guint64 frame;                /* next frame number */
};

#define SRC_CAPS "application/x-openpose-json, " \
    "framerate = (fraction) [ 1/1000, 1000/1 ]"

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (SRC_CAPS));

#define gst_pose_test_src_parent_class parent_class
G_DEFINE_TYPE (GstPoseTestSrc, gst_pose_test_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE (posetestsrc, "posetestsrc", GST_RANK_NONE,
    GST_TYPE_POSE_TEST_SRC);

static void
gst_pose_test_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstPoseTestSrc *self = GST_POSE_TEST_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SEED:
      self->seed = g_value_get_uint (value);
      break;
    case PROP_IDENTITY:
      self->identity = g_value_get_uint (value);
      break;
    case PROP_WIDTH:
      self->width = g_value_get_int (value);
      break;
    case PROP_HEIGHT:
      self->height = g_value_get_int (value);
      break;
    case PROP_FRAMERATE:
      self->fps_n = gst_value_get_fraction_numerator (value);
      self->fps_d = gst_value_get_fraction_denominator (value);
      break;
    case PROP_IS_LIVE:
      GST_OBJECT_UNLOCK (self);
      gst_base_src_set_live (GST_BASE_SRC (self), g_value_get_boolean (value));
      return;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_pose_test_src_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstPoseTestSrc *self = GST_POSE_TEST_SRC (object);

  if (prop_id == PROP_IS_LIVE) {
    g_value_set_boolean (value, gst_base_src_is_live (GST_BASE_SRC (self)));
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SEED:
      g_value_set_uint (value, self->seed);
      break;
    case PROP_IDENTITY:
      g_value_set_uint (value, self->identity);
      break;
    case PROP_WIDTH:
      g_value_set_int (value, self->width);
      break;
    case PROP_HEIGHT:
      g_value_set_int (value, self->height);
      break;
    case PROP_FRAMERATE:
      gst_value_set_fraction (value, self->fps_n, self->fps_d);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static GstCaps *
gst_pose_test_src_get_caps (GstBaseSrc * src, GstCaps * filter)
{
  GstPoseTestSrc *self = GST_POSE_TEST_SRC (src);
  GstCaps *caps;

  GST_OBJECT_LOCK (self);
  caps = gst_caps_new_simple ("application/x-openpose-json", "framerate",
      GST_TYPE_FRACTION, self->fps_n, self->fps_d, NULL);
  GST_OBJECT_UNLOCK (self);
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, caps,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = tmp;
  }
  return caps;
}

static gboolean
gst_pose_test_src_start (GstBaseSrc * src)
{
  GstPoseTestSrc *self = GST_POSE_TEST_SRC (src);

  GST_OBJECT_LOCK (self);
  self->motion = aw_motion_new (self->seed);
  aw_identity_from_seed (self->identity, &self->ident);
  self->run_width = self->width;
  self->run_height = self->height;
  self->run_fps_n = self->fps_n;
  self->run_fps_d = self->fps_d;
  GST_OBJECT_UNLOCK (self);
  self->frame = 0;
  return TRUE;
}

static gboolean
gst_pose_test_src_stop (GstBaseSrc * src)
{
  GstPoseTestSrc *self = GST_POSE_TEST_SRC (src);

  aw_motion_free (self->motion);
  self->motion = NULL;
  return TRUE;
}

static GstClockTime
frame_time (GstPoseTestSrc * self, guint64 n)
{
  return gst_util_uint64_scale (n, (guint64) self->run_fps_d * GST_SECOND,
      (guint64) self->run_fps_n);
}

/* A seek lands on the first frame at or after the new position. */
static gboolean
gst_pose_test_src_do_seek (GstBaseSrc * src, GstSegment * segment)
{
  GstPoseTestSrc *self = GST_POSE_TEST_SRC (src);
  GstClockTime pos = segment->position;

  if (segment->rate < 0.0)
    pos = segment->stop != GST_CLOCK_TIME_NONE ? segment->stop : pos;
  self->frame = gst_util_uint64_scale_ceil (pos, (guint64) self->run_fps_n,
      (guint64) self->run_fps_d * GST_SECOND);
  segment->time = segment->start;
  return TRUE;
}

static gboolean
gst_pose_test_src_is_seekable (GstBaseSrc * src)
{
  return !gst_base_src_is_live (src);
}

/* Live: one frame must be generated before it can leave. */
static gboolean
gst_pose_test_src_query (GstBaseSrc * src, GstQuery * query)
{
  GstPoseTestSrc *self = GST_POSE_TEST_SRC (src);

  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    GstClockTime latency;
    gint n, d;
    GST_OBJECT_LOCK (self);
    n = self->fps_n;
    d = self->fps_d;
    GST_OBJECT_UNLOCK (self);
    latency = gst_util_uint64_scale (GST_SECOND, (guint64) d, (guint64) n);
    gst_query_set_latency (query, gst_base_src_is_live (src), latency,
        latency);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS (parent_class)->query (src, query);
}

/* basesrc waits for the buffer's start on the clock in live mode. */
static void
gst_pose_test_src_get_times (GstBaseSrc * src, GstBuffer * buffer,
    GstClockTime * start, GstClockTime * end)
{
  *start = *end = GST_CLOCK_TIME_NONE;
  if (gst_base_src_is_live (src) && GST_BUFFER_PTS_IS_VALID (buffer)) {
    *start = GST_BUFFER_PTS (buffer);
    if (GST_BUFFER_DURATION_IS_VALID (buffer))
      *end = *start + GST_BUFFER_DURATION (buffer);
  }
}

static GstFlowReturn
gst_pose_test_src_create (GstPushSrc * psrc, GstBuffer ** out)
{
  GstPoseTestSrc *self = GST_POSE_TEST_SRC (psrc);
  double fps = (double) self->run_fps_n / self->run_fps_d;
  ApPerson truth;
  ApFrame frame;
  char *json, *line;
  gsize len;
  GstBuffer *buf;
  GstClockTime ts = frame_time (self, self->frame);

  aw_motion_pose (self->motion, &self->ident, (int64_t) self->frame, fps,
      self->run_width, self->run_height, &truth);
  aw_observed_frame (&truth, self->run_width, self->run_height, &frame);
  json = ap_frame_to_json (&frame);
  line = g_strconcat (json, "\n", NULL);
  g_free (json);
  len = strlen (line);
  buf = gst_buffer_new_wrapped (line, len);
  GST_BUFFER_PTS (buf) = ts;
  GST_BUFFER_DTS (buf) = ts;
  GST_BUFFER_DURATION (buf) = frame_time (self, self->frame + 1) - ts;
  GST_BUFFER_OFFSET (buf) = self->frame;
  GST_BUFFER_OFFSET_END (buf) = self->frame + 1;
  if (self->frame == 0)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  self->frame++;
  *out = buf;
  return GST_FLOW_OK;
}

static void
gst_pose_test_src_class_init (GstPoseTestSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *basesrc_class = GST_BASE_SRC_CLASS (klass);
  GstPushSrcClass *pushsrc_class = GST_PUSH_SRC_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
      | GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_pose_test_src_set_property;
  gobject_class->get_property = gst_pose_test_src_get_property;

  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint ("seed", "Motion seed",
          "Seed of the presenter's motion: speech rhythm, blinks, head "
          "movement and the sequence of gestures. The same seed gives the "
          "same keypoints, frame for frame", 0, G_MAXUINT, DEFAULT_PROP_SEED,
          flags));
  g_object_class_install_property (gobject_class, PROP_IDENTITY,
      g_param_spec_uint ("identity", "Identity seed",
          "Seed of the presenter's body proportions and framing (head size, "
          "arm lengths, position and scale on the canvas), as avatar-world "
          "renders it; 0 is the default presenter", 0, G_MAXUINT,
          DEFAULT_PROP_IDENTITY, flags));
  g_object_class_install_property (gobject_class, PROP_WIDTH,
      g_param_spec_int ("width", "Canvas width",
          "Width in pixels of the canvas the keypoints are given on "
          "(canvas_width in the JSON)", 16, AP_MAX_CANVAS,
          DEFAULT_PROP_WIDTH, flags));
  g_object_class_install_property (gobject_class, PROP_HEIGHT,
      g_param_spec_int ("height", "Canvas height",
          "Height in pixels of the canvas the keypoints are given on "
          "(canvas_height in the JSON); the presenter is framed half-body "
          "relative to it", 16, AP_MAX_CANVAS, DEFAULT_PROP_HEIGHT, flags));
  g_object_class_install_property (gobject_class, PROP_FRAMERATE,
      gst_param_spec_fraction ("framerate", "Frame rate",
          "Frames per second: frame n is stamped n / framerate and the "
          "motion is sampled at that time", 1, 1000, 1000, 1,
          DEFAULT_PROP_FPS_N, DEFAULT_PROP_FPS_D, flags));
  g_object_class_install_property (gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean ("is-live", "Is live",
          "Act as a live source: frames leave in real time, paced by the "
          "pipeline clock, and the source reports one frame of latency",
          DEFAULT_PROP_IS_LIVE, flags));

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Pose test source", "Source/Pose",
      "Procedural talking-presenter keypoints (body, face, hands) as "
      "OpenPose JSON Lines", "gst-avatar team");

  basesrc_class->get_caps = gst_pose_test_src_get_caps;
  basesrc_class->start = gst_pose_test_src_start;
  basesrc_class->stop = gst_pose_test_src_stop;
  basesrc_class->do_seek = gst_pose_test_src_do_seek;
  basesrc_class->is_seekable = gst_pose_test_src_is_seekable;
  basesrc_class->query = gst_pose_test_src_query;
  basesrc_class->get_times = gst_pose_test_src_get_times;
  pushsrc_class->create = gst_pose_test_src_create;

  GST_DEBUG_CATEGORY_INIT (gst_pose_test_src_debug, "posetestsrc", 0,
      "procedural pose source");
}

static void
gst_pose_test_src_init (GstPoseTestSrc * self)
{
  self->seed = DEFAULT_PROP_SEED;
  self->identity = DEFAULT_PROP_IDENTITY;
  self->width = DEFAULT_PROP_WIDTH;
  self->height = DEFAULT_PROP_HEIGHT;
  self->fps_n = DEFAULT_PROP_FPS_N;
  self->fps_d = DEFAULT_PROP_FPS_D;
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
  gst_base_src_set_live (GST_BASE_SRC (self), DEFAULT_PROP_IS_LIVE);
}
