/* avatar-launch: gst-launch-1.0 with a progress line.
 *
 * Runs one pipeline description, counts the buffers leaving one named
 * element and prints how far the render is: frames done out of the expected
 * count, frames per second of wall time, elapsed and estimated time left.
 * The demo uses it so that a render of a few minutes on a CPU shows it is
 * moving. Otherwise it behaves like `gst-launch-1.0 -e -q`: Ctrl-C sends
 * EOS (so an MP4 is finalised), an error stops it with exit status 1.
 *
 *   avatar-launch --frames 75 --count-at progress -- \
 *     posetestsrc num-buffers=75 ! posemapper ! videoconvert name=progress ! \
 *     x264enc ! mp4mux ! filesink location=out.mp4
 *
 * The progress goes to stderr: rewritten in place on a terminal, otherwise
 * one line every --interval seconds, and a last line with the totals.
 * Element messages named `*-progress` with `step` and `steps` fields (such
 * as avatardiffuse's) are shown at the end of the line, so the long wait
 * for the first window of frames shows movement too.
 */
#include <gst/gst.h>
#include <glib-unix.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct
{
  GMainLoop *loop;
  GstElement *pipeline;
  const gchar *label;
  guint64 frames_expected;      /* 0 = unknown */
  gdouble interval;             /* seconds between lines when not a tty */
  gboolean tty;

  gint64 t_start;               /* monotonic us at PLAYING request */
  gint64 t_first;               /* monotonic us of the first counted frame */
  gint64 t_last_print;
  volatile gint frames_done;    /* written by the streaming thread */
  gint exit_code;
  gboolean eos_sent;
  gchar stage[64];              /* from the last *-progress element message */
} Launch;

static void
format_duration (gchar * out, gsize size, gdouble seconds)
{
  guint s = seconds < 0 ? 0 : (guint) (seconds + 0.5);

  if (s >= 3600)
    g_snprintf (out, size, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
  else
    g_snprintf (out, size, "%u:%02u", s / 60, s % 60);
}

/* One progress line. `final` ends it with a newline. */
static void
print_progress (Launch * l, gboolean final)
{
  gint64 now = g_get_monotonic_time ();
  guint64 done = (guint64) g_atomic_int_get (&l->frames_done);
  gdouble elapsed = (now - l->t_start) / 1e6;
  gdouble since_first = l->t_first ? (now - l->t_first) / 1e6 : 0.0;
  gdouble fps = 0.0;
  gchar el[32], left[32], line[256];
  gsize n;

  /* The rate counts frames after the first one, so that model loading and
   * pipeline latency before the first frame do not count as slowness. */
  if (done > 1 && since_first > 0.0)
    fps = (done - 1) / since_first;
  format_duration (el, sizeof el, elapsed);
  n = g_snprintf (line, sizeof line, "%s: frame %" G_GUINT64_FORMAT,
      l->label, done);
  if (l->frames_expected > 0)
    n += g_snprintf (line + n, sizeof line - n, "/%" G_GUINT64_FORMAT
        " (%3.0f%%)", l->frames_expected,
        100.0 * MIN (done, l->frames_expected) / l->frames_expected);
  n += g_snprintf (line + n, sizeof line - n, "  %.2f fps  elapsed %s", fps,
      el);
  if (!final && l->frames_expected > done && fps > 0.0) {
    format_duration (left, sizeof left, (l->frames_expected - done) / fps);
    n += g_snprintf (line + n, sizeof line - n, "  left %s", left);
  }
  if (!final && l->stage[0] && n < sizeof line)
    g_snprintf (line + n, sizeof line - n, "  [%s]", l->stage);
  if (l->tty)
    fprintf (stderr, "\r%-78s%s", line, final ? "\n" : "");
  else
    fprintf (stderr, "%s\n", line);
  fflush (stderr);
  l->t_last_print = now;
}

static GstPadProbeReturn
count_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Launch *l = user_data;

  if (g_atomic_int_add (&l->frames_done, 1) == 0)
    l->t_first = g_get_monotonic_time ();
  return GST_PAD_PROBE_OK;
}

