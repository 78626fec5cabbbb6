/* posemapper: OpenPose JSON keypoints -> pose-guidance video frames.
 *
 * The element is thin: avatar-pose parses (ap_parser_*), selects
 * (ap_frame_select) and draws (ap_draw); this file does caps, timestamps,
 * metas, warnings and statistics.
 */

/**
 * SECTION:element-posemapper
 * @title: posemapper
 *
 * posemapper reads OpenPose JSON frames (JSON Lines, objects back to back,
 * pretty-printed objects, or one object per datagram) and draws each as an
 * RGB pose-guidance image: the DWPose/ControlNet convention (`style=dwpose`)
 * or MimicMotion's confidence-aware variant (`style=mimicmotion`). Every
 * output buffer carries a #GstAvatarKeypointMeta with the drawn people's
 * keypoints in pixels of the output frame.
 *
 * Frame n is stamped n / #GstPoseMapper:framerate unless its JSON carries a
 * `"time"` field (seconds). With a live source that timestamps its buffers
 * (udpsrc), both count from the running time of the first input buffer. Bad input never stops the stream: each dropped
 * frame or bad part posts a warning naming the line (or datagram) and the
 * JSON field, and #GstPoseMapper:stats counts them.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=talk.jsonl ! posemapper style=dwpose ! \
 *     video/x-raw,width=512,height=512 ! videoconvert ! autovideosink
 * ]| Draws a JSON Lines pose file at 25 frames per second.
 * |[
 * gst-launch-1.0 udpsrc port=5000 ! posemapper ! videoconvert ! autovideosink
 * ]| Draws pose frames that arrive one per UDP datagram.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "gstposemapper.h"
#include "gstkeypointmeta.h"

#include <math.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_pose_mapper_debug);
#define GST_CAT_DEFAULT gst_pose_mapper_debug

#define DEFAULT_PROP_STYLE AP_STYLE_MIMICMOTION
#define DEFAULT_PROP_PEOPLE AP_SELECT_LARGEST
#define DEFAULT_PROP_FPS_N 25
#define DEFAULT_PROP_FPS_D 1
#define DEFAULT_PROP_KEEP_ASPECT FALSE
#define DEFAULT_PROP_FRAMING GST_POSE_MAPPER_FRAMING_AUTO
#define DEFAULT_PROP_MAX_LINE_BYTES AP_DEFAULT_MAX_OBJECT_BYTES

enum
{
  PROP_0,
  PROP_STYLE,
  PROP_PEOPLE,
  PROP_FRAMERATE,
  PROP_KEEP_ASPECT,
  PROP_FRAMING,
  PROP_MAX_LINE_BYTES,
  PROP_STATS,
};

struct _GstPoseMapper
{
  GstElement parent;

  GstPad *sinkpad, *srcpad;

  /* Properties, under the object lock. */
  ApStyle style;
  ApSelect people;
  gint fps_n, fps_d;
  gboolean keep_aspect;
  GstPoseMapperFraming framing;
  guint max_line_bytes;

  /* Streaming state, touched by the streaming thread only. */
  ApParser *parser;
  gboolean seen_stream_start;
  gboolean need_segment;
  GstVideoInfo info;            /* valid once negotiated */
  gboolean negotiated;
  guint64 n_out;                /* frames pushed since start or flush */
  GstSegment in_segment;        /* upstream's; TIME for live sources */
  GstClockTime ts_offset;       /* running time of the first input */
  gboolean have_offset;
  ApFrame frame;                /* scratch: too big for the stack */
  ApIssues issues;

  /* Statistics, under the object lock. */
  guint64 frames_in, frames_out, dropped, parts_missing, datagrams_in;
  guint64 bytes_in, issues_total;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE ("RGB")));

