/* Tests of the avatar pipeline (engine/avatar-model.c, avatar-stream.c,
 * image.c) on the embedded model models/avatar-default, run at 64x64
 * frames (8x8 latents) so that every case takes well under a second:
 *   model: accessors; errors naming the folder/file for a missing folder,
 *     a truncated weights file and mismatched parts;
 *   stream: frames in = frames out for N = 1, W-O, W, W+1, 2W+3 and
 *     lookahead 1, 2 and all; the same seed gives identical latents;
 *     lookahead all equals a naive whole-clip lockstep written here;
 *     lookahead >= windows equals all; reference attention, hand tokens,
 *     temporal attention and the seed each change the output; usage
 *     errors (pop before the next group, push after finish); noise
 *     correlation: the initial noise bit for bit at rho 0, 0.5, 1, bad rho
 *     refused, the stream equal to naive_clip's mixed noise (DDIM, LCM),
 *     the same per frame for window 4/2 and 6/0;
 *   blender: each frame once, in order, equal to the weighted blend;
 *     out-of-order windows refused;
 *   image: PNG round trip, resize of a constant image, same-size copy.
 * Usage: test_avatar MODEL_DIR [AVATAR_ENGINE_TOOL] (the tool: the render
 * subcommand on a 7-frame pose file, --noise-correlation saved and
 * checked). */
#include <math.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../test_util.h"
#include "avatar-engine.h"
#include "widen-model.h"
#include "avatar-inputs.h"

#define OK(call) REQUIRE ((call) == 0, "%s", err.msg)

static const char *model_dir;
static const char *bundled_dir;        /* the model as given (f16 files) */
static AeAvatarModel *model;
static AeAvatarReference *reference;    /* 64x64, hands present */
static AeError err;

enum { SIZE = 64 };

/* ---- inputs ---------------------------------------------------------------- */

static void
base_params (AeAvatarParams * p)
{
  ae_avatar_params_init (p);
  p->width = p->height = SIZE;
  p->steps = 2;
  p->window = 4;
  p->overlap = 2;
  p->guidance_scale = 2.0f;
  p->temporal_attention = false;
  p->seed = 7;
}

/* Runs a whole clip of n frames on model m with reference r; every
 * window's latents are stored by frame in *wins (window k at k * W * fs),
 * lens[k] its length; returns the number of windows. Also checks the
 * windows come in order. */
static int
run_clip_on (AeAvatarModel * m, AeAvatarReference * r,
    const AeAvatarParams * p, int64_t n, float **wins, int *lens)
{
  AeAvatarStream *s;
  AeAvatarWindow w;
  uint8_t rgb[SIZE * SIZE * 3];
  float kp[AE_AVATAR_HAND_FLOATS];
  size_t fs;
  int k = 0, W = p->window;

  OK (ae_avatar_stream_new (&s, m, r, p, &err));
  fs = ae_avatar_stream_frame_floats (s);
  *wins = g_new0 (float, (size_t) (n + W) * W * fs);
  for (int64_t f = 0; f <= n; f++) {
    if (f < n) {
      test_make_pose (f, SIZE, rgb);
      test_make_hands (f, kp);
      OK (ae_avatar_stream_push_frame (s, rgb, SIZE * 3, kp, &err));
    } else {
      OK (ae_avatar_stream_finish (s, &err));
    }
    while (ae_avatar_stream_pop_window (s, &w) == 1) {
      CHECK (w.index == k, "window %lld, expected %d", (long long) w.index,
          k);
      CHECK (w.first_frame == k * (W - p->overlap), "first frame");
      CHECK ((size_t) w.channels * w.height * w.width == fs, "shape");
      memcpy (*wins + (size_t) k * W * fs, w.latents,
          (size_t) w.n_frames * fs * sizeof (float));
      lens[k] = w.n_frames;
      k++;
    }
  }
  ae_avatar_stream_free (s);
  return k;
}

/* run_clip_on the embedded model and its 64x64 reference. */
static int
run_clip (const AeAvatarParams * p, int64_t n, float **wins, int *lens)
{
  return run_clip_on (model, reference, p, n, wins, lens);
}

static double
max_diff (const float *a, const float *b, size_t n)
{
  double m = 0.0;

  for (size_t i = 0; i < n; i++) {
    double d = fabs ((double) a[i] - b[i]);
    if (!(d <= m))
      m = d;
  }
  return m;
}

/* The contract's mixed noise of frame f, written out here: sqrtf (rho) x
 * ae_noise_fill (seed, stream, -1) + sqrtf (1 - rho) x ae_noise_fill (seed,
 * stream, f), elementwise in float (n floats into out). */
static void
mixed_noise_ref (uint64_t seed, uint64_t stream, float rho, int64_t f,
    float *out, size_t n)
{
  float a = sqrtf (rho), b = sqrtf (1.0f - rho);
  float *shared = g_new (float, n), *own = g_new (float, n);

  ae_noise_fill (seed, stream, -1, shared, n);
  ae_noise_fill (seed, stream, f, own, n);
  for (size_t e = 0; e < n; e++)
    out[e] = a * shared[e] + b * own[e];
  g_free (shared);
  g_free (own);
}

/* ---- model ----------------------------------------------------------------- */

static void
test_model (void)
{
  size_t mapped = 0, conv = 0;
  AeAvatarModel *m = NULL;

  /* the model as bundled: every file f16, so the f32 copies take twice the
   * mapped bytes (the narrowed copy the other tests use has an f32 unet) */
  OK (ae_avatar_model_load (&m, bundled_dir, &err));
  CHECK (ae_avatar_model_native_size (m) == 256, "native size %d",
      ae_avatar_model_native_size (m));
  CHECK (ae_avatar_model_size_multiple (m) == 32, "multiple %d",
      ae_avatar_model_size_multiple (m));
  CHECK (ae_avatar_model_latent_channels (m) == 4, "latent channels");
  CHECK (ae_avatar_model_downscale (m) == 8, "downscale");
  CHECK (ae_avatar_model_scaling_factor (m) > 0.0f, "scaling factor");
  ae_avatar_model_weight_bytes (m, &mapped, &conv);
  CHECK (mapped > 1000000 && conv == 2 * mapped, "weights %zu / %zu", mapped,
      conv);
  CHECK (ae_avatar_model_ref (m) == m, "ref");
  ae_avatar_model_unref (m);
  ae_avatar_model_unref (m);
  printf ("ok   model accessors (weights %.1f MB mapped)\n", mapped / 1e6);
}

static char *
tmp_model (void)
{
  char *dir = g_dir_make_tmp ("avatar-model-XXXXXX", NULL);
  const char *parts[] = { "vae", "unet", "reference_unet", "pose_guider",
    "hand_encoder", "scheduler_config.json"
  };

  REQUIRE (dir, "mkdtemp");
  for (size_t i = 0; i < G_N_ELEMENTS (parts); i++) {
    char *src = g_build_filename (model_dir, parts[i], NULL);
    char *abs = g_canonicalize_filename (src, NULL);
    char *dst = g_build_filename (dir, parts[i], NULL);
    REQUIRE (symlink (abs, dst) == 0, "symlink %s", dst);
    g_free (src);
    g_free (abs);
    g_free (dst);
  }
  return dir;
}

/* Replaces the symlinked part by a real folder: config copied with
 * `edit` applied (a string replacement), weights truncated to `keep`
 * bytes (0 = symlink to the original). */
static void
replace_part (const char *dir, const char *part, const char *from,
    const char *to, gsize keep)
{
  char *link = g_build_filename (dir, part, NULL);
  char *src = g_build_filename (model_dir, part, NULL);
  char *cfg_src = g_build_filename (src, "config.json", NULL);
  char *w_src = g_build_filename (src, "diffusion_pytorch_model.safetensors",
      NULL);
  char *cfg_dst = g_build_filename (link, "config.json", NULL);
  char *w_dst = g_build_filename (link, "diffusion_pytorch_model.safetensors",
      NULL);
  char *text, *edited, *w_abs;
  gsize len;
  gchar **split;

  g_unlink (link);
  REQUIRE (g_mkdir (link, 0755) == 0, "mkdir %s", link);
  REQUIRE (g_file_get_contents (cfg_src, &text, &len, NULL), "%s", cfg_src);
  split = g_strsplit (text, from ? from : "\x01", 2);
  edited = g_strjoinv (to ? to : "\x01", split);
  REQUIRE (!from || strcmp (edited, text) != 0, "%s: '%s' not found",
      cfg_src, from);
  REQUIRE (g_file_set_contents (cfg_dst, edited, -1, NULL), "%s", cfg_dst);
  g_free (text);
  g_free (edited);
  g_strfreev (split);
  if (keep == 0) {
    w_abs = g_canonicalize_filename (w_src, NULL);
    REQUIRE (symlink (w_abs, w_dst) == 0, "symlink %s", w_dst);
    g_free (w_abs);
  } else {
    REQUIRE (g_file_get_contents (w_src, &text, &len, NULL), "%s", w_src);
    REQUIRE (g_file_set_contents (w_dst, text, (gssize) keep, NULL), "%s",
        w_dst);
    g_free (text);
  }
  g_free (link);
  g_free (src);
  g_free (cfg_src);
  g_free (w_src);
  g_free (cfg_dst);
  g_free (w_dst);
}

