/* Fast ops against naive double-precision references on random odd sizes.
 * Needs no shared data. */
#include "ops-internal.h"
#include "test_util.h"
#include "threads.h"

static AeArena arena;

/* ---- conv2d --------------------------------------------------------- */

static void
naive_conv (AeTensor * y, const AeTensor * x, const AeTensor * w,
    const AeTensor * b, int s, int pt, int pl)
{
  int64_t B = x->shape[0], ci = x->shape[1], H = x->shape[2],
      W = x->shape[3], co = w->shape[0], kh = w->shape[2], kw = w->shape[3],
      ho = y->shape[2], wo = y->shape[3];

  for (int64_t n = 0; n < B; n++)
    for (int64_t o = 0; o < co; o++)
      for (int64_t oy = 0; oy < ho; oy++)
        for (int64_t ox = 0; ox < wo; ox++) {
          double acc = b ? b->data[o] : 0.0;
          for (int64_t c = 0; c < ci; c++)
            for (int64_t ky = 0; ky < kh; ky++)
              for (int64_t kx = 0; kx < kw; kx++) {
                int64_t iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                  continue;
                acc += (double) x->data[((n * ci + c) * H + iy) * W + ix]
                    * w->data[((o * ci + c) * kh + ky) * kw + kx];
              }
          y->data[((n * co + o) * ho + oy) * wo + ox] = (float) acc;
        }
}

static void
conv_case (TestRng * r, int64_t B, int64_t ci, int64_t H, int64_t W,
    int64_t co, int k, int s, int pt, int pb, int pl, int pr, bool bias)
{
  AeTensor x = test_tensor4 (r, B, ci, H, W);
  AeTensor w = test_tensor4 (r, co, ci, k, k);
  AeTensor b = test_tensor1 (r, co);
  int64_t ho = ae_conv2d_out_size (H, k, s, pt, pb);
  int64_t wo = ae_conv2d_out_size (W, k, s, pl, pr);
  AeTensor y = test_tensor4 (NULL, B, co, ho, wo);
  AeTensor ref = test_tensor4 (NULL, B, co, ho, wo);
  AeError err;
  char name[160];

  snprintf (name, sizeof name, "conv2d %lldx%lldx%lldx%lld->%lld k%d s%d "
      "pad(%d,%d,%d,%d)%s", (long long) B, (long long) ci, (long long) H,
      (long long) W, (long long) co, k, s, pt, pb, pl, pr,
      bias ? " bias" : "");
  naive_conv (&ref, &x, &w, bias ? &b : NULL, s, pt, pl);
  CHECK (ae_conv2d_pad (&y, &x, &w, bias ? &b : NULL, s, pt, pb, pl, pr,
          &arena, &err) == 0, "%s: %s", name, err.msg);
  check_close (name, &y, &ref, 1e-4, 1e-5);
  CHECK (arena.used == 0, "%s: scratch not released", name);
  g_free (x.data);
  g_free (w.data);
  g_free (b.data);
  g_free (y.data);
  g_free (ref.data);
}

static void
test_conv (TestRng * r)
{
  AeTensor x = test_tensor4 (r, 1, 3, 5, 5), w = test_tensor4 (r, 2, 4, 3, 3);
  AeTensor y = test_tensor4 (NULL, 1, 2, 5, 5);
  AeError err;

  conv_case (r, 2, 5, 9, 7, 6, 3, 1, 1, 1, 1, 1, true);
  conv_case (r, 2, 5, 9, 7, 6, 3, 1, 1, 1, 1, 1, false);
  conv_case (r, 2, 5, 9, 7, 6, 3, 2, 1, 1, 1, 1, true);
  conv_case (r, 2, 5, 10, 8, 6, 3, 2, 0, 1, 0, 1, true);  /* VAE pad */
  conv_case (r, 1, 5, 9, 7, 3, 3, 2, 0, 1, 0, 1, true);   /* odd sizes */
  conv_case (r, 2, 7, 6, 5, 9, 1, 1, 0, 0, 0, 0, true);
  conv_case (r, 2, 7, 6, 5, 9, 1, 1, 0, 0, 0, 0, false);
  conv_case (r, 1, 3, 8, 8, 4, 3, 1, 0, 0, 0, 0, true);
  conv_case (r, 1, 2, 6, 6, 3, 5, 1, 2, 2, 2, 2, true);
  conv_case (r, 1, 3, 9, 9, 2, 3, 3, 1, 1, 1, 1, false);
  conv_case (r, 2, 3, 7, 6, 4, 3, 1, 0, 2, 1, 0, true);   /* asymmetric s1 */
  conv_case (r, 1, 2, 5, 3, 3, 3, 1, 3, 3, 3, 3, true);   /* pad > kernel/2 */
  /* Large enough that im2col runs in several column chunks. */
  conv_case (r, 1, 64, 48, 48, 8, 3, 1, 1, 1, 1, 1, true);

  CHECK (ae_conv2d (&y, &x, &w, NULL, 1, 1, &arena, &err) < 0,
      "conv2d accepted mismatched channels");
  CHECK (strstr (err.msg, "weight") != NULL, "message: %s", err.msg);
  g_free (x.data);
  g_free (w.data);
  g_free (y.data);
}

