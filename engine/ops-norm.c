/* Group norm, layer norm and the activations. Statistics are accumulated
 * in double around the mean (two passes), so large offsets do not lose the
 * variance the way E[x^2] - E[x]^2 in float32 would. */
#include "ops-internal.h"

int
ae_group_norm (AeTensor * y, const AeTensor * x, int groups, float eps,
    const AeTensor * gamma, const AeTensor * beta, bool silu, AeError * err)
{
  int64_t batch, ch, spatial, cpg;
  const float *g = gamma ? gamma->data : NULL;
  const float *bt = beta ? beta->data : NULL;

  if (x->ndim < 2)
    return ae_ops_shape_error (err, "group_norm", "input", x);
  batch = x->shape[0];
  ch = x->shape[1];
  if (groups <= 0 || ch % groups != 0)
    return ae_error (err, "group_norm: %lld channels not divisible by %d "
        "groups", (long long) ch, groups);
  if (!ae_tensor_same_shape (y, x))
    return ae_ops_shape_error (err, "group_norm", "output", y);
  if ((gamma && ae_tensor_numel (gamma) != ch)
      || (beta && ae_tensor_numel (beta) != ch))
    return ae_ops_shape_error (err, "group_norm", "gamma/beta",
        gamma ? gamma : beta);
  spatial = ch ? ae_tensor_numel (x) / (batch * ch) : 0;
  cpg = ch / groups;

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bg = 0; bg < batch * groups; bg++) {
    int64_t n = cpg * spatial;
    const float *xs = x->data + bg * n;
    float *ys = y->data + bg * n;
    int64_t c0 = (bg % groups) * cpg;
    double sum = 0.0, sq = 0.0;
    float mean, rstd;

    /* omp simd: vectorized (reassociated) double reductions. */
#pragma omp simd reduction(+:sum)
    for (int64_t i = 0; i < n; i++)
      sum += xs[i];
    mean = (float) (sum / (double) n);
#pragma omp simd reduction(+:sq)
    for (int64_t i = 0; i < n; i++) {
      double d = (double) xs[i] - (double) mean;
      sq += d * d;
    }
    rstd = (float) (1.0 / sqrt (sq / (double) n + (double) eps));
    for (int64_t c = 0; c < cpg; c++) {
      float a = rstd * (g ? g[c0 + c] : 1.0f);
      float b = bt ? bt[c0 + c] : 0.0f;
      const float *xc = xs + c * spatial;
      float *yc = ys + c * spatial;
      if (silu) {
        for (int64_t i = 0; i < spatial; i++)
          yc[i] = ae_silu1 ((xc[i] - mean) * a + b);
      } else {
        for (int64_t i = 0; i < spatial; i++)
          yc[i] = (xc[i] - mean) * a + b;
      }
    }
  }
  return 0;
}

int
ae_layer_norm (AeTensor * y, const AeTensor * x, float eps,
    const AeTensor * gamma, const AeTensor * beta, AeError * err)
{
  int64_t ch, rows;
  const float *g = gamma ? gamma->data : NULL;
  const float *bt = beta ? beta->data : NULL;

  if (x->ndim < 1 || !ae_tensor_same_shape (y, x))
    return ae_ops_shape_error (err, "layer_norm", "output", y);
  ch = x->shape[x->ndim - 1];
  if ((gamma && ae_tensor_numel (gamma) != ch)
      || (beta && ae_tensor_numel (beta) != ch))
    return ae_ops_shape_error (err, "layer_norm", "gamma/beta",
        gamma ? gamma : beta);
  rows = ch ? ae_tensor_numel (x) / ch : 0;

#pragma omp parallel for schedule(static) if (rows * ch > 16384)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x->data + r * ch;
    float *yr = y->data + r * ch;
    double sum = 0.0, sq = 0.0;
    float mean, rstd;

#pragma omp simd reduction(+:sum)
    for (int64_t i = 0; i < ch; i++)
      sum += xr[i];
    mean = (float) (sum / (double) ch);
#pragma omp simd reduction(+:sq)
    for (int64_t i = 0; i < ch; i++) {
      double d = (double) xr[i] - (double) mean;
      sq += d * d;
    }
    rstd = (float) (1.0 / sqrt (sq / (double) ch + (double) eps));
    for (int64_t i = 0; i < ch; i++)
      yr[i] = (xr[i] - mean) * rstd * (g ? g[i] : 1.0f) + (bt ? bt[i] : 0.0f);
  }
  return 0;
}

int
ae_silu (AeTensor * y, const AeTensor * x, AeError * err)
{
  int64_t n = ae_tensor_numel (x);
  const float *xd = x->data;
  float *yd = y->data;

  if (ae_tensor_numel (y) != n)
    return ae_ops_shape_error (err, "silu", "output", y);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++)
    yd[i] = ae_silu1 (xd[i]);
  return 0;
}

static inline float
gelu_erf (float v)
{
  return 0.5f * v * (1.0f + ae_erf_fast (v * 0.70710678118654752f));
}

static inline float
gelu_tanh (float v)
{
  const float k = 0.79788456080286536f;     /* sqrt(2/pi) */
  return 0.5f * v * (1.0f + tanhf (k * (v + 0.044715f * v * v * v)));
}

int
ae_gelu (AeTensor * y, const AeTensor * x, AeGeluKind kind, AeError * err)
{
  int64_t n = ae_tensor_numel (x);
  const float *xd = x->data;
  float *yd = y->data;

  if (ae_tensor_numel (y) != n)
    return ae_ops_shape_error (err, "gelu", "output", y);
  if (kind == AE_GELU_TANH) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++)
      yd[i] = gelu_tanh (xd[i]);
  } else {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++)
      yd[i] = gelu_erf (xd[i]);
  }
  return 0;
}

int
ae_geglu (AeTensor * y, const AeTensor * x, AeError * err)
{
  int64_t two_h, h, rows;

  if (x->ndim < 1 || x->shape[x->ndim - 1] % 2 != 0)
    return ae_ops_shape_error (err, "geglu", "input", x);
  two_h = x->shape[x->ndim - 1];
  h = two_h / 2;
  if (y->ndim != x->ndim || y->shape[y->ndim - 1] != h)
    return ae_ops_shape_error (err, "geglu", "output", y);
  for (int i = 0; i + 1 < x->ndim; i++)
    if (y->shape[i] != x->shape[i])
      return ae_ops_shape_error (err, "geglu", "output", y);
  rows = two_h ? ae_tensor_numel (x) / two_h : 0;

#pragma omp parallel for schedule(static) if (rows * h > 32768)
  for (int64_t r = 0; r < rows; r++) {
    const float *hidden = x->data + r * two_h;
    const float *gate = hidden + h;
    float *yr = y->data + r * h;
    for (int64_t i = 0; i < h; i++)
      yr[i] = hidden[i] * gelu_erf (gate[i]);
  }
  return 0;
}