static void
rm_tree (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  const char *name;

  if (d == NULL) {
    g_unlink (path);
    return;
  }
  while ((name = g_dir_read_name (d))) {
    char *p = g_build_filename (path, name, NULL);
    if (g_file_test (p, G_FILE_TEST_IS_DIR) &&
        !g_file_test (p, G_FILE_TEST_IS_SYMLINK))
      rm_tree (p);
    else
      g_unlink (p);
    g_free (p);
  }
  g_dir_close (d);
  g_rmdir (path);
}

/* Loading `dir` fails with a message containing every one of `needles`. */
static void
expect_load_error (const char *what, const char *dir, const char *n1,
    const char *n2)
{
  AeAvatarModel *m = (AeAvatarModel *) 0x1;
  AeError e = { {0} };
  int rc = ae_avatar_model_load (&m, dir, &e);

  CHECK (rc == -1 && m == NULL, "%s: loaded", what);
  CHECK (strstr (e.msg, n1) != NULL, "%s: '%s' not in '%s'", what, n1,
      e.msg);
  CHECK (n2 == NULL || strstr (e.msg, n2) != NULL, "%s: '%s' not in '%s'",
      what, n2, e.msg);
  printf ("ok   model error, %s: %s\n", what, e.msg);
}

static void
test_model_errors (void)
{
  char *dir, *p;

  expect_load_error ("no such folder", "/nonexistent/avatar-model",
      "/nonexistent/avatar-model", NULL);

  dir = tmp_model ();
  p = g_build_filename (dir, "hand_encoder", NULL);
  g_unlink (p);
  expect_load_error ("missing part", dir, p, "missing folder");
  g_free (p);
  rm_tree (dir);
  g_free (dir);

  dir = tmp_model ();
  p = g_build_filename (dir, "scheduler_config.json", NULL);
  g_unlink (p);
  expect_load_error ("missing scheduler config", dir, p, NULL);
  g_free (p);
  rm_tree (dir);
  g_free (dir);

  dir = tmp_model ();
  replace_part (dir, "unet", NULL, NULL, 100000);
  p = g_build_filename (dir, "unet", NULL);
  expect_load_error ("truncated weights", dir, p, "safetensors");
  g_free (p);
  rm_tree (dir);
  g_free (dir);

  dir = tmp_model ();
  replace_part (dir, "pose_guider", "\"conditioning_embedding_channels\": 32",
      "\"conditioning_embedding_channels\": 64", 0);
  p = g_build_filename (dir, "pose_guider", NULL);
  /* the conv_out weights no longer fit the config: the loader names the
   * file and the key */
  expect_load_error ("pose guider width", dir, p, "conv_out");
  g_free (p);
  rm_tree (dir);
  g_free (dir);

  /* a config that is consistent with its weights but not with the UNet:
   * the reference UNet with other block widths than the denoising one */
  dir = tmp_model ();
  replace_part (dir, "unet", "\"cross_attention_dim\": 128",
      "\"cross_attention_dim\": 64", 0);
  expect_load_error ("unet cross_attention_dim", dir, "unet", NULL);
  rm_tree (dir);
  g_free (dir);
}

/* A model folder whose parts load alone but do not fit together: the pose
 * guider's output width checked against the UNet's first width. Built by
 * pointing pose_guider at a config + weights whose conv_out is narrower:
 * the first 16 channels (a real 16-wide guider). */
static void
test_model_mismatch (void)
{
  char *dir = tmp_model ();
  char *gdir = g_build_filename (dir, "pose_guider", NULL);
  char *wsrc = g_build_filename (model_dir, "pose_guider",
      "diffusion_pytorch_model.safetensors", NULL);
  char *wdst, *cfg;
  AeSafetensors *st;
  AeStWriter *wr = ae_st_writer_new ();

  g_unlink (gdir);
  REQUIRE (g_mkdir (gdir, 0755) == 0, "mkdir");
  OK (ae_st_open (&st, wsrc, &err));
  for (int i = 0; i < ae_st_count (st); i++) {
    const AeStTensorInfo *ti = ae_st_info_at (st, i);
    AeTensor t;
    OK (ae_st_get (st, ti->name, ti->ndim, NULL, &t, &err));
    if (strncmp (ti->name, "conv_out.", 9) == 0)
      t.shape[0] = 16;          /* the first 16 output channels */
    OK (ae_st_writer_add (wr, ti->name, &t, &err));
  }
  wdst = g_build_filename (gdir, "diffusion_pytorch_model.safetensors", NULL);
  OK (ae_st_writer_save (wr, wdst, &err));
  ae_st_writer_free (wr);
  ae_st_close (st);
  cfg = g_build_filename (gdir, "config.json", NULL);
  REQUIRE (g_file_set_contents (cfg, "{\"_class_name\": \"PoseGuider\", "
          "\"conditioning_channels\": 3, \"block_out_channels\": [16, 32, 64, "
          "128], \"conditioning_embedding_channels\": 16}", -1, NULL), "cfg");
  expect_load_error ("pose guider != unet width", dir,
      "pose_guider/config.json: conditioning_embedding_channels 16",
      "block_out_channels[0] 32");
  rm_tree (dir);
  g_free (dir);
  g_free (gdir);
  g_free (wsrc);
  g_free (wdst);
  g_free (cfg);
}

/* ---- stream ---------------------------------------------------------------- */

static void
test_frames_in_out (void)
{
  const int W = 4, O = 2;
  const int64_t ns[] = { 1, W - O, W, W + 1, 2 * W + 3 };
  const int looks[] = { 1, 2, 0 };

  for (size_t li = 0; li < G_N_ELEMENTS (looks); li++)
    for (size_t ni = 0; ni < G_N_ELEMENTS (ns); ni++) {
      AeAvatarParams p;
      AeLatentBlender *b;
      float *wins, *frame;
      int lens[64], nw;
      int64_t idx, out = 0;
      size_t fs;
      AeFusionLayout l;

      base_params (&p);
      p.steps = 1;
      p.lookahead = looks[li];
      nw = run_clip (&p, ns[ni], &wins, lens);
      CHECK (nw == ae_fusion_n_windows (&(AeFusionLayout) { W, O, W - O,
              p.fusion }, ns[ni]), "N=%lld: %d windows", (long long) ns[ni],
          nw);
      OK (ae_fusion_layout_init (&l, W, O, p.fusion, &err));
      fs = (size_t) 4 * (SIZE / 8) * (SIZE / 8);
      b = ae_latent_blender_new (&l, fs, &err);
      REQUIRE (b, "%s", err.msg);
      frame = g_new (float, fs);
      for (int k = 0; k < nw; k++) {
        OK (ae_latent_blender_push (b, k, (int64_t) k * (W - O), lens[k],
                wins + (size_t) k * W * fs, &err));
        if (k == nw - 1)
          ae_latent_blender_finish (b);
        while (ae_latent_blender_pop (b, &idx, frame) == 1) {
          CHECK (idx == out, "frame %lld, expected %lld", (long long) idx,
              (long long) out);
          out++;
        }
      }
      CHECK (out == ns[ni], "lookahead %d, N=%lld: %lld frames out",
          looks[li], (long long) ns[ni], (long long) out);
      CHECK (ae_latent_blender_pop (b, &idx, frame) == 0, "extra frame");
      printf ("ok   frames in = out: lookahead %d, N = %lld, %d windows\n",
          looks[li], (long long) ns[ni], nw);
      ae_latent_blender_free (b);
      g_free (frame);
      g_free (wins);
    }
}

