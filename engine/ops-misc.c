/* Resampling, timestep embedding, element-wise and layout ops, and the
 * comparison used by tests and tools. */
#include "ops-internal.h"

typedef struct {
  const float *x;
  float *y;
  int64_t h, w;
} UpsampleCtx;

static void
upsample_planes (void *ctx, int64_t p0, int64_t p1, int thread)
{
  const UpsampleCtx *c = ctx;
  int64_t h = c->h, w = c->w;

  for (int64_t p = p0; p < p1; p++) {
    const float *xp = c->x + p * h * w;
    float *yp = c->y + p * 4 * h * w;
    for (int64_t iy = 0; iy < h; iy++) {
      float *row = yp + 2 * iy * 2 * w;
      for (int64_t ix = 0; ix < w; ix++) {
        row[2 * ix] = xp[iy * w + ix];
        row[2 * ix + 1] = xp[iy * w + ix];
      }
      memcpy (row + 2 * w, row, (size_t) (2 * w) * sizeof (float));
    }
  }
}

int
ae_upsample_nearest2x (AeTensor * y, const AeTensor * x, AeError * err)
{
  int64_t planes, h, w;
  UpsampleCtx c;

  if (x->ndim != 4)
    return ae_ops_shape_error (err, "upsample_nearest2x", "input", x);
  h = x->shape[2];
  w = x->shape[3];
  if (y->ndim != 4 || y->shape[0] != x->shape[0]
      || y->shape[1] != x->shape[1] || y->shape[2] != 2 * h
      || y->shape[3] != 2 * w)
    return ae_ops_shape_error (err, "upsample_nearest2x", "output", y);
  planes = x->shape[0] * x->shape[1];
  c.x = x->data;
  c.y = y->data;
  c.h = h;
  c.w = w;
  ae_parallel_for (planes, 0, 0, upsample_planes, &c);
  return 0;
}

int
ae_timestep_embedding (AeTensor * y, const float *timesteps, int64_t n,
    bool flip_sin_to_cos, float freq_shift, float scale, float max_period,
    AeError * err)
{
  int64_t dim, half;

  if (y->ndim != 2 || y->shape[0] != n)
    return ae_ops_shape_error (err, "timestep_embedding", "output", y);
  dim = y->shape[1];
  half = dim / 2;
  if (half > 0 && (float) half - freq_shift == 0.0f)
    return ae_error (err, "timestep_embedding: half dim equals freq_shift");

  for (int64_t r = 0; r < n; r++) {
    float *yr = y->data + r * dim;
    float *first = yr, *second = yr + half;
    if (flip_sin_to_cos) {
      /* diffusers: cat([sin, cos]) then swap halves -> [cos, sin]. */
      first = yr + half;
      second = yr;
    }
    for (int64_t i = 0; i < half; i++) {
      /* Same float32 steps as torch: exponent = -ln(max_period) * i,
       * divided by (half - shift), exp, times t, times scale. */
      float exponent = -logf (max_period) * (float) i;
      float arg;
      exponent = exponent / ((float) half - freq_shift);
      arg = timesteps[r] * expf (exponent);
      arg = scale * arg;
      first[i] = sinf (arg);
      second[i] = cosf (arg);
    }
    if (dim % 2)
      yr[dim - 1] = 0.0f;
  }
  return 0;
}

/* Element-wise loops over n floats; below this they run inline. */
#define ELEMENTWISE_MIN 65536

typedef struct {
  const float *a, *b;
  float *y;
  float s;
} ElemCtx;

static void
add_range (void *ctx, int64_t i0, int64_t i1, int thread)
{
  const ElemCtx *c = ctx;

  for (int64_t i = i0; i < i1; i++)
    c->y[i] = c->a[i] + c->b[i];
}

static void
scale_range (void *ctx, int64_t i0, int64_t i1, int thread)
{
  const ElemCtx *c = ctx;

  for (int64_t i = i0; i < i1; i++)
    c->y[i] = c->a[i] * c->s;
}

static void
add_div_range (void *ctx, int64_t i0, int64_t i1, int thread)
{
  const ElemCtx *c = ctx;

  for (int64_t i = i0; i < i1; i++)
    c->y[i] = (c->a[i] + c->b[i]) / c->s;
}