#define gst_pose_mapper_parent_class parent_class
G_DEFINE_TYPE (GstPoseMapper, gst_pose_mapper, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (posemapper, "posemapper", GST_RANK_NONE,
    GST_TYPE_POSE_MAPPER);

/* ---- Enums --------------------------------------------------------------- */

GType
gst_pose_mapper_style_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {AP_STYLE_DWPOSE, "DWPose/ControlNet convention: full colours, points "
          "and limbs above confidence 0.3", "dwpose"},
    {AP_STYLE_MIMICMOTION, "MimicMotion confidence-aware drawing: colours "
          "scaled by confidence, supersampled, R and B swapped",
        "mimicmotion"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstPoseMapperStyle",
            values));
  return type;
}

GType
gst_pose_mapper_people_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {AP_SELECT_LARGEST, "The person with the largest box of confident "
          "keypoints", "largest"},
    {AP_SELECT_FIRST, "The first person in the JSON", "first"},
    {AP_SELECT_ALL, "Everyone (up to 8)", "all"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstPoseMapperPeople",
            values));
  return type;
}

GType
gst_pose_mapper_framing_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_POSE_MAPPER_FRAMING_AUTO, "Datagram when the buffer carries a "
          "network address (udpsrc), else stream", "auto"},
    {GST_POSE_MAPPER_FRAMING_STREAM, "A byte stream of JSON objects (JSON "
          "Lines or concatenated); objects may span buffers", "stream"},
    {GST_POSE_MAPPER_FRAMING_DATAGRAM, "Each buffer is exactly one JSON "
          "object", "datagram"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstPoseMapperFraming",
            values));
  return type;
}

/* ---- Caps ---------------------------------------------------------------- */

/* What we can produce: RGB at any size, at the configured framerate. */
static GstCaps *
pose_mapper_src_caps (GstPoseMapper * self)
{
  gint fps_n, fps_d;

  GST_OBJECT_LOCK (self);
  fps_n = self->fps_n;
  fps_d = self->fps_d;
  GST_OBJECT_UNLOCK (self);
  return gst_caps_new_simple ("video/x-raw",
      "format", G_TYPE_STRING, "RGB",
      "width", GST_TYPE_INT_RANGE, 1, AP_MAX_CANVAS,
      "height", GST_TYPE_INT_RANGE, 1, AP_MAX_CANVAS,
      "framerate", GST_TYPE_FRACTION, fps_n, fps_d,
      "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
}

static void
push_stream_start (GstPoseMapper * self)
{
  gchar *id = gst_pad_create_stream_id (self->srcpad, GST_ELEMENT (self),
      NULL);
  gst_pad_push_event (self->srcpad, gst_event_new_stream_start (id));
  g_free (id);
  self->seen_stream_start = TRUE;
}

/* Picks the output size: the first frame's canvas when downstream leaves
 * it open, else the nearest that downstream accepts. */
static gboolean
pose_mapper_negotiate (GstPoseMapper * self, int canvas_w, int canvas_h)
{
  GstCaps *ours = pose_mapper_src_caps (self), *caps;
  GstStructure *s;
  gboolean ok;

  caps = gst_pad_peer_query_caps (self->srcpad, ours);
  gst_caps_unref (ours);
  if (gst_caps_is_empty (caps)) {
    gst_caps_unref (caps);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("downstream accepts no RGB video at the configured framerate"));
    return FALSE;
  }
  caps = gst_caps_truncate (caps);
  caps = gst_caps_make_writable (caps);
  s = gst_caps_get_structure (caps, 0);
  gst_structure_fixate_field_nearest_int (s, "width", canvas_w);
  gst_structure_fixate_field_nearest_int (s, "height", canvas_h);
  caps = gst_caps_fixate (caps);

  if (!self->seen_stream_start)
    push_stream_start (self);
  ok = gst_video_info_from_caps (&self->info, caps)
      && gst_pad_set_caps (self->srcpad, caps);
  GST_DEBUG_OBJECT (self, "negotiated %" GST_PTR_FORMAT ": %d", caps, ok);
  gst_caps_unref (caps);
  if (!ok) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("downstream refused the fixated caps"));
    return FALSE;
  }
  self->negotiated = TRUE;
  return TRUE;
}

/* ---- Frames -------------------------------------------------------------- */