static void
test_determinism_and_switches (void)
{
  AeAvatarParams p;
  float *a, *b;
  int la[16], lb[16];
  const int64_t N = 6;
  size_t n = (size_t) 3 * 4 * 4 * 8 * 8;       /* 3 windows x W x fs */
  int nw;
  double d;

  base_params (&p);
  nw = run_clip (&p, N, &a, la);
  REQUIRE (nw == 2, "windows %d", nw);
  n = (size_t) nw * 4 * 4 * 8 * 8;
  run_clip (&p, N, &b, lb);
  CHECK (memcmp (a, b, n * sizeof (float)) == 0, "same seed differs");
  printf ("ok   same seed, identical latents\n");
  g_free (b);

#define SWITCH(nm, stmt) \
  do { \
    AeAvatarParams q = p; \
    float *c; \
    int lc[16]; \
    stmt; \
    run_clip (&q, N, &c, lc); \
    d = max_diff (a, c, n); \
    CHECK (d > 1e-3, "%s: output unchanged (max diff %g)", nm, d); \
    printf ("ok   %s changes the output (max diff %.3g)\n", nm, d); \
    g_free (c); \
  } while (0)
  SWITCH ("reference attention off", q.reference_attention = false);
  SWITCH ("hand tokens off", q.hand_tokens = false);
  SWITCH ("temporal attention on", q.temporal_attention = true);
  SWITCH ("another seed", q.seed = 8);
  SWITCH ("pose scale 0", q.pose_scale = 0.0f);
#undef SWITCH
  /* without temporal attention the frames of a batch are independent, so
   * two windows predict an overlap frame alike and fusion has no effect;
   * with it the predictions differ and the fusion weights matter */
  {
    AeAvatarParams q = p;
    float *c, *u;
    int lc[16];
    q.temporal_attention = true;
    run_clip (&q, N, &c, lc);
    q.fusion = AE_FUSION_UNIFORM;
    run_clip (&q, N, &u, lc);
    d = max_diff (c, u, n);
    CHECK (d > 1e-4, "uniform fusion: output unchanged (max diff %g)", d);
    printf ("ok   uniform vs progressive fusion (temporal on) differ (max "
        "diff %.3g)\n", d);
    g_free (c);
    g_free (u);
  }
  g_free (a);
}

static float
triangle (int j, int W)
{
  float x = (j + 0.5f) * 2.0f / W;
  return x < 2.0f - x ? x : 2.0f - x;
}

/* How naive_clip builds the input of a reference-concat UNet: as the
 * contract says, or wrong in one way (to show the comparison would see
 * it). */
typedef enum {
  CONCAT_EXACT,                 /* [z_t, z_ref] cond, [z_t, 0] uncond */
  CONCAT_REF_FIRST,             /* [z_ref, z_t] cond, [0, z_t] uncond */
  CONCAT_REF_IN_UNCOND,         /* [z_t, z_ref] in both halves */
} ConcatVariant;

/* The papers' whole-clip form, written out naively: one latent per frame,
 * every window's prediction at every step, the per-frame weighted average
 * (cond and uncond separately), CFG, one scheduler step per frame; model
 * m with reference r (reference attention in the cond half). For a UNet
 * of in_channels 2 C the input is the concatenation `cv` describes. The
 * initial (and LCM's per-step) noise of frame f is mixed_noise_ref of
 * p->noise_correlation. DDIM or LCM (Euler's reference init differs). */
static float *
naive_clip (AeAvatarModel * m, AeAvatarReference * r,
    const AeAvatarParams * p, int64_t N, ConcatVariant cv)
{
  AeUNet *u = ae_avatar_model_unet (m);
  AePoseGuider *g = ae_avatar_model_pose_guider (m);
  int W = p->window, S = p->window - p->overlap;
  int C = 4, h = SIZE / 8, w = SIZE / 8, c0 = u->cfg.block_out_channels[0];
  int D = u->cfg.cross_attention_dim, cin = u->cfg.in_channels;
  const float *z_ref = ae_avatar_reference_latent (r)->data;
  size_t fs = (size_t) C * h * w, pfs = (size_t) c0 * h * w;
  size_t xfs = (size_t) cin * h * w;
  size_t tfs = (size_t) AE_AVATAR_HAND_KP * D;
  AeScheduler *sch;
  AeArena ar;
  float *x = g_new (float, N * fs), *xin = g_new (float, N * fs);
  float *pf = g_new (float, N * pfs), *tk = g_new0 (float, 2 * N * tfs);
  float *eu = g_new (float, N * fs), *ec = g_new (float, N * fs);
  float *ws = g_new (float, N), *noise = g_new (float, N * fs);
  float *bx = g_new (float, 2 * W * xfs), *bo = g_new (float, 2 * W * fs);
  float *br = g_new (float, 2 * W * pfs), *bc = g_new0 (float, 2 * W * tfs);
  bool mask[64];
  uint8_t rgb[SIZE * SIZE * 3];
  float kp[AE_AVATAR_HAND_FLOATS];
  AeFusionLayout l;
  int64_t K;

  OK (ae_arena_init (&ar, 0, &err));
  OK (ae_fusion_layout_init (&l, W, p->overlap, p->fusion, &err));
  K = ae_fusion_n_windows (&l, N);
  for (int64_t f = 0; f < N; f++) {
    AeTensor img, out;
    float *im = g_new (float, 3 * SIZE * SIZE);
    test_make_pose (f, SIZE, rgb);
    test_make_hands (f, kp);
    for (int c = 0; c < 3; c++)
      for (int i = 0; i < SIZE * SIZE; i++)
        im[c * SIZE * SIZE + i] = rgb[i * 3 + c] / 255.0f;
    img = ae_tensor_4d (im, 1, 3, SIZE, SIZE);
    out = ae_tensor_4d (pf + f * pfs, 1, c0, h, w);
    OK (ae_pose_guider_forward (g, &out, &img, &ar, &err));
    OK (ae_avatar_model_hand_tokens (m, kp, 1, tk + f * tfs, &err));
    mixed_noise_ref (p->seed, AE_NOISE_STREAM_INIT, p->noise_correlation, f,
        x + f * fs, fs);
    g_free (im);
  }
  REQUIRE (p->scheduler != AE_SCHEDULER_EULER, "naive_clip: DDIM or LCM");
  OK (ae_scheduler_load_data (&sch, "sched", ae_avatar_model_scheduler_json
          (m), ae_scheduler_type_name (p->scheduler), &err));
  OK (ae_scheduler_set_timesteps (sch, p->steps, &err));
  OK (ae_scheduler_set_strength (sch, p->strength, &err));
  if (p->reference_init) {
    /* x_t0 = sqrt(abar_t0) z_ref + sqrt(1 - abar_t0) noise (DDIM) */
    float abar = ae_scheduler_alphas_cumprod (sch)[(int)
        ae_scheduler_timestep (sch, 0)];
    for (int64_t i = 0; i < N * (int64_t) fs; i++)
      x[i] = sqrtf (1.0f - abar) * x[i] + sqrtf (abar) * z_ref[i % fs];
  }
  for (int64_t i = 0; i < N * (int64_t) fs; i++)
    x[i] *= ae_scheduler_init_noise_sigma (sch);
  for (int step = 0; step < ae_scheduler_num_steps (sch); step++) {
    float t = ae_scheduler_timestep (sch, step);
    ae_scheduler_scale_model_input (sch, step, x, xin, N * fs);
    memset (eu, 0, N * fs * sizeof (float));
    memset (ec, 0, N * fs * sizeof (float));
    memset (ws, 0, N * sizeof (float));
    for (int64_t k = 0; k < K; k++) {
      int64_t f0 = k * S;
      int len = (int) MIN ((int64_t) W, N - f0);
      AeTensor tx = ae_tensor_4d (bx, 2 * len, cin, h, w);
      AeTensor to = ae_tensor_4d (bo, 2 * len, C, h, w);
      AeTensor tr = ae_tensor_4d (br, 2 * len, c0, h, w);
      AeTensor tc = ae_tensor_3d (bc, 2 * len, AE_AVATAR_HAND_KP, D);
      AeUNetHooks hk = { 0 };
      for (int hf = 0; hf < 2; hf++)
        for (int j = 0; j < len; j++) {
          int bi = hf * len + j;
          float *xb = bx + bi * xfs;
          const float *c = hf || cv == CONCAT_REF_IN_UNCOND ? z_ref : NULL;
          if (!p->reference_concat)
            c = NULL;
          if (cin == C) {
            memcpy (xb, xin + (f0 + j) * fs, fs * sizeof (float));
          } else {
            /* z_t then c; CONCAT_REF_FIRST swaps them */
            float *zp = cv == CONCAT_REF_FIRST ? xb + fs : xb;
            float *cp = cv == CONCAT_REF_FIRST ? xb : xb + fs;
            memcpy (zp, xin + (f0 + j) * fs, fs * sizeof (float));
            if (c)
              memcpy (cp, c, fs * sizeof (float));
            else
              memset (cp, 0, fs * sizeof (float));
          }
          memcpy (br + bi * pfs, pf + (f0 + j) * pfs, pfs * sizeof (float));
          if (hf)
            memcpy (bc + bi * tfs, tk + (f0 + j) * tfs, tfs * sizeof (float));
          else
            memset (bc + bi * tfs, 0, tfs * sizeof (float));
          mask[bi] = hf == 1;
        }
      hk.ref_mode = AE_REF_INJECT;
      hk.bank = (AeRefBank *) ae_avatar_reference_bank (r);
      hk.ref_batch_mask = mask;
      hk.conv_in_residual = &tr;
      if (p->temporal_attention) {
        /* all-frame attention spans a call: one call per CFG half */
        hk.temporal = true;
        for (int hf = 0; hf < 2; hf++) {
          AeTensor hx = ae_tensor_4d (bx + hf * len * xfs, len, cin, h, w);
          AeTensor ho = ae_tensor_4d (bo + hf * len * fs, len, C, h, w);
          AeTensor hr = ae_tensor_4d (br + hf * len * pfs, len, c0, h, w);
          AeTensor hc = ae_tensor_3d (bc + hf * len * tfs, len,
              AE_AVATAR_HAND_KP, D);
          hk.ref_mode = hf ? AE_REF_INJECT : AE_REF_OFF;
          hk.ref_batch_mask = NULL;
          hk.conv_in_residual = &hr;
          OK (ae_unet_forward (u, &ho, &hx, &t, 1, &hc, &hk, &ar, &err));
        }
      } else {
        OK (ae_unet_forward (u, &to, &tx, &t, 1, &tc, &hk, &ar, &err));
      }
      for (int j = 0; j < len; j++) {
        float wj = p->fusion == AE_FUSION_UNIFORM ? 1.0f : triangle (j, W);
        for (size_t q = 0; q < fs; q++) {
          eu[(f0 + j) * fs + q] += wj * bo[j * fs + q];
          ec[(f0 + j) * fs + q] += wj * bo[(len + j) * fs + q];
        }
        ws[f0 + j] += wj;
      }
    }
    for (int64_t f = 0; f < N; f++) {
      for (size_t q = 0; q < fs; q++) {
        float uu = eu[f * fs + q] / ws[f], cc = ec[f * fs + q] / ws[f];
        eu[f * fs + q] = uu + p->guidance_scale * (cc - uu);
      }
      if (ae_scheduler_step_needs_noise (sch, step))
        mixed_noise_ref (p->seed, AE_NOISE_STREAM_STEP (step),
            p->noise_correlation, f, noise + f * fs, fs);
      ae_scheduler_step (sch, step, eu + f * fs, x + f * fs, noise + f * fs,
          NULL, fs);
    }
  }
  ae_scheduler_free (sch);
  ae_arena_clear (&ar);
  g_free (xin);
  g_free (pf);
  g_free (tk);
  g_free (eu);
  g_free (ec);
  g_free (ws);
  g_free (noise);
  g_free (bx);
  g_free (bo);
  g_free (br);
  g_free (bc);
  return x;
}