int
ae_add (AeTensor * y, const AeTensor * a, const AeTensor * b, AeError * err)
{
  int64_t n = ae_tensor_numel (a);
  const float *ad = a->data, *bd = b->data;
  float *yd = y->data;

  if (ae_tensor_numel (b) != n || ae_tensor_numel (y) != n)
    return ae_ops_shape_error (err, "add", "operand", b);
  ae_parallel_for (n, 0, ae_par_if (n, ELEMENTWISE_MIN), add_range,
      &(ElemCtx) { ad, bd, yd, 0.0f });
  return 0;
}

int
ae_scale (AeTensor * y, const AeTensor * a, float s, AeError * err)
{
  int64_t n = ae_tensor_numel (a);
  const float *ad = a->data;
  float *yd = y->data;

  if (ae_tensor_numel (y) != n)
    return ae_ops_shape_error (err, "scale", "output", y);
  ae_parallel_for (n, 0, ae_par_if (n, ELEMENTWISE_MIN), scale_range,
      &(ElemCtx) { ad, NULL, yd, s });
  return 0;
}

int
ae_add_scaled (AeTensor * y, const AeTensor * a, const AeTensor * b,
    float output_scale_factor, AeError * err)
{
  int64_t n = ae_tensor_numel (a);
  const float *ad = a->data, *bd = b->data;
  float *yd = y->data;
  float s = output_scale_factor;

  if (ae_tensor_numel (b) != n || ae_tensor_numel (y) != n)
    return ae_ops_shape_error (err, "add_scaled", "operand", b);
  if (s == 1.0f)
    return ae_add (y, a, b, err);
  ae_parallel_for (n, 0, ae_par_if (n, ELEMENTWISE_MIN), add_div_range,
      &(ElemCtx) { ad, bd, yd, s });
  return 0;
}

typedef struct {
  float *x;
  const float *v;
  int64_t ch, inner;
  bool per_batch;
} AddChannelCtx;

static void
add_channel_planes (void *ctx, int64_t bc0, int64_t bc1, int thread)
{
  const AddChannelCtx *c = ctx;

  for (int64_t bc = bc0; bc < bc1; bc++) {
    float add = c->per_batch ? c->v[bc] : c->v[bc % c->ch];
    float *xp = c->x + bc * c->inner;
    for (int64_t i = 0; i < c->inner; i++)
      xp[i] += add;
  }
}

int
ae_add_channel (AeTensor * x, const AeTensor * v, AeError * err)
{
  int64_t batch, ch, inner;
  bool per_batch;

  if (x->ndim < 2)
    return ae_ops_shape_error (err, "add_channel", "input", x);
  batch = x->shape[0];
  ch = x->shape[1];
  if (v->ndim == 2 && v->shape[0] == batch && v->shape[1] == ch)
    per_batch = true;
  else if (v->ndim == 1 && v->shape[0] == ch)
    per_batch = false;
  else
    return ae_ops_shape_error (err, "add_channel", "vector", v);
  inner = ch ? ae_tensor_numel (x) / (batch * ch) : 0;
  ae_parallel_for (batch * ch, 0, ae_par_if (batch * ch * inner,
          ELEMENTWISE_MIN), add_channel_planes,
      &(AddChannelCtx) { x->data, v->data, ch, inner, per_batch });
  return 0;
}

int
ae_clamp (AeTensor * y, const AeTensor * x, float lo, float hi,
    AeError * err)
{
  int64_t n = ae_tensor_numel (x);

  if (ae_tensor_numel (y) != n)
    return ae_ops_shape_error (err, "clamp", "output", y);
  for (int64_t i = 0; i < n; i++) {
    float v = x->data[i];
    y->data[i] = v < lo ? lo : (v > hi ? hi : v);
  }
  return 0;
}