/* ---- linear, norms, activations ------------------------------------- */

static void
test_linear (TestRng * r)
{
  AeTensor x = test_tensor3 (r, 2, 13, 17), w = test_tensor2 (r, 11, 17);
  AeTensor b = test_tensor1 (r, 11);
  AeTensor y = test_tensor3 (NULL, 2, 13, 11), ref = test_tensor3 (NULL, 2,
      13, 11);
  AeError err;

  for (int64_t i = 0; i < 26; i++)
    for (int64_t o = 0; o < 11; o++) {
      double acc = b.data[o];
      for (int64_t k = 0; k < 17; k++)
        acc += (double) x.data[i * 17 + k] * w.data[o * 17 + k];
      ref.data[i * 11 + o] = (float) acc;
    }
  CHECK (ae_linear (&y, &x, &w, &b, &err) == 0, "%s", err.msg);
  check_close ("linear (2,13,17)->11 bias", &y, &ref, 1e-5, 1e-6);
  for (int64_t i = 0; i < 26 * 11; i++)
    ref.data[i] -= b.data[i % 11];
  CHECK (ae_linear (&y, &x, &w, NULL, &err) == 0, "%s", err.msg);
  check_close ("linear (2,13,17)->11 no bias", &y, &ref, 1e-5, 1e-6);
  g_free (x.data);
  g_free (w.data);
  g_free (b.data);
  g_free (y.data);
  g_free (ref.data);
}

/* ae_sgemm with every transpose combination, large enough to be split
 * over threads (along M, then along N), with padded leading dims. */
static void
test_sgemm (TestRng * r)
{
  int64_t dims[2][3] = { {150, 97, 90}, {70, 300, 60} };

  for (int c = 0; c < 2; c++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        int64_t m = dims[c][0], n = dims[c][1], k = dims[c][2];
        int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 7;
        AeTensor a = test_tensor2 (r, ta ? k : m, lda);
        AeTensor b = test_tensor2 (r, tb ? n : k, ldb);
        AeTensor cm = test_tensor2 (r, m, ldc), ref = test_tensor2 (NULL, m,
            ldc);
        char name[96];

        for (int64_t i = 0; i < m; i++)
          for (int64_t j = 0; j < ldc; j++) {
            double acc = 0.5 * cm.data[i * ldc + j];
            if (j >= n) {
              ref.data[i * ldc + j] = cm.data[i * ldc + j];
              continue;
            }
            for (int64_t t = 0; t < k; t++)
              acc += 2.0 * (ta ? a.data[t * lda + i] : a.data[i * lda + t])
                  * (tb ? b.data[j * ldb + t] : b.data[t * ldb + j]);
            ref.data[i * ldc + j] = (float) acc;
          }
        ae_sgemm (ta, tb, m, n, k, 2.0f, a.data, lda, b.data, ldb, 0.5f,
            cm.data, ldc);
        snprintf (name, sizeof name, "sgemm %lldx%lldx%lld trans %d%d",
            (long long) m, (long long) n, (long long) k, ta, tb);
        check_close (name, &cm, &ref, 1e-4, 1e-6);
        g_free (a.data);
        g_free (b.data);
        g_free (cm.data);
        g_free (ref.data);
      }
}