static void
test_lookahead_all (void)
{
  const int64_t N = 9;          /* W 4 O 2: windows 0-3 2-5 4-7 6-8 */
  AeAvatarParams p;
  float *all, *l1, *big, *ref;
  int la[16], l1n[16], lb[16];
  size_t fs = (size_t) 4 * 8 * 8;
  int nw;
  double worst = 0.0, d1 = 0.0;

  base_params (&p);
  p.steps = 3;
  p.lookahead = 0;
  p.temporal_attention = true;  /* else overlap predictions agree anyway */
  nw = run_clip (&p, N, &all, la);
  REQUIRE (nw == 4, "%d windows", nw);
  ref = naive_clip (model, reference, &p, N, CONCAT_EXACT);
  for (int k = 0; k < nw; k++)
    for (int j = 0; j < la[k]; j++) {
      double d = max_diff (all + ((size_t) k * 4 + j) * fs,
          ref + (size_t) (k * 2 + j) * fs, fs);
      worst = MAX (worst, d);
    }
  CHECK (worst < 2e-4, "lookahead all vs naive whole clip: max diff %g",
      worst);
  printf ("ok   lookahead all == naive whole-clip lockstep (max diff "
      "%.2e)\n", worst);

  p.lookahead = 8;              /* >= the 4 windows: one group at finish */
  run_clip (&p, N, &big, lb);
  CHECK (memcmp (all, big, (size_t) nw * 4 * fs * sizeof (float)) == 0,
      "lookahead 8 != all");
  printf ("ok   lookahead >= windows == all\n");

  p.lookahead = 1;
  run_clip (&p, N, &l1, l1n);
  for (int k = 0; k < nw; k++)
    d1 = MAX (d1, max_diff (all + (size_t) k * 4 * fs,
            l1 + (size_t) k * 4 * fs, (size_t) la[k] * fs));
  CHECK (d1 > 1e-4, "lookahead 1 equals all (%g)", d1);
  printf ("ok   lookahead 1 != all (max diff %.3g)\n", d1);
  g_free (all);
  g_free (big);
  g_free (l1);
  g_free (ref);
}

static void
test_usage_errors (void)
{
  AeAvatarParams p;
  AeAvatarStream *s;
  AeAvatarWindow w;
  uint8_t rgb[SIZE * SIZE * 3];
  AeError e;
  int rc;

  base_params (&p);
  p.steps = 1;
  OK (ae_avatar_stream_new (&s, model, reference, &p, &err));
  CHECK (ae_avatar_stream_latency_frames (s) == 3, "latency %lld",
      (long long) ae_avatar_stream_latency_frames (s));
  test_make_pose (0, SIZE, rgb);
  for (int f = 0; f < 4; f++)
    OK (ae_avatar_stream_push_frame (s, rgb, SIZE * 3, NULL, &err));
  OK (ae_avatar_stream_push_frame (s, rgb, SIZE * 3, NULL, &err));
  rc = ae_avatar_stream_push_frame (s, rgb, SIZE * 3, NULL, &e);
  CHECK (rc == -1 && strstr (e.msg, "popped"), "unpopped window: %s",
      rc ? e.msg : "accepted");
  CHECK (ae_avatar_stream_frames_pushed (s) == 5, "frame taken");
  CHECK (ae_avatar_stream_pop_window (s, &w) == 1 && w.index == 0, "pop 0");
  OK (ae_avatar_stream_push_frame (s, rgb, SIZE * 3, NULL, &err));
  CHECK (ae_avatar_stream_pop_window (s, &w) == 1 && w.index == 1, "pop 1");
  OK (ae_avatar_stream_finish (s, &err));
  CHECK (ae_avatar_stream_pop_window (s, &w) == 0, "no window after 6");
  rc = ae_avatar_stream_push_frame (s, rgb, SIZE * 3, NULL, &e);
  CHECK (rc == -1 && strstr (e.msg, "finish"), "push after finish: %s",
      rc ? e.msg : "accepted");
  rc = ae_avatar_stream_push_frame (s, rgb, 10, NULL, &e);
  CHECK (rc == -1, "short stride accepted");
  ae_avatar_stream_reset (s);
  CHECK (ae_avatar_stream_frames_pushed (s) == 0, "reset");
  OK (ae_avatar_stream_push_frame (s, rgb, SIZE * 3, NULL, &err));
  OK (ae_avatar_stream_finish (s, &err));
  CHECK (ae_avatar_stream_pop_window (s, &w) == 1 && w.n_frames == 1 &&
      w.last, "one-frame stream after reset");
  ae_avatar_stream_free (s);

  /* parameter errors */
  p.width = 48;
  rc = ae_avatar_stream_new (&s, model, reference, &p, &e);
  CHECK (rc == -1 && strstr (e.msg, "48x64"), "size 48: %s", e.msg);
  base_params (&p);
  p.overlap = 4;
  rc = ae_avatar_stream_new (&s, model, reference, &p, &e);
  CHECK (rc == -1, "overlap == window accepted");
  base_params (&p);
  rc = ae_avatar_stream_new (&s, model, NULL, &p, &e);
  CHECK (rc == -1 && strstr (e.msg, "reference"), "no reference: %s", e.msg);
  p.reference_attention = false;
  rc = ae_avatar_stream_new (&s, model, NULL, &p, &e);
  CHECK (rc == 0, "no reference, reference attention off: %s", e.msg);
  ae_avatar_stream_free (s);
  base_params (&p);
  p.scheduler = AE_SCHEDULER_LCM;
  p.steps = 100;
  rc = ae_avatar_stream_new (&s, model, reference, &p, &e);
  CHECK (rc == -1, "LCM 100 steps accepted");
  printf ("ok   stream usage and parameter errors\n");
}

/* LCM and Euler run through the same loop; the LCM per-step noise is a
 * function of the frame, so the overlap copies of lookahead 2 stay
 * equal. */