/* One warning per problem frame, naming line or datagram and field. */
static void
post_issues (GstPoseMapper * self, ApParseResult res, const ApIssues * issues)
{
  GString *details = g_string_new ("");
  char first[300], buf[300];

  ap_issue_format (&issues->items[0], first, sizeof (first));
  for (int i = 0; i < issues->n; i++) {
    ap_issue_format (&issues->items[i], buf, sizeof (buf));
    g_string_append_printf (details, "%s%s", i ? "; " : "", buf);
  }
  if (issues->n_total > issues->n)
    g_string_append_printf (details, "; and %d more",
        issues->n_total - issues->n);
  if (res == AP_DROPPED)
    GST_ELEMENT_WARNING (self, STREAM, DECODE,
        ("Pose frame dropped: %s", first), ("%s", details->str));
  else
    GST_ELEMENT_WARNING (self, STREAM, DECODE,
        ("Pose frame with bad parts treated as missing: %s", first),
        ("%s", details->str));
  g_string_free (details, TRUE);
}

static GstFlowReturn
push_frame (GstPoseMapper * self, ApFrame * frame)
{
  GstAvatarKeypointMeta *meta;
  GstBuffer *buf;
  GstMapInfo map;
  ApStyle style;
  ApSelect people;
  gboolean keep_aspect;
  gint fps_n, fps_d;
  int w, h, source_w = frame->canvas_width, source_h = frame->canvas_height;

  if (!self->negotiated || gst_pad_check_reconfigure (self->srcpad)) {
    if (!pose_mapper_negotiate (self, frame->canvas_width,
            frame->canvas_height))
      return GST_FLOW_NOT_NEGOTIATED;
  }
  if (self->need_segment) {
    GstSegment segment;
    gst_segment_init (&segment, GST_FORMAT_TIME);
    gst_pad_push_event (self->srcpad, gst_event_new_segment (&segment));
    self->need_segment = FALSE;
  }

  GST_OBJECT_LOCK (self);
  style = self->style;
  people = self->people;
  keep_aspect = self->keep_aspect;
  fps_n = self->fps_n;
  fps_d = self->fps_d;
  GST_OBJECT_UNLOCK (self);

  w = GST_VIDEO_INFO_WIDTH (&self->info);
  h = GST_VIDEO_INFO_HEIGHT (&self->info);
  ap_frame_select (frame, people);

  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&self->info),
      NULL);
  if (buf == NULL || !gst_buffer_map (buf, &map, GST_MAP_WRITE)) {
    if (buf)
      gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
        ("cannot allocate a %dx%d frame", w, h));
    return GST_FLOW_ERROR;
  }
#ifdef AP_HAVE_DRAW
  if (ap_draw (frame, style, keep_aspect, map.data, w, h,
          GST_VIDEO_INFO_PLANE_STRIDE (&self->info, 0)) != 0) {
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
        ("out of memory drawing a %dx%d frame", w, h));
    return GST_FLOW_ERROR;
  }
#else
  /* pose/draw.c has not landed in this tree yet: black frames. */
  (void) style;
  memset (map.data, 0, map.size);
#endif
  gst_buffer_unmap (buf, &map);

  /* The meta holds the points where they were drawn. */
  ap_frame_map_to (frame, w, h, keep_aspect);
  meta = gst_buffer_add_avatar_keypoint_meta (buf, frame);
  meta->source_width = source_w;
  meta->source_height = source_h;
  meta->frame_number = self->n_out;

  if (frame->has_time)
    GST_BUFFER_PTS (buf) = (GstClockTime) llround (frame->time_s * GST_SECOND);
  else
    GST_BUFFER_PTS (buf) = gst_util_uint64_scale (self->n_out,
        (guint64) fps_d * GST_SECOND, fps_n);
  GST_BUFFER_PTS (buf) += self->ts_offset;
  GST_BUFFER_DTS (buf) = GST_BUFFER_PTS (buf);
  GST_BUFFER_DURATION (buf) = gst_util_uint64_scale (GST_SECOND, fps_d,
      fps_n);
  GST_BUFFER_OFFSET (buf) = self->n_out;
  GST_BUFFER_OFFSET_END (buf) = self->n_out + 1;
  if (self->n_out == 0)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  self->n_out++;

  GST_OBJECT_LOCK (self);
  self->frames_out++;
  GST_OBJECT_UNLOCK (self);
  return gst_pad_push (self->srcpad, buf);
}

