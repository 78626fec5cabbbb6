/* bench_pipeline: real-time factor, per-frame latency and peak memory of the
 * whole avatar pipeline at the embedded model's resolution, with its peers
 * measured in the same run.
 *
 * One pose clip (posetestsrc, recorded to a JSON Lines file) is rendered
 * three ways:
 *   1. guidance: filesrc ! posemapper ! 256x256 ! fakesink
 *      (the part before the diffusion: what the pipeline costs without it)
 *   2. pipeline: filesrc ! posemapper ! avatardiffuse ! latentfuse ! fakesink
 *      (not live: as fast as the machine goes)
 *   3. engine:   avatar-engine render on the same poses and settings, in a
 *      child process (the same work without GStreamer; it also writes PNGs)
 * and printed with the settings, the machine and its load.
 *
 * Real-time factor (RTF) = seconds of video produced per second of wall
 * time (1.0 = real time at the clip's 25 fps). Latency of frame n = wall
 * time from its guidance frame leaving posemapper to its video frame
 * reaching the sink: the wait for the rest of its window plus the work.
 * Peak RSS: the process's high-water mark (VmHWM) after the pipeline run;
 * the engine's from wait4 () on its process.
 *
 *   bench_pipeline [--frames 50] [--steps 4] [--window 16] [--overlap 4]
 *     [--threads 0] [--seed 1] [--engine PATH] [--model DIR] [--no-engine]
 *
 *   GST_PLUGIN_PATH=build/gst build/bench/bench_pipeline
 * Not a test: it prints figures (docs/performance.md).
 */
#include <gst/gst.h>
#include <glib/gstdio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define FPS 25
#define SIZE 256

typedef struct
{
  gint frames;
  gint64 *t_in;                 /* us: guidance frame n left posemapper */
  gint64 *t_out;                /* us: video frame n reached the sink */
  gint n_out;
  gint64 t_start, t_end;
} Timing;

static gint
frame_index (GstBuffer * buf, gint frames)
{
  GstClockTime pts = GST_BUFFER_PTS (buf);
  guint64 n;

  if (!GST_CLOCK_TIME_IS_VALID (pts))
    return -1;
  n = gst_util_uint64_scale_round (pts, FPS, GST_SECOND);
  return n < (guint64) frames ? (gint) n : -1;
}

static GstPadProbeReturn
probe_in (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Timing *t = user_data;
  gint n = frame_index (GST_PAD_PROBE_INFO_BUFFER (info), t->frames);

  if (n >= 0)
    t->t_in[n] = g_get_monotonic_time ();
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
probe_out (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Timing *t = user_data;
  gint n = frame_index (GST_PAD_PROBE_INFO_BUFFER (info), t->frames);

  if (n >= 0)
    t->t_out[n] = g_get_monotonic_time ();
  t->n_out++;
  return GST_PAD_PROBE_OK;
}

static void
add_probe (GstElement * bin, const gchar * name, const gchar * pad_name,
    GstPadProbeCallback cb, Timing * t)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (bin), name);
  GstPad *pad = gst_element_get_static_pad (e, pad_name);

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, cb, t, NULL);
  gst_object_unref (pad);
  gst_object_unref (e);
}

/* Runs a description to EOS; returns FALSE (after printing why) on error.
 * Elements named "mapper" and "sink" get the timing probes. */
static gboolean
run_pipeline (const gchar * desc, Timing * t)
{
  GError *err = NULL;
  GstElement *p = gst_parse_launch (desc, &err);
  GstBus *bus;
  GstMessage *msg;
  gboolean ok = TRUE;

  if (!p || err) {
    fprintf (stderr, "bench_pipeline: %s\n  %s\n", err ? err->message :
        "cannot build", desc);
    g_clear_error (&err);
    if (p)
      gst_object_unref (p);
    return FALSE;
  }
  add_probe (p, "mapper", "src", probe_in, t);
  add_probe (p, "sink", "sink", probe_out, t);
  bus = gst_element_get_bus (p);
  t->t_start = g_get_monotonic_time ();
  gst_element_set_state (p, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  t->t_end = g_get_monotonic_time ();
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    fprintf (stderr, "bench_pipeline: error from %s: %s\n  %s\n",
        GST_OBJECT_NAME (msg->src), err->message, dbg ? dbg : "");
    g_clear_error (&err);
    g_free (dbg);
    ok = FALSE;
  }
  gst_message_unref (msg);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (p);
  return ok;
}

