/* avatardiffuse ! latentfuse with device=vulkan against device=cpu, on the
 * embedded model at 64x64 frames, 1 step, window 4, overlap 1, 5 pose
 * frames (two windows, the overlap blended by latentfuse): the frames agree
 * within RGB_TOL levels and both elements' stats name the Vulkan device.
 * Without a Vulkan driver (a child process with VK_ICD_FILENAMES pointing
 * nowhere) device=vulkan fails at start with an error naming the driver,
 * and device=auto posts an info message and gives exactly the CPU frames.
 * Exit 77 (skip) when no Vulkan device opens.
 *
 * Usage: test_vk_elements POSES.jsonl (the child: no-driver POSES OUT). */
#include <gst/gst.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

#define N_FRAMES 5
#define FRAME_BYTES (64 * 64 * 3)
/* RGB8 after two float32 UNet passes and the VAE decode on each side. */
#define RGB_TOL 2

static int failures;

#define CHECK(cond, ...) \
  do { \
    if (!(cond)) { \
      failures++; \
      fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf (stderr, __VA_ARGS__); \
      fprintf (stderr, "\n"); \
    } \
  } while (0)

typedef struct {
  GByteArray *frames;           /* N x FRAME_BYTES */
  gchar *error;                 /* the first error message, or NULL */
  gchar *info;                  /* the info messages, joined */
  gchar *diffuse_device, *fuse_device;  /* the elements' stats */
} Run;

static void
run_clear (Run * r)
{
  g_byte_array_unref (r->frames);
  g_free (r->error);
  g_free (r->info);
  g_free (r->diffuse_device);
  g_free (r->fuse_device);
}

static gchar *
stats_device (GstElement * pipe, const char *name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipe), name);
  GstStructure *s = NULL;
  gchar *dev = NULL;

  g_object_get (e, "stats", &s, NULL);
  if (s && gst_structure_get_string (s, "device"))
    dev = g_strdup (gst_structure_get_string (s, "device"));
  if (s)
    gst_structure_free (s);
  gst_object_unref (e);
  return dev;
}

static void
collect_messages (GstElement * pipe, Run * r)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *m;
  GString *info = g_string_new (NULL);

  while ((m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR |
              GST_MESSAGE_INFO)) != NULL) {
    GError *e = NULL;
    gchar *dbg = NULL;
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
      gst_message_parse_error (m, &e, &dbg);
      if (r->error == NULL)
        r->error = g_strdup_printf ("%s (%s)", e->message, dbg ? dbg : "");
    } else {
      gst_message_parse_info (m, &e, &dbg);
      g_string_append_printf (info, "%s (%s); ", e->message, dbg ? dbg : "");
    }
    g_clear_error (&e);
    g_free (dbg);
    gst_message_unref (m);
  }
  r->info = g_string_free (info, FALSE);
  gst_object_unref (bus);
}

static void
run_pipeline (const char *poses, const char *device, Run * r)
{
  gchar *launch = g_strdup_printf ("filesrc location=%s ! posemapper ! "
      "video/x-raw,width=64,height=64 ! avatardiffuse name=d steps=1 "
      "window=4 overlap=1 seed=5 progress-interval=-1 device=%s ! "
      "latentfuse name=f device=%s ! appsink name=s sync=false", poses,
      device, device);
  GError *gerr = NULL;
  GstElement *pipe = gst_parse_launch (launch, &gerr), *sink;
  gint64 t0 = g_get_monotonic_time ();

  memset (r, 0, sizeof *r);
  r->frames = g_byte_array_new ();
  if (pipe == NULL) {
    fprintf (stderr, "FATAL: %s: %s\n", launch, gerr->message);
    exit (1);
  }
  sink = gst_bin_get_by_name (GST_BIN (pipe), "s");
  if (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE) {
    for (;;) {
      GstSample *sample = NULL;
      GstMapInfo map;
      g_signal_emit_by_name (sink, "pull-sample", &sample);
      if (sample == NULL)
        break;
      if (gst_buffer_map (gst_sample_get_buffer (sample), &map,
              GST_MAP_READ)) {
        if (map.size == FRAME_BYTES)
          g_byte_array_append (r->frames, map.data, map.size);
        gst_buffer_unmap (gst_sample_get_buffer (sample), &map);
      }
      gst_sample_unref (sample);
    }
    r->diffuse_device = stats_device (pipe, "d");
    r->fuse_device = stats_device (pipe, "f");
  }
  collect_messages (pipe, r);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  g_free (launch);
  printf ("     device=%s: %u frames, %.1f s%s%s\n", device,
      r->frames->len / FRAME_BYTES, (g_get_monotonic_time () - t0) / 1e6,
      r->error ? ", error: " : "", r->error ? r->error : "");
}

static int
max_diff (const GByteArray * a, const GByteArray * b)
{
  int m = 0;

  for (guint i = 0; i < MIN (a->len, b->len); i++)
    m = MAX (m, ABS ((int) a->data[i] - (int) b->data[i]));
  return m;
}

/* The child, without a Vulkan driver: device=vulkan fails, device=auto
 * runs on the CPU (its frames go to `out` for the parent). */