static void
test_schedulers (void)
{
  AeSchedulerType types[] = { AE_SCHEDULER_EULER, AE_SCHEDULER_LCM };

  for (size_t i = 0; i < G_N_ELEMENTS (types); i++) {
    AeAvatarParams p;
    float *wins;
    int lens[16], nw;
    size_t fs = (size_t) 4 * 8 * 8;
    double d, mag = 0.0;

    base_params (&p);
    p.scheduler = types[i];
    p.steps = 3;
    p.lookahead = 2;
    nw = run_clip (&p, 6, &wins, lens);
    CHECK (nw == 2, "windows");
    /* frames 2-3: window 0 positions 2-3 == window 1 positions 0-1 */
    d = max_diff (wins + 2 * fs, wins + (size_t) 4 * fs, 2 * fs);
    for (size_t q = 0; q < 2 * 4 * fs; q++)
      mag = MAX (mag, fabs (wins[q]));
    CHECK (d < 1e-5 && isfinite (mag) && mag > 0.0,
        "%s: overlap copies differ by %g (|x| %g)",
        ae_scheduler_type_name (types[i]), d, mag);
    printf ("ok   %s: lookahead 2 overlap copies equal (diff %.1e)\n",
        ae_scheduler_type_name (types[i]), d);
    g_free (wins);
  }
}

/* ---- reference concat (unet in_channels = 2 x latent channels) --------------- */

/* Largest difference between the windows of a stream (run_clip_on,
 * window W, stride S) and a whole-clip result (one latent per frame). */
static double
windows_vs_clip_ws (const float *wins, const int *lens, int nw,
    const float *clip, int W, int S)
{
  size_t fs = (size_t) 4 * 8 * 8;
  double worst = 0.0;

  for (int k = 0; k < nw; k++)
    for (int j = 0; j < lens[k]; j++)
      worst = MAX (worst, max_diff (wins + ((size_t) k * W + j) * fs,
              clip + (size_t) (k * S + j) * fs, fs));
  return worst;
}

/* windows_vs_clip_ws for W 4, O 2. */
static double
windows_vs_clip (const float *wins, const int *lens, int nw, const float *clip)
{
  return windows_vs_clip_ws (wins, lens, nw, clip, 4, 2);
}

/* Frame f's latent in the first window of a run_clip_on result holding
 * it (window W, stride S). */
static const float *
frame_in_windows (const float *wins, const int *lens, int nw, int W, int S,
    int64_t f)
{
  size_t fs = (size_t) 4 * 8 * 8;

  for (int k = 0; k < nw; k++)
    if ((int64_t) k * S <= f && f < (int64_t) k * S + lens[k])
      return wins + ((size_t) k * W + (size_t) (f - (int64_t) k * S)) * fs;
  REQUIRE (0, "frame %lld in no window", (long long) f);
  return NULL;
}

/* Noise correlation (PYoCo's mixed noise prior): the stream's initial
 * noise is exactly the per-frame ae_noise_fill at rho 0, the shared field
 * (index -1) for every frame at rho 1 and a x shared + b x own at 0.5;
 * rho outside [0, 1] or NaN is an error naming noise_correlation; the
 * denoised stream equals naive_clip (which draws that noise itself) for
 * rho 0, 0.5, 1 and with LCM's per-step noise; a frame's noise and, with
 * frames independent (no temporal attention), its result are the same for
 * window 4 / overlap 2 and window 6 / overlap 0. */
/* img2img strength: the stream at strength 0.5 runs the last half of the
 * steps from the reference noised to the first of them, as naive_clip
 * does; it differs from strength 1; a strength outside (0, 1] or NaN, one
 * that leaves no step, or one below 1 without the reference init is an
 * error naming strength. */
static void
test_strength (void)
{
  const float bad[] = { 0.0f, 1.5f, NAN, 0.1f };
  const int64_t N = 6;
  AeAvatarParams p;
  AeAvatarStream *s;
  AeError e;
  float *wins, *wins1, *clip;
  int lens[16], lens1[16], nw;
  double d, d1 = 0.0;

  ae_avatar_params_init (&p);
  CHECK (p.strength == 1.0f, "default strength %g", p.strength);
  base_params (&p);
  p.steps = 4;
  p.lookahead = 0;
  p.temporal_attention = true;  /* naive_clip's windows attend all-frame */
  run_clip (&p, N, &wins1, lens1);
  p.strength = 0.5f;
  nw = run_clip (&p, N, &wins, lens);
  clip = naive_clip (model, reference, &p, N, CONCAT_EXACT);
  d = windows_vs_clip (wins, lens, nw, clip);
  CHECK (d < 2e-4, "strength 0.5: stream vs naive whole clip: max diff %g",
      d);
  for (int i = 0; i < lens[0] * 4 * 8 * 8; i++)
    d1 = MAX (d1, fabsf (wins[i] - wins1[i]));
  CHECK (d1 > 1e-3, "strength 0.5 gives strength 1's latents (max diff %g)",
      d1);
  printf ("ok   strength 0.5: stream == naive whole clip from the noised "
      "reference (max diff %.2e; %.3g from strength 1)\n", d, d1);
  g_free (wins);
  g_free (wins1);
  g_free (clip);

  for (size_t i = 0; i < G_N_ELEMENTS (bad) + 1; i++) {
    int rc;
    base_params (&p);
    p.steps = 4;
    p.strength = i < G_N_ELEMENTS (bad) ? bad[i] : 0.5f;
    p.reference_init = i < G_N_ELEMENTS (bad);
    rc = ae_avatar_stream_new (&s, model, reference, &p, &e);
    CHECK (rc == -1 && strstr (e.msg, "strength"), "strength %g%s: %s",
        p.strength, p.reference_init ? "" : " without reference init",
        rc ? e.msg : "accepted");
    if (rc == 0)
      ae_avatar_stream_free (s);
    else
      printf ("ok   strength %g%s: %s\n", p.strength, p.reference_init ? "" :
          " without reference init", e.msg);
  }
}

static void
test_noise_correlation (void)
{
  const float rhos[] = { 0.0f, 0.5f, 1.0f };
  const float bad[] = { -0.1f, 1.5f, NAN };
  const int64_t N = 8;
  size_t fs = (size_t) 4 * 8 * 8;
  float *got = g_new (float, fs), *want = g_new (float, fs);
  float *own = g_new (float, fs), *shared = g_new (float, fs);
  AeAvatarParams p;
  AeAvatarStream *s;
  AeError e;

  base_params (&p);
  ae_noise_fill (p.seed, AE_NOISE_STREAM_INIT, -1, shared, fs);
  {
    AeAvatarParams d;
    ae_avatar_params_init (&d);
    CHECK (d.noise_correlation == 1.0f, "default noise_correlation %g",
        d.noise_correlation);
  }
  for (size_t i = 0; i < G_N_ELEMENTS (rhos); i++) {
    double d_own = 0.0, d_shared = 0.0;
    p.noise_correlation = rhos[i];
    OK (ae_avatar_stream_new (&s, model, reference, &p, &err));
    for (int64_t f = 0; f < 10; f++) {
      ae_avatar_stream_initial_noise (s, f, got);
      ae_noise_fill (p.seed, AE_NOISE_STREAM_INIT, f, own, fs);
      if (rhos[i] == 0.0f)
        memcpy (want, own, fs * sizeof (float));
      else if (rhos[i] == 1.0f)
        memcpy (want, shared, fs * sizeof (float));
      else
        mixed_noise_ref (p.seed, AE_NOISE_STREAM_INIT, rhos[i], f, want, fs);
      CHECK (memcmp (got, want, fs * sizeof (float)) == 0,
          "rho %g frame %lld: initial noise differs from the contract (max "
          "diff %g)", rhos[i], (long long) f, max_diff (got, want, fs));
      d_own = MAX (d_own, max_diff (got, own, fs));
      d_shared = MAX (d_shared, max_diff (got, shared, fs));
    }
    /* so that the comparison above could not pass with the wrong end */
    CHECK (rhos[i] == 0.0f ? d_shared > 0.1 : d_own > 0.1, "rho %g: noise "
        "equals the wrong field", rhos[i]);
    ae_avatar_stream_free (s);
    printf ("ok   noise correlation %g: initial noise %s (bit for bit)\n",
        rhos[i], rhos[i] == 0.0f ? "= per-frame ae_noise_fill" :
        rhos[i] == 1.0f ? "= the shared field for every frame" :
        "= sqrt(rho) shared + sqrt(1 - rho) own");
  }
  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++) {
    int rc;
    p.noise_correlation = bad[i];
    rc = ae_avatar_stream_new (&s, model, reference, &p, &e);
    CHECK (rc == -1 && strstr (e.msg, "noise_correlation"),
        "noise_correlation %g: %s", bad[i], rc ? e.msg : "accepted");
    if (rc == 0)
      ae_avatar_stream_free (s);
  }
  printf ("ok   noise correlation -0.1, 1.5, NaN: %s\n", e.msg);

  /* the denoised stream starts from that noise (and LCM mixes its per-step
   * noise alike): whole-clip lockstep vs naive_clip */
  for (size_t i = 0; i < G_N_ELEMENTS (rhos) + 1; i++) {
    bool lcm = i == G_N_ELEMENTS (rhos);
    float *wins, *clip;
    int lens[16], nw;
    double d;
    base_params (&p);
    p.steps = lcm ? 3 : 2;
    p.scheduler = lcm ? AE_SCHEDULER_LCM : AE_SCHEDULER_DDIM;
    p.lookahead = 0;
    p.temporal_attention = true;
    p.noise_correlation = lcm ? 0.5f : rhos[i];
    nw = run_clip (&p, N, &wins, lens);
    clip = naive_clip (model, reference, &p, N, CONCAT_EXACT);
    d = windows_vs_clip (wins, lens, nw, clip);
    CHECK (d < 2e-4, "%s rho %g: stream vs naive whole clip: max diff %g",
        ae_scheduler_type_name (p.scheduler), p.noise_correlation, d);
    printf ("ok   %s, noise correlation %g: stream == naive whole clip with "
        "the mixed noise (max diff %.2e)\n",
        ae_scheduler_type_name (p.scheduler), p.noise_correlation, d);
    g_free (wins);
    g_free (clip);
  }

  /* window 4 / overlap 2 vs window 6 / overlap 0: the same noise per
   * frame, and without temporal attention (frames independent) the same
   * latents */
  {
    AeAvatarStream *s6;
    float *w4, *w6;
    int l4[16], l6[16], n4, n6;
    double worst = 0.0;
    base_params (&p);
    p.noise_correlation = 0.5f;
    p.lookahead = 0;
    OK (ae_avatar_stream_new (&s, model, reference, &p, &err));
    n4 = run_clip (&p, N, &w4, l4);
    p.window = 6;
    p.overlap = 0;
    OK (ae_avatar_stream_new (&s6, model, reference, &p, &err));
    n6 = run_clip (&p, N, &w6, l6);
    REQUIRE (n4 == 3 && n6 == 2, "windows %d %d", n4, n6);
    for (int64_t f = 0; f < N; f++) {
      ae_avatar_stream_initial_noise (s, f, got);
      ae_avatar_stream_initial_noise (s6, f, want);
      CHECK (memcmp (got, want, fs * sizeof (float)) == 0, "frame %lld: "
          "noise differs between window 4/2 and 6/0", (long long) f);
      worst = MAX (worst, max_diff (frame_in_windows (w4, l4, n4, 4, 2, f),
              frame_in_windows (w6, l6, n6, 6, 6, f), fs));
    }
    CHECK (worst < 1e-4, "window 4/2 vs 6/0, frames independent: max diff "
        "%g", worst);
    printf ("ok   window 4/2 and 6/0: same noise per frame, same latents "
        "without temporal attention (max diff %.2e)\n", worst);
    ae_avatar_stream_free (s);
    ae_avatar_stream_free (s6);
    g_free (w4);
    g_free (w6);
  }
  g_free (got);
  g_free (want);
  g_free (own);
  g_free (shared);
}