static int
cmp_i64 (const void *a, const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return (x > y) - (x < y);
}

/* Kilobytes of the process's peak resident set (VmHWM). */
static long
peak_rss_kb (void)
{
  FILE *f = fopen ("/proc/self/status", "r");
  char line[256];
  long kb = -1;

  if (!f)
    return -1;
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "VmHWM: %ld kB", &kb) == 1)
      break;
  fclose (f);
  return kb;
}

static void
print_machine (const char *when)
{
  gchar *load = NULL, *cpu = NULL;
  gchar **lines;

  if (g_file_get_contents ("/proc/loadavg", &load, NULL, NULL))
    g_strchomp (load);
  if (g_file_get_contents ("/proc/cpuinfo", &cpu, NULL, NULL)) {
    lines = g_strsplit (cpu, "\n", -1);
    for (gchar ** l = lines; *l; l++)
      if (g_str_has_prefix (*l, "model name")) {
        const gchar *colon = strchr (*l, ':');
        if (strcmp (when, "start") == 0)
          printf ("machine: %s, %ld logical CPUs\n", colon ? colon + 2 : *l,
              sysconf (_SC_NPROCESSORS_ONLN));
        break;
      }
    g_strfreev (lines);
  }
  printf ("load average at %s: %s\n", when, load ? load : "?");
  g_free (load);
  g_free (cpu);
}

/* Runs avatar-engine render; returns wall seconds (< 0 on failure) and the
 * child's peak RSS in kB. */
static double
run_engine (gchar ** argv, long *rss_kb)
{
  gint64 t0 = g_get_monotonic_time ();
  struct rusage ru;
  int status = 0;
  pid_t pid = fork ();

  if (pid < 0)
    return -1;
  if (pid == 0) {
    int devnull = open ("/dev/null", O_WRONLY);
    if (devnull >= 0)
      dup2 (devnull, STDOUT_FILENO);
    execv (argv[0], argv);
    fprintf (stderr, "bench_pipeline: cannot run %s: %s\n", argv[0],
        strerror (errno));
    _exit (127);
  }
  if (wait4 (pid, &status, 0, &ru) < 0 || !WIFEXITED (status)
      || WEXITSTATUS (status) != 0) {
    fprintf (stderr, "bench_pipeline: %s failed (status %d)\n", argv[0],
        WIFEXITED (status) ? WEXITSTATUS (status) : -1);
    return -1;
  }
  *rss_kb = ru.ru_maxrss;
  return (g_get_monotonic_time () - t0) / 1e6;
}