int
ae_concat_channels (AeTensor * y, const AeTensor * a, const AeTensor * b,
    AeError * err)
{
  int64_t batch, ca, cb, inner;

  if (a->ndim < 2 || b->ndim != a->ndim || b->shape[0] != a->shape[0])
    return ae_ops_shape_error (err, "concat_channels", "second input", b);
  for (int i = 2; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return ae_ops_shape_error (err, "concat_channels", "second input", b);
  batch = a->shape[0];
  ca = a->shape[1];
  cb = b->shape[1];
  if (y->ndim != a->ndim || y->shape[0] != batch || y->shape[1] != ca + cb)
    return ae_ops_shape_error (err, "concat_channels", "output", y);
  for (int i = 2; i < a->ndim; i++)
    if (y->shape[i] != a->shape[i])
      return ae_ops_shape_error (err, "concat_channels", "output", y);
  inner = 1;
  for (int i = 2; i < a->ndim; i++)
    inner *= a->shape[i];
  for (int64_t bi = 0; bi < batch; bi++) {
    float *yb = y->data + bi * (ca + cb) * inner;
    memcpy (yb, a->data + bi * ca * inner, (size_t) (ca * inner) *
        sizeof (float));
    memcpy (yb + ca * inner, b->data + bi * cb * inner,
        (size_t) (cb * inner) * sizeof (float));
  }
  return 0;
}

int
ae_copy (AeTensor * y, const AeTensor * x, AeError * err)
{
  int64_t n = ae_tensor_numel (x);

  if (ae_tensor_numel (y) != n)
    return ae_ops_shape_error (err, "copy", "output", y);
  if (y->data != x->data)
    memmove (y->data, x->data, (size_t) n * sizeof (float));
  return 0;
}

/* Blocked transpose of one (rows x cols) plane so both sides stay in
 * cache lines. */
static void
transpose_plane (float *dst, const float *src, int64_t rows, int64_t cols)
{
  const int64_t t = 32;

  for (int64_t r0 = 0; r0 < rows; r0 += t)
    for (int64_t c0 = 0; c0 < cols; c0 += t) {
      int64_t r1 = r0 + t < rows ? r0 + t : rows;
      int64_t c1 = c0 + t < cols ? c0 + t : cols;
      for (int64_t r = r0; r < r1; r++)
        for (int64_t c = c0; c < c1; c++)
          dst[c * rows + r] = src[r * cols + c];
    }
}

typedef struct {
  float *y;
  const float *x;
  int64_t rows, cols;
} TransposeCtx;

static void
transpose_planes (void *ctx, int64_t b0, int64_t b1, int thread)
{
  const TransposeCtx *c = ctx;
  int64_t plane = c->rows * c->cols;

  for (int64_t bi = b0; bi < b1; bi++)
    transpose_plane (c->y + bi * plane, c->x + bi * plane, c->rows, c->cols);
}

static int
transpose_batched (AeTensor * y, const AeTensor * x, int64_t batch,
    int64_t rows, int64_t cols)
{
  ae_parallel_for (batch, 0, 0, transpose_planes,
      &(TransposeCtx) { y->data, x->data, rows, cols });
  return 0;
}

int
ae_nchw_to_nlc (AeTensor * y, const AeTensor * x, AeError * err)
{
  int64_t batch, ch, hw;

  if (x->ndim != 4)
    return ae_ops_shape_error (err, "nchw_to_nlc", "input", x);
  batch = x->shape[0];
  ch = x->shape[1];
  hw = x->shape[2] * x->shape[3];
  if (y->ndim != 3 || y->shape[0] != batch || y->shape[1] != hw
      || y->shape[2] != ch)
    return ae_ops_shape_error (err, "nchw_to_nlc", "output", y);
  return transpose_batched (y, x, batch, ch, hw);
}

int
ae_nlc_to_nchw (AeTensor * y, const AeTensor * x, AeError * err)
{
  int64_t batch, ch, hw;

  if (y->ndim != 4)
    return ae_ops_shape_error (err, "nlc_to_nchw", "output", y);
  batch = y->shape[0];
  ch = y->shape[1];
  hw = y->shape[2] * y->shape[3];
  if (x->ndim != 3 || x->shape[0] != batch || x->shape[1] != hw
      || x->shape[2] != ch)
    return ae_ops_shape_error (err, "nlc_to_nchw", "input", x);
  return transpose_batched (y, x, batch, hw, ch);
}

int
ae_compare (const AeTensor * a, const AeTensor * b, double *max_abs,
    double *rel_l2, AeError * err)
{
  int64_t n = ae_tensor_numel (a);
  double m = 0.0, diff2 = 0.0, ref2 = 0.0;

  if (ae_tensor_numel (b) != n)
    return ae_ops_shape_error (err, "compare", "reference", b);
  for (int64_t i = 0; i < n; i++) {
    double d = (double) a->data[i] - (double) b->data[i];
    double ad = fabs (d);
    if (!(ad <= m))             /* also catches NaN */
      m = isnan (ad) ? INFINITY : ad;
    diff2 += d * d;
    ref2 += (double) b->data[i] * (double) b->data[i];
  }
  *max_abs = m;
  *rel_l2 = ref2 > 0.0 ? sqrt (diff2 / ref2) : sqrt (diff2);
  if (isnan (*rel_l2))
    *rel_l2 = INFINITY;
  return 0;
}
