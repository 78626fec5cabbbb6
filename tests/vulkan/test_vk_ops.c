/* Each Vulkan op against the CPU op (the reference) on seeded random
 * inputs of odd sizes; compared by max abs error and relative L2 against
 * the tolerances stated per case. Exit 77 (skip) with a message when no
 * Vulkan device can be opened. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "vk-ops.h"

static AeVkContext ctx;
static AeArena arena;
static int failures;

/* Buffers acquired by the current case, given back by case_end. */
static AeVkBuffer *held[64];
static int n_held;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float
rand_uniform (float lo, float hi)
{
  /* xorshift64*: fixed seed, same inputs on every run */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  uint64_t r = rng_state * 0x2545f4914f6cdd1dull;
  return lo + (hi - lo) * (float) ((r >> 40) / 16777216.0);
}

/* Host tensor from the arena filled with uniform values in [lo, hi). */
static AeTensor
host_rand (int ndim, const int64_t *shape, float lo, float hi)
{
  AeTensor t;
  AeError err;

  if (ae_arena_tensor (&arena, &t, ndim, shape, &err) < 0) {
    fprintf (stderr, "arena: %s\n", err.msg);
    exit (1);
  }
  for (int64_t i = 0; i < ae_tensor_numel (&t); i++)
    t.data[i] = rand_uniform (lo, hi);
  return t;
}

/* Device tensor of the host tensor's shape, holding its data. */
static AeVkTensor
dev_of (const AeTensor *h)
{
  AeError err;
  size_t n = (size_t) ae_tensor_numel (h);
  AeVkBuffer *b = ae_vk_pool_acquire (&ctx, n * sizeof (float), &err);

  if (!b || ae_vk_upload (b, h->data, n, &err) < 0) {
    fprintf (stderr, "device buffer: %s\n", err.msg);
    exit (1);
  }
  held[n_held++] = b;
  return ae_vk_tensor_like (b, h);
}

static void
case_end (void)
{
  for (int i = 0; i < n_held; i++)
    ae_vk_pool_release (&ctx, held[i]);
  n_held = 0;
  ae_arena_reset (&arena, NULL);
}

/* Submits, downloads dev and compares it with the CPU result ref. */
static void
check (const char *name, const AeVkTensor *dev, const AeTensor *ref,
    double tol_abs, double tol_rel)
{
  AeError err;
  AeTensor got;
  double max_abs, rel_l2;

  if (ae_vk_submit (&ctx, &err) < 0) {
    printf ("FAIL %-28s submit: %s\n", name, err.msg);
    failures++;
    return;
  }
  ae_arena_tensor (&arena, &got, ref->ndim, ref->shape, &err);
  ae_vk_download (dev->buf, got.data, (size_t) ae_tensor_numel (ref), &err);
  ae_compare (&got, ref, &max_abs, &rel_l2, &err);
  bool ok = max_abs <= tol_abs && rel_l2 <= tol_rel && !isnan (max_abs);
  printf ("%s %-28s max_abs %.3g (tol %.0e)  rel_l2 %.3g (tol %.0e)\n",
      ok ? "ok  " : "FAIL", name, max_abs, tol_abs, rel_l2, tol_rel);
  if (!ok)
    failures++;
}

static void
expect_ok (int rc, const char *what, const AeError *err)
{
  if (rc < 0) {
    printf ("FAIL %s: %s\n", what, err->msg);
    failures++;
  }
}

#define DIMS(...) (int64_t[]) { __VA_ARGS__ }
#define NDIM(...) (int) (sizeof ((int64_t[]) { __VA_ARGS__ }) / sizeof (int64_t))
#define RAND(lo, hi, ...) host_rand (NDIM (__VA_ARGS__), DIMS (__VA_ARGS__), lo, hi)