static void
naive_group_norm (AeTensor * y, const AeTensor * x, int groups, double eps,
    const float *g, const float *b, bool silu)
{
  int64_t B = x->shape[0], C = x->shape[1];
  int64_t sp = ae_tensor_numel (x) / (B * C), cpg = C / groups;

  for (int64_t n = 0; n < B; n++)
    for (int gi = 0; gi < groups; gi++) {
      const float *xs = x->data + (n * C + gi * cpg) * sp;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < cpg * sp; i++)
        mean += xs[i];
      mean /= (double) (cpg * sp);
      for (int64_t i = 0; i < cpg * sp; i++)
        var += (xs[i] - mean) * (xs[i] - mean);
      var /= (double) (cpg * sp);
      for (int64_t i = 0; i < cpg * sp; i++) {
        int64_t c = gi * cpg + i / sp;
        double v = (xs[i] - mean) / sqrt (var + eps) * g[c] + b[c];
        if (silu)
          v = v / (1.0 + exp (-v));
        y->data[(n * C + gi * cpg) * sp + i] = (float) v;
      }
    }
}

static void
test_norms (TestRng * r)
{
  int64_t shape[4] = { 2, 12, 5, 7 };
  AeTensor x = test_tensor (r, 4, shape, 30.0f, 0.5f);
  AeTensor g = test_tensor1 (r, 12), b = test_tensor1 (r, 12);
  AeTensor y = test_tensor (NULL, 4, shape, 0, 0);
  AeTensor ref = test_tensor (NULL, 4, shape, 0, 0);
  AeTensor lx = test_tensor3 (r, 3, 5, 12), ly = test_tensor3 (NULL, 3, 5,
      12), lref = test_tensor3 (NULL, 3, 5, 12);
  AeError err;

  naive_group_norm (&ref, &x, 4, 1e-5, g.data, b.data, false);
  CHECK (ae_group_norm (&y, &x, 4, 1e-5f, &g, &b, false, &err) == 0, "%s",
      err.msg);
  check_close ("group_norm 4 groups, mean 30 std 0.5", &y, &ref, 1e-4, 2e-5);
  naive_group_norm (&ref, &x, 3, 1e-6, g.data, b.data, true);
  CHECK (ae_group_norm (&y, &x, 3, 1e-6f, &g, &b, true, &err) == 0, "%s",
      err.msg);
  check_close ("group_norm 3 groups + fused silu", &y, &ref, 1e-4, 2e-5);
  /* In place. */
  memcpy (y.data, x.data, (size_t) ae_tensor_numel (&x) * sizeof (float));
  CHECK (ae_group_norm (&y, &y, 3, 1e-6f, &g, &b, true, &err) == 0, "%s",
      err.msg);
  check_close ("group_norm in place", &y, &ref, 1e-4, 2e-5);
  CHECK (ae_group_norm (&y, &x, 5, 1e-6f, &g, &b, false, &err) < 0,
      "group_norm accepted 12 channels in 5 groups");

  for (int64_t row = 0; row < 15; row++) {
    const float *xr = lx.data + row * 12;
    double mean = 0, var = 0;
    for (int i = 0; i < 12; i++)
      mean += xr[i] / 12.0;
    for (int i = 0; i < 12; i++)
      var += (xr[i] - mean) * (xr[i] - mean) / 12.0;
    for (int i = 0; i < 12; i++)
      lref.data[row * 12 + i] = (float) ((xr[i] - mean) / sqrt (var + 1e-5)
          * g.data[i] + b.data[i]);
  }
  CHECK (ae_layer_norm (&ly, &lx, 1e-5f, &g, &b, &err) == 0, "%s", err.msg);
  check_close ("layer_norm (3,5,12)", &ly, &lref, 1e-5, 1e-6);

  g_free (x.data);
  g_free (g.data);
  g_free (b.data);
  g_free (y.data);
  g_free (ref.data);
  g_free (lx.data);
  g_free (ly.data);
  g_free (lref.data);
}