/* The embedded model widened to a UNet of in_channels 8 (widen-model.h):
 * the stream equals naive_clip's [z_t, z_ref] cond / [z_t, 0] uncond and
 * not the other orders; reference_concat off equals [z_t, 0] in both and
 * changes the output; the reference is required unless concat is off; a
 * 4-channel model ignores the switch; in_channels 6 is a load error
 * naming unet/config.json. */
static void
test_reference_concat (void)
{
  const int64_t N = 6;          /* W 4 O 2: windows 0-3 2-5 */
  char *dir8 = widen_model_new (model_dir, 8, &err), *dir6, *want;
  char *ref_png = g_build_filename (model_dir, "references",
      "identity_00.png", NULL);
  AeAvatarModel *m8 = NULL;
  AeAvatarReference *r8 = NULL;
  AeAvatarStream *s = NULL;
  AeAvatarParams p, q;
  AeError e = { {0} };
  float kp[AE_AVATAR_HAND_FLOATS];
  float *on, *off, *clip;
  uint8_t *rgb;
  int lens[16], lens_off[16], nw, w, h, rc;
  double d;

  REQUIRE (dir8, "%s", err.msg);
  OK (ae_avatar_model_load (&m8, dir8, &err));
  CHECK (ae_avatar_model_reference_concat (m8) &&
      !ae_avatar_model_reference_concat (model), "reference_concat: "
      "widened %d, embedded %d", ae_avatar_model_reference_concat (m8),
      ae_avatar_model_reference_concat (model));
  OK (ae_image_load_png (ref_png, &rgb, &w, &h, &err));
  test_make_hands (0, kp);
  OK (ae_avatar_reference_new (&r8, m8, rgb, w, h, w * 3, kp, SIZE, SIZE,
          &err));
  g_free (rgb);

  /* all-frame attention and lookahead all: the windows' predictions of a
   * frame differ, so the comparison covers the fusion too */
  base_params (&p);
  p.temporal_attention = true;
  p.lookahead = 0;
  nw = run_clip_on (m8, r8, &p, N, &on, lens);
  REQUIRE (nw == 2, "%d windows", nw);
  clip = naive_clip (m8, r8, &p, N, CONCAT_EXACT);
  d = windows_vs_clip (on, lens, nw, clip);
  CHECK (d < 2e-4, "in_channels 8: stream vs naive [z_t, z_ref] / [z_t, 0]: "
      "max diff %g", d);
  printf ("ok   in_channels 8 renders; == naive whole clip with [z_t, z_ref] "
      "cond, [z_t, 0] uncond (max diff %.2e)\n", d);
  g_free (clip);
  /* the comparison sees the order and the uncond zeros */
  clip = naive_clip (m8, r8, &p, N, CONCAT_REF_FIRST);
  d = windows_vs_clip (on, lens, nw, clip);
  CHECK (d > 1e-2, "naive with [z_ref, z_t] agrees with the stream (%g)", d);
  printf ("ok   ... and differs from [z_ref, z_t] (max diff %.3g)\n", d);
  g_free (clip);
  clip = naive_clip (m8, r8, &p, N, CONCAT_REF_IN_UNCOND);
  d = windows_vs_clip (on, lens, nw, clip);
  CHECK (d > 1e-2, "naive with z_ref in the uncond half agrees with the "
      "stream (%g)", d);
  printf ("ok   ... and from z_ref in the uncond half (max diff %.3g)\n", d);
  g_free (clip);

  /* off: zeros in the cond half as well */
  q = p;
  q.reference_concat = false;
  run_clip_on (m8, r8, &q, N, &off, lens_off);
  d = max_diff (on, off, (size_t) nw * 4 * 4 * 8 * 8);
  CHECK (d > 1e-3, "reference_concat off: output unchanged (max diff %g)", d);
  printf ("ok   reference concat off changes the output (max diff %.3g)\n",
      d);
  clip = naive_clip (m8, r8, &q, N, CONCAT_EXACT);
  d = windows_vs_clip (off, lens_off, nw, clip);
  CHECK (d < 2e-4, "reference_concat off vs naive [z_t, 0]: max diff %g", d);
  printf ("ok   reference concat off == naive [z_t, 0] in both halves (max "
      "diff %.2e)\n", d);
  g_free (clip);
  g_free (on);
  g_free (off);

  /* the reference: needed for the concat alone, not with it off */
  base_params (&q);
  q.reference_attention = false;
  q.reference_init = false;
  CHECK (ae_avatar_params_need_reference (&q, m8) &&
      !ae_avatar_params_need_reference (&q, model), "need_reference");
  rc = ae_avatar_stream_new (&s, m8, NULL, &q, &e);
  want = g_strdup_printf ("%s/unet/config.json: in_channels 8", dir8);
  CHECK (rc == -1 && strstr (e.msg, want) && strstr (e.msg, "reference"),
      "concat without a reference: %s", rc ? e.msg : "accepted");
  printf ("ok   concat without a reference: %s\n", e.msg);
  g_free (want);
  q.reference_concat = false;
  CHECK (!ae_avatar_params_need_reference (&q, m8), "need_reference off");
  rc = ae_avatar_stream_new (&s, m8, NULL, &q, &e);
  CHECK (rc == 0, "concat off, no reference: %s", e.msg);
  ae_avatar_stream_free (s);

  /* a 4-channel UNet ignores the switch */
  {
    float *a, *b;
    int la[16], lb[16];
    base_params (&q);
    q.steps = 1;
    nw = run_clip (&q, N, &a, la);
    q.reference_concat = false;
    run_clip (&q, N, &b, lb);
    CHECK (memcmp (a, b, (size_t) nw * 4 * 4 * 8 * 8 * sizeof (float)) == 0,
        "reference_concat changed a 4-channel model's output");
    printf ("ok   in_channels 4: reference concat off changes nothing\n");
    g_free (a);
    g_free (b);
  }

  ae_avatar_reference_unref (r8);
  ae_avatar_model_unref (m8);
  widen_model_remove (dir8);

  dir6 = widen_model_new (model_dir, 6, &err);
  REQUIRE (dir6, "%s", err.msg);
  want = g_strdup_printf ("%s/unet/config.json: in_channels 6", dir6);
  expect_load_error ("unet in_channels 6", dir6, want, "latent_channels 4");
  g_free (want);
  widen_model_remove (dir6);
  g_free (ref_png);
}

