/* The avatar pipeline on the Vulkan backend against the CPU backend, on the
 * embedded model at 64x64 frames (8x8 latents). Exit 77 (skip) with a
 * message when no Vulkan device opens.
 *
 *   test_vk_avatar stream MODEL_DIR
 *       the model's devices (one per kind, shared; auto's choice and its
 *       note); a reference prepared on Vulkan (VAE encode + Reference UNet
 *       capture) vs the CPU, every bank entry; AeAvatarStream with
 *       device = vulkan vs cpu: 5 frames, window 4, overlap 1, 1 DDIM step,
 *       CFG 2.5, reference attention, hand tokens, all-frame attention --
 *       every window's latents; the weights uploaded once per model (a
 *       second stream uploads nothing); VAE decode to RGB on two threads at
 *       once on the one Vulkan device = serial = CPU (+-1 level); without a
 *       Vulkan driver (a child process with VK_ICD_FILENAMES pointing
 *       nowhere) vulkan is an error naming the driver and auto is the CPU.
 *   test_vk_avatar concat MODEL_DIR
 *       the model widened to a Denoising UNet of in_channels 8 (the
 *       reference latent concatenated to z_t, docs/model-format.md;
 *       tests/engine/avatar/widen-model.h): the same stream on Vulkan vs
 *       the CPU, reference concat on and off.
 *   test_vk_avatar render AVATAR_ENGINE MODEL_DIR POSES
 *       `avatar-engine render --device vulkan` vs `--device cpu` (saved
 *       latents and PNGs), `--device auto`, `--device gpu` (usage error)
 *       and `--device vulkan` without a driver (error naming it). */
#include "../engine/test_util.h"

#include <glib/gstdio.h>

#include "avatar-stream.h"
#include "image.h"
#include "safetensors.h"
#include "sampler.h"
#include "vk-context.h"
#include "../engine/avatar/widen-model.h"
#include "../engine/avatar/avatar-inputs.h"

/* The latents are O(1); two UNets (reference capture, then denoising) and
 * the VAE encode in float32 on both sides, different summation orders.
 * Measured on lavapipe: ~1e-5 abs, ~3e-6 rel L2. */
#define LAT_TOL_ABS 5e-4
#define LAT_TOL_REL 5e-5
/* RGB8 after the VAE decode: rounding may differ by one level. */
#define RGB_TOL 1

enum { SIZE = 64 };

static AeError err;
#define OK(call) REQUIRE ((call) == 0, "%s", err.msg)

/* ---- inputs ----------------------------------------------------------------- */

/* A reference image: a gradient with a block, any size (resized). */
static uint8_t *
make_reference (int w, int h)
{
  uint8_t *rgb = g_malloc ((size_t) w * h * 3);

  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t *p = rgb + ((size_t) y * w + x) * 3;
      gboolean block = x > w / 3 && x < 2 * w / 3 && y > h / 4;
      p[0] = (uint8_t) (block ? 200 : 255 * x / w);
      p[1] = (uint8_t) (block ? 60 : 255 * y / h);
      p[2] = (uint8_t) (block ? 90 : 128);
    }
  return rgb;
}

static void
compare_floats (const char *what, const float *got, const float *want,
    size_t n, double tol_abs, double tol_rel)
{
  AeTensor a = ae_tensor_1d ((float *) got, (int64_t) n);
  AeTensor b = ae_tensor_1d ((float *) want, (int64_t) n);

  check_close (what, &a, &b, tol_abs, tol_rel);
}

static size_t
weight_bytes (AeAvatarDevice * d)
{
  AeVkContext *vk = ae_backend_vk_context (ae_avatar_device_backend (d));
  return vk ? vk->weight_bytes : 0;
}

/* ---- stream ------------------------------------------------------------------ */

/* Runs n frames through a stream on `device`; window k's latents go to
 * wins + k * W * fs; returns the number of windows. */