static gboolean
tick (gpointer user_data)
{
  Launch *l = user_data;
  gint64 now = g_get_monotonic_time ();

  if (l->tty || (now - l->t_last_print) / 1e6 >= l->interval)
    print_progress (l, FALSE);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_signal (gpointer user_data)
{
  Launch *l = user_data;

  if (l->eos_sent) {
    fprintf (stderr, "\n%s: interrupted twice, stopping without EOS\n",
        l->label);
    l->exit_code = 1;
    g_main_loop_quit (l->loop);
    return G_SOURCE_CONTINUE;   /* removed in main () */
  }
  fprintf (stderr, "\n%s: interrupted, finishing the file (EOS) ...\n",
      l->label);
  l->eos_sent = TRUE;
  gst_element_send_event (l->pipeline, gst_event_new_eos ());
  return G_SOURCE_CONTINUE;
}

static gboolean
on_bus (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  Launch *l = user_data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      fprintf (stderr, "\n%s: ERROR from %s: %s\n", l->label,
          GST_OBJECT_NAME (msg->src), err->message);
      if (dbg)
        fprintf (stderr, "%s: debug: %s\n", l->label, dbg);
      g_clear_error (&err);
      g_free (dbg);
      l->exit_code = 1;
      g_main_loop_quit (l->loop);
      break;
    }
    case GST_MESSAGE_WARNING:{
      GError *err = NULL;

      gst_message_parse_warning (msg, &err, NULL);
      fprintf (stderr, "%s%s: warning from %s: %s\n", l->tty ? "\n" : "",
          l->label, GST_OBJECT_NAME (msg->src), err->message);
      g_clear_error (&err);
      break;
    }
    case GST_MESSAGE_ELEMENT:{
      /* Elements that work long report it (avatardiffuse-progress: the
       * window being denoised and its step); shown in the line. */
      const GstStructure *st = gst_message_get_structure (msg);
      gint step, steps;
      gint64 window;

      if (st && g_str_has_suffix (gst_structure_get_name (st), "-progress")
          && gst_structure_get_int (st, "step", &step)
          && gst_structure_get_int (st, "steps", &steps)) {
        if (gst_structure_get_int64 (st, "first-window", &window))
          g_snprintf (l->stage, sizeof l->stage, "window %" G_GINT64_FORMAT
              " step %d/%d", window + 1, step, steps);
        else
          g_snprintf (l->stage, sizeof l->stage, "step %d/%d", step, steps);
      }
      break;
    }
    case GST_MESSAGE_EOS:
      g_main_loop_quit (l->loop);
      break;
    default:
      break;
  }
  return TRUE;
}