/* ---- blender --------------------------------------------------------------- */

static void
test_blender (void)
{
  AeFusionLayout l;
  AeLatentBlender *b;
  float win[6 * 2], out[2];
  int64_t idx, n = 0;
  const int W = 6, O = 4, N = 13;       /* O > S: three windows per frame */
  int64_t K;
  AeError e;

  OK (ae_fusion_layout_init (&l, W, O, AE_FUSION_PROGRESSIVE, &err));
  b = ae_latent_blender_new (&l, 2, &err);
  REQUIRE (b, "%s", err.msg);
  K = ae_fusion_n_windows (&l, N);
  CHECK (ae_latent_blender_push (b, 1, 2, W, win, &e) == -1,
      "window 1 first accepted");
  for (int64_t k = 0; k < K; k++) {
    int len = ae_fusion_window_length (&l, k, N);
    for (int j = 0; j < len; j++) {
      win[2 * j] = (float) (k + 1);     /* value = window */
      win[2 * j + 1] = (float) (k * 2 + j);     /* = frame index */
    }
    OK (ae_latent_blender_push (b, k, k * 2, len, win, &err));
    while (ae_latent_blender_pop (b, &idx, out) == 1) {
      double want = 0.0;
      int64_t k0, k1;
      ae_fusion_covering (&l, idx, N, &k0, &k1);
      for (int64_t kk = k0; kk <= k1; kk++)
        want += (kk + 1) * ae_fusion_weight (&l, idx, kk, N);
      CHECK (idx == n, "frame %lld expected %lld", (long long) idx,
          (long long) n);
      CHECK (fabs (out[0] - want) < 1e-5, "frame %lld: %g, want %g",
          (long long) idx, out[0], want);
      CHECK (fabs (out[1] - (float) idx) < 1e-5, "frame %lld carries %g",
          (long long) idx, out[1]);
      n++;
    }
    /* while the stream goes on, the last O frames wait */
    if (k < K - 1)
      CHECK (n == (k + 1) * 2, "after window %lld: %lld frames",
          (long long) k, (long long) n);
  }
  CHECK (n == N, "%lld frames out of %d (last window shortened)",
      (long long) n, N);
  CHECK (ae_latent_blender_frames_out (b) == N, "frames_out");
  CHECK (ae_latent_blender_push (b, K, K * 2, W, win, &e) == -1,
      "window after the end accepted");
  ae_latent_blender_reset (b);
  CHECK (ae_latent_blender_pop (b, &idx, out) == 0, "pop after reset");
  OK (ae_latent_blender_push (b, 0, 0, W, win, &err));
  CHECK (ae_latent_blender_push (b, 2, 4, W, win, &e) == -1,
      "skipped window accepted");
  ae_latent_blender_free (b);
  printf ("ok   blender: %d frames once each, in order, weighted blend\n", N);
}

/* ---- image ----------------------------------------------------------------- */

static void
test_image (void)
{
  char *dir = g_dir_make_tmp ("avatar-image-XXXXXX", NULL);
  char *path = g_build_filename (dir, "x.png", NULL);
  uint8_t src[5 * 7 * 3], dst[3 * 3 * 3], *back = NULL;
  int w = 0, h = 0;
  AeError e;

  for (int i = 0; i < 5 * 7 * 3; i++)
    src[i] = (uint8_t) (i * 37 + 11);
  OK (ae_image_save_png (path, src, 5, 7, 15, &err));
  OK (ae_image_load_png (path, &back, &w, &h, &err));
  CHECK (w == 5 && h == 7 && memcmp (back, src, sizeof src) == 0,
      "PNG round trip");
  g_free (back);
  CHECK (ae_image_load_png (dir, &back, &w, &h, &e) == -1 &&
      strstr (e.msg, dir), "loading a folder: %s", e.msg);
  memset (src, 200, sizeof src);
  OK (ae_image_resize (src, 5, 7, 15, dst, 3, 3, 9, &err));
  for (int i = 0; i < 27; i++)
    CHECK (dst[i] == 200, "constant image resized to %d", dst[i]);
  for (int i = 0; i < 5 * 7 * 3; i++)
    src[i] = (uint8_t) (i * 37 + 11);
  {
    uint8_t same[5 * 7 * 3];
    OK (ae_image_resize (src, 5, 7, 15, same, 5, 7, 15, &err));
    CHECK (memcmp (same, src, sizeof src) == 0, "same-size resize");
  }
  CHECK (ae_image_resize (src, 0, 7, 15, dst, 3, 3, 9, &e) == -1,
      "empty image resized");
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
  printf ("ok   image: PNG round trip, resize\n");
}

/* ---- avatar-engine render ---------------------------------------------------- */

static int
spawn (const char *const *argv, char **out, char **errout)
{
  int status = 0;
  GError *gerr = NULL;

  REQUIRE (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL,
          NULL, out, errout, &status, &gerr), "spawn %s: %s", argv[0],
      gerr ? gerr->message : "?");
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  return -1;
}

/* A 7-frame pose file (the reference's own pose, its hands moving), the
 * CLI at 64x64: 7 PNGs, the saved latents of 7 frames, a progress line per
 * window; bad flags exit 2, a bad model 1 naming the folder. */
static void
test_tool (const char *tool)
{
  char *dir = g_dir_make_tmp ("avatar-render-XXXXXX", NULL);
  char *poses = g_build_filename (dir, "poses.jsonl", NULL);
  char *outdir = g_build_filename (dir, "out", NULL);
  char *save = g_build_filename (dir, "lat.safetensors", NULL);
  char *json = g_build_filename (model_dir, "references", "identity_00.json",
      NULL);
  char *text, *out = NULL, *eout = NULL;
  GString *lines = g_string_new (NULL);
  AeSafetensors *st;
  const AeStTensorInfo *ti;
  int rc;

  REQUIRE (g_file_get_contents (json, &text, NULL, NULL), "%s", json);
  g_strstrip (text);
  for (int f = 0; f < 7; f++)
    g_string_append_printf (lines, "%s\n", text);
  REQUIRE (g_file_set_contents (poses, lines->str, -1, NULL), "%s", poses);
  {
    const char *argv[] = { tool, "render", "--model", model_dir, "--poses",
      poses, "--out", outdir, "--size", "64x64", "--steps", "2", "--window",
      "4", "--overlap", "1", "--threads", "2", "--save-latents", save,
      "--seed", "3", "--noise-correlation", "0.25", NULL
    };
    rc = spawn (argv, &out, &eout);
  }
  CHECK (rc == 0, "render exited %d: %s", rc, eout);
  for (int f = 0; f < 8; f++) {
    char name[32];
    char *png;
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    snprintf (name, sizeof name, "%05d.png", f);
    png = g_build_filename (outdir, name, NULL);
    if (f < 7) {
      CHECK (ae_image_load_png (png, &rgb, &w, &h, &err) == 0 && w == 64 &&
          h == 64, "%s: %s", png, err.msg);
    } else {
      CHECK (!g_file_test (png, G_FILE_TEST_EXISTS), "extra frame %s", png);
    }
    g_free (rgb);
    g_free (png);
  }
  CHECK (out && strstr (out, "window 0: frames 0-3") &&
      strstr (out, "window 1: frames 3-6") && strstr (out, "rendered 7"),
      "progress lines: %s", out);
  OK (ae_st_open (&st, save, &err));
  ti = ae_st_find (st, "latents");
  CHECK (ti && ti->ndim == 4 && ti->shape[0] == 7 && ti->shape[1] == 4 &&
      ti->shape[2] == 8 && ti->shape[3] == 8, "saved latents shape");
  ti = ae_st_find (st, "pose");
  CHECK (ti && ti->dtype == AE_DTYPE_U8 && ti->shape[0] == 7, "saved pose");
  ti = ae_st_find (st, "hand_keypoints");
  CHECK (ti && ti->shape[0] == 7 && ti->shape[1] == 42, "saved hands");
  CHECK (ae_st_find (st, "noise_init") && ae_st_find (st, "reference") &&
      ae_st_find (st, "reference_hand_keypoints"), "saved inputs");
  /* noise_init is the stream's mixed noise of --noise-correlation */
  {
    AeTensor t;
    float want[4 * 8 * 8];
    double d = 0.0;
    OK (ae_st_get (st, "noise_init", 4, NULL, &t, &err));
    REQUIRE (ae_tensor_numel (&t) == 7 * 4 * 8 * 8, "noise_init size");
    for (int f = 0; f < 7; f++) {
      mixed_noise_ref (3, AE_NOISE_STREAM_INIT, 0.25f, f, want, 4 * 8 * 8);
      d = MAX (d, max_diff (t.data + (size_t) f * 4 * 8 * 8, want,
              4 * 8 * 8));
    }
    CHECK (d == 0.0, "saved noise_init vs the mixed noise of rho 0.25: max "
        "diff %g", d);
  }
  ae_st_close (st);
  {
    char *file;
    gsize len;
    REQUIRE (g_file_get_contents (save, &file, &len, NULL) && len > 8, "%s",
        save);
    CHECK (strstr (file + 8, "\"noise_correlation\":\"0.25\""),
        "%s: noise_correlation metadata", save);
    g_free (file);
  }
  g_free (out);
  g_free (eout);
  {
    const char *argv[] = { tool, "render", "--model", model_dir, "--poses",
      poses, "--out", outdir, "--window", "zero", NULL
    };
    rc = spawn (argv, &out, &eout);
    CHECK (rc == 2 && strstr (eout, "--window"), "bad flag: %d %s", rc,
        eout);
    g_free (out);
    g_free (eout);
  }
  for (int i = 0; i < 2; i++) {
    const char *argv[] = { tool, "render", "--model", model_dir, "--poses",
      poses, "--out", outdir, "--noise-correlation", i ? "nan" : "1.5", NULL
    };
    rc = spawn (argv, &out, &eout);
    CHECK (rc == 2 && strstr (eout, "--noise-correlation"),
        "--noise-correlation %s: %d %s", argv[9], rc, eout);
    g_free (out);
    g_free (eout);
  }
  {
    const char *argv[] = { tool, "render", "--model", dir, "--poses",
      poses, "--out", outdir, NULL
    };
    rc = spawn (argv, &out, &eout);
    CHECK (rc == 1 && strstr (eout, dir), "bad model: %d %s", rc, eout);
    g_free (out);
    g_free (eout);
  }
  printf ("ok   avatar-engine render: 7 frames in, 7 PNGs out, latents "
      "saved, usage errors\n");
  g_free (text);
  g_string_free (lines, TRUE);
  {
    GDir *d = g_dir_open (outdir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name (d))) {
      char *p = g_build_filename (outdir, name, NULL);
      g_unlink (p);
      g_free (p);
    }
    if (d)
      g_dir_close (d);
  }
  g_rmdir (outdir);
  g_unlink (poses);
  g_unlink (save);
  g_rmdir (dir);
  g_free (dir);
  g_free (poses);
  g_free (outdir);
  g_free (save);
  g_free (json);
}