static void
test_activations (TestRng * r)
{
  int64_t n = 1001;
  AeTensor x = test_tensor1 (r, n), y = test_tensor1 (NULL, n);
  AeTensor ref = test_tensor1 (NULL, n);
  AeTensor gx = test_tensor2 (r, 7, 18), gy = test_tensor2 (NULL, 7, 9);
  AeTensor gref = test_tensor2 (NULL, 7, 9);
  AeError err;

  for (int64_t i = 0; i < n; i++)
    x.data[i] *= 8.0f;          /* cover the tails */
  x.data[0] = -100.0f;
  x.data[1] = 100.0f;
  for (int64_t i = 0; i < n; i++)
    ref.data[i] = (float) (x.data[i] / (1.0 + exp (-(double) x.data[i])));
  CHECK (ae_silu (&y, &x, &err) == 0, "%s", err.msg);
  check_close ("silu", &y, &ref, 1e-5, 1e-6);

  for (int64_t i = 0; i < n; i++) {
    double v = x.data[i];
    ref.data[i] = (float) (0.5 * v * (1.0 + erf (v / sqrt (2.0))));
  }
  CHECK (ae_gelu (&y, &x, AE_GELU_ERF, &err) == 0, "%s", err.msg);
  check_close ("gelu erf", &y, &ref, 1e-5, 1e-6);
  for (int64_t i = 0; i < n; i++) {
    double v = x.data[i];
    ref.data[i] = (float) (0.5 * v * (1.0 + tanh (sqrt (2.0 / M_PI) * (v +
                    0.044715 * v * v * v))));
  }
  CHECK (ae_gelu (&y, &x, AE_GELU_TANH, &err) == 0, "%s", err.msg);
  check_close ("gelu tanh", &y, &ref, 1e-5, 1e-6);

  for (int64_t row = 0; row < 7; row++)
    for (int i = 0; i < 9; i++) {
      double h = gx.data[row * 18 + i], g = gx.data[row * 18 + 9 + i];
      gref.data[row * 9 + i] = (float) (h * 0.5 * g * (1.0 + erf (g /
                  sqrt (2.0))));
    }
  CHECK (ae_geglu (&gy, &gx, &err) == 0, "%s", err.msg);
  check_close ("geglu (7,18)->(7,9)", &gy, &gref, 1e-5, 1e-6);

  g_free (x.data);
  g_free (y.data);
  g_free (ref.data);
  g_free (gx.data);
  g_free (gy.data);
  g_free (gref.data);
}

/* ---- attention ------------------------------------------------------ */

/* Full softmax in double; k/v and the extra tokens concatenated. */
static void
naive_attention (AeTensor * out, const AeTensor * q, const AeTensor * k,
    const AeTensor * v, const AeTensor * ke, const AeTensor * ve, int heads)
{
  int64_t B = q->shape[0], lq = q->shape[1], C = q->shape[2], d = C / heads;
  int64_t lk = k->shape[1], le = ke ? ke->shape[1] : 0;
  double *s = g_new (double, lk + le);

  for (int64_t b = 0; b < B; b++)
    for (int h = 0; h < heads; h++)
      for (int64_t i = 0; i < lq; i++) {
        const float *qi = q->data + (b * lq + i) * C + h * d;
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < lk + le; j++) {
          const float *kj = j < lk ? k->data + (b * lk + j) * C + h * d :
              ke->data + ((ke->shape[0] == 1 ? 0 : b) * le + j - lk) * C
              + h * d;
          double dot = 0;
          for (int64_t t = 0; t < d; t++)
            dot += (double) qi[t] * kj[t];
          s[j] = dot / sqrt ((double) d);
          mx = s[j] > mx ? s[j] : mx;
        }
        for (int64_t j = 0; j < lk + le; j++) {
          s[j] = exp (s[j] - mx);
          sum += s[j];
        }
        for (int64_t t = 0; t < d; t++) {
          double acc = 0;
          for (int64_t j = 0; j < lk + le; j++) {
            const float *vj = j < lk ? v->data + (b * lk + j) * C + h * d :
                ve->data + ((ve->shape[0] == 1 ? 0 : b) * le + j - lk) * C
                + h * d;
            acc += s[j] * vj[t];
          }
          out->data[(b * lq + i) * C + h * d + t] = (float) (acc / sum);
        }
      }
  g_free (s);
}