int
main (int argc, char **argv)
{
  Launch l = { 0 };
  gint64 frames = 0;
  gchar *count_at = NULL, *label = NULL;
  gdouble interval = 10.0;
  gchar **rest = NULL;
  GOptionEntry entries[] = {
    {"frames", 'n', 0, G_OPTION_ARG_INT64, &frames,
        "Frames the render is expected to produce (for the percentage and the "
          "time left; 0 = unknown)", "N"},
    {"count-at", 'c', 0, G_OPTION_ARG_STRING, &count_at,
          "Name of the element whose output buffers are counted as frames "
          "(default: progress)", "NAME"},
    {"label", 'l', 0, G_OPTION_ARG_STRING, &label,
        "Word the progress lines start with (default: avatar-launch)", "TEXT"},
    {"interval", 'i', 0, G_OPTION_ARG_DOUBLE, &interval,
          "Seconds between progress lines when stderr is not a terminal "
          "(default: 10)", "S"},
    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &rest, NULL,
        "PIPELINE-DESCRIPTION"},
    {NULL}
  };
  GOptionContext *ctx;
  GError *err = NULL;
  GstElement *counted;
  GstPad *pad;
  GstBus *bus;
  guint bus_watch, tick_id, sig_int, sig_term;
  gint64 t_end;

  ctx = g_option_context_new ("[--] PIPELINE-DESCRIPTION");
  g_option_context_set_summary (ctx,
      "Runs a GStreamer pipeline like gst-launch-1.0 -e and prints a progress "
      "line counting the buffers that leave one named element.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "avatar-launch: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (!rest || !rest[0]) {
    fprintf (stderr, "avatar-launch: no pipeline description given "
        "(see --help)\n");
    return 2;
  }
  if (frames < 0 || interval <= 0.0) {
    fprintf (stderr, "avatar-launch: --frames must be >= 0 and --interval "
        "> 0\n");
    return 2;
  }

  l.label = label ? label : "avatar-launch";
  l.frames_expected = (guint64) frames;
  l.interval = interval;
  l.tty = isatty (STDERR_FILENO);
  l.pipeline = gst_parse_launchv ((const gchar **) rest, &err);
  if (!l.pipeline) {
    fprintf (stderr, "%s: could not build the pipeline: %s\n", l.label,
        err ? err->message : "unknown error");
    return 1;
  }
  if (err) {                    /* recoverable: e.g. a missing property */
    fprintf (stderr, "%s: %s\n", l.label, err->message);
    g_clear_error (&err);
    gst_object_unref (l.pipeline);
    return 1;
  }
  if (!GST_IS_BIN (l.pipeline)) {
    fprintf (stderr, "%s: the description must be a pipeline of several "
        "elements\n", l.label);
    gst_object_unref (l.pipeline);
    return 1;
  }
  counted = gst_bin_get_by_name (GST_BIN (l.pipeline),
      count_at ? count_at : "progress");
  if (!counted || !(pad = gst_element_get_static_pad (counted, "src"))) {
    fprintf (stderr, "%s: the pipeline has no element named '%s' with a "
        "src pad to count frames at (name one with name=%s)\n", l.label,
        count_at ? count_at : "progress", count_at ? count_at : "progress");
    if (counted)
      gst_object_unref (counted);
    gst_object_unref (l.pipeline);
    return 1;
  }
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_probe, &l, NULL);
  gst_object_unref (pad);
  gst_object_unref (counted);

  l.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (l.pipeline);
  bus_watch = gst_bus_add_watch (bus, on_bus, &l);
  gst_object_unref (bus);
  sig_int = g_unix_signal_add (SIGINT, on_signal, &l);
  sig_term = g_unix_signal_add (SIGTERM, on_signal, &l);
  tick_id = g_timeout_add (l.tty ? 500 : 1000, tick, &l);

  l.t_start = l.t_last_print = g_get_monotonic_time ();
  if (gst_element_set_state (l.pipeline,
          GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    /* The error message on the bus says why; run the loop to print it. */
    l.exit_code = 1;
  }
  g_main_loop_run (l.loop);
  t_end = g_get_monotonic_time ();

  g_source_remove (tick_id);
  g_source_remove (sig_int);
  g_source_remove (sig_term);
  g_source_remove (bus_watch);
  gst_element_set_state (l.pipeline, GST_STATE_NULL);
  print_progress (&l, TRUE);
  if (l.exit_code == 0 && l.frames_expected > 0
      && (guint64) l.frames_done != l.frames_expected && !l.eos_sent)
    fprintf (stderr, "%s: note: %d frames counted, %" G_GUINT64_FORMAT
        " expected\n", l.label, l.frames_done, l.frames_expected);
  fprintf (stderr, "%s: %s after %.1f s\n", l.label,
      l.exit_code ? "failed" : "done", (t_end - l.t_start) / 1e6);

  gst_object_unref (l.pipeline);
  g_main_loop_unref (l.loop);
  g_strfreev (rest);
  g_free (count_at);
  g_free (label);
  return l.exit_code;
}