/* Issues about people, parts and points (not the canvas or the time) of
 * a kept frame. Issues past AP_MAX_ISSUES are counted as such too. */
static guint64
count_part_issues (const ApIssues * issues)
{
  guint64 n = issues->n_total - issues->n;

  for (int i = 0; i < issues->n; i++)
    n += g_str_has_prefix (issues->items[i].field, "people");
  return n;
}

/* Takes every complete object out of the parser. */
static GstFlowReturn
drain (GstPoseMapper * self)
{
  ApParseResult res;

  while ((res = ap_parser_next (self->parser, &self->frame, &self->issues))
      != AP_NEED_DATA) {
    GstFlowReturn ret;

    GST_OBJECT_LOCK (self);
    self->frames_in++;
    self->issues_total += self->issues.n_total;
    if (res == AP_DROPPED)
      self->dropped++;
    else
      self->parts_missing += count_part_issues (&self->issues);
    GST_OBJECT_UNLOCK (self);
    if (self->issues.n_total > 0)
      post_issues (self, res, &self->issues);
    if (res == AP_DROPPED)
      continue;
    ret = push_frame (self, &self->frame);
    if (ret != GST_FLOW_OK)
      return ret;
  }
  return GST_FLOW_OK;
}

static gboolean
is_datagram (GstPoseMapper * self, GstBuffer * buf)
{
  GstPoseMapperFraming framing;
  GType net_api;

  GST_OBJECT_LOCK (self);
  framing = self->framing;
  GST_OBJECT_UNLOCK (self);
  if (framing != GST_POSE_MAPPER_FRAMING_AUTO)
    return framing == GST_POSE_MAPPER_FRAMING_DATAGRAM;
  /* GstNetAddressMeta lives in libgstnet, which we do not link: look it
   * up by name. Unregistered means no buffer can carry it. */
  net_api = g_type_from_name ("GstNetAddressMetaAPI");
  return net_api != 0 && gst_buffer_get_meta (buf, net_api) != NULL;
}

static GstFlowReturn
gst_pose_mapper_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstPoseMapper *self = GST_POSE_MAPPER (parent);
  gboolean datagram = is_datagram (self, buf);
  GstMapInfo map;
  GstFlowReturn ret;

  /* A live source (udpsrc, tcpclientsrc do-timestamp=true) stamps its
   * buffers in a TIME segment: the stream's times then count from the
   * first one's running time, so a synchronising sink does not drop them
   * as late. Files carry no times and start at 0. */
  if (!self->have_offset) {
    self->have_offset = TRUE;
    self->ts_offset = 0;
    if (self->in_segment.format == GST_FORMAT_TIME
        && GST_BUFFER_PTS_IS_VALID (buf)) {
      GstClockTime rt = gst_segment_to_running_time (&self->in_segment,
          GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
      if (GST_CLOCK_TIME_IS_VALID (rt))
        self->ts_offset = rt;
    }
  }

  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map input"));
    return GST_FLOW_ERROR;
  }
  if (datagram)
    ap_parser_push_datagram (self->parser, (const char *) map.data, map.size);
  else
    ap_parser_push (self->parser, (const char *) map.data, map.size);
  GST_OBJECT_LOCK (self);
  self->bytes_in += map.size;
  self->datagrams_in += datagram;
  GST_OBJECT_UNLOCK (self);
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);

  ret = drain (self);
  return ret;
}

/* ---- Events and queries -------------------------------------------------- */