static void
attn_case (TestRng * r, int64_t B, int64_t lq, int64_t lk, int64_t le,
    int64_t be, int heads, int64_t d, float qscale)
{
  int64_t C = heads * d;
  AeTensor q = test_tensor3 (r, B, lq, C), k = test_tensor3 (r, B, lk, C);
  AeTensor v = test_tensor3 (r, B, lk, C);
  AeTensor ke = test_tensor3 (r, be, le, C), ve = test_tensor3 (r, be, le, C);
  AeTensor out = test_tensor3 (NULL, B, lq, C), ref = test_tensor3 (NULL, B,
      lq, C);
  AeError err;
  char name[160];

  for (int64_t i = 0; i < ae_tensor_numel (&q); i++)
    q.data[i] *= qscale;        /* sharper softmax */
  snprintf (name, sizeof name, "attention B%lld q%lld k%lld extra %lldx%lld "
      "heads %d d %lld", (long long) B, (long long) lq, (long long) lk,
      (long long) be, (long long) le, heads, (long long) d);
  naive_attention (&ref, &q, &k, &v, le ? &ke : NULL, le ? &ve : NULL, heads);
  CHECK (ae_attention (&out, &q, &k, &v, le ? &ke : NULL, le ? &ve : NULL,
          heads, 0.0f, &arena, &err) == 0, "%s: %s", name, err.msg);
  check_close (name, &out, &ref, 2e-5, 2e-6);
  CHECK (arena.used == 0, "%s: scratch not released", name);
  g_free (q.data);
  g_free (k.data);
  g_free (v.data);
  g_free (ke.data);
  g_free (ve.data);
  g_free (out.data);
  g_free (ref.data);
}

static void
test_attention (TestRng * r)
{
  AeTensor q = test_tensor3 (r, 1, 4, 6), k = test_tensor3 (r, 1, 5, 8);
  AeTensor out = test_tensor3 (NULL, 1, 4, 6);
  AeError err;

  attn_case (r, 2, 70, 70, 0, 1, 3, 5, 1.0f);   /* self, partial tiles */
  attn_case (r, 2, 67, 9, 0, 1, 2, 8, 2.0f);    /* cross, short keys */
  attn_case (r, 1, 130, 600, 0, 1, 1, 16, 3.0f);        /* many key tiles */
  attn_case (r, 2, 33, 300, 41, 2, 2, 4, 2.0f); /* extra kv per batch */
  attn_case (r, 3, 20, 20, 20, 1, 4, 3, 1.0f);  /* extra kv shared */
  attn_case (r, 1, 5, 0, 7, 1, 1, 4, 1.0f);     /* only extra tokens */
  /* head widths of avatar-default (12) and SD1.5 (40), many key tiles */
  attn_case (r, 2, 131, 1100, 77, 1, 8, 12, 2.0f);
  attn_case (r, 1, 66, 530, 0, 1, 2, 32, 2.0f);
  attn_case (r, 1, 66, 530, 0, 1, 2, 33, 2.0f);
  attn_case (r, 1, 40, 40, 0, 1, 1, 40, 1.0f);

  CHECK (ae_attention (&out, &q, &k, &k, NULL, NULL, 2, 0.0f, &arena,
          &err) < 0, "attention accepted mismatched key width");
  g_free (q.data);
  g_free (k.data);
  g_free (out.data);
}

/* ---- resampling, embeddings, layout --------------------------------- */

