/* HandEncoder on self-made random models (no ../shared needed): C forward
 * against a double-precision reference of the formula in
 * docs/model-format.md, missing / low-confidence points, F16 weights,
 * batch independence, the keypoint helper and the error messages. */
#include "test_util.h"
#include "hand-encoder.h"

#include <glib/gstdio.h>

#define K 42
#define NF 4
#define HID 16
#define D 24
#define THR 0.3
#define IN (2 + 4 * NF)

static char *tmpdir;

/* Every weight is a multiple of 2^-10 in (-2, 2), so F16 stores it exactly
 * and the F16 model must give the same tokens as the F32 one. */
typedef struct {
  float w1[HID * IN], b1[HID], w2[D * HID], b2[D];
  float emb[K * D], miss[D], gamma[D], beta[D];
} Weights;

static void
fill (TestRng * r, float *v, int n, float std, float mean)
{
  for (int i = 0; i < n; i++) {
    float x = mean + std * rng_normal (r);
    x = CLAMP (x, -1.9f, 1.9f);
    v[i] = roundf (x * 1024.0f) / 1024.0f;
  }
}

static void
make_weights (Weights * w, uint64_t seed)
{
  TestRng r = { seed };

  fill (&r, w->w1, HID * IN, 0.4f, 0.0f);
  fill (&r, w->b1, HID, 0.2f, 0.0f);
  fill (&r, w->w2, D * HID, 0.3f, 0.0f);
  fill (&r, w->b2, D, 0.2f, 0.0f);
  fill (&r, w->emb, K * D, 0.3f, 0.0f);
  fill (&r, w->miss, D, 0.3f, 0.0f);
  fill (&r, w->gamma, D, 0.2f, 1.0f);
  fill (&r, w->beta, D, 0.2f, 0.0f);
}

/* IEEE half of a float that is exactly representable (normal or zero). */
static uint16_t
to_half (float f)
{
  uint32_t u;
  uint16_t sign;
  int e;

  memcpy (&u, &f, 4);
  sign = (uint16_t) ((u >> 16) & 0x8000);
  if ((u & 0x7fffffff) == 0)
    return sign;
  e = (int) ((u >> 23) & 0xff) - 127 + 15;
  return (uint16_t) (sign | (e << 10) | ((u >> 13) & 0x3ff));
}

typedef struct {
  bool f16;
  const char *skip_key;         /* leave this weight out */
  const char *bad_key;          /* store this one with one more column */
  const char *config;           /* config.json text, NULL = the default */
} Variant;

static void
put (AeStWriter * st, const Variant * v, const char *key, float *data,
    int64_t d0, int64_t d1)
{
  int64_t shape[2] = { d0, d1 };
  int ndim = d1 > 0 ? 2 : 1;
  int64_t n = d0 * (d1 > 0 ? d1 : 1);
  float *bad = NULL;
  AeError err;
  int ret;

  if (v->skip_key && strcmp (key, v->skip_key) == 0)
    return;
  if (v->bad_key && strcmp (key, v->bad_key) == 0) {
    shape[ndim - 1] += 1;
    n = shape[0] * (ndim == 2 ? shape[1] : 1);
    data = bad = g_new0 (float, n);
  }
  if (v->f16) {
    uint16_t *h = g_new (uint16_t, n);
    for (int64_t i = 0; i < n; i++)
      h[i] = to_half (data[i]);
    ret = ae_st_writer_add_raw (st, key, AE_DTYPE_F16, ndim, shape, h, &err);
    g_free (h);
  } else {
    ret = ae_st_writer_add_raw (st, key, AE_DTYPE_F32, ndim, shape, data,
        &err);
  }
  REQUIRE (ret == 0, "%s", err.msg);
  g_free (bad);
}

static char *
write_model (const char *name, const Weights * cw, const Variant * v)
{
  Weights *w = g_memdup2 (cw, sizeof *cw);
  char *dir = g_build_filename (tmpdir, name, NULL);
  char *cfg = g_build_filename (dir, "config.json", NULL);
  char *st_path = g_build_filename (dir,
      "diffusion_pytorch_model.safetensors", NULL);
  const char *text = v->config ? v->config :
      "{\"num_keypoints\": 42, \"num_frequencies\": 4, \"hidden_dim\": 16, "
      "\"cross_attention_dim\": 24, \"confidence_threshold\": 0.3}";
  AeStWriter *st = ae_st_writer_new ();
  AeError err;

  g_mkdir_with_parents (dir, 0700);
  REQUIRE (g_file_set_contents (cfg, text, -1, NULL), "write %s", cfg);
  put (st, v, "linear_1.weight", w->w1, HID, IN);
  put (st, v, "linear_1.bias", w->b1, HID, 0);
  put (st, v, "linear_2.weight", w->w2, D, HID);
  put (st, v, "linear_2.bias", w->b2, D, 0);
  put (st, v, "keypoint_embedding.weight", w->emb, K, D);
  put (st, v, "missing_embedding", w->miss, D, 0);
  put (st, v, "norm_out.weight", w->gamma, D, 0);
  put (st, v, "norm_out.bias", w->beta, D, 0);
  REQUIRE (ae_st_writer_save (st, st_path, &err) == 0, "%s", err.msg);
  ae_st_writer_free (st);
  g_free (cfg);
  g_free (st_path);
  g_free (w);
  return dir;
}