static void
test_add (void)
{
  AeError err;
  AeTensor a = RAND (-2, 2, 2, 3, 5, 7), b = RAND (-2, 2, 2, 3, 5, 7);
  AeTensor y = RAND (0, 0, 2, 3, 5, 7);
  AeVkTensor da = dev_of (&a), db = dev_of (&b), dy = dev_of (&y);

  ae_add (&y, &a, &b, &err);
  expect_ok (ae_vk_add (&ctx, &dy, &da, &db, &err), "vk add", &err);
  check ("add (2,3,5,7)", &dy, &y, 1e-6, 1e-7);
  ae_add_scaled (&y, &a, &b, 1.41f, &err);
  expect_ok (ae_vk_add_scaled (&ctx, &dy, &da, &db, 1.41f, &err), "vk add",
      &err);
  check ("add_scaled /1.41", &dy, &y, 1e-6, 1e-7);
  case_end ();
}

static void
test_unary (void)
{
  AeError err;
  AeTensor x = RAND (-6, 6, 3, 337), y = RAND (0, 0, 3, 337);
  AeVkTensor dx = dev_of (&x), dy = dev_of (&y);

  ae_silu (&y, &x, &err);
  expect_ok (ae_vk_silu (&ctx, &dy, &dx, &err), "vk silu", &err);
  check ("silu", &dy, &y, 1e-5, 1e-6);
  ae_gelu (&y, &x, AE_GELU_ERF, &err);
  expect_ok (ae_vk_gelu (&ctx, &dy, &dx, AE_GELU_ERF, &err), "vk gelu", &err);
  check ("gelu (erf)", &dy, &y, 1e-5, 1e-6);
  ae_gelu (&y, &x, AE_GELU_TANH, &err);
  expect_ok (ae_vk_gelu (&ctx, &dy, &dx, AE_GELU_TANH, &err), "vk gelu",
      &err);
  check ("gelu (tanh)", &dy, &y, 1e-5, 1e-6);
  ae_scale (&y, &x, 0.18215f, &err);
  expect_ok (ae_vk_scale (&ctx, &dy, &dx, 0.18215f, &err), "vk scale", &err);
  check ("scale", &dy, &y, 1e-6, 1e-7);
  ae_clamp (&y, &x, -1.0f, 1.0f, &err);
  expect_ok (ae_vk_clamp (&ctx, &dy, &dx, -1.0f, 1.0f, &err), "vk clamp",
      &err);
  check ("clamp", &dy, &y, 0, 0);
  /* in place, as the CPU op allows */
  ae_silu (&x, &x, &err);
  expect_ok (ae_vk_silu (&ctx, &dx, &dx, &err), "vk silu", &err);
  check ("silu in place", &dx, &x, 1e-5, 1e-6);
  case_end ();
}

static void
test_geglu (void)
{
  AeError err;
  AeTensor x = RAND (-3, 3, 3, 5, 26), y = RAND (0, 0, 3, 5, 13);
  AeVkTensor dx = dev_of (&x), dy = dev_of (&y);

  ae_geglu (&y, &x, &err);
  expect_ok (ae_vk_geglu (&ctx, &dy, &dx, &err), "vk geglu", &err);
  check ("geglu (3,5,2x13)", &dy, &y, 1e-5, 1e-6);
  case_end ();
}