static gboolean
gst_pose_mapper_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstPoseMapper *self = GST_POSE_MAPPER (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START:
      self->seen_stream_start = TRUE;
      break;
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment (event, &self->in_segment);
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_CAPS:
    case GST_EVENT_GAP:
      /* Byte-stream caps, segments and gaps mean nothing downstream: we
       * send our own caps and a TIME segment before the first frame. */
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      ap_parser_reset (self->parser);
      self->n_out = 0;
      self->need_segment = TRUE;
      self->have_offset = FALSE;
      break;
    case GST_EVENT_EOS:{
      /* Whatever is still open at the end is dropped, with a warning. */
      ap_parser_finish (self->parser);
      drain (self);
      if (!self->negotiated && !self->seen_stream_start)
        push_stream_start (self);
      break;
    }
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_pose_mapper_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstPoseMapper *self = GST_POSE_MAPPER (parent);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS) {
    GstCaps *filter, *caps = gst_pad_get_current_caps (pad);
    gst_query_parse_caps (query, &filter);
    if (caps == NULL)
      caps = pose_mapper_src_caps (self);
    if (filter) {
      GstCaps *tmp = gst_caps_intersect_full (filter, caps,
          GST_CAPS_INTERSECT_FIRST);
      gst_caps_unref (caps);
      caps = tmp;
    }
    gst_query_set_caps_result (query, caps);
    gst_caps_unref (caps);
    return TRUE;
  }
  return gst_pad_query_default (pad, parent, query);
}

/* ---- GObject ------------------------------------------------------------- */

static GstStructure *
make_stats (GstPoseMapper * self)
{
  GstStructure *s;

  GST_OBJECT_LOCK (self);
  s = gst_structure_new ("posemapper-stats",
      "frames-in", G_TYPE_UINT64, self->frames_in,
      "frames-out", G_TYPE_UINT64, self->frames_out,
      "dropped", G_TYPE_UINT64, self->dropped,
      "parts-missing-by-error", G_TYPE_UINT64, self->parts_missing,
      "issues", G_TYPE_UINT64, self->issues_total,
      "datagrams-in", G_TYPE_UINT64, self->datagrams_in,
      "bytes-in", G_TYPE_UINT64, self->bytes_in, NULL);
  GST_OBJECT_UNLOCK (self);
  return s;
}

static void
gst_pose_mapper_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstPoseMapper *self = GST_POSE_MAPPER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_STYLE:
      self->style = g_value_get_enum (value);
      break;
    case PROP_PEOPLE:
      self->people = g_value_get_enum (value);
      break;
    case PROP_FRAMERATE:
      self->fps_n = gst_value_get_fraction_numerator (value);
      self->fps_d = gst_value_get_fraction_denominator (value);
      break;
    case PROP_KEEP_ASPECT:
      self->keep_aspect = g_value_get_boolean (value);
      break;
    case PROP_FRAMING:
      self->framing = g_value_get_enum (value);
      break;
    case PROP_MAX_LINE_BYTES:
      self->max_line_bytes = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_pose_mapper_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstPoseMapper *self = GST_POSE_MAPPER (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, make_stats (self));
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_STYLE:
      g_value_set_enum (value, self->style);
      break;
    case PROP_PEOPLE:
      g_value_set_enum (value, self->people);
      break;
    case PROP_FRAMERATE:
      gst_value_set_fraction (value, self->fps_n, self->fps_d);
      break;
    case PROP_KEEP_ASPECT:
      g_value_set_boolean (value, self->keep_aspect);
      break;
    case PROP_FRAMING:
      g_value_set_enum (value, self->framing);
      break;
    case PROP_MAX_LINE_BYTES:
      g_value_set_uint (value, self->max_line_bytes);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static GstStateChangeReturn
gst_pose_mapper_change_state (GstElement * element, GstStateChange transition)
{
  GstPoseMapper *self = GST_POSE_MAPPER (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    guint max;
    GST_OBJECT_LOCK (self);
    max = self->max_line_bytes;
    self->frames_in = self->frames_out = self->dropped = 0;
    self->parts_missing = self->datagrams_in = self->bytes_in = 0;
    self->issues_total = 0;
    GST_OBJECT_UNLOCK (self);
    ap_parser_free (self->parser);
    self->parser = ap_parser_new (max);
    self->seen_stream_start = FALSE;
    self->need_segment = TRUE;
    self->negotiated = FALSE;
    self->n_out = 0;
    self->have_offset = FALSE;
    gst_segment_init (&self->in_segment, GST_FORMAT_UNDEFINED);
  }
  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    ap_parser_free (self->parser);
    self->parser = ap_parser_new (self->max_line_bytes);
    self->negotiated = FALSE;
  }
  return ret;
}