static int
run_stream_concat (AeAvatarModel * m, AeAvatarReference * ref,
    AeDevice device, int64_t n, float *wins, size_t fs, bool concat)
{
  AeAvatarParams p;
  AeAvatarStream *s;
  AeAvatarWindow w;
  uint8_t rgb[SIZE * SIZE * 3];
  float kp[AE_AVATAR_HAND_FLOATS];
  int k = 0;
  double t0 = g_get_monotonic_time () / 1e6;

  ae_avatar_params_init (&p);
  p.width = p.height = SIZE;
  p.steps = 1;
  p.window = 4;
  p.overlap = 1;
  p.guidance_scale = 2.5f;
  p.temporal_attention = true;
  p.seed = 11;
  p.device = device;
  p.reference_concat = concat;
  OK (ae_avatar_stream_new (&s, m, ref, &p, &err));
  CHECK (ae_avatar_device_kind (ae_avatar_stream_device (s)) == device,
      "stream runs on %s, asked for %s",
      ae_avatar_device_describe (ae_avatar_stream_device (s)),
      ae_device_name (device));
  REQUIRE (ae_avatar_stream_frame_floats (s) == fs, "frame size");
  for (int64_t f = 0; f <= n; f++) {
    if (f < n) {
      test_make_pose (f, SIZE, rgb);
      test_make_hands (f, kp);
      OK (ae_avatar_stream_push_frame (s, rgb, SIZE * 3, kp, &err));
    } else {
      OK (ae_avatar_stream_finish (s, &err));
    }
    while (ae_avatar_stream_pop_window (s, &w) == 1) {
      REQUIRE (w.index == k, "window order");
      memcpy (wins + (size_t) k * p.window * fs, w.latents,
          (size_t) w.n_frames * fs * sizeof (float));
      k++;
    }
  }
  ae_avatar_stream_free (s);
  printf ("     stream on %s: %lld frames, %d windows, %.1f s\n",
      ae_device_name (device), (long long) n, k,
      g_get_monotonic_time () / 1e6 - t0);
  return k;
}

static int
run_stream (AeAvatarModel * m, AeAvatarReference * ref, AeDevice device,
    int64_t n, float *wins, size_t fs)
{
  return run_stream_concat (m, ref, device, n, wins, fs, true);
}

typedef struct {
  AeAvatarDevice *dev;
  const float *lat;
  uint8_t *rgb;                 /* 2 frames */
  int rc;
  char msg[256];
} DecodeJob;

static gpointer
decode_thread (gpointer data)
{
  DecodeJob *j = data;
  AeArena arena;
  AeError e;

  j->rc = -1;
  if (ae_arena_init (&arena, 0, &e) == 0) {
    j->rc = ae_avatar_device_decode_rgb (j->dev, j->lat, 2, SIZE / 8,
        SIZE / 8, j->rgb, SIZE * 3, SIZE * SIZE * 3, &arena, &e);
    ae_arena_clear (&arena);
  }
  if (j->rc < 0)
    g_strlcpy (j->msg, e.msg, sizeof j->msg);
  return NULL;
}

static int
max_rgb_diff (const uint8_t * a, const uint8_t * b, size_t n)
{
  int m = 0;

  for (size_t i = 0; i < n; i++)
    m = MAX (m, ABS ((int) a[i] - (int) b[i]));
  return m;
}

/* No Vulkan driver (run in a child with VK_ICD_FILENAMES pointing
 * nowhere): vulkan is an error naming the driver, auto is the CPU. */
static int
test_no_driver (const char *dir)
{
  AeAvatarModel *m;
  AeAvatarDevice *d = NULL;

  OK (ae_avatar_model_load (&m, dir, &err));
  CHECK (ae_avatar_model_device (m, AE_DEVICE_VULKAN, &d, &err) < 0 &&
      d == NULL && strstr (err.msg, "no Vulkan driver (ICD) found"),
      "vulkan without a driver: '%s'", err.msg);
  OK (ae_avatar_model_device (m, AE_DEVICE_AUTO, &d, &err));
  CHECK (ae_avatar_device_kind (d) == AE_DEVICE_CPU &&
      strstr (ae_avatar_device_note (d), "no Vulkan driver"),
      "auto without a driver: %s, note '%s'", ae_avatar_device_describe (d),
      ae_avatar_device_note (d));
  ae_avatar_model_unref (m);
  if (ae_test_failures)
    return 1;
  printf ("ok   without a driver: vulkan fails naming it, auto is the "
      "CPU\n");
  return 0;
}

