/* sgemm, linear and conv2d (im2col in cache-sized column chunks + OpenBLAS
 * sgemm). */
#include <stdio.h>

#include <cblas.h>

#include "ops-internal.h"

/* Column chunk of the im2col matrix: K x chunk floats stay within this
 * budget so the chunk is still in cache when sgemm reads it. */
#ifndef AE_SGEMM_BLOCKS_PER_THREAD
#define AE_SGEMM_BLOCKS_PER_THREAD 4
#endif

#ifndef AE_IM2COL_BUDGET
#define AE_IM2COL_BUDGET (4u * 1024u * 1024u)
#endif

int
ae_ops_shape_error (AeError * err, const char *op, const char *what,
    const AeTensor * t)
{
  char s[128];

  return ae_error (err, "%s: unexpected shape of %s %s", op, what,
      ae_shape_str (t->ndim, t->shape, s, sizeof s));
}

static void
sgemm_1 (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
    float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
    float beta, float *c, int64_t ldc)
{
  cblas_sgemm (CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
      trans_b ? CblasTrans : CblasNoTrans, (blasint) m, (blasint) n,
      (blasint) k, alpha, a, (blasint) lda, b, (blasint) ldb, beta, c,
      (blasint) ldc);
}

typedef struct {
  bool trans_a, trans_b, split_m;
  int64_t m, n, k, lda, ldb, ldc, len, step;
  float alpha, beta;
  const float *a, *b;
  float *c;
} SgemmCtx;

/* Blocks blk0 .. blk1-1 of C, `step` rows (split_m) or columns wide. */
static void
sgemm_blocks (void *ctx, int64_t blk0, int64_t blk1, int thread)
{
  const SgemmCtx *g = ctx;

  for (int64_t blk = blk0; blk < blk1; blk++) {
    int64_t s0 = blk * g->step;
    int64_t sn = g->len - s0 < g->step ? g->len - s0 : g->step;
    if (g->split_m)
      sgemm_1 (g->trans_a, g->trans_b, sn, g->n, g->k, g->alpha,
          g->a + (g->trans_a ? s0 : s0 * g->lda), g->lda, g->b, g->ldb,
          g->beta, g->c + s0 * g->ldc, g->ldc);
    else
      sgemm_1 (g->trans_a, g->trans_b, g->m, sn, g->k, g->alpha, g->a,
          g->lda, g->b + (g->trans_b ? s0 * g->ldb : s0), g->ldb, g->beta,
          g->c + s0, g->ldc);
  }
}

/* OpenBLAS runs single-threaded (see threads.c); outside a parallel loop
 * a large product is split into blocks of C handed to the threads, along
 * M when it is the larger side, else along N. Inside a parallel loop
 * (attention tiles, conv chunks) the call runs as is on the calling
 * thread. */