static void
test_norms (void)
{
  AeError err;
  AeTensor x = RAND (-1, 3, 2, 12, 5, 7), y = RAND (0, 0, 2, 12, 5, 7);
  AeTensor g = RAND (0.5, 1.5, 12), b = RAND (-0.5, 0.5, 12);
  AeVkTensor dx = dev_of (&x), dy = dev_of (&y), dg = dev_of (&g),
      db = dev_of (&b);

  ae_group_norm (&y, &x, 4, 1e-6f, &g, &b, false, &err);
  expect_ok (ae_vk_group_norm (&ctx, &dy, &dx, 4, 1e-6f, &dg, &db, false,
          &err), "vk group_norm", &err);
  check ("group_norm G4 (2,12,5,7)", &dy, &y, 1e-5, 1e-6);
  ae_group_norm (&y, &x, 3, 1e-5f, &g, &b, true, &err);
  expect_ok (ae_vk_group_norm (&ctx, &dy, &dx, 3, 1e-5f, &dg, &db, true,
          &err), "vk group_norm", &err);
  check ("group_norm G3 + silu", &dy, &y, 1e-5, 1e-6);
  ae_group_norm (&y, &x, 12, 1e-5f, NULL, NULL, false, &err);
  expect_ok (ae_vk_group_norm (&ctx, &dy, &dx, 12, 1e-5f, NULL, NULL, false,
          &err), "vk group_norm", &err);
  check ("group_norm G12 no affine", &dy, &y, 1e-5, 1e-6);

  /* a group bigger than the workgroup (257 channels x 3 x 3 / 1) */
  AeTensor x2 = RAND (-1, 1, 1, 33, 17, 19), y2 = RAND (0, 0, 1, 33, 17, 19);
  AeVkTensor dx2 = dev_of (&x2), dy2 = dev_of (&y2);
  ae_group_norm (&y2, &x2, 3, 1e-5f, NULL, NULL, true, &err);
  expect_ok (ae_vk_group_norm (&ctx, &dy2, &dx2, 3, 1e-5f, NULL, NULL, true,
          &err), "vk group_norm", &err);
  check ("group_norm G3 (1,33,17,19)", &dy2, &y2, 1e-5, 1e-6);

  AeTensor xl = RAND (-2, 2, 3, 7, 45), yl = RAND (0, 0, 3, 7, 45);
  AeTensor gl = RAND (0.5, 1.5, 45), bl = RAND (-0.5, 0.5, 45);
  AeVkTensor dxl = dev_of (&xl), dyl = dev_of (&yl), dgl = dev_of (&gl),
      dbl = dev_of (&bl);
  ae_layer_norm (&yl, &xl, 1e-5f, &gl, &bl, &err);
  expect_ok (ae_vk_layer_norm (&ctx, &dyl, &dxl, 1e-5f, &dgl, &dbl, &err),
      "vk layer_norm", &err);
  check ("layer_norm (3,7,45)", &dyl, &yl, 1e-5, 1e-6);
  ae_layer_norm (&yl, &xl, 1e-5f, NULL, NULL, &err);
  expect_ok (ae_vk_layer_norm (&ctx, &dyl, &dxl, 1e-5f, NULL, NULL, &err),
      "vk layer_norm", &err);
  check ("layer_norm no affine", &dyl, &yl, 1e-5, 1e-6);
  case_end ();
}

static void
test_linear (void)
{
  AeError err;
  AeTensor x = RAND (-1, 1, 2, 37, 53), w = RAND (-0.3, 0.3, 29, 53);
  AeTensor b = RAND (-1, 1, 29), y = RAND (0, 0, 2, 37, 29);
  AeVkTensor dx = dev_of (&x), dy = dev_of (&y), dw = dev_of (&w),
      db = dev_of (&b);

  ae_linear (&y, &x, &w, &b, &err);
  expect_ok (ae_vk_linear (&ctx, &dy, &dx, &dw, &db, &err), "vk linear",
      &err);
  check ("linear 74x53 -> 29 + bias", &dy, &y, 1e-5, 1e-6);
  ae_linear (&y, &x, &w, NULL, &err);
  expect_ok (ae_vk_linear (&ctx, &dy, &dx, &dw, NULL, &err), "vk linear",
      &err);
  check ("linear no bias", &dy, &y, 1e-5, 1e-6);

  /* a shape mismatch is an error that names the tensor, not a crash */
  AeVkTensor bad = ae_vk_tensor_nd (dw.buf, 2, DIMS (53, 29));
  if (ae_vk_linear (&ctx, &dy, &dx, &bad, NULL, &err) != -1
      || !strstr (err.msg, "linear")) {
    printf ("FAIL linear: wrong w shape was accepted\n");
    failures++;
  } else {
    printf ("ok   linear rejects w (53,29): %s\n", err.msg);
  }
  case_end ();
}

