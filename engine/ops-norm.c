/* Group norm, layer norm and the activations. Statistics are accumulated
 * in double around the mean (two passes), so large offsets do not lose the
 * variance the way E[x^2] - E[x]^2 in float32 would. */
#include "ops-internal.h"

/* Mean and 1 / sqrt(variance + eps) of x[0..n). omp simd: vectorized
 * (reassociated) double reductions, no OpenMP runtime. */
static void
mean_rstd (const float *x, int64_t n, float eps, float *mean, float *rstd)
{
  double sum = 0.0, sq = 0.0, m;

#pragma omp simd reduction(+:sum)
  for (int64_t i = 0; i < n; i++)
    sum += x[i];
  m = (double) (float) (sum / (double) n);
#pragma omp simd reduction(+:sq)
  for (int64_t i = 0; i < n; i++) {
    double d = (double) x[i] - m;
    sq += d * d;
  }
  *mean = (float) m;
  *rstd = (float) (1.0 / sqrt (sq / (double) n + (double) eps));
}

typedef struct {
  const float *x, *g, *bt;
  float *y;
  int64_t groups, cpg, spatial;
  float eps;
  bool silu;
} GroupNormCtx;

/* Normalizes groups bg0 .. bg1-1 (over the batch too). */
static void
group_norm_groups (void *ctx, int64_t bg0, int64_t bg1, int thread)
{
  const GroupNormCtx *c = ctx;
  int64_t cpg = c->cpg, spatial = c->spatial, n = cpg * spatial;

  for (int64_t bg = bg0; bg < bg1; bg++) {
    const float *xs = c->x + bg * n;
    float *ys = c->y + bg * n;
    int64_t c0 = (bg % c->groups) * cpg;
    float mean, rstd;

    mean_rstd (xs, n, c->eps, &mean, &rstd);
    for (int64_t ci = 0; ci < cpg; ci++) {
      float a = rstd * (c->g ? c->g[c0 + ci] : 1.0f);
      float b = c->bt ? c->bt[c0 + ci] : 0.0f;
      const float *xc = xs + ci * spatial;
      float *yc = ys + ci * spatial;
      if (c->silu) {
        for (int64_t i = 0; i < spatial; i++)
          yc[i] = ae_silu1 ((xc[i] - mean) * a + b);
      } else {
        for (int64_t i = 0; i < spatial; i++)
          yc[i] = (xc[i] - mean) * a + b;
      }
    }
  }
}

int
ae_group_norm (AeTensor * y, const AeTensor * x, int groups, float eps,
    const AeTensor * gamma, const AeTensor * beta, bool silu, AeError * err)
{
  int64_t batch, ch, spatial, cpg;
  const float *g = gamma ? gamma->data : NULL;
  const float *bt = beta ? beta->data : NULL;
  GroupNormCtx c;

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

  c = (GroupNormCtx) { x->data, g, bt, y->data, groups, cpg, spatial, eps,
    silu };
  ae_parallel_for (batch * groups, 1, 0, group_norm_groups, &c);
  return 0;
}

typedef struct {
  const float *x, *g, *bt;
  float *y;
  int64_t ch;
  float eps;
} LayerNormCtx;

static void
layer_norm_rows (void *ctx, int64_t r0, int64_t r1, int thread)
{
  const LayerNormCtx *c = ctx;
  int64_t ch = c->ch;
  const float *g = c->g, *bt = c->bt;

  for (int64_t r = r0; r < r1; r++) {
    const float *xr = c->x + r * ch;
    float *yr = c->y + r * ch;
    float mean, rstd;

    mean_rstd (xr, ch, c->eps, &mean, &rstd);
    for (int64_t i = 0; i < ch; i++)
      yr[i] = (xr[i] - mean) * rstd * (g ? g[i] : 1.0f) + (bt ? bt[i] : 0.0f);
  }
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

  ae_parallel_for (rows, 0, ae_par_if (rows * ch, 16384), layer_norm_rows,
      &(LayerNormCtx) { x->data, g, bt, y->data, ch, eps });
  return 0;
}

/* Element-wise loops over n floats; below this they run inline. */
#define ELEMENTWISE_MIN 65536

typedef struct {
  const float *x;
  float *y;
} UnaryCtx;

static void
silu_range (void *ctx, int64_t i0, int64_t i1, int thread)
{
  const UnaryCtx *c = ctx;

  for (int64_t i = i0; i < i1; i++)
    c->y[i] = ae_silu1 (c->x[i]);
}

int
ae_silu (AeTensor * y, const AeTensor * x, AeError * err)
{
  int64_t n = ae_tensor_numel (x);
  const float *xd = x->data;
  float *yd = y->data;

  if (ae_tensor_numel (y) != n)
    return ae_ops_shape_error (err, "silu", "output", y);
  ae_parallel_for (n, 0, ae_par_if (n, ELEMENTWISE_MIN), silu_range,
      &(UnaryCtx) { xd, yd });
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

static void
gelu_tanh_range (void *ctx, int64_t i0, int64_t i1, int thread)
{
  const UnaryCtx *c = ctx;

  for (int64_t i = i0; i < i1; i++)
    c->y[i] = gelu_tanh (c->x[i]);
}

static void
gelu_erf_range (void *ctx, int64_t i0, int64_t i1, int thread)
{
  const UnaryCtx *c = ctx;

  for (int64_t i = i0; i < i1; i++)
    c->y[i] = gelu_erf (c->x[i]);
}

int
ae_gelu (AeTensor * y, const AeTensor * x, AeGeluKind kind, AeError * err)
{
  int64_t n = ae_tensor_numel (x);
  const float *xd = x->data;
  float *yd = y->data;

  if (ae_tensor_numel (y) != n)
    return ae_ops_shape_error (err, "gelu", "output", y);
  ae_parallel_for (n, 0, ae_par_if (n, ELEMENTWISE_MIN),
      kind == AE_GELU_TANH ? gelu_tanh_range : gelu_erf_range,
      &(UnaryCtx) { xd, yd });
  return 0;
}

typedef struct {
  const float *x;
  float *y;
  int64_t h;
} GegluCtx;

static void
geglu_rows (void *ctx, int64_t r0, int64_t r1, int thread)
{
  const GegluCtx *c = ctx;
  int64_t h = c->h;

  for (int64_t r = r0; r < r1; r++) {
    const float *hidden = c->x + r * 2 * h;
    const float *gate = hidden + h;
    float *yr = c->y + r * h;
    for (int64_t i = 0; i < h; i++)
      yr[i] = hidden[i] * gelu_erf (gate[i]);
  }
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

  ae_parallel_for (rows, 0, ae_par_if (rows * h, 32768), geglu_rows,
      &(GegluCtx) { x->data, y->data, h });
  return 0;
}