static int
test_stream (const char *self_exe, const char *dir)
{
  AeAvatarModel *m;
  AeAvatarDevice *cpu, *vk, *again, *automatic;
  AeAvatarReference *ref_cpu, *ref_vk;
  uint8_t *img = make_reference (80, 72);
  float kp[AE_AVATAR_HAND_FLOATS];
  size_t fs, uploaded;
  float *wins_cpu, *wins_vk;
  int nw, nw2;

  OK (ae_avatar_model_load (&m, dir, &err));
  if (ae_avatar_model_device (m, AE_DEVICE_VULKAN, &vk, &err) < 0) {
    printf ("SKIP: no Vulkan device: %s\n", err.msg);
    ae_avatar_model_unref (m);
    g_free (img);
    return AE_TEST_SKIP;
  }
  printf ("device: %s\n", ae_avatar_device_describe (vk));
  OK (ae_avatar_model_device (m, AE_DEVICE_CPU, &cpu, &err));
  OK (ae_avatar_model_device (m, AE_DEVICE_VULKAN, &again, &err));
  CHECK (again == vk && cpu != vk && ae_avatar_device_kind (vk) ==
      AE_DEVICE_VULKAN && ae_avatar_device_kind (cpu) == AE_DEVICE_CPU &&
      strcmp (ae_avatar_device_describe (cpu), "cpu") == 0 &&
      ae_avatar_device_model (vk) == m, "one device per kind and model");
  /* auto: a GPU, or the CPU when the only device is a software one
   * (unless AE_VULKAN_DEVICE names it) */
  OK (ae_avatar_model_device (m, AE_DEVICE_AUTO, &automatic, &err));
  if (strstr (ae_avatar_device_describe (vk), "(cpu)") &&
      g_getenv ("AE_VULKAN_DEVICE") == NULL)
    CHECK (automatic == cpu && strstr (ae_avatar_device_note (cpu),
            "software implementation"), "auto on a software device: %s, "
        "note '%s'", ae_avatar_device_describe (automatic),
        ae_avatar_device_note (automatic));
  else
    CHECK (automatic == vk, "auto on a GPU: %s",
        ae_avatar_device_describe (automatic));
  printf ("ok   one device per kind, shared; auto: %s%s%s\n",
      ae_avatar_device_describe (automatic),
      *ae_avatar_device_note (automatic) ? " -- " : "",
      ae_avatar_device_note (automatic));

  /* every part uploaded now; nothing is uploaded again below */
  OK (ae_avatar_device_prepare (vk, AE_AVATAR_PART_UNET |
          AE_AVATAR_PART_REFERENCE_UNET | AE_AVATAR_PART_VAE, &err));
  uploaded = weight_bytes (vk);
  CHECK (uploaded > 0, "no weights on the device");

  /* the reference: VAE encode and Reference UNet capture on Vulkan */
  test_make_hands (100, kp);
  OK (ae_avatar_reference_new_on (&ref_cpu, cpu, img, 80, 72, 80 * 3, kp,
          SIZE, SIZE, &err));
  OK (ae_avatar_reference_new_on (&ref_vk, vk, img, 80, 72, 80 * 3, kp,
          SIZE, SIZE, &err));
  check_close ("reference latent (VAE encode) vulkan vs cpu",
      ae_avatar_reference_latent (ref_vk),
      ae_avatar_reference_latent (ref_cpu), LAT_TOL_ABS, LAT_TOL_REL);
  {
    const AeRefBank *a = ae_avatar_reference_bank (ref_vk);
    const AeRefBank *b = ae_avatar_reference_bank (ref_cpu);
    REQUIRE (a->n == b->n && a->n > 0, "bank sizes %d / %d", a->n, b->n);
    for (int i = 0; i < a->n; i++) {
      char what[96];
      snprintf (what, sizeof what, "reference bank entry %d vulkan vs cpu",
          i);
      check_close (what, &a->tokens[i], &b->tokens[i], LAT_TOL_ABS,
          LAT_TOL_REL);
    }
  }

  /* the stream: 5 frames = windows [0,4) and [3,5) */
  fs = (size_t) ae_avatar_model_latent_channels (m) * (SIZE / 8) * (SIZE / 8);
  wins_cpu = g_new0 (float, 3 * 4 * fs);
  wins_vk = g_new0 (float, 3 * 4 * fs);
  nw = run_stream (m, ref_cpu, AE_DEVICE_CPU, 5, wins_cpu, fs);
  nw2 = run_stream (m, ref_vk, AE_DEVICE_VULKAN, 5, wins_vk, fs);
  CHECK (nw == 2 && nw2 == 2, "windows: cpu %d, vulkan %d", nw, nw2);
  for (int k = 0; k < MIN (nw, nw2); k++) {
    char what[96];
    snprintf (what, sizeof what, "stream window %d latents vulkan vs cpu",
        k);
    compare_floats (what, wins_vk + (size_t) k * 4 * fs,
        wins_cpu + (size_t) k * 4 * fs, 4 * fs, LAT_TOL_ABS, LAT_TOL_REL);
  }
  CHECK (weight_bytes (vk) == uploaded, "streams uploaded weights again: "
      "%zu -> %zu bytes", uploaded, weight_bytes (vk));

  /* VAE decode to RGB on two threads at once = serial = CPU */
  {
    uint8_t *serial = g_malloc (2 * SIZE * SIZE * 3);
    uint8_t *on_cpu = g_malloc (2 * SIZE * SIZE * 3);
    DecodeJob jobs[2];
    GThread *th[2];
    AeArena arena;

    OK (ae_arena_init (&arena, 0, &err));
    OK (ae_avatar_device_decode_rgb (vk, wins_vk, 2, SIZE / 8, SIZE / 8,
            serial, SIZE * 3, SIZE * SIZE * 3, &arena, &err));
    OK (ae_avatar_device_decode_rgb (cpu, wins_vk, 2, SIZE / 8, SIZE / 8,
            on_cpu, SIZE * 3, SIZE * SIZE * 3, &arena, &err));
    ae_arena_clear (&arena);
    for (int i = 0; i < 2; i++) {
      jobs[i].dev = vk;
      jobs[i].lat = wins_vk;
      jobs[i].rgb = g_malloc (2 * SIZE * SIZE * 3);
      th[i] = g_thread_new ("decode", decode_thread, &jobs[i]);
    }
    for (int i = 0; i < 2; i++) {
      g_thread_join (th[i]);
      CHECK (jobs[i].rc == 0, "thread %d: %s", i, jobs[i].msg);
      CHECK (memcmp (jobs[i].rgb, serial, 2 * SIZE * SIZE * 3) == 0,
          "thread %d decoded other pixels than the serial decode", i);
      g_free (jobs[i].rgb);
    }
    {
      int d = max_rgb_diff (serial, on_cpu, 2 * SIZE * SIZE * 3);
      CHECK (d <= RGB_TOL, "decode vulkan vs cpu: %d levels", d);
      printf ("ok   decode on 2 threads = serial; vulkan vs cpu: max %d "
          "level(s)\n", d);
    }
    g_free (serial);
    g_free (on_cpu);
  }

  CHECK (weight_bytes (vk) == uploaded, "weights uploaded again: %zu -> "
      "%zu bytes", uploaded, weight_bytes (vk));
  printf ("ok   %zu weight bytes uploaded once for the model (reference, "
      "stream, decode on 2 threads)\n", uploaded);

  /* no driver, in a child */
  {
    char *argv[] = { (char *) self_exe, (char *) "no-driver", (char *) dir,
      NULL
    };
    char **envp = g_get_environ ();
    gchar *out = NULL;
    gint status = -1;
    envp = g_environ_setenv (envp, "VK_ICD_FILENAMES", "/nonexistent.json",
        TRUE);
    envp = g_environ_setenv (envp, "VK_DRIVER_FILES", "/nonexistent.json",
        TRUE);
    REQUIRE (g_spawn_sync (NULL, argv, envp, G_SPAWN_STDERR_TO_DEV_NULL,
            NULL, NULL, &out, NULL, &status, NULL), "spawn");
    CHECK (g_spawn_check_wait_status (status, NULL), "no-driver child "
        "failed: %s", out);
    printf ("%s", out ? out : "");
    g_free (out);
    g_strfreev (envp);
  }

  ae_avatar_reference_unref (ref_cpu);
  ae_avatar_reference_unref (ref_vk);
  ae_avatar_model_unref (m);
  g_free (wins_cpu);
  g_free (wins_vk);
  g_free (img);
  return 0;
}

