/* avatar-embed: the avatar pipeline inside an application.
 *
 * The application owns both ends of the pipeline:
 *
 *   appsrc (OpenPose JSON, one frame per buffer) ! posemapper !
 *     avatardiffuse ! latentfuse ! videoconvert ! appsink (RGB frames)
 *
 * It produces the keypoints itself (read from a JSON Lines file, as a
 * tracker would hand them over, or generated: a presenter talking and
 * waving), sets the
 * diffusion properties in code, watches the bus (errors, warnings, the
 * elements' progress messages, EOS) and pulls every rendered frame from
 * appsink, optionally writing it as a PPM image. It checks the contract
 * the pipeline promises: one video frame out per pose frame in.
 *
 *   avatar-embed --frames 25 --steps 4 --output frames/
 *   avatar-embed --poses talk.jsonl --reference me.png
 *   avatar-embed --guidance-only          (no model: the pose guidance)
 *
 * See docs/examples.md.
 */
#include <gst/gst.h>
#include <gst/app/app.h>
#include <gst/video/video.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#define FPS 25

typedef struct
{
  GMainLoop *loop;
  GstElement *pipeline;
  GstAppSrc *src;
  gint exit_code;

  /* Pose input: either lines of a file, or generated frames. */
  gchar **lines;                /* NULL-terminated JSON Lines, or NULL */
  guint n_lines;
  guint frames_wanted;
  guint frames_pushed;          /* appsrc thread */
  gint canvas;                  /* generated canvas size (square) */

  /* Frames out: the appsink thread writes, the main thread reads at EOS. */
  guint frames_pulled;
  gint width, height;
  gdouble mean_sum;             /* sum of per-frame mean pixel values */
  GstClockTime last_pts;
  gboolean pts_ordered;
  gchar *output_dir;
} App;

/* ---- poses in ---------------------------------------------------------- */

/* Appends n points "x,y,c" to s, mapped from a 256-pixel layout. */
static void
append_points (GString * s, const float (*p)[2], int n, float dx, float dy,
    float scale, gboolean first)
{
  for (int i = 0; i < n; i++)
    g_string_append_printf (s, "%s%.2f,%.2f,%.2f", first && i == 0 ? "" : ",",
        (p[i][0] + dx) * scale, (p[i][1] + dy) * scale, 0.9);
}

/* One OpenPose JSON frame of a presenter, framed from the waist up like the
 * bundled model's references: COCO-18 body (hips and legs off the canvas,
 * written as missing), a 68-point face whose mouth opens and closes as if
 * talking, and the right arm raised, waving. No hands: missing parts are
 * normal input. Coordinates are laid out on a 256 canvas and scaled. */
static gchar *
generate_pose (guint n, gint canvas)
{
  static const float body[18][2] = {
    {125, 96}, {125, 160}, {66, 160}, {44, 112}, {52, 62}, {184, 160},
    {199, 230}, {175, 225}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0},
    {109, 78}, {141, 78}, {83, 80}, {167, 80},
  };
  float t = (float) n / FPS;
  float wave = 14.0f * (float) sin (2.0 * G_PI * 1.2 * t);
  float mouth = 3.0f + 3.0f * (float) fabs (sin (2.0 * G_PI * 2.5 * t));
  float sway = 2.0f * (float) sin (2.0 * G_PI * 0.3 * t);
  float scale = canvas / 256.0f;
  float face[68][2];
  GString *s = g_string_new (NULL);
  int k = 0;

  /* Face, iBUG-68 order: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
   * outer lips 48-59, inner lips 60-67; head centre (125, 86). */
  for (int i = 0; i < 17; i++, k++) {
    double a = G_PI * (i / 16.0);
    face[k][0] = 125 - 38 * (float) cos (a);
    face[k][1] = 80 + 36 * (float) sin (a);
  }
  for (int i = 0; i < 10; i++, k++) {
    face[k][0] = (i < 5 ? 96 : 132) + 6.5f * (i % 5);
    face[k][1] = 68 - 3.0f * (float) sin (G_PI * (i % 5) / 4.0);
  }
  for (int i = 0; i < 4; i++, k++) {
    face[k][0] = 125;
    face[k][1] = 78 + 5.0f * i;
  }
  for (int i = 0; i < 5; i++, k++) {
    face[k][0] = 117 + 4.0f * i;
    face[k][1] = 97;
  }
  for (int e = 0; e < 2; e++)
    for (int i = 0; i < 6; i++, k++) {
      double a = G_PI * i / 3.0;
      face[k][0] = (e ? 141 : 109) - 7 * (float) cos (a);
      face[k][1] = 78 - 3 * (float) sin (a);
    }
  for (int i = 0; i < 12; i++, k++) {
    double a = G_PI * i / 6.0;
    face[k][0] = 125 - 14 * (float) cos (a);
    face[k][1] = 108 - (i <= 6 ? 2.5f : mouth + 2.5f) * (float) sin (a);
  }
  for (int i = 0; i < 8; i++, k++) {
    double a = G_PI * i / 4.0;
    face[k][0] = 125 - 9 * (float) cos (a);
    face[k][1] = 108 - (i <= 4 ? 1.0f : mouth) * (float) sin (a);
  }

  g_string_append_printf (s, "{\"version\":1.3,\"canvas_width\":%d,"
      "\"canvas_height\":%d,\"people\":[{\"pose_keypoints_2d\":[", canvas,
      canvas);
  for (int j = 0; j < 18; j++) {
    float x = body[j][0], y = body[j][1];

    if (x == 0 && y == 0) {
      g_string_append (s, ",0,0,0");
      continue;
    }
    if (j == 4)
      x += wave;                /* the raised right wrist waves */
    g_string_append_printf (s, "%s%.2f,%.2f,%.2f", j ? "," : "",
        (x + sway) * scale, y * scale, 0.9);
  }
  g_string_append (s, "],\"face_keypoints_2d\":[");
  append_points (s, (const float (*)[2]) face, 68, sway, 0, scale, TRUE);
  g_string_append (s, "]}]}\n");
  return g_string_free (s, FALSE);
}