void
ae_sgemm (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
    float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
    float beta, float *c, int64_t ldc)
{
  int nthreads = ae_threads_count ();
  bool split_m;
  int64_t len, step, n_blocks;
  SgemmCtx g;

  if (m <= 0 || n <= 0)
    return;
  if (nthreads == 1 || ae_in_parallel () || m * n * k < (1 << 20)) {
    sgemm_1 (trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  split_m = m >= n;
  len = split_m ? m : n;
  /* A few blocks per thread, handed out dynamically: a thread that the
   * OS delays (busy machine) does not hold up the others. Blocks stay a
   * multiple of 16 and at least 64 wide for sgemm efficiency. */
  n_blocks = (int64_t) AE_SGEMM_BLOCKS_PER_THREAD * nthreads;
  while (n_blocks > nthreads && len / n_blocks < 64)
    n_blocks -= nthreads;       /* keep a multiple of the thread count */
  step = ((len + n_blocks - 1) / n_blocks + 15) & ~(int64_t) 15;
  n_blocks = (len + step - 1) / step;
  g = (SgemmCtx) { trans_a, trans_b, split_m, m, n, k, lda, ldb, ldc, len,
    step, alpha, beta, a, b, c };
  ae_parallel_for (n_blocks, 1, 0, sgemm_blocks, &g);
}

typedef struct {
  float *y;
  const float *bias;
  int64_t n;
} BiasCtx;

/* y[r][j] += bias[j] for rows r0 .. r1-1 of n columns. */
static void
add_bias_cols (void *ctx, int64_t r0, int64_t r1, int thread)
{
  const BiasCtx *c = ctx;

  for (int64_t r = r0; r < r1; r++)
    for (int64_t o = 0; o < c->n; o++)
      c->y[r * c->n + o] += c->bias[o];
}

/* y[r][j] += bias[r] for rows r0 .. r1-1 of n columns. */
static void
add_bias_rows_range (void *ctx, int64_t r0, int64_t r1, int thread)
{
  const BiasCtx *c = ctx;

  for (int64_t r = r0; r < r1; r++) {
    float bv = c->bias[r];
    float *yr = c->y + r * c->n;
    for (int64_t j = 0; j < c->n; j++)
      yr[j] += bv;
  }
}

int
ae_linear (AeTensor * y, const AeTensor * x, const AeTensor * w,
    const AeTensor * b, AeError * err)
{
  int64_t in, out, rows;

  if (x->ndim < 1 || w->ndim != 2)
    return ae_ops_shape_error (err, "linear", "weight", w);
  in = x->shape[x->ndim - 1];
  out = w->shape[0];
  if (w->shape[1] != in)
    return ae_ops_shape_error (err, "linear", "weight", w);
  if (b && (b->ndim != 1 || b->shape[0] != out))
    return ae_ops_shape_error (err, "linear", "bias", b);
  if (y->ndim != x->ndim || y->shape[y->ndim - 1] != out)
    return ae_ops_shape_error (err, "linear", "output", y);
  for (int i = 0; i + 1 < x->ndim; i++)
    if (y->shape[i] != x->shape[i])
      return ae_ops_shape_error (err, "linear", "output", y);
  rows = in ? ae_tensor_numel (x) / in : 0;

  ae_sgemm (false, true, rows, out, in, 1.0f, x->data, in, w->data, in,
      0.0f, y->data, out);
  if (b)
    ae_parallel_for (rows, 0, ae_par_if (rows * out, 65536), add_bias_cols,
        &(BiasCtx) { y->data, b->data, out });
  return 0;
}

int64_t
ae_conv2d_out_size (int64_t in, int k, int stride, int pad_a, int pad_b)
{
  if (stride <= 0 || in + pad_a + pad_b < k)
    return 0;
  return (in + pad_a + pad_b - k) / stride + 1;
}

typedef struct {
  int64_t cin, h, w, kh, kw, ho, wo;
  int stride, pt, pl;
} ConvGeom;

/* Rows of the im2col matrix are (ci, ky, kx) -- the order of the torch
 * weight (Cout, Cin, kh, kw) seen as Cout x K -- and columns are output
 * pixels n0 .. n0+nc-1. */
typedef struct {
  const ConvGeom *g;
  const float *x;
  float *col;
  int64_t ldcol, n0, nc;
} Im2colCtx;

/* Rows r0 .. r1-1 of the im2col matrix. */
static void
im2col_rows (void *ctx, int64_t r0, int64_t r1, int thread)
{
  const Im2colCtx *c = ctx;
  const ConvGeom *g = c->g;
  const float *x = c->x;
  float *col = c->col;
  int64_t ldcol = c->ldcol, n0 = c->n0, nc = c->nc;

  for (int64_t r = r0; r < r1; r++) {
    int64_t ci = r / (g->kh * g->kw);
    int64_t ky = (r / g->kw) % g->kh;
    int64_t kx = r % g->kw;
    const float *xc = x + ci * g->h * g->w;
    float *dst = col + r * ldcol;
    int64_t j = 0;

    while (j < nc) {
      int64_t n = n0 + j;
      int64_t oy = n / g->wo, ox = n % g->wo;
      int64_t run = g->wo - ox;   /* columns left on this output row */
      int64_t iy = oy * g->stride - g->pt + ky;

      if (run > nc - j)
        run = nc - j;
      if (iy < 0 || iy >= g->h) {
        memset (dst + j, 0, (size_t) run * sizeof (float));
      } else if (g->stride == 1) {
        /* ix = ox + t - pl + kx: one contiguous valid span, zeros around. */
        const float *xr = xc + iy * g->w;
        int64_t ix0 = ox - g->pl + kx;
        int64_t t0 = ix0 < 0 ? -ix0 : 0;
        int64_t t1 = g->w - ix0 < run ? g->w - ix0 : run;
        if (t1 < t0)
          t1 = t0;
        for (int64_t t = 0; t < t0 && t < run; t++)
          dst[j + t] = 0.0f;
        if (t1 > t0)
          memcpy (dst + j + t0, xr + ix0 + t0, (size_t) (t1 - t0) *
              sizeof (float));
        for (int64_t t = t1; t < run; t++)
          dst[j + t] = 0.0f;
      } else {
        const float *xr = xc + iy * g->w;
        for (int64_t t = 0; t < run; t++) {
          int64_t ix = (ox + t) * g->stride - g->pl + kx;
          dst[j + t] = (ix >= 0 && ix < g->w) ? xr[ix] : 0.0f;
        }
      }
      j += run;
    }
  }
}

static void
im2col_chunk (const ConvGeom * g, const float *x, float *col, int64_t ldcol,
    int64_t n0, int64_t nc, bool parallel)
{
  Im2colCtx c = { g, x, col, ldcol, n0, nc };

  ae_parallel_for (g->cin * g->kh * g->kw, 0, parallel ? 0 : 1, im2col_rows,
      &c);
}

static void
add_bias_rows (float *y, const float *bias, int64_t rows, int64_t n)
{
  ae_parallel_for (rows, 0, ae_par_if (rows * n, 65536), add_bias_rows_range,
      &(BiasCtx) { y, bias, n });
}

typedef struct {
  const ConvGeom *g;
  const AeTensor *x, *w;
  AeTensor *y;
  float *cols;
  size_t col_floats;
  int64_t chunk, krows, cout, npix, per_batch;
} ConvTaskCtx;

/* Tasks t0 .. t1-1: (image, column chunk), im2col into this thread's
 * column buffer, then sgemm on this thread. */
static void
conv_tasks (void *ctx, int64_t t0, int64_t t1, int thread)
{
  const ConvTaskCtx *c = ctx;
  const ConvGeom *g = c->g;
  float *col = c->cols + c->col_floats * (size_t) thread;

  for (int64_t task = t0; task < t1; task++) {
    int64_t bi = task / c->per_batch;
    int64_t n0 = (task % c->per_batch) * c->chunk;
    int64_t nc = c->npix - n0 < c->chunk ? c->npix - n0 : c->chunk;
    im2col_chunk (g, c->x->data + bi * g->cin * g->h * g->w, col, nc, n0,
        nc, false);
    ae_sgemm (false, false, c->cout, nc, c->krows, 1.0f, c->w->data,
        c->krows, col, nc, 0.0f, c->y->data + bi * c->cout * c->npix + n0,
        c->npix);
  }
}

/* Many chunks: each thread takes whole chunks (im2col + sgemm on the
 * calling thread into its own column block of y), so the two phases need
 * no barrier between them. */
static int
conv_chunks_parallel (const ConvGeom * g, const AeTensor * x,
    const AeTensor * w, AeTensor * y, int64_t chunk, int64_t krows,
    int64_t cout, int64_t batch, int nthreads, AeArena * scratch,
    AeError * err)
{
  int64_t npix = g->ho * g->wo;
  int64_t per_batch = (npix + chunk - 1) / chunk;
  size_t col_floats = (size_t) (krows * chunk + 15) & ~(size_t) 15;
  ConvTaskCtx c;

  /* One column buffer per thread the loop may use (thread < nthreads). */
  c.cols = ae_arena_alloc (scratch, col_floats * (size_t) nthreads *
      sizeof (float), err);
  if (c.cols == NULL)
    return -1;
  c.g = g;
  c.x = x;
  c.w = w;
  c.y = y;
  c.col_floats = col_floats;
  c.chunk = chunk;
  c.krows = krows;
  c.cout = cout;
  c.npix = npix;
  c.per_batch = per_batch;
  ae_parallel_for (batch * per_batch, 1, nthreads, conv_tasks, &c);
  return 0;
}

typedef struct {
  float *y;
  const float *tmp;
  int64_t cout, batch, npix;
} UnbatchCtx;

static void
unbatch_rows (void *ctx, int64_t o0, int64_t o1, int thread)
{
  const UnbatchCtx *c = ctx;
  int64_t n = c->batch * c->npix;

  for (int64_t o = o0; o < o1; o++)
    for (int64_t bi = 0; bi < c->batch; bi++)
      memcpy (c->y + (bi * c->cout + o) * c->npix, c->tmp + o * n
          + bi * c->npix, (size_t) c->npix * sizeof (float));
}

/* Few chunks (small images): parallel im2col, then a split sgemm. When the whole batch fits one chunk its columns
 * go side by side, so the weights are streamed once for all images. */
static int
conv_chunks_serial (const ConvGeom * g, const AeTensor * x,
    const AeTensor * w, AeTensor * y, int64_t chunk, int64_t krows,
    int64_t cout, int64_t batch, AeArena * scratch, AeError * err)
{
  int64_t npix = g->ho * g->wo;
  int64_t in_size = g->cin * g->h * g->w;
  float *col, *tmp;

  if (batch > 1 && batch * npix <= chunk) {
    int64_t n = batch * npix;
    col = ae_arena_alloc (scratch, (size_t) (krows * n) * sizeof (float),
        err);
    tmp = col ? ae_arena_alloc (scratch, (size_t) (cout * n) *
        sizeof (float), err) : NULL;
    if (tmp == NULL)
      return -1;
    for (int64_t bi = 0; bi < batch; bi++)
      im2col_chunk (g, x->data + bi * in_size, col + bi * npix, n, 0, npix,
          true);
    ae_sgemm (false, false, cout, n, krows, 1.0f, w->data, krows, col, n,
        0.0f, tmp, n);
    /* tmp is (Cout, B, HW); y is (B, Cout, HW). */
    ae_parallel_for (cout, 0, 0, unbatch_rows,
        &(UnbatchCtx) { y->data, tmp, cout, batch, npix });
    return 0;
  }
  col = ae_arena_alloc (scratch, (size_t) (krows * chunk) * sizeof (float),
      err);
  if (col == NULL)
    return -1;
  for (int64_t bi = 0; bi < batch; bi++)
    for (int64_t n0 = 0; n0 < npix; n0 += chunk) {
      int64_t nc = npix - n0 < chunk ? npix - n0 : chunk;
      im2col_chunk (g, x->data + bi * in_size, col, nc, n0, nc, true);
      ae_sgemm (false, false, cout, nc, krows, 1.0f, w->data, krows, col, nc,
          0.0f, y->data + bi * cout * npix + n0, npix);
    }
  return 0;
}

int
ae_conv2d_pad (AeTensor * y, const AeTensor * x, const AeTensor * w,
    const AeTensor * b, int stride, int pad_top, int pad_bottom,
    int pad_left, int pad_right, AeArena * scratch, AeError * err)
{
  ConvGeom g;
  int64_t batch, cout, krows, npix, chunk, n_tasks;
  int nthreads, ret;
  size_t mark;

  if (x->ndim != 4)
    return ae_ops_shape_error (err, "conv2d", "input", x);
  if (w->ndim != 4 || w->shape[1] != x->shape[1])
    return ae_ops_shape_error (err, "conv2d", "weight", w);
  if (stride <= 0 || pad_top < 0 || pad_bottom < 0 || pad_left < 0
      || pad_right < 0)
    return ae_error (err, "conv2d: bad stride %d or padding", stride);
  batch = x->shape[0];
  cout = w->shape[0];
  g.cin = x->shape[1];
  g.h = x->shape[2];
  g.w = x->shape[3];
  g.kh = w->shape[2];
  g.kw = w->shape[3];
  g.stride = stride;
  g.pt = pad_top;
  g.pl = pad_left;
  g.ho = ae_conv2d_out_size (g.h, (int) g.kh, stride, pad_top, pad_bottom);
  g.wo = ae_conv2d_out_size (g.w, (int) g.kw, stride, pad_left, pad_right);
  if (b && (b->ndim != 1 || b->shape[0] != cout))
    return ae_ops_shape_error (err, "conv2d", "bias", b);
  if (y->ndim != 4 || y->shape[0] != batch || y->shape[1] != cout
      || y->shape[2] != g.ho || y->shape[3] != g.wo || g.ho == 0)
    return ae_ops_shape_error (err, "conv2d", "output", y);

  krows = g.cin * g.kh * g.kw;
  npix = g.ho * g.wo;
  /* 1x1, stride 1, no padding: the input already is the K x N matrix. */
  if (g.kh == 1 && g.kw == 1 && stride == 1 && pad_top == 0
      && pad_bottom == 0 && pad_left == 0 && pad_right == 0) {
    for (int64_t bi = 0; bi < batch; bi++) {
      float *yb = y->data + bi * cout * npix;
      ae_sgemm (false, false, cout, npix, krows, 1.0f, w->data, krows,
          x->data + bi * g.cin * g.h * g.w, npix, 0.0f, yb, npix);
      if (b)
        add_bias_rows (yb, b->data, cout, npix);
    }
    return 0;
  }

  if (scratch == NULL)
    return ae_error (err, "conv2d: a scratch arena is needed for %lldx%lld "
        "kernels", (long long) g.kh, (long long) g.kw);
  chunk = (int64_t) (AE_IM2COL_BUDGET / sizeof (float)) / krows;
  if (chunk < 256)
    chunk = 256;
  if (chunk > npix)
    chunk = npix;
  nthreads = ae_threads_count ();
  n_tasks = batch * ((npix + chunk - 1) / chunk);
  if (n_tasks < 2 * nthreads && nthreads > 1) {
    /* Few chunks: split them finer so every thread gets work, unless
     * they would get too thin for sgemm. */
    int64_t finer = (batch * npix + 2 * nthreads - 1) / (2 * nthreads);
    if (finer >= 128 && finer < chunk) {
      chunk = finer;
      n_tasks = batch * ((npix + chunk - 1) / chunk);
    }
  }
  mark = ae_arena_mark (scratch);
  if (n_tasks >= 2 * nthreads || nthreads == 1) {
    ret = conv_chunks_parallel (&g, x, w, y, chunk, krows, cout, batch,
        nthreads, scratch, err);
  } else {
    ret = conv_chunks_serial (&g, x, w, y, chunk, krows, cout, batch,
        scratch, err);
  }
  ae_arena_release (scratch, mark);
  if (ret == 0 && b)
    for (int64_t bi = 0; bi < batch; bi++)
      add_bias_rows (y->data + bi * cout * npix, b->data, cout, npix);
  return ret;
}

int
ae_conv2d (AeTensor * y, const AeTensor * x, const AeTensor * w,
    const AeTensor * b, int stride, int pad, AeArena * scratch,
    AeError * err)
{
  return ae_conv2d_pad (y, x, w, b, stride, pad, pad, pad, pad, scratch,
      err);
}
