/* avatar-meta-launch: gst-launch-1.0 that puts the poses of a file on the
 * frames of any video as GstAvatarKeypointMeta.
 *
 * Elements that read the keypoint meta (facerecapture) get it from
 * posemapper, which also draws the frames. To run them on frames made
 * elsewhere (the avatar world's ground truth, a degraded copy of it, a
 * render saved as PNGs), this tool runs one pipeline description and
 * attaches pose n of an OpenPose JSON / JSON Lines file (the format
 * posemapper reads, docs/pose-json.md) to the n-th buffer leaving the
 * element named `meta`. The face evaluation (train/face_eval.py --element)
 * runs facerecapture this way.
 *
 *   avatar-meta-launch --poses clip/poses.jsonl -- \
 *     multifilesrc location=clip/frames/%05d.png \
 *       caps=image/png,framerate=25/1 ! pngdec ! videoconvert ! \
 *     video/x-raw,format=RGB ! identity name=meta ! \
 *     facerecapture reference=clip/reference.png ! videoconvert ! pngenc ! \
 *     multifilesink location=out/%05d.png
 *
 * As posemapper does by default, only the largest person of each pose is
 * kept (--people). Points stay in the pose's canvas; readers scale them to
 * the frame. A keypoint meta already on a buffer is replaced. Buffers past
 * the last pose pass without a meta. A pose that cannot be read stops the
 * tool before the pipeline starts, naming the file and line. At the end it
 * prints how many buffers got a pose (stderr); exit status 0, 1 on any
 * error, 2 on bad arguments.
 */
#include <gst/gst.h>

#include <stdio.h>
#include <string.h>

#include "avatar-pose.h"
#include "gstkeypointmeta.h"

#define LABEL "avatar-meta-launch"

typedef struct
{
  GMainLoop *loop;
  ApFrame *poses;
  guint n_poses;
  volatile gint n_buffers;      /* written by the streaming thread */
  gint exit_code;
} MetaLaunch;

/* Every pose of the file, or NULL with a message naming the file and the
 * line of the first pose that was dropped (a shifted pose would pair every
 * later frame with the wrong face). */
static ApFrame *
read_poses (const gchar * path, ApSelect select, guint * n_out)
{
  gchar *text = NULL;
  gsize len = 0;
  GError *err = NULL;
  ApParser *parser;
  GArray *frames;
  ApFrame frame;
  ApIssues issues;
  ApParseResult r;
  gboolean ok = TRUE;

  if (!g_file_get_contents (path, &text, &len, &err)) {
    fprintf (stderr, LABEL ": cannot read the pose file: %s\n", err->message);
    g_clear_error (&err);
    return NULL;
  }
  parser = ap_parser_new (AP_DEFAULT_MAX_OBJECT_BYTES);
  ap_parser_push (parser, text, len);
  ap_parser_finish (parser);
  frames = g_array_new (FALSE, FALSE, sizeof (ApFrame));
  while (ok && (r = ap_parser_next (parser, &frame, &issues)) != AP_NEED_DATA) {
    if (r == AP_DROPPED) {
      gchar why[256] = "no reason given";
      if (issues.n > 0)
        ap_issue_format (&issues.items[0], why, sizeof why);
      fprintf (stderr, LABEL ": %s: pose %u cannot be read: %s\n", path,
          frames->len, why);
      ok = FALSE;
      break;
    }
    ap_frame_select (&frame, select);
    g_array_append_val (frames, frame);
  }
  ap_parser_free (parser);
  g_free (text);
  if (ok && frames->len == 0) {
    fprintf (stderr, LABEL ": %s: no pose in the file\n", path);
    ok = FALSE;
  }
  *n_out = frames->len;
  return (ApFrame *) g_array_free (frames, !ok);
}

static gboolean
drop_keypoint_meta (GstBuffer * buffer, GstMeta ** meta, gpointer user_data)
{
  if ((*meta)->info->api == GST_AVATAR_KEYPOINT_META_API_TYPE)
    *meta = NULL;               /* removes it */
  return TRUE;
}

static GstPadProbeReturn
attach_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  MetaLaunch *m = user_data;
  guint n = (guint) g_atomic_int_add (&m->n_buffers, 1);
  GstBuffer *buf;
  GstAvatarKeypointMeta *meta;

  if (n >= m->n_poses)
    return GST_PAD_PROBE_OK;
  buf = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  gst_buffer_foreach_meta (buf, drop_keypoint_meta, NULL);
  meta = gst_buffer_add_avatar_keypoint_meta (buf, &m->poses[n]);
  meta->source_width = m->poses[n].canvas_width;
  meta->source_height = m->poses[n].canvas_height;
  meta->frame_number = n;
  GST_PAD_PROBE_INFO_DATA (info) = buf;
  return GST_PAD_PROBE_OK;
}