/* appsrc asks for data: push one frame per call, then EOS. Runs in the
 * appsrc streaming thread. */
static void
on_need_data (GstAppSrc * src, guint length, gpointer user_data)
{
  App *app = user_data;
  guint n = app->frames_pushed;
  gchar *json;
  GstBuffer *buf;

  if (n >= app->frames_wanted) {
    gst_app_src_end_of_stream (src);
    return;
  }
  json = app->lines ? g_strdup_printf ("%s\n", app->lines[n])
      : generate_pose (n, app->canvas);
  buf = gst_buffer_new_wrapped (json, strlen (json));
  GST_BUFFER_PTS (buf) = gst_util_uint64_scale (n, GST_SECOND, FPS);
  GST_BUFFER_DURATION (buf) = gst_util_uint64_scale (1, GST_SECOND, FPS);
  app->frames_pushed = n + 1;
  if (gst_app_src_push_buffer (src, buf) != GST_FLOW_OK)
    return;                     /* flushing or stopped: the bus says why */
}

/* Reads a JSON Lines file into app->lines (empty lines skipped). */
static gboolean
load_poses (App * app, const gchar * path)
{
  gchar *text = NULL;
  GError *err = NULL;
  gchar **all;
  guint n = 0;

  if (!g_file_get_contents (path, &text, NULL, &err)) {
    g_printerr ("avatar-embed: %s\n", err->message);
    g_clear_error (&err);
    return FALSE;
  }
  all = g_strsplit (text, "\n", -1);
  g_free (text);
  for (guint i = 0; all[i]; i++) {
    g_strstrip (all[i]);
    if (all[i][0] != '\0') {
      gchar *keep = all[i];
      all[i] = NULL;            /* so that compaction below is safe */
      all[n++] = keep;
    } else {
      g_free (all[i]);
      all[i] = NULL;
    }
  }
  /* all[] now holds n lines followed by NULLs. */
  app->lines = all;
  app->n_lines = n;
  if (n == 0) {
    g_printerr ("avatar-embed: %s: no pose lines\n", path);
    return FALSE;
  }
  return TRUE;
}

/* ---- frames out -------------------------------------------------------- */