static void
conv_case (const char *name, int64_t bn, int64_t cin, int64_t h, int64_t w,
    int64_t cout, int k, int stride, int pt, int pb, int pl, int pr,
    bool bias)
{
  AeError err;
  int64_t ho = ae_conv2d_out_size (h, k, stride, pt, pb);
  int64_t wo = ae_conv2d_out_size (w, k, stride, pl, pr);
  AeTensor x = RAND (-1, 1, bn, cin, h, w);
  AeTensor wt = RAND (-0.3, 0.3, cout, cin, k, k);
  AeTensor b = RAND (-1, 1, cout);
  AeTensor y = RAND (0, 0, bn, cout, ho, wo);
  AeVkTensor dx = dev_of (&x), dwt = dev_of (&wt), db = dev_of (&b),
      dy = dev_of (&y);

  if (ae_conv2d_pad (&y, &x, &wt, bias ? &b : NULL, stride, pt, pb, pl, pr,
          &arena, &err) < 0) {
    printf ("FAIL %s: cpu: %s\n", name, err.msg);
    failures++;
    return;
  }
  expect_ok (ae_vk_conv2d_pad (&ctx, &dy, &dx, &dwt, bias ? &db : NULL,
          stride, pt, pb, pl, pr, &err), name, &err);
  check (name, &dy, &y, 1e-5, 1e-6);
  case_end ();
}

static void
test_conv2d (void)
{
  conv_case ("conv 3x3 s1 p1 (2,5,9,11)", 2, 5, 9, 11, 7, 3, 1, 1, 1, 1, 1,
      true);
  conv_case ("conv 3x3 s2 p1 (1,6,13,10)", 1, 6, 13, 10, 35, 3, 2, 1, 1, 1,
      1, true);
  conv_case ("conv 1x1 s1 p0 (2,37,5,7)", 2, 37, 5, 7, 9, 1, 1, 0, 0, 0, 0,
      false);
  conv_case ("conv 3x3 s2 pad (0,1,0,1)", 1, 4, 9, 12, 5, 3, 2, 0, 1, 0, 1,
      true);
}

static void
attn_case (const char *name, int64_t bn, int64_t lq, int64_t lk, int heads,
    int64_t d, int64_t be, int64_t le)
{
  AeError err;
  int64_t hd = heads * d;
  AeTensor q = RAND (-1, 1, bn, lq, hd), k = RAND (-1, 1, bn, lk, hd);
  AeTensor v = RAND (-1, 1, bn, lk, hd), o = RAND (0, 0, bn, lq, hd);
  AeTensor ke, ve;
  AeVkTensor dq = dev_of (&q), dk = dev_of (&k), dv = dev_of (&v),
      dout = dev_of (&o), dke, dve;

  if (le > 0) {
    ke = RAND (-1, 1, be, le, hd);
    ve = RAND (-1, 1, be, le, hd);
    dke = dev_of (&ke);
    dve = dev_of (&ve);
  }
  if (ae_attention (&o, &q, &k, &v, le ? &ke : NULL, le ? &ve : NULL, heads,
          0.0f, &arena, &err) < 0) {
    printf ("FAIL %s: cpu: %s\n", name, err.msg);
    failures++;
    return;
  }
  expect_ok (ae_vk_attention (&ctx, &dout, &dq, &dk, &dv, le ? &dke : NULL,
          le ? &dve : NULL, heads, 0.0f, &err), name, &err);
  check (name, &dout, &o, 1e-5, 1e-5);
  case_end ();
}

/* Reference attention under CFG: element i uses the extra tokens only
 * when mask[i]; the CPU reference runs each element on its own. */