/* ---- reference concat ------------------------------------------------------- */

/* The widened model (unet in_channels 8): conv_in takes [z_t, c] on the
 * device as on the CPU; the stream agrees with reference concat on and
 * off (zeros in the cond half too), and on != off. */
static int
test_concat (const char *dir)
{
  char *wide = widen_model_new (dir, 8, &err);
  AeAvatarModel *m;
  AeAvatarDevice *cpu, *vk;
  AeAvatarReference *ref;
  uint8_t *img = make_reference (80, 72);
  float kp[AE_AVATAR_HAND_FLOATS];
  float *wins[2][2];            /* [concat off/on][cpu/vulkan] */
  size_t fs;
  double d = 0.0;

  REQUIRE (wide, "%s", err.msg);
  OK (ae_avatar_model_load (&m, wide, &err));
  REQUIRE (ae_avatar_model_reference_concat (m), "not a concat model");
  if (ae_avatar_model_device (m, AE_DEVICE_VULKAN, &vk, &err) < 0) {
    printf ("SKIP: no Vulkan device: %s\n", err.msg);
    ae_avatar_model_unref (m);
    widen_model_remove (wide);
    g_free (img);
    return AE_TEST_SKIP;
  }
  printf ("device: %s\n", ae_avatar_device_describe (vk));
  OK (ae_avatar_model_device (m, AE_DEVICE_CPU, &cpu, &err));
  /* one reference for both streams: the comparison is the UNet's */
  test_make_hands (100, kp);
  OK (ae_avatar_reference_new_on (&ref, cpu, img, 80, 72, 80 * 3, kp, SIZE,
          SIZE, &err));
  fs = (size_t) ae_avatar_model_latent_channels (m) * (SIZE / 8) * (SIZE / 8);
  for (int c = 0; c < 2; c++) {
    for (int v = 0; v < 2; v++) {
      wins[c][v] = g_new0 (float, 3 * 4 * fs);
      REQUIRE (run_stream_concat (m, ref, v ? AE_DEVICE_VULKAN :
              AE_DEVICE_CPU, 5, wins[c][v], fs, c == 1) == 2, "windows");
    }
    for (int k = 0; k < 2; k++) {
      char what[96];
      snprintf (what, sizeof what, "in_channels 8, concat %s: window %d "
          "vulkan vs cpu", c ? "on" : "off", k);
      compare_floats (what, wins[c][1] + (size_t) k * 4 * fs,
          wins[c][0] + (size_t) k * 4 * fs, 4 * fs, LAT_TOL_ABS,
          LAT_TOL_REL);
    }
  }
  for (size_t q = 0; q < 3 * 4 * fs; q++)
    d = MAX (d, fabs ((double) wins[1][1][q] - wins[0][1][q]));
  CHECK (d > 1e-3, "vulkan: reference concat off changed nothing (%g)", d);
  printf ("ok   in_channels 8 on vulkan == cpu, concat on and off (on vs "
      "off: max diff %.3g)\n", d);
  for (int c = 0; c < 2; c++)
    for (int v = 0; v < 2; v++)
      g_free (wins[c][v]);
  ae_avatar_reference_unref (ref);
  ae_avatar_model_unref (m);
  widen_model_remove (wide);
  g_free (img);
  return 0;
}