static gboolean
write_ppm (const gchar * dir, guint n, const GstVideoFrame * f)
{
  gchar *path = g_strdup_printf ("%s/frame-%04u.ppm", dir, n);
  FILE *fp = fopen (path, "wb");
  gint w = GST_VIDEO_FRAME_WIDTH (f), h = GST_VIDEO_FRAME_HEIGHT (f);
  gboolean ok;

  if (!fp) {
    g_printerr ("avatar-embed: cannot write %s\n", path);
    g_free (path);
    return FALSE;
  }
  fprintf (fp, "P6\n%d %d\n255\n", w, h);
  for (gint y = 0; y < h; y++)
    fwrite ((const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (f, 0) +
        (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (f, 0), 3, w, fp);
  ok = fclose (fp) == 0;
  g_free (path);
  return ok;
}

/* appsink has a frame: runs in the streaming thread. */
static GstFlowReturn
on_new_sample (GstAppSink * sink, gpointer user_data)
{
  App *app = user_data;
  GstSample *sample = gst_app_sink_pull_sample (sink);
  GstVideoInfo info;
  GstVideoFrame frame;
  GstBuffer *buf;
  guint64 sum = 0;

  if (!sample)
    return GST_FLOW_EOS;
  buf = gst_sample_get_buffer (sample);
  if (!gst_video_info_from_caps (&info, gst_sample_get_caps (sample))
      || !gst_video_frame_map (&frame, &info, buf, GST_MAP_READ)) {
    gst_sample_unref (sample);
    return GST_FLOW_ERROR;
  }
  for (gint y = 0; y < info.height; y++) {
    const guint8 *row = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame,
        0) + (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
    for (gint x = 0; x < info.width * 3; x++)
      sum += row[x];
  }
  app->mean_sum += (gdouble) sum / ((gdouble) info.width * info.height * 3);
  app->width = info.width;
  app->height = info.height;
  if (app->frames_pulled > 0 && GST_BUFFER_PTS (buf) <= app->last_pts)
    app->pts_ordered = FALSE;
  app->last_pts = GST_BUFFER_PTS (buf);
  if (app->output_dir)
    write_ppm (app->output_dir, app->frames_pulled, &frame);
  app->frames_pulled++;
  gst_video_frame_unmap (&frame);
  gst_sample_unref (sample);
  return GST_FLOW_OK;
}

/* ---- bus --------------------------------------------------------------- */

static gboolean
on_bus (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  App *app = user_data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      g_printerr ("avatar-embed: error from %s: %s\n  (%s)\n",
          GST_OBJECT_NAME (msg->src), err->message, dbg ? dbg : "no details");
      g_clear_error (&err);
      g_free (dbg);
      app->exit_code = 1;
      g_main_loop_quit (app->loop);
      break;
    }
    case GST_MESSAGE_WARNING:{
      GError *err = NULL;

      gst_message_parse_warning (msg, &err, NULL);
      g_printerr ("avatar-embed: warning from %s: %s\n",
          GST_OBJECT_NAME (msg->src), err->message);
      g_clear_error (&err);
      break;
    }
    case GST_MESSAGE_ELEMENT:{
      /* Elements report progress as element messages; print them. */
      const GstStructure *st = gst_message_get_structure (msg);
      gchar *text;

      if (!st)
        break;
      text = gst_structure_to_string (st);
      g_print ("avatar-embed: %s: %s\n", GST_OBJECT_NAME (msg->src), text);
      g_free (text);
      break;
    }
    case GST_MESSAGE_EOS:
      g_main_loop_quit (app->loop);
      break;
    default:
      break;
  }
  return TRUE;
}

/* ---- set-up ------------------------------------------------------------ */

static GstElement *
make (const gchar * factory, const gchar * name)
{
  GstElement *e = gst_element_factory_make (factory, name);

  if (!e)
    g_printerr ("avatar-embed: no element '%s': is GST_PLUGIN_PATH set to "
        "the build's gst/ folder?\n", factory);
  return e;
}