static int
no_driver (const char *poses, const char *out)
{
  Run r;
  GError *gerr = NULL;

  run_pipeline (poses, "vulkan", &r);
  CHECK (r.frames->len == 0 && r.error &&
      strstr (r.error, "device=vulkan: vulkan: no Vulkan driver (ICD) found"),
      "device=vulkan without a driver: error '%s'", r.error);
  run_clear (&r);
  run_pipeline (poses, "auto", &r);
  CHECK (r.error == NULL && r.frames->len == N_FRAMES * FRAME_BYTES,
      "device=auto without a driver: %u bytes, error '%s'", r.frames->len,
      r.error);
  CHECK (strstr (r.info, "device=auto: no Vulkan GPU") &&
      strstr (r.info, "no Vulkan driver"), "device=auto: info '%s'", r.info);
  CHECK (g_strcmp0 (r.diffuse_device, "cpu") == 0 &&
      g_strcmp0 (r.fuse_device, "cpu") == 0, "device=auto stats: %s / %s",
      r.diffuse_device, r.fuse_device);
  if (!g_file_set_contents (out, (const gchar *) r.frames->data,
          r.frames->len, &gerr)) {
    fprintf (stderr, "FATAL: %s\n", gerr->message);
    return 1;
  }
  run_clear (&r);
  return failures ? 1 : 0;
}

int
main (int argc, char **argv)
{
  gchar *tmp, *poses, *out, *text = NULL;
  gchar **lines;
  GString *head;
  Run cpu, vk;
  AeBackend *be;
  AeError err;
  int d;

  gst_init (&argc, &argv);
  if (argc == 4 && strcmp (argv[1], "no-driver") == 0)
    return no_driver (argv[2], argv[3]);
  if (argc != 2) {
    fprintf (stderr, "usage: test_vk_elements POSES.jsonl\n");
    return 2;
  }
  if (ae_backend_open (&be, AE_DEVICE_VULKAN, &err) < 0) {
    printf ("SKIP: no Vulkan device: %s\n", err.msg);
    return 77;
  }
  printf ("device: %s\n", ae_backend_describe (be));
  ae_backend_free (be);

  /* the first N_FRAMES frames of the pose file */
  if (!g_file_get_contents (argv[1], &text, NULL, NULL)) {
    fprintf (stderr, "FATAL: cannot read %s\n", argv[1]);
    return 1;
  }
  lines = g_strsplit (text, "\n", -1);
  head = g_string_new (NULL);
  for (int i = 0; i < N_FRAMES && lines[i]; i++)
    g_string_append_printf (head, "%s\n", lines[i]);
  tmp = g_dir_make_tmp ("vk-elements-XXXXXX", NULL);
  poses = g_build_filename (tmp, "poses.jsonl", NULL);
  out = g_build_filename (tmp, "auto.rgb", NULL);
  g_file_set_contents (poses, head->str, head->len, NULL);

  run_pipeline (poses, "cpu", &cpu);
  run_pipeline (poses, "vulkan", &vk);
  CHECK (cpu.error == NULL && cpu.frames->len == N_FRAMES * FRAME_BYTES,
      "device=cpu: %u bytes, error '%s'", cpu.frames->len, cpu.error);
  CHECK (vk.error == NULL && vk.frames->len == N_FRAMES * FRAME_BYTES,
      "device=vulkan: %u bytes, error '%s'", vk.frames->len, vk.error);
  CHECK (vk.diffuse_device && g_str_has_prefix (vk.diffuse_device,
          "vulkan: ") && g_strcmp0 (vk.diffuse_device, vk.fuse_device) == 0,
      "device=vulkan stats: %s / %s", vk.diffuse_device, vk.fuse_device);
  CHECK (g_strcmp0 (cpu.diffuse_device, "cpu") == 0, "device=cpu stats: %s",
      cpu.diffuse_device);
  d = max_diff (vk.frames, cpu.frames);
  CHECK (d <= RGB_TOL, "device=vulkan vs cpu: frames differ by %d levels",
      d);
  printf ("ok   avatardiffuse ! latentfuse device=vulkan vs cpu: %d frames "
      "within %d level(s) (tolerance %d); stats: %s\n",
      vk.frames->len / FRAME_BYTES, d, RGB_TOL, vk.diffuse_device);

  /* no driver, in a child */
  {
    gchar *cargv[] = { argv[0], (gchar *) "no-driver", poses, out, NULL };
    gchar **envp = g_get_environ ();
    gchar *cout = NULL, *auto_rgb = NULL;
    gsize len = 0;
    gint status = -1;
    envp = g_environ_setenv (envp, "VK_ICD_FILENAMES", "/nonexistent.json",
        TRUE);
    envp = g_environ_setenv (envp, "VK_DRIVER_FILES", "/nonexistent.json",
        TRUE);
    if (!g_spawn_sync (NULL, cargv, envp, G_SPAWN_STDERR_TO_DEV_NULL, NULL,
            NULL, &cout, NULL, &status, NULL)) {
      fprintf (stderr, "FATAL: spawn\n");
      return 1;
    }
    printf ("%s", cout ? cout : "");
    CHECK (g_spawn_check_wait_status (status, NULL), "no-driver child "
        "failed (run it: %s no-driver %s OUT)", argv[0], poses);
    CHECK (g_file_get_contents (out, &auto_rgb, &len, NULL) &&
        len == cpu.frames->len && memcmp (auto_rgb, cpu.frames->data,
            len) == 0, "device=auto without a driver: frames differ from "
        "device=cpu");
    printf ("ok   without a driver: device=vulkan fails naming it, "
        "device=auto = the CPU frames\n");
    g_free (cout);
    g_free (auto_rgb);
    g_strfreev (envp);
  }

  run_clear (&cpu);
  run_clear (&vk);
  g_unlink (poses);
  g_unlink (out);
  g_rmdir (tmp);
  g_free (poses);
  g_free (out);
  g_free (tmp);
  g_strfreev (lines);
  g_string_free (head, TRUE);
  g_free (text);
  if (failures) {
    printf ("%d failure(s)\n", failures);
    return 1;
  }
  printf ("all passed\n");
  return 0;
}