static void
gst_pose_mapper_finalize (GObject * object)
{
  GstPoseMapper *self = GST_POSE_MAPPER (object);

  ap_parser_free (self->parser);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_pose_mapper_class_init (GstPoseMapperClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_pose_mapper_set_property;
  gobject_class->get_property = gst_pose_mapper_get_property;
  gobject_class->finalize = gst_pose_mapper_finalize;
  element_class->change_state = gst_pose_mapper_change_state;

  g_object_class_install_property (gobject_class, PROP_STYLE,
      g_param_spec_enum ("style", "Drawing style",
          "How keypoints become pixels: the DWPose/ControlNet convention or "
          "MimicMotion's confidence-aware variant",
          GST_TYPE_POSE_MAPPER_STYLE, DEFAULT_PROP_STYLE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_PEOPLE,
      g_param_spec_enum ("people", "People",
          "Which of a frame's people are drawn and put in the keypoint meta",
          GST_TYPE_POSE_MAPPER_PEOPLE, DEFAULT_PROP_PEOPLE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_FRAMERATE,
      gst_param_spec_fraction ("framerate", "Frame rate",
          "Frames per second of the output; frame n is stamped n/framerate "
          "unless its JSON has a \"time\" field (seconds)",
          1, 1000, 1000, 1, DEFAULT_PROP_FPS_N, DEFAULT_PROP_FPS_D,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_KEEP_ASPECT,
      g_param_spec_boolean ("keep-aspect", "Keep aspect ratio",
          "Scale the JSON canvas uniformly and centre it in the output "
          "(black bands) instead of stretching it to the output size",
          DEFAULT_PROP_KEEP_ASPECT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_FRAMING,
      g_param_spec_enum ("framing", "Framing",
          "How input buffers hold JSON objects: a byte stream, one object "
          "per buffer (datagram), or auto (datagram for udpsrc buffers)",
          GST_TYPE_POSE_MAPPER_FRAMING, DEFAULT_PROP_FRAMING,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MAX_LINE_BYTES,
      g_param_spec_uint ("max-line-bytes", "Maximum object size",
          "Longest JSON object (line or datagram) in bytes; longer ones are "
          "dropped with a warning, bounding memory",
          64, G_MAXINT, DEFAULT_PROP_MAX_LINE_BYTES,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Counters since the element went to PAUSED: frames-in (JSON "
          "objects and stray lines read), frames-out, dropped, "
          "parts-missing-by-error (bad people, parts or points treated as "
          "missing in frames kept), issues (every problem reported), "
          "datagrams-in, bytes-in",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Pose mapper",
      "Converter/Video",
      "Draws OpenPose JSON keypoints as pose-guidance video frames with "
      "keypoint metadata", "gst-avatar developers");

  gst_type_mark_as_plugin_api (GST_TYPE_POSE_MAPPER_STYLE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_POSE_MAPPER_PEOPLE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_POSE_MAPPER_FRAMING, 0);
  GST_DEBUG_CATEGORY_INIT (gst_pose_mapper_debug, "posemapper", 0,
      "OpenPose JSON to pose-guidance frames");
}

static void
gst_pose_mapper_init (GstPoseMapper * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_pose_mapper_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_pose_mapper_sink_event));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_pose_mapper_src_query));
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->style = DEFAULT_PROP_STYLE;
  self->people = DEFAULT_PROP_PEOPLE;
  self->fps_n = DEFAULT_PROP_FPS_N;
  self->fps_d = DEFAULT_PROP_FPS_D;
  self->keep_aspect = DEFAULT_PROP_KEEP_ASPECT;
  self->framing = DEFAULT_PROP_FRAMING;
  self->max_line_bytes = DEFAULT_PROP_MAX_LINE_BYTES;
  self->parser = ap_parser_new (self->max_line_bytes);
  gst_segment_init (&self->in_segment, GST_FORMAT_UNDEFINED);
}