/* The CLI on the widened model (in_channels 8): with reference attention
 * and reference init off the reference is still passed for the concat;
 * --no-reference-concat renders without it, changes the latents and is
 * recorded in the saved metadata. */
static void
test_tool_concat (const char *tool)
{
  char *mdir = widen_model_new (model_dir, 8, &err);
  char *dir = g_dir_make_tmp ("avatar-concat-XXXXXX", NULL);
  char *poses = g_build_filename (dir, "poses.jsonl", NULL);
  char *json = g_build_filename (model_dir, "references", "identity_00.json",
      NULL);
  char *save[2], *outdir[2], *text, *out = NULL, *eout = NULL;
  GString *lines = g_string_new (NULL);
  float *lat[2] = { NULL, NULL };
  int64_t n = 0;
  int rc;

  REQUIRE (mdir, "%s", err.msg);
  REQUIRE (g_file_get_contents (json, &text, NULL, NULL), "%s", json);
  g_strstrip (text);
  for (int f = 0; f < 5; f++)
    g_string_append_printf (lines, "%s\n", text);
  REQUIRE (g_file_set_contents (poses, lines->str, -1, NULL), "%s", poses);
  for (int i = 0; i < 2; i++) {
    const char *argv[] = { tool, "render", "--model", mdir, "--poses", poses,
      "--out", NULL, "--size", "64x64", "--steps", "2", "--window", "4",
      "--overlap", "1", "--seed", "3", "--save-latents", NULL,
      "--no-reference-attention", "--no-reference-init",
      i ? "--no-reference-concat" : NULL, NULL
    };
    AeSafetensors *st;
    AeTensor t;
    char *file;
    gsize len;
    save[i] = g_strdup_printf ("%s/lat%d.safetensors", dir, i);
    outdir[i] = g_strdup_printf ("%s/out%d", dir, i);
    argv[7] = outdir[i];
    argv[19] = save[i];
    rc = spawn (argv, &out, &eout);
    CHECK (rc == 0, "render in_channels 8%s exited %d: %s", i ?
        " --no-reference-concat" : "", rc, eout);
    g_free (out);
    g_free (eout);
    if (rc != 0)
      continue;
    OK (ae_st_open (&st, save[i], &err));
    OK (ae_st_get (st, "latents", 4, NULL, &t, &err));
    n = ae_tensor_numel (&t);
    lat[i] = g_memdup2 (t.data, n * sizeof (float));
    ae_st_close (st);
    /* the JSON header follows its 8-byte length */
    REQUIRE (g_file_get_contents (save[i], &file, &len, NULL) && len > 8,
        "%s", save[i]);
    CHECK (strstr (file + 8, i ? "\"reference_concat\":\"0\"" :
            "\"reference_concat\":\"1\""), "%s: reference_concat metadata",
        save[i]);
    g_free (file);
  }
  if (lat[0] && lat[1]) {
    double d = max_diff (lat[0], lat[1], (size_t) n);
    CHECK (d > 1e-3, "--no-reference-concat: latents unchanged (%g)", d);
    printf ("ok   avatar-engine render, in_channels 8: the reference serves "
        "the concat alone; --no-reference-concat changes it (max diff "
        "%.3g)\n", d);
  }
  for (int i = 0; i < 2; i++) {
    for (int f = 0; f < 5; f++) {
      char *png = g_strdup_printf ("%s/%05d.png", outdir[i], f);
      g_unlink (png);
      g_free (png);
    }
    g_rmdir (outdir[i]);
    g_unlink (save[i]);
    g_free (outdir[i]);
    g_free (save[i]);
    g_free (lat[i]);
  }
  g_unlink (poses);
  g_rmdir (dir);
  g_free (dir);
  g_free (poses);
  g_free (json);
  g_free (text);
  g_string_free (lines, TRUE);
  widen_model_remove (mdir);
}

int
main (int argc, char **argv)
{
  char *ref_png, *narrowed;
  uint8_t *rgb;
  int w, h;
  float kp[AE_AVATAR_HAND_FLOATS];

  if (argc < 2) {
    fprintf (stderr, "usage: test_avatar MODEL_DIR\n");
    return 2;
  }
  /* The naive whole-clip computations below feed the UNet z_t alone: run
   * them on the model narrowed to a UNet without the reference concat (its
   * first 4 input channels; a no-op for a 4-channel model).
   * test_reference_concat widens it back to 8. */
  narrowed = widen_model_new (argv[1], 4, &err);
  if (narrowed == NULL) {
    fprintf (stderr, "%s\n", err.msg);
    return 1;
  }
  model_dir = narrowed;
  bundled_dir = argv[1];
  ae_threads_init (2);
  OK (ae_avatar_model_load (&model, model_dir, &err));
  ref_png = g_build_filename (model_dir, "references", "identity_00.png",
      NULL);
  OK (ae_image_load_png (ref_png, &rgb, &w, &h, &err));
  test_make_hands (0, kp);
  OK (ae_avatar_reference_new (&reference, model, rgb, w, h, w * 3, kp, SIZE,
          SIZE, &err));
  CHECK (ae_avatar_reference_width (reference) == SIZE, "reference width");
  g_free (rgb);
  g_free (ref_png);

  test_image ();
  test_model ();
  test_model_errors ();
  test_model_mismatch ();
  test_blender ();
  test_usage_errors ();
  test_frames_in_out ();
  test_determinism_and_switches ();
  test_lookahead_all ();
  test_schedulers ();
  test_reference_concat ();
  test_noise_correlation ();
  test_strength ();
  if (argc > 2) {
    test_tool (argv[2]);
    test_tool_concat (argv[2]);
  }

  ae_avatar_reference_unref (reference);
  ae_avatar_model_unref (model);
  widen_model_remove (narrowed);
  if (ae_test_failures) {
    fprintf (stderr, "%d failures\n", ae_test_failures);
    return 1;
  }
  printf ("all avatar pipeline tests passed\n");
  return 0;
}