static gboolean
on_bus (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  MetaLaunch *m = user_data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      fprintf (stderr, LABEL ": ERROR from %s: %s\n",
          GST_OBJECT_NAME (msg->src), err->message);
      if (dbg)
        fprintf (stderr, LABEL ": debug: %s\n", dbg);
      g_clear_error (&err);
      g_free (dbg);
      m->exit_code = 1;
      g_main_loop_quit (m->loop);
      break;
    }
    case GST_MESSAGE_EOS:
      g_main_loop_quit (m->loop);
      break;
    default:
      break;
  }
  return TRUE;
}

static gboolean
parse_people (const gchar * s, ApSelect * out)
{
  if (s == NULL || strcmp (s, "largest") == 0)
    *out = AP_SELECT_LARGEST;
  else if (strcmp (s, "first") == 0)
    *out = AP_SELECT_FIRST;
  else if (strcmp (s, "all") == 0)
    *out = AP_SELECT_ALL;
  else
    return FALSE;
  return TRUE;
}

/* The pipeline from the description, with the probe on the src pad of the
 * element named `at`; NULL after printing why. */
static GstElement *
build_pipeline (gchar ** description, const gchar * at, MetaLaunch * m)
{
  GError *err = NULL;
  GstElement *pipeline, *el;
  GstPad *pad = NULL;

  pipeline = gst_parse_launchv ((const gchar **) description, &err);
  if (!pipeline || err) {
    fprintf (stderr, LABEL ": could not build the pipeline: %s\n",
        err ? err->message : "unknown error");
    g_clear_error (&err);
    if (pipeline)
      gst_object_unref (pipeline);
    return NULL;
  }
  el = GST_IS_BIN (pipeline) ? gst_bin_get_by_name (GST_BIN (pipeline), at)
      : NULL;
  if (el)
    pad = gst_element_get_static_pad (el, "src");
  if (!pad) {
    fprintf (stderr, LABEL ": the pipeline has no element named '%s' with a "
        "src pad to attach the poses at (name one with name=%s)\n", at, at);
    if (el)
      gst_object_unref (el);
    gst_object_unref (pipeline);
    return NULL;
  }
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, attach_probe, m, NULL);
  gst_object_unref (pad);
  gst_object_unref (el);
  return pipeline;
}

int
main (int argc, char **argv)
{
  MetaLaunch m = { 0 };
  gchar *poses_path = NULL, *at = NULL, *people = NULL;
  gchar **rest = NULL;
  GOptionEntry entries[] = {
    {"poses", 'p', 0, G_OPTION_ARG_FILENAME, &poses_path,
        "OpenPose JSON or JSON Lines file: pose n goes on buffer n", "FILE"},
    {"at", 'a', 0, G_OPTION_ARG_STRING, &at,
          "Name of the element whose output buffers get the poses "
          "(default: meta)", "NAME"},
    {"people", 0, 0, G_OPTION_ARG_STRING, &people,
          "Who of each pose goes in the meta: largest (default, as "
          "posemapper), first or all", "WHO"},
    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &rest, NULL,
        "PIPELINE-DESCRIPTION"},
    {NULL}
  };
  GOptionContext *ctx;
  GError *err = NULL;
  GstElement *pipeline;
  GstBus *bus;
  ApSelect select;
  guint watch;

  ctx = g_option_context_new ("--poses FILE [--] PIPELINE-DESCRIPTION");
  g_option_context_set_summary (ctx, "Runs a GStreamer pipeline and attaches "
      "the poses of a file, one per buffer, as the avatar keypoint meta.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, LABEL ": %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (!poses_path || !rest || !rest[0] || !parse_people (people, &select)) {
    fprintf (stderr, LABEL ": needs --poses FILE and a pipeline description; "
        "--people is largest, first or all (see --help)\n");
    return 2;
  }

  m.poses = read_poses (poses_path, select, &m.n_poses);
  pipeline = m.poses ? build_pipeline (rest, at ? at : "meta", &m) : NULL;
  if (!pipeline) {
    g_free (m.poses);
    return 1;
  }
  m.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (pipeline);
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    /* The element that failed posted an error saying why (a missing
     * reference, a bad model): print it rather than wait for a loop. */
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    if (msg) {
      on_bus (bus, msg, &m);
      gst_message_unref (msg);
    } else {
      fprintf (stderr, LABEL ": the pipeline failed to start\n");
    }
    m.exit_code = 1;
  } else {
    watch = gst_bus_add_watch (bus, on_bus, &m);
    g_main_loop_run (m.loop);
    g_source_remove (watch);
  }
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  fprintf (stderr, LABEL ": %d buffers, %u with a pose (%u poses in %s)\n",
      m.n_buffers, MIN ((guint) m.n_buffers, m.n_poses), m.n_poses,
      poses_path);

  gst_object_unref (pipeline);
  g_main_loop_unref (m.loop);
  g_free (m.poses);
  g_strfreev (rest);
  g_free (poses_path);
  g_free (at);
  g_free (people);
  return m.exit_code;
}