int
main (int argc, char **argv)
{
  App app = { 0 };
  gint frames = 50, steps = 4;
  guint seed = 1;
  gchar *poses = NULL, *model = NULL, *reference = NULL;
  gboolean guidance_only = FALSE;
  GOptionEntry entries[] = {
    {"frames", 'n', 0, G_OPTION_ARG_INT, &frames,
        "Pose frames to push (default 50; with --poses, at most the file's)",
        "N"},
    {"poses", 'p', 0, G_OPTION_ARG_FILENAME, &poses,
        "OpenPose JSON Lines file to read poses from (default: a generated "
          "figure waving)", "FILE"},
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model,
        "Model folder (default: the element's default)", "DIR"},
    {"reference", 'r', 0, G_OPTION_ARG_FILENAME, &reference,
        "Reference image of the avatar (default: the element's default)",
        "PNG"},
    {"steps", 's', 0, G_OPTION_ARG_INT, &steps,
        "Denoising steps (default 4)", "N"},
    {"seed", 0, 0, G_OPTION_ARG_INT, &seed, "Noise seed (default 1)", "N"},
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &app.output_dir,
        "Write every frame as DIR/frame-NNNN.ppm", "DIR"},
    {"guidance-only", 'g', 0, G_OPTION_ARG_NONE, &guidance_only,
        "Leave out the diffusion: pull the pose-guidance frames", NULL},
    {NULL}
  };
  GOptionContext *ctx;
  GError *err = NULL;
  GstElement *src, *mapper, *diffuse = NULL, *fuse = NULL, *convert, *sink;
  GstCaps *caps;
  GstBus *bus;
  guint watch;

  ctx = g_option_context_new (NULL);
  g_option_context_set_summary (ctx, "Renders an avatar from poses pushed "
      "through appsrc and pulls the frames from appsink.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("avatar-embed: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (frames < 1 || steps < 1) {
    g_printerr ("avatar-embed: --frames and --steps must be >= 1\n");
    return 2;
  }
  if (poses && !load_poses (&app, poses))
    return 1;
  app.frames_wanted = app.lines ? MIN ((guint) frames, app.n_lines)
      : (guint) frames;
  app.canvas = 256;
  app.pts_ordered = TRUE;
  if (app.output_dir && g_mkdir_with_parents (app.output_dir, 0755) != 0) {
    g_printerr ("avatar-embed: cannot create %s\n", app.output_dir);
    return 1;
  }

  /* Build the pipeline element by element, the way an application that
   * keeps handles on its elements does. */
  app.pipeline = gst_pipeline_new ("avatar");
  src = make ("appsrc", "poses");
  mapper = make ("posemapper", "mapper");
  convert = make ("videoconvert", "convert");
  sink = make ("appsink", "frames");
  if (!guidance_only) {
    diffuse = make ("avatardiffuse", "diffuse");
    fuse = make ("latentfuse", "fuse");
  }
  if (!src || !mapper || !convert || !sink
      || (!guidance_only && (!diffuse || !fuse)))
    return 1;
  gst_bin_add_many (GST_BIN (app.pipeline), src, mapper, convert, sink, NULL);
  if (!guidance_only) {
    gst_bin_add_many (GST_BIN (app.pipeline), diffuse, fuse, NULL);
    if (!gst_element_link_many (src, mapper, diffuse, fuse, convert, sink,
            NULL)) {
      g_printerr ("avatar-embed: could not link the elements\n");
      return 1;
    }
    /* Properties are ordinary GObject properties. */
    g_object_set (diffuse, "steps", steps, "seed", seed, NULL);
    if (model)
      g_object_set (diffuse, "model", model, NULL);
    if (reference)
      g_object_set (diffuse, "reference", reference, NULL);
  } else if (!gst_element_link_many (src, mapper, convert, sink, NULL)) {
    g_printerr ("avatar-embed: could not link the elements\n");
    return 1;
  }

  app.src = GST_APP_SRC (src);
  caps = gst_caps_new_simple ("application/x-openpose-json", "framerate",
      GST_TYPE_FRACTION, FPS, 1, NULL);
  g_object_set (src, "caps", caps, "format", GST_FORMAT_TIME,
      "max-buffers", (guint64) 4, NULL);
  gst_caps_unref (caps);
  {
    GstAppSrcCallbacks cb = { 0 };
    cb.need_data = on_need_data;
    gst_app_src_set_callbacks (app.src, &cb, &app, NULL);
  }
  caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "RGB",
      NULL);
  g_object_set (sink, "caps", caps, "sync", FALSE, NULL);
  gst_caps_unref (caps);
  {
    GstAppSinkCallbacks cb = { 0 };
    cb.new_sample = on_new_sample;
    gst_app_sink_set_callbacks (GST_APP_SINK (sink), &cb, &app, NULL);
  }

  app.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (app.pipeline);
  watch = gst_bus_add_watch (bus, on_bus, &app);
  gst_object_unref (bus);

  g_print ("avatar-embed: pushing %u pose frames (%s) through %s\n",
      app.frames_wanted, app.lines ? poses : "generated",
      guidance_only ? "posemapper" : "posemapper ! avatardiffuse ! latentfuse");
  if (gst_element_set_state (app.pipeline,
          GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    app.exit_code = 1;          /* the error is on the bus */
  g_main_loop_run (app.loop);
  gst_element_set_state (app.pipeline, GST_STATE_NULL);

  if (app.exit_code == 0) {
    g_print ("avatar-embed: %u pose frames in, %u frames out, %dx%d RGB, "
        "mean pixel %.1f%s\n", app.frames_pushed, app.frames_pulled,
        app.width, app.height,
        app.frames_pulled ? app.mean_sum / app.frames_pulled : 0.0,
        app.output_dir ? ", written as PPM" : "");
    if (app.frames_pulled != app.frames_pushed) {
      g_printerr ("avatar-embed: frames in != frames out\n");
      app.exit_code = 1;
    }
    if (!app.pts_ordered) {
      g_printerr ("avatar-embed: frame timestamps not increasing\n");
      app.exit_code = 1;
    }
  }

  g_source_remove (watch);
  gst_object_unref (app.pipeline);
  g_main_loop_unref (app.loop);
  g_strfreev (app.lines);
  g_free (poses);
  g_free (model);
  g_free (reference);
  g_free (app.output_dir);
  return app.exit_code;
}