static void
test_misc (TestRng * r)
{
  AeTensor x = test_tensor4 (r, 2, 3, 5, 7), up = test_tensor4 (NULL, 2, 3,
      10, 14);
  AeTensor nlc = test_tensor3 (NULL, 2, 35, 3), back = test_tensor4 (NULL,
      2, 3, 5, 7);
  AeTensor a = test_tensor4 (r, 2, 2, 5, 7), cat = test_tensor4 (NULL, 2, 5,
      5, 7);
  AeTensor temb = test_tensor2 (r, 2, 3), emb = test_tensor2 (NULL, 3, 9);
  float ts[3] = { 0.0f, 1.0f, 999.0f };
  AeError err;
  bool ok = true;

  CHECK (ae_upsample_nearest2x (&up, &x, &err) == 0, "%s", err.msg);
  for (int64_t p = 0; p < 6; p++)
    for (int64_t y = 0; y < 10; y++)
      for (int64_t xx = 0; xx < 14; xx++)
        ok &= up.data[(p * 10 + y) * 14 + xx] ==
            x.data[(p * 5 + y / 2) * 7 + xx / 2];
  CHECK (ok, "upsample_nearest2x differs from the definition");

  CHECK (ae_nchw_to_nlc (&nlc, &x, &err) == 0, "%s", err.msg);
  ok = true;
  for (int64_t b = 0; b < 2; b++)
    for (int64_t c = 0; c < 3; c++)
      for (int64_t l = 0; l < 35; l++)
        ok &= nlc.data[(b * 35 + l) * 3 + c] == x.data[(b * 3 + c) * 35 + l];
  CHECK (ok, "nchw_to_nlc wrong");
  CHECK (ae_nlc_to_nchw (&back, &nlc, &err) == 0, "%s", err.msg);
  CHECK (memcmp (back.data, x.data, 210 * sizeof (float)) == 0,
      "nlc_to_nchw does not invert nchw_to_nlc");

  CHECK (ae_concat_channels (&cat, &x, &a, &err) == 0, "%s", err.msg);
  CHECK (memcmp (cat.data, x.data, 105 * sizeof (float)) == 0
      && memcmp (cat.data + 105, a.data, 70 * sizeof (float)) == 0
      && memcmp (cat.data + 175, x.data + 105, 105 * sizeof (float)) == 0,
      "concat_channels wrong");

  memcpy (back.data, x.data, 210 * sizeof (float));
  CHECK (ae_add_channel (&back, &temb, &err) == 0, "%s", err.msg);
  CHECK (back.data[35 * 4 + 3] == x.data[35 * 4 + 3] + temb.data[4],
      "add_channel (B,C) wrong");
  CHECK (ae_add_scaled (&back, &x, &x, 2.0f, &err) == 0
      && back.data[17] == x.data[17], "add_scaled wrong");

  CHECK (ae_timestep_embedding (&emb, ts, 3, true, 0.0f, 1.0f, 10000.0f,
          &err) == 0, "%s", err.msg);
  /* dim 9: half 4, cos first, last column zero padded. */
  CHECK (fabsf (emb.data[9 * 2 + 0] - cosf (999.0f)) < 1e-4f
      && fabsf (emb.data[9 * 2 + 4] - sinf (999.0f)) < 1e-4f
      && emb.data[9 * 2 + 8] == 0.0f && emb.data[0] == 1.0f
      && emb.data[4] == 0.0f, "timestep_embedding layout wrong");
  CHECK (ae_timestep_embedding (&emb, ts, 3, false, 1.0f, 1.0f, 10000.0f,
          &err) == 0, "%s", err.msg);
  /* freq_shift 1: freq_i = 10000^(-i/3); sin first. */
  CHECK (fabsf (emb.data[9 * 1 + 3] - sinf (powf (10000.0f, -1.0f))) < 1e-6f
      && fabsf (emb.data[9 * 1 + 4 + 1] - cosf (powf (10000.0f,
                  -1.0f / 3.0f))) < 1e-6f, "timestep_embedding freq_shift");

  g_free (x.data);
  g_free (up.data);
  g_free (nlc.data);
  g_free (back.data);
  g_free (a.data);
  g_free (cat.data);
  g_free (temb.data);
  g_free (emb.data);
}

/* The vectorizable exp and erf the ops use, against libm in double. */
static void
test_fast_math (void)
{
  double worst_exp = 0.0, worst_erf = 0.0;

  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    double ref = exp ((double) x);
    double rel = fabs (ae_exp_fast (x) - ref) / ref;
    worst_exp = rel > worst_exp ? rel : worst_exp;
  }
  for (float x = -6.0f; x <= 6.0f; x += 0.00037f) {
    double e = fabs (ae_erf_fast (x) - erf ((double) x));
    worst_erf = e > worst_erf ? e : worst_erf;
  }
  CHECK (worst_exp < 5e-7, "exp_fast relative error %.3g", worst_exp);
  CHECK (worst_erf < 1e-6, "erf_fast absolute error %.3g", worst_erf);
  CHECK (ae_exp_fast (-1000.0f) < 1e-37f && ae_exp_fast (-1000.0f) >= 0.0f
      && isfinite (ae_exp_fast (1000.0f)), "exp_fast clamping");
  printf ("ok   exp_fast max rel err %.2e, erf_fast max abs err %.2e\n",
      worst_exp, worst_erf);
}

/* ---- arena ---------------------------------------------------------- */