int
main (int argc, char **argv)
{
  gint frames = 50, steps = 4, window = 16, overlap = 4, threads = 0;
  gint seed = 1;
  gchar *engine = NULL, *model = NULL;
  gboolean no_engine = FALSE;
  GOptionEntry entries[] = {
    {"frames", 'n', 0, G_OPTION_ARG_INT, &frames, "Pose frames (default 50)",
        "N"},
    {"steps", 's', 0, G_OPTION_ARG_INT, &steps, "Denoising steps (default 4)",
        "N"},
    {"window", 'w', 0, G_OPTION_ARG_INT, &window, "Window (default 16)", "W"},
    {"overlap", 'o', 0, G_OPTION_ARG_INT, &overlap, "Overlap (default 4)",
        "O"},
    {"threads", 't', 0, G_OPTION_ARG_INT, &threads,
        "Engine threads, 0 = every core (default 0)", "T"},
    {"seed", 0, 0, G_OPTION_ARG_INT, &seed, "Motion and noise seed", "S"},
    {"engine", 0, 0, G_OPTION_ARG_FILENAME, &engine,
        "avatar-engine to compare with (default: engine/avatar-engine beside "
          "this program's folder)", "PATH"},
    {"model", 0, 0, G_OPTION_ARG_FILENAME, &model,
        "Model folder (default: the elements' default, the bundled model)",
        "DIR"},
    {"no-engine", 0, 0, G_OPTION_ARG_NONE, &no_engine,
        "Skip the avatar-engine render peer", NULL},
    {NULL}
  };
  GOptionContext *ctx;
  GError *err = NULL;
  gchar *tmp, *poses, *desc, *render_out;
  Timing guid = { 0 }, pipe = { 0 };
  gint64 *lat;
  gint n_lat = 0;
  double pipe_wall, steady_fps, guid_wall, first_s = 0, eng_wall = -1;
  long pipe_rss, eng_rss = -1;

  ctx = g_option_context_new (NULL);
  g_option_context_set_summary (ctx, "Real-time factor, latency and peak "
      "memory of the avatar pipeline, against posemapper alone and "
      "avatar-engine render.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "bench_pipeline: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (frames < 1 || steps < 1 || window < 1 || overlap < 0
      || overlap >= window || threads < 0) {
    fprintf (stderr, "bench_pipeline: need frames, steps, window >= 1 and "
        "0 <= overlap < window\n");
    return 2;
  }
  if (!engine) {
    gchar *dir = g_path_get_dirname (argv[0]);
    engine = g_build_filename (dir, "..", "engine", "avatar-engine", NULL);
    g_free (dir);
  }

  tmp = g_dir_make_tmp ("bench_pipeline-XXXXXX", &err);
  if (!tmp) {
    fprintf (stderr, "bench_pipeline: %s\n", err->message);
    return 1;
  }
  poses = g_build_filename (tmp, "poses.jsonl", NULL);
  render_out = g_build_filename (tmp, "render", NULL);
  guid.frames = pipe.frames = frames;
  guid.t_in = g_new0 (gint64, frames);
  guid.t_out = g_new0 (gint64, frames);
  pipe.t_in = g_new0 (gint64, frames);
  pipe.t_out = g_new0 (gint64, frames);
  lat = g_new0 (gint64, frames);

  printf ("bench_pipeline: %d frames at %d fps (%.2f s of video), %dx%d, "
      "%d DDIM steps, window %d, overlap %d, threads %d (0 = all), seed %d, "
      "model %s, AE_SPIN_US=%s\n", frames, FPS, (double) frames / FPS,
      SIZE, SIZE, steps, window, overlap, threads, seed,
      model ? model : "(default)", g_getenv ("AE_SPIN_US") ?
      g_getenv ("AE_SPIN_US") : "(default 50)");
  print_machine ("start");

  /* The clip: poses recorded once, so every run reads the same file. */
  desc = g_strdup_printf ("posetestsrc num-buffers=%d seed=%d width=%d "
      "height=%d ! identity name=mapper ! filesink name=sink location=%s",
      frames, seed, SIZE, SIZE, poses);
  {
    Timing rec = { 0 };
    rec.frames = frames;
    rec.t_in = guid.t_in;
    rec.t_out = guid.t_out;
    if (!run_pipeline (desc, &rec))
      return 1;
  }
  g_free (desc);

  /* 1. guidance only */
  desc = g_strdup_printf ("filesrc location=%s ! posemapper name=mapper ! "
      "video/x-raw,width=%d,height=%d ! fakesink name=sink sync=false",
      poses, SIZE, SIZE);
  if (!run_pipeline (desc, &guid))
    return 1;
  g_free (desc);
  guid_wall = (guid.t_end - guid.t_start) / 1e6;

  /* 2. the avatar pipeline */
  desc = g_strdup_printf ("filesrc location=%s ! posemapper name=mapper ! "
      "video/x-raw,width=%d,height=%d ! avatardiffuse steps=%d window=%d "
      "overlap=%d threads=%d seed=%d guidance-scale=2.5 %s%s ! latentfuse ! "
      "fakesink name=sink sync=false", poses, SIZE, SIZE, steps, window,
      overlap, threads, seed, model ? "model=" : "", model ? model : "");
  if (!run_pipeline (desc, &pipe))
    return 1;
  g_free (desc);
  pipe_rss = peak_rss_kb ();
  pipe_wall = (pipe.t_end - pipe.t_start) / 1e6;
  if (pipe.n_out != frames)
    fprintf (stderr, "bench_pipeline: %d frames out for %d in\n", pipe.n_out,
        frames);
  for (gint i = 0; i < frames; i++)
    if (pipe.t_in[i] && pipe.t_out[i])
      lat[n_lat++] = pipe.t_out[i] - pipe.t_in[i];
  qsort (lat, n_lat, sizeof *lat, cmp_i64);
  {
    gint64 first = G_MAXINT64, last = 0;
    for (gint i = 0; i < frames; i++)
      if (pipe.t_out[i]) {
        first = MIN (first, pipe.t_out[i]);
        last = MAX (last, pipe.t_out[i]);
      }
    steady_fps = last > first ? (frames - 1) / ((last - first) / 1e6) : 0.0;
    if (last > 0)
      first_s = (first - pipe.t_start) / 1e6;
  }

  /* 3. the same work through avatar-engine render */
  if (!no_engine) {
    gchar *a_frames = g_strdup_printf ("%d", frames);
    gchar *a_steps = g_strdup_printf ("%d", steps);
    gchar *a_window = g_strdup_printf ("%d", window);
    gchar *a_overlap = g_strdup_printf ("%d", overlap);
    gchar *a_threads = g_strdup_printf ("%d", threads);
    gchar *a_seed = g_strdup_printf ("%d", seed);
    gchar *a_model = model ? g_strdup (model) :
        g_build_filename (AVATAR_SOURCE_DIR, "models", "avatar-default", NULL);
    gchar *a_size = g_strdup_printf ("%dx%d", SIZE, SIZE);
    gchar *eargv[] = { engine, (gchar *) "render", (gchar *) "--model",
      a_model, (gchar *) "--poses", poses, (gchar *) "--out", render_out,
      (gchar *) "--frames", a_frames, (gchar *) "--size", a_size,
      (gchar *) "--steps", a_steps, (gchar *) "--window", a_window,
      (gchar *) "--overlap", a_overlap, (gchar *) "--threads", a_threads,
      (gchar *) "--seed", a_seed, (gchar *) "--guidance", (gchar *) "2.5",
      NULL
    };
    eng_wall = run_engine (eargv, &eng_rss);
    g_free (a_frames);
    g_free (a_steps);
    g_free (a_window);
    g_free (a_overlap);
    g_free (a_threads);
    g_free (a_seed);
    g_free (a_model);
    g_free (a_size);
  }
  print_machine ("end");

  printf ("\n| run | frames | wall s | video fps | RTF | peak RSS MB |\n"
      "|---|---|---|---|---|---|\n");
  printf ("| guidance only (posemapper) | %d | %.2f | %.1f | %.1f | - |\n",
      guid.n_out, guid_wall, guid.n_out / guid_wall,
      guid.n_out / guid_wall / FPS);
  printf ("| avatar pipeline (posemapper ! avatardiffuse ! latentfuse) | %d | "
      "%.2f | %.3f | %.4f | %.0f |\n", pipe.n_out, pipe_wall,
      pipe.n_out / pipe_wall, pipe.n_out / pipe_wall / FPS, pipe_rss / 1024.0);
  if (eng_wall > 0)
    printf ("| avatar-engine render (same poses and settings, writes PNG) | "
        "%d | %.2f | %.3f | %.4f | %.0f |\n", frames, eng_wall,
        frames / eng_wall, frames / eng_wall / FPS, eng_rss / 1024.0);
  printf ("\npipeline: first frame after %.2f s (model load, reference, "
      "first window); after it %.3f fps (RTF %.4f)\n", first_s, steady_fps,
      steady_fps / FPS);
  if (n_lat > 0)
    printf ("pipeline: per-frame latency (guidance out -> video frame in "
        "sink), %d frames: min %.2f s, median %.2f s, max %.2f s\n", n_lat,
        lat[0] / 1e6, lat[n_lat / 2] / 1e6, lat[n_lat - 1] / 1e6);
  if (eng_wall > 0)
    printf ("pipeline / engine wall time: %.3f\n", pipe_wall / eng_wall);

  /* Leave nothing behind. */
  {
    GDir *d = g_dir_open (render_out, 0, NULL);
    const gchar *name;
    while (d && (name = g_dir_read_name (d))) {
      gchar *f = g_build_filename (render_out, name, NULL);
      g_unlink (f);
      g_free (f);
    }
    if (d)
      g_dir_close (d);
    g_rmdir (render_out);
    g_unlink (poses);
    g_rmdir (tmp);
  }
  g_free (guid.t_in);
  g_free (guid.t_out);
  g_free (pipe.t_in);
  g_free (pipe.t_out);
  g_free (lat);
  g_free (poses);
  g_free (render_out);
  g_free (tmp);
  g_free (engine);
  g_free (model);
  return pipe.n_out == frames ? 0 : 1;
}