static void
attn_masked_case (const char *name, int64_t bn, int64_t lq, int64_t lk,
    int heads, int64_t d, int64_t le, const bool *mask)
{
  AeError err;
  int64_t hd = heads * d;
  AeTensor q = RAND (-1, 1, bn, lq, hd), k = RAND (-1, 1, bn, lk, hd);
  AeTensor v = RAND (-1, 1, bn, lk, hd), o = RAND (0, 0, bn, lq, hd);
  AeTensor ke = RAND (-1, 1, 1, le, hd), ve = RAND (-1, 1, 1, le, hd);
  AeVkTensor dq = dev_of (&q), dk = dev_of (&k), dv = dev_of (&v),
      dout = dev_of (&o), dke = dev_of (&ke), dve = dev_of (&ve);

  for (int64_t i = 0; i < bn; i++) {
    AeTensor qi = ae_tensor_3d (q.data + i * lq * hd, 1, lq, hd);
    AeTensor ki = ae_tensor_3d (k.data + i * lk * hd, 1, lk, hd);
    AeTensor vi = ae_tensor_3d (v.data + i * lk * hd, 1, lk, hd);
    AeTensor oi = ae_tensor_3d (o.data + i * lq * hd, 1, lq, hd);
    if (ae_attention (&oi, &qi, &ki, &vi, mask[i] ? &ke : NULL,
            mask[i] ? &ve : NULL, heads, 0.0f, &arena, &err) < 0) {
      printf ("FAIL %s: cpu: %s\n", name, err.msg);
      failures++;
      return;
    }
  }
  expect_ok (ae_vk_attention_masked (&ctx, &dout, &dq, &dk, &dv, &dke, &dve,
          mask, heads, 0.0f, &err), name, &err);
  check (name, &dout, &o, 1e-5, 1e-5);
  case_end ();
}

/* Weights exactly representable in f16 (normals, half subnormals, zero)
 * are stored packed (buf->half) and give the f32 results; one value that
 * is not keeps the whole tensor in f32. */
static void
test_f16_weights (void)
{
  AeError err;
  AeTensor x = RAND (-1, 1, 3, 5, 6, 7), y = RAND (0, 0, 3, 4, 6, 7);
  AeTensor w = RAND (-1, 1, 4, 5, 3, 3), xl = RAND (-1, 1, 2, 9, 45);
  AeTensor yl = RAND (0, 0, 2, 9, 4), w_odd = RAND (-1, 1, 4, 45);
  AeVkTensor dx = dev_of (&x), dy = dev_of (&y), dxl = dev_of (&xl),
      dyl = dev_of (&yl);
  AeVkBuffer *bw, *bodd;

  for (int64_t i = 0; i < ae_tensor_numel (&w); i++) {
    /* k / 1024 in [-1, 1): 11 significant bits at most */
    w.data[i] = floorf (w.data[i] * 1024.0f) / 1024.0f;
  }
  w.data[0] = 0x1p-24f;         /* smallest half subnormal */
  w.data[1] = -0x3p-20f;        /* a half subnormal */
  w.data[2] = 0.0f;
  w.data[3] = 65504.0f / 65536.0f;
  for (int64_t i = 0; i < ae_tensor_numel (&w_odd); i++)
    w_odd.data[i] = w.data[i % 16];
  w_odd.data[179] = 0.1f;       /* not an f16 value */
  bw = ae_vk_pool_matrix (&ctx, w.data, (size_t) ae_tensor_numel (&w), &err);
  bodd = ae_vk_pool_matrix (&ctx, w_odd.data,
      (size_t) ae_tensor_numel (&w_odd), &err);
  if (!bw || !bodd || !bw->half || bodd->half) {
    printf ("FAIL f16 weights: packed %d / %d (expected 1 / 0)\n",
        bw ? bw->half : -1, bodd ? bodd->half : -1);
    failures++;
    return;
  }
  printf ("ok   f16-exact conv weight packed (%zu bytes), other kept f32\n",
      bw->size);
  AeVkTensor dw = ae_vk_tensor_like (bw, &w), dodd = ae_vk_tensor_like (bodd,
      &w_odd);
  ae_conv2d (&y, &x, &w, NULL, 1, 1, &arena, &err);
  expect_ok (ae_vk_conv2d (&ctx, &dy, &dx, &dw, NULL, 1, 1, &err),
      "vk conv2d f16w", &err);
  check ("conv2d f16 weights 5->4", &dy, &y, 1e-5, 1e-6);
  ae_linear (&yl, &xl, &w_odd, NULL, &err);
  expect_ok (ae_vk_linear (&ctx, &dyl, &dxl, &dodd, NULL, &err),
      "vk linear f32 fallback", &err);
  check ("linear non-f16 weights (f32)", &dyl, &yl, 1e-5, 1e-6);
  /* an f16 buffer anywhere else is refused */
  if (ae_vk_silu (&ctx, &dw, &dw, &err) != -1 || !strstr (err.msg, "f16")) {
    printf ("FAIL silu accepted an f16 buffer\n");
    failures++;
  }
  ae_vk_pool_forget (&ctx, w.data);
  ae_vk_pool_forget (&ctx, w_odd.data);
  case_end ();
}