static void
test_arena (void)
{
  AeArena a;
  AeTensor t1, t2, t3;
  AeError err;
  size_t mark;

  REQUIRE (ae_arena_init (&a, 0, &err) == 0, "%s", err.msg);
  /* First pass measures: everything goes to overflow blocks. */
  CHECK (ae_arena_tensor4 (&a, &t1, 2, 3, 4, 5, &err) == 0, "%s", err.msg);
  mark = ae_arena_mark (&a);
  CHECK (ae_arena_tensor3 (&a, &t2, 1, 100, 7, &err) == 0, "%s", err.msg);
  ae_arena_release (&a, mark);
  CHECK (ae_arena_tensor2 (&a, &t3, 10, 10, &err) == 0, "%s", err.msg);
  CHECK (a.grow_count == 3, "grow_count %u", a.grow_count);
  CHECK (((uintptr_t) t3.data % AE_ARENA_ALIGN) == 0, "alignment");
  CHECK (ae_arena_reset (&a, &err) == 0, "%s", err.msg);
  CHECK (a.capacity >= 120 * 4 + 700 * 4, "reset kept %zu bytes",
      a.capacity);
  /* Second identical pass: no growth. */
  CHECK (ae_arena_tensor4 (&a, &t1, 2, 3, 4, 5, &err) == 0, "%s", err.msg);
  mark = ae_arena_mark (&a);
  CHECK (ae_arena_tensor3 (&a, &t2, 1, 100, 7, &err) == 0, "%s", err.msg);
  ae_arena_release (&a, mark);
  CHECK (ae_arena_tensor2 (&a, &t3, 10, 10, &err) == 0, "%s", err.msg);
  CHECK (a.grow_count == 3 && a.overflow == NULL, "second pass grew");
  CHECK (t3.data == t2.data, "release did not rewind");
  CHECK (ae_arena_reset (&a, &err) == 0, "%s", err.msg);
  ae_arena_clear (&a);
}

/* conv2d and attention take their temporaries from the scratch arena:
 * after one measuring pass and a reset, a second identical pass must not
 * allocate (grow_count unchanged, no overflow blocks). */
static void
test_scratch_reuse (TestRng * r)
{
  AeArena a;
  AeTensor x = test_tensor4 (r, 2, 16, 40, 40), w = test_tensor4 (r, 8, 16,
      3, 3);
  AeTensor y = test_tensor4 (NULL, 2, 8, 40, 40);
  AeTensor q = test_tensor3 (r, 2, 300, 32), o = test_tensor3 (NULL, 2, 300,
      32);
  AeError err;
  unsigned grown;

  REQUIRE (ae_arena_init (&a, 0, &err) == 0, "%s", err.msg);
  for (int pass = 0; pass < 3; pass++) {
    grown = a.grow_count;
    CHECK (ae_conv2d (&y, &x, &w, NULL, 1, 1, &a, &err) == 0, "%s", err.msg);
    CHECK (ae_attention (&o, &q, &q, &q, NULL, NULL, 4, 0.0f, &a, &err) == 0,
        "%s", err.msg);
    if (pass > 0)
      CHECK (a.grow_count == grown && a.overflow == NULL,
          "pass %d allocated (grow_count %u -> %u)", pass, grown,
          a.grow_count);
    CHECK (a.used == 0, "scratch not released");
    CHECK (ae_arena_reset (&a, &err) == 0, "%s", err.msg);
  }
  CHECK (a.capacity > 0, "reset did not size the arena");
  printf ("ok   scratch: %zu bytes after the measuring pass, no growth "
      "after\n", a.capacity);
  ae_arena_clear (&a);
  g_free (x.data);
  g_free (w.data);
  g_free (y.data);
  g_free (q.data);
  g_free (o.data);
}

int
main (void)
{
  TestRng r = { 0x9E3779B97F4A7C15ULL };
  AeError err;

  ae_threads_init (0);
  REQUIRE (ae_arena_init (&arena, 1 << 20, &err) == 0, "%s", err.msg);
  test_arena ();
  test_scratch_reuse (&r);
  test_fast_math ();
  test_conv (&r);
  test_sgemm (&r);
  test_linear (&r);
  test_norms (&r);
  test_activations (&r);
  test_attention (&r);
  test_misc (&r);
  /* The threaded paths split work differently from the single-thread
   * ones (conv chunk tasks vs row blocks): run the heavy ops both ways. */
  ae_threads_init (1);
  printf ("-- 1 thread\n");
  test_conv (&r);
  test_sgemm (&r);
  test_attention (&r);
  ae_threads_init (3);
  printf ("-- 3 threads\n");
  test_conv (&r);
  test_sgemm (&r);
  test_attention (&r);
  ae_arena_clear (&arena);
  return test_finish ("test_ops");
}