/* ---- render ------------------------------------------------------------------ */

static int
run_cmd (char **argv, char **envp, char **out)
{
  gint status = -1;
  gchar *o = NULL, *e = NULL;
  GError *gerr = NULL;

  if (!g_spawn_sync (NULL, argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &o, &e,
          &status, &gerr)) {
    fprintf (stderr, "spawn %s: %s\n", argv[0], gerr->message);
    g_error_free (gerr);
    return -1;
  }
  *out = g_strconcat (o ? o : "", e ? e : "", NULL);
  g_free (o);
  g_free (e);
  return g_spawn_check_wait_status (status, NULL) ? 0 :
      WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

/* render --device DEV into tmp/DEV (PNGs) and tmp/DEV.safetensors. */
static int
render (const char *exe, const char *dir, const char *poses, const char *tmp,
    const char *dev, const char *tag, char **envp, char **out)
{
  char *odir = g_strdup_printf ("%s/%s", tmp, tag);
  char *save = g_strdup_printf ("%s/%s.safetensors", tmp, tag);
  char *argv[] = { (char *) exe, (char *) "render", (char *) "--model",
    (char *) dir, (char *) "--poses", (char *) poses, (char *) "--out", odir,
    (char *) "--size", (char *) "64x64", (char *) "--frames", (char *) "4",
    (char *) "--steps", (char *) "1", (char *) "--window", (char *) "4",
    (char *) "--overlap", (char *) "1", (char *) "--seed", (char *) "9",
    (char *) "--save-latents", save, (char *) "--device", (char *) dev, NULL
  };
  int rc = run_cmd (argv, envp, out);

  g_free (odir);
  g_free (save);
  return rc;
}

static void
compare_saved (const char *tmp, const char *a, const char *b,
    const char *what, double tol_abs, double tol_rel, int rgb_tol)
{
  char *pa = g_strdup_printf ("%s/%s.safetensors", tmp, a);
  char *pb = g_strdup_printf ("%s/%s.safetensors", tmp, b);
  AeSafetensors *sa = NULL, *sb = NULL;
  AeTensor ta, tb;
  int worst = 0;

  REQUIRE (ae_st_open (&sa, pa, &err) == 0 && ae_st_open (&sb, pb, &err) ==
      0, "%s", err.msg);
  ta = golden_get (sa, "latents");
  tb = golden_get (sb, "latents");
  check_close (what, &ta, &tb, tol_abs, tol_rel);
  ae_st_close (sa);
  ae_st_close (sb);
  for (int f = 0; f < 4; f++) {
    char *fa = g_strdup_printf ("%s/%s/%05d.png", tmp, a, f);
    char *fb = g_strdup_printf ("%s/%s/%05d.png", tmp, b, f);
    uint8_t *ia = NULL, *ib = NULL;
    int wa, ha, wb, hb;
    REQUIRE (ae_image_load_png (fa, &ia, &wa, &ha, &err) == 0 &&
        ae_image_load_png (fb, &ib, &wb, &hb, &err) == 0, "%s", err.msg);
    REQUIRE (wa == SIZE && ha == SIZE && wb == SIZE && hb == SIZE, "size");
    worst = MAX (worst, max_rgb_diff (ia, ib, SIZE * SIZE * 3));
    g_free (ia);
    g_free (ib);
    g_free (fa);
    g_free (fb);
  }
  CHECK (worst <= rgb_tol, "%s: PNGs differ by %d levels", what, worst);
  printf ("ok   %s: PNGs within %d level(s)\n", what, worst);
  g_free (pa);
  g_free (pb);
}

static int
test_render (const char *exe, const char *dir, const char *poses)
{
  char *tmp = g_dir_make_tmp ("vk-render-XXXXXX", NULL);
  char **env = g_get_environ ();
  char **noicd = g_environ_setenv (g_environ_setenv (g_get_environ (),
          "VK_ICD_FILENAMES", "/nonexistent.json", TRUE), "VK_DRIVER_FILES",
      "/nonexistent.json", TRUE);
  char *msg = NULL;
  const char *names[] = { "cpu", "vulkan", "auto" };
  AeVkContext vk;
  bool software;
  int rc;

  if (ae_vk_context_init (&vk, &err) < 0) {
    printf ("SKIP: no Vulkan device: %s\n", err.msg);
    ae_vk_context_free (&vk);
    return AE_TEST_SKIP;
  }
  software = strcmp (ae_vk_device_type_name (&vk), "cpu") == 0 &&
      g_getenv ("AE_VULKAN_DEVICE") == NULL;
  printf ("device: %s (%s)\n", ae_vk_device_name (&vk),
      ae_vk_device_type_name (&vk));
  ae_vk_context_free (&vk);

  for (int i = 0; i < 3; i++) {
    rc = render (exe, dir, poses, tmp, names[i], names[i], env, &msg);
    REQUIRE (rc == 0, "render --device %s: exit %d: %s", names[i], rc, msg);
    if (i == 1)
      CHECK (strstr (msg, "avatar-engine: device vulkan: ") &&
          strstr (msg, "device vulkan: "), "--device vulkan did not report "
          "the device: '%s'", msg);
    if (i == 2 && software)
      CHECK (strstr (msg, "device cpu -- vulkan: the only device"),
          "--device auto on a software device: '%s'", msg);
    g_free (msg);
  }
  compare_saved (tmp, "vulkan", "cpu", "render --device vulkan vs cpu: "
      "latents", LAT_TOL_ABS, LAT_TOL_REL, RGB_TOL);
  if (software)
    compare_saved (tmp, "auto", "cpu", "render --device auto (the CPU) vs "
        "cpu: latents", 0.0, 0.0, 0);
  else
    compare_saved (tmp, "auto", "cpu", "render --device auto (the GPU) vs "
        "cpu: latents", LAT_TOL_ABS, LAT_TOL_REL, RGB_TOL);

  rc = render (exe, dir, poses, tmp, "gpu", "gpu", env, &msg);
  CHECK (rc == 2 && strstr (msg, "unknown device 'gpu' (cpu, vulkan or "
          "auto)"), "--device gpu: exit %d '%s'", rc, msg);
  g_free (msg);
  rc = render (exe, dir, poses, tmp, "vulkan", "noicd", noicd, &msg);
  CHECK (rc == 1 && strstr (msg, "--device vulkan: vulkan: no Vulkan driver "
          "(ICD) found"), "--device vulkan without a driver: exit %d '%s'",
      rc, msg);
  g_free (msg);
  printf ("ok   --device errors\n");

  for (int i = 0; i < 3; i++) {
    char *p = g_strdup_printf ("%s/%s", tmp, names[i]);
    char *s = g_strdup_printf ("%s.safetensors", p);
    for (int f = 0; f < 4; f++) {
      char *png = g_strdup_printf ("%s/%05d.png", p, f);
      g_unlink (png);
      g_free (png);
    }
    g_unlink (s);
    g_rmdir (p);
    g_free (p);
    g_free (s);
  }
  {
    char *p = g_strdup_printf ("%s/noicd", tmp);
    g_rmdir (p);
    g_free (p);
  }
  g_rmdir (tmp);
  g_free (tmp);
  g_strfreev (env);
  g_strfreev (noicd);
  return 0;
}

int
main (int argc, char **argv)
{
  int rc;

  if (argc == 3 && strcmp (argv[1], "stream") == 0)
    rc = test_stream (argv[0], argv[2]);
  else if (argc == 3 && strcmp (argv[1], "concat") == 0)
    rc = test_concat (argv[2]);
  else if (argc == 3 && strcmp (argv[1], "no-driver") == 0)
    rc = test_no_driver (argv[2]);
  else if (argc == 5 && strcmp (argv[1], "render") == 0)
    rc = test_render (argv[2], argv[3], argv[4]);
  else {
    fprintf (stderr, "usage: test_vk_avatar stream MODEL_DIR | concat "
        "MODEL_DIR | render AVATAR_ENGINE MODEL_DIR POSES\n");
    return 2;
  }
  if (rc == AE_TEST_SKIP)
    return rc;
  if (ae_test_failures) {
    printf ("%d failure(s)\n", ae_test_failures);
    return 1;
  }
  printf ("all passed\n");
  return 0;
}