static void
test_attention (void)
{
  static const bool mask[40] = { true, false, false, true, [33] = true };

  attn_case ("attn self B2 L37 h2 d40", 2, 37, 37, 2, 40, 0, 0);
  attn_case ("attn cross Lq67 Lk13 h3 d8", 1, 67, 13, 3, 8, 0, 0);
  attn_case ("attn + shared extra Le11", 2, 19, 23, 2, 24, 1, 11);
  attn_case ("attn + per-batch extra", 2, 9, 5, 1, 16, 2, 7);
  attn_case ("attn d160 (max narrow)", 1, 5, 17, 1, 160, 0, 0);
  attn_case ("attn wide d161", 2, 7, 9, 1, 161, 0, 0);
  attn_case ("attn wide d512 L150 (VAE)", 1, 150, 150, 1, 512, 0, 0);
  attn_case ("attn wide h2 d300 + extra", 2, 11, 70, 2, 300, 1, 13);
  attn_masked_case ("attn masked extra B4", 4, 13, 9, 2, 24, 5, mask);
  attn_masked_case ("attn masked extra B40 (bit 33)", 40, 3, 4, 1, 8, 3,
      mask);
  attn_masked_case ("attn wide masked extra B3", 3, 5, 6, 1, 200, 7, mask);
}

static void
test_upsample_timestep (void)
{
  AeError err;
  AeTensor x = RAND (-1, 1, 2, 3, 5, 7), y = RAND (0, 0, 2, 3, 10, 14);
  AeVkTensor dx = dev_of (&x), dy = dev_of (&y);

  ae_upsample_nearest2x (&y, &x, &err);
  expect_ok (ae_vk_upsample_nearest2x (&ctx, &dy, &dx, &err), "vk upsample",
      &err);
  check ("upsample_nearest2x", &dy, &y, 0, 0);

  float ts[3] = { 0.0f, 500.5f, 999.0f };
  AeTensor t = ae_tensor_1d (ts, 3);
  AeVkTensor dt = dev_of (&t);
  AeTensor e = RAND (0, 0, 3, 33), e2 = RAND (0, 0, 3, 32);
  AeVkTensor de = dev_of (&e), de2 = dev_of (&e2);
  /* sin/cos of args up to ~1000: one ulp of exp moves the result ~1e-4 */
  ae_timestep_embedding (&e, ts, 3, true, 1.0f, 1.0f, 10000.0f, &err);
  expect_ok (ae_vk_timestep_embedding (&ctx, &de, &dt, true, 1.0f, 1.0f,
          10000.0f, &err), "vk timestep", &err);
  check ("timestep dim33 flip shift1", &de, &e, 1e-3, 1e-4);
  ae_timestep_embedding (&e2, ts, 3, false, 0.0f, 2.0f, 10000.0f, &err);
  expect_ok (ae_vk_timestep_embedding (&ctx, &de2, &dt, false, 0.0f, 2.0f,
          10000.0f, &err), "vk timestep", &err);
  check ("timestep dim32 scale2", &de2, &e2, 2e-3, 2e-4);
  case_end ();
}