/* The formula of docs/model-format.md in double precision. */
static void
reference (const Weights * w, const float *kp, int B, double *out)
{
  for (int p = 0; p < B * K; p++) {
    const float *q = kp + 3 * p;
    double pe[IN], hid[HID], tok[D], c, g, mean = 0, var = 0;
    int k = p % K;

    c = isnan (q[2]) ? 0.0 : CLAMP ((double) q[2], 0.0, 1.0);
    g = c >= THR ? c : 0.0;
    pe[0] = q[0];
    pe[1] = q[1];
    for (int f = 0; f < NF; f++) {
      double wf = ldexp (1.0, f) * G_PI;
      pe[2 + f] = sin (wf * q[0]);
      pe[2 + NF + f] = cos (wf * q[0]);
      pe[2 + 2 * NF + f] = sin (wf * q[1]);
      pe[2 + 3 * NF + f] = cos (wf * q[1]);
    }
    for (int j = 0; j < HID; j++) {
      double s = w->b1[j];
      for (int i = 0; i < IN; i++)
        s += (double) w->w1[j * IN + i] * pe[i];
      hid[j] = s / (1.0 + exp (-s));
    }
    for (int j = 0; j < D; j++) {
      double s = w->b2[j];
      for (int i = 0; i < HID; i++)
        s += (double) w->w2[j * HID + i] * hid[i];
      if (g == 0.0)             /* missing: h is not used at all */
        s = 0.0;
      tok[j] = g * s + (1.0 - g) * w->miss[j] + w->emb[k * D + j];
      mean += tok[j] / D;
    }
    for (int j = 0; j < D; j++)
      var += (tok[j] - mean) * (tok[j] - mean) / D;
    for (int j = 0; j < D; j++)
      out[p * D + j] = (tok[j] - mean) / sqrt (var + 1e-5) * w->gamma[j]
          + w->beta[j];
  }
}

static void
random_keypoints (TestRng * r, float *kp, int B)
{
  for (int p = 0; p < B * K; p++) {
    kp[3 * p] = (float) rng_uniform (r) * 1.2f - 0.1f;
    kp[3 * p + 1] = (float) rng_uniform (r) * 1.2f - 0.1f;
    kp[3 * p + 2] = (float) rng_uniform (r) * 1.6f - 0.3f;
  }
  /* Edge cases: exactly the threshold, above 1, negative, zero, NaN
   * coordinates of a missing point. */
  kp[2] = (float) THR;
  kp[5] = 1.7f;
  kp[8] = -0.5f;
  kp[11] = 0.0f;
  kp[12] = NAN;
  kp[13] = INFINITY;
  kp[14] = 0.0f;
  kp[17] = NAN;
}

static double
max_diff (const float *got, const double *ref, int n)
{
  double m = 0;
  for (int i = 0; i < n; i++) {
    double d = fabs ((double) got[i] - ref[i]);
    if (!(d <= m))
      m = isnan (d) ? INFINITY : d;
  }
  return m;
}

static AeHandEncoder *
load_ok (const char *dir)
{
  AeHandEncoder *enc = NULL;
  AeError err;

  REQUIRE (ae_hand_encoder_load (&enc, dir, &err) == 0, "%s", err.msg);
  return enc;
}

/* Removes the test's own temporary folder (two levels: model folders). */
static void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL) {
    while ((name = g_dir_read_name (dir)) != NULL) {
      char *child = g_build_filename (path, name, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        remove_tree (child);
      else
        g_unlink (child);
      g_free (child);
    }
    g_dir_close (dir);
  }
  g_rmdir (path);
}

#include "test_hand_encoder_cases.h"

int
main (void)
{
  tmpdir = g_dir_make_tmp ("ae-hand-XXXXXX", NULL);
  REQUIRE (tmpdir != NULL, "tmpdir");
  test_forward ();
  test_missing ();
  test_f16_and_batch ();
  test_load_errors ();
  test_forward_errors ();
  test_keypoints_fill ();
  remove_tree (tmpdir);
  g_free (tmpdir);
  return test_finish ("test_hand_encoder");
}