static void
test_layout (void)
{
  AeError err;
  AeTensor x = RAND (-1, 1, 2, 5, 3, 7), nlc = RAND (0, 0, 2, 21, 5);
  AeTensor back = RAND (0, 0, 2, 5, 3, 7), cp = RAND (0, 0, 2, 105);
  AeTensor a2 = RAND (-1, 1, 2, 3, 3, 7), cat = RAND (0, 0, 2, 8, 3, 7);
  AeTensor vb = RAND (-1, 1, 2, 5), vc = RAND (-1, 1, 5);
  AeVkTensor dx = dev_of (&x), dnlc = dev_of (&nlc), dback = dev_of (&back),
      dcp = dev_of (&cp), da2 = dev_of (&a2), dcat = dev_of (&cat),
      dvb = dev_of (&vb), dvc = dev_of (&vc);

  ae_nchw_to_nlc (&nlc, &x, &err);
  expect_ok (ae_vk_nchw_to_nlc (&ctx, &dnlc, &dx, &err), "vk nchw_to_nlc",
      &err);
  check ("nchw_to_nlc (2,5,3,7)", &dnlc, &nlc, 0, 0);
  /* permute a different tensor back so the inverse is tested on its own */
  AeTensor nlc2 = RAND (-1, 1, 2, 21, 5);
  AeVkTensor dnlc2 = dev_of (&nlc2);
  ae_nlc_to_nchw (&back, &nlc2, &err);
  expect_ok (ae_vk_nlc_to_nchw (&ctx, &dback, &dnlc2, &err),
      "vk nlc_to_nchw", &err);
  check ("nlc_to_nchw (2,21,5)", &dback, &back, 0, 0);
  ae_copy (&cp, &x, &err);
  expect_ok (ae_vk_copy (&ctx, &dcp, &dx, &err), "vk copy", &err);
  check ("copy", &dcp, &cp, 0, 0);
  ae_concat_channels (&cat, &x, &a2, &err);
  expect_ok (ae_vk_concat_channels (&ctx, &dcat, &dx, &da2, &err),
      "vk concat", &err);
  check ("concat_channels 5+3", &dcat, &cat, 0, 0);
  ae_add_channel (&x, &vb, &err);
  expect_ok (ae_vk_add_channel (&ctx, &dx, &dvb, &err), "vk add_channel",
      &err);
  check ("add_channel (B,C)", &dx, &x, 0, 0);
  ae_add_channel (&x, &vc, &err);
  expect_ok (ae_vk_add_channel (&ctx, &dx, &dvc, &err), "vk add_channel",
      &err);
  check ("add_channel (C)", &dx, &x, 0, 0);
  case_end ();
}

/* Bad input is an error naming the op and the tensor, never a crash. */
static void
expect_error (int rc, const AeError *err, const char *what,
    const char *needle)
{
  if (rc != -1 || !strstr (err->msg, needle)) {
    printf ("FAIL %s: expected an error containing '%s'\n", what, needle);
    failures++;
  } else {
    printf ("ok   %s -> %s\n", what, err->msg);
  }
}

static void
test_errors (void)
{
  AeError err;
  AeTensor x = RAND (-1, 1, 1, 6, 4, 4), q = RAND (-1, 1, 1, 3, 1030);
  AeVkTensor dx = dev_of (&x), dq = dev_of (&q);
  AeVkTensor big = ae_vk_tensor_nd (dx.buf, 4, DIMS (1, 6, 40, 40));

  expect_error (ae_vk_group_norm (&ctx, &dx, &dx, 4, 1e-5f, NULL, NULL,
          false, &err), &err, "group_norm 6 channels / 4 groups",
      "not divisible");
  expect_error (ae_vk_silu (&ctx, &big, &big, &err), &err,
      "silu on a too-small buffer", "buffer holds");
  expect_error (ae_vk_attention (&ctx, &dq, &dq, &dq, &dq, NULL, NULL, 1, 0,
          &err), &err, "attention head dim 1030", "head dim");
  expect_error (ae_vk_conv2d (&ctx, &dx, &dx, &dx, NULL, 1, 1, &err), &err,
      "conv2d with a mismatched y", "conv2d");
  case_end ();
}

/* Several dispatches in one submit (barriers between them): a feed-forward
 * piece linear -> GEGLU -> linear -> residual add. */
static void
test_batch (void)
{
  AeError err;
  AeTensor x = RAND (-1, 1, 1, 21, 24), w1 = RAND (-0.3, 0.3, 64, 24);
  AeTensor b1 = RAND (-0.1, 0.1, 64), w2 = RAND (-0.3, 0.3, 24, 32);
  AeTensor h = RAND (0, 0, 1, 21, 64), g = RAND (0, 0, 1, 21, 32);
  AeTensor o = RAND (0, 0, 1, 21, 24), r = RAND (0, 0, 1, 21, 24);
  AeVkTensor dx = dev_of (&x), dh = dev_of (&h), dg = dev_of (&g),
      dout = dev_of (&o), dr = dev_of (&r);
  AeVkBuffer *wb1 = ae_vk_pool_weight (&ctx, w1.data, 64 * 24, &err);
  AeVkBuffer *wb1_again = ae_vk_pool_weight (&ctx, w1.data, 64 * 24, &err);
  AeVkBuffer *bb1 = ae_vk_pool_weight (&ctx, b1.data, 64, &err);
  AeVkBuffer *wb2 = ae_vk_pool_weight (&ctx, w2.data, 24 * 32, &err);
  AeVkTensor dw1 = ae_vk_tensor_like (wb1, &w1),
      db1 = ae_vk_tensor_like (bb1, &b1), dw2 = ae_vk_tensor_like (wb2, &w2);

  if (!wb1 || wb1 != wb1_again) {
    printf ("FAIL weight pool: second upload of the same weight made a new "
        "buffer\n");
    failures++;
  }
  ae_linear (&h, &x, &w1, &b1, &err);
  ae_geglu (&g, &h, &err);
  ae_linear (&o, &g, &w2, NULL, &err);
  ae_add (&r, &o, &x, &err);
  expect_ok (ae_vk_begin (&ctx, &err), "begin", &err);
  expect_ok (ae_vk_linear (&ctx, &dh, &dx, &dw1, &db1, &err), "linear", &err);
  expect_ok (ae_vk_geglu (&ctx, &dg, &dh, &err), "geglu", &err);
  expect_ok (ae_vk_linear (&ctx, &dout, &dg, &dw2, NULL, &err), "linear",
      &err);
  expect_ok (ae_vk_add (&ctx, &dr, &dout, &dx, &err), "add", &err);
  check ("batch: ff + residual", &dr, &r, 1e-5, 1e-6);

  /* activation buffers are reused once released */
  AeVkBuffer *first = held[0];
  size_t size = first->size;
  case_end ();
  AeVkBuffer *again = ae_vk_pool_acquire (&ctx, size, &err);
  if (again != first) {
    printf ("FAIL pool: released buffer not reused\n");
    failures++;
  }
  ae_vk_pool_release (&ctx, again);
}

/* --no-subgroup: portable shader variants even where the device has
 * subgroup arithmetic; --tiled: the shared-memory matmul even on a CPU
 * device (which uses matmul_direct.comp otherwise); so every path is
 * tested. */
int
main (int argc, char **argv)
{
  AeError err;
  unsigned flags = 0;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--no-subgroup") == 0)
      flags |= AE_VK_FLAG_NO_SUBGROUP;
    else if (strcmp (argv[i], "--tiled") == 0)
      flags |= AE_VK_FLAG_TILED;
  }
  if (ae_vk_context_init_flags (&ctx, flags, &err) < 0) {
    printf ("SKIP: no usable Vulkan device: %s\n", err.msg);
    ae_vk_context_free (&ctx);
    return 77;
  }
  printf ("device: %s (%s), subgroup %u (arithmetic %s, %s), f16 %s\n",
      ae_vk_device_name (&ctx), ae_vk_device_type_name (&ctx),
      ctx.subgroup_size, ctx.has_subgroup_arith ? "yes" : "no",
      ctx.use_subgroup ? "subgroup variants in use" : "portable variants",
      ctx.has_f16 ? "yes" : "no");
  printf ("matmul, conv2d: %s\n", ctx.use_direct ? "the _direct shaders "
      "(no shared memory)" : "tiled in shared memory");
  ae_arena_init (&arena, 0, &err);

  test_add ();
  test_unary ();
  test_geglu ();
  test_norms ();
  test_linear ();
  test_f16_weights ();
  test_conv2d ();
  test_attention ();
  test_upsample_timestep ();
  test_layout ();
  test_errors ();
  test_batch ();

  ae_arena_clear (&arena);
  ae_vk_context_free (&ctx);
  printf ("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
