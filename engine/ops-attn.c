/* Multi-head attention with a running softmax over key tiles (the
 * "online softmax" of flash attention): for each tile of queries we keep
 * the row maximum m, the row sum l and the unnormalised output O, and fold
 * in one tile of keys at a time:
 *   S = scale Q K^T;  m' = max(m, rowmax S);  P = exp(S - m');
 *   l = l exp(m - m') + rowsum P;  O = O exp(m - m') + P V
 * and finally out = O / l. Memory is per thread TQ x TK + TQ x d floats,
 * whatever the sequence lengths. */
#include <float.h>

#include "ops-internal.h"

#ifndef AE_ATTN_TQ
#define AE_ATTN_TQ 128          /* queries per tile */
#endif
#ifndef AE_ATTN_TK
#define AE_ATTN_TK 512          /* keys per tile */
#endif

typedef struct {
  const float *k, *v;           /* row 0 of this batch element, head 0 */
  int64_t len;
} KvSeg;

/* max(init, x[0..n)). gcc vectorizes an "omp simd" max reduction, clang
 * does not (and warns), so clang gets 16 independent lanes instead. */
static inline float
row_max (const float *x, int64_t n, float init)
{
#ifdef __clang__
  float lane[16];
  int64_t j = 0;

  for (int t = 0; t < 16; t++)
    lane[t] = init;
  for (; j + 16 <= n; j += 16)
    for (int t = 0; t < 16; t++)
      lane[t] = x[j + t] > lane[t] ? x[j + t] : lane[t];
  for (; j < n; j++)
    lane[0] = x[j] > lane[0] ? x[j] : lane[0];
  for (int t = 1; t < 16; t++)
    lane[0] = lane[t] > lane[0] ? lane[t] : lane[0];
  return lane[0];
#else
  float mx = init;

#pragma omp simd reduction(max:mx)
  for (int64_t j = 0; j < n; j++)
    mx = x[j] > mx ? x[j] : mx;
  return mx;
#endif
}

/* Folds one key tile (tk rows of K and V, row stride ld) into the state of
 * a query tile. */
static void
attend_tile (const float *qp, int64_t ldq, int64_t tq, const float *kp,
    const float *vp, int64_t ld, int64_t tk, int64_t d, float scale,
    float *s, float *o, float *m, float *l)
{
  ae_sgemm (false, true, tq, tk, d, scale, qp, ldq, kp, ld, 0.0f, s, tk);
  for (int64_t i = 0; i < tq; i++) {
    float *si = s + i * tk;
    float mx = m[i], corr, sum = 0.0f;

    mx = row_max (si, tk, mx);
    /* omp simd: lets the compiler vectorize the sum (plain C forbids
     * reassociating it). */
#pragma omp simd reduction(+:sum)
    for (int64_t j = 0; j < tk; j++) {
      si[j] = ae_exp_fast (si[j] - mx);
      sum += si[j];
    }
    corr = ae_exp_fast (m[i] - mx);
    l[i] = l[i] * corr + sum;
    m[i] = mx;
    if (corr != 1.0f)
      for (int64_t j = 0; j < d; j++)
        o[i * d + j] *= corr;
  }
  ae_sgemm (false, false, tq, d, tk, 1.0f, s, tk, vp, ld, 1.0f, o, d);
}

typedef struct {
  const AeTensor *q, *k, *v, *k_extra, *v_extra;
  AeTensor *out;
  float *work;
  int64_t heads, lq, c, d, n_qt, tq_max, tk_max, per_thread;
  float scale;
} AttnCtx;

/* The key/value segments that batch element b, head h attends to: its
 * own sequence, then the extra keys (shared when they have batch 1). */
static int
kv_segments (const AttnCtx * a, int64_t b, int64_t h, KvSeg segs[2])
{
  int64_t c = a->c, d = a->d;
  int nseg = 0;

  segs[nseg].k = a->k->data + b * a->k->shape[1] * c + h * d;
  segs[nseg].v = a->v->data + b * a->v->shape[1] * c + h * d;
  segs[nseg++].len = a->k->shape[1];
  if (a->k_extra) {
    int64_t be = a->k_extra->shape[0] == 1 ? 0 : b;
    segs[nseg].k = a->k_extra->data + be * a->k_extra->shape[1] * c + h * d;
    segs[nseg].v = a->v_extra->data + be * a->v_extra->shape[1] * c + h * d;
    segs[nseg++].len = a->k_extra->shape[1];
  }
  return nseg;
}

/* One (batch, head, query tile) task in this thread's work block. */
static void
attend_task (const AttnCtx * a, int64_t task, int thread)
{
  int64_t n_qt = a->n_qt, c = a->c, d = a->d, lq = a->lq;
  int64_t b = task / (a->heads * n_qt);
  int64_t h = (task / n_qt) % a->heads;
  int64_t q0 = (task % n_qt) * a->tq_max;
  int64_t tq = lq - q0 < a->tq_max ? lq - q0 : a->tq_max;
  float *s = a->work + thread * a->per_thread;
  float *o = s + a->tq_max * a->tk_max;
  float *m = o + a->tq_max * d;
  float *l = m + a->tq_max;
  const float *qp = a->q->data + (b * lq + q0) * c + h * d;
  KvSeg segs[2];
  int nseg = kv_segments (a, b, h, segs);

  for (int64_t i = 0; i < tq; i++) {
    m[i] = -FLT_MAX;
    l[i] = 0.0f;
  }
  memset (o, 0, (size_t) (tq * d) * sizeof (float));
  for (int sg = 0; sg < nseg; sg++)
    for (int64_t k0 = 0; k0 < segs[sg].len; k0 += AE_ATTN_TK) {
      int64_t tk = segs[sg].len - k0 < AE_ATTN_TK ?
          segs[sg].len - k0 : AE_ATTN_TK;
      attend_tile (qp, c, tq, segs[sg].k + k0 * c, segs[sg].v + k0 * c, c,
          tk, d, a->scale, s, o, m, l);
    }
  for (int64_t i = 0; i < tq; i++) {
    float inv = 1.0f / l[i];
    float *dst = a->out->data + (b * lq + q0 + i) * c + h * d;
    for (int64_t j = 0; j < d; j++)
      dst[j] = o[i * d + j] * inv;
  }
}

static void
attend_tasks (void *ctx, int64_t t0, int64_t t1, int thread)
{
  for (int64_t task = t0; task < t1; task++)
    attend_task (ctx, task, thread);
}

static int
check_kv (const AeTensor * k, const AeTensor * v, int64_t batch, int64_t c,
    bool extra, AeError * err)
{
  const char *what = extra ? "extra key/value" : "key/value";

  if (k->ndim != 3 || k->shape[2] != c
      || (k->shape[0] != batch && !(extra && k->shape[0] == 1)))
    return ae_ops_shape_error (err, "attention", what, k);
  if (!ae_tensor_same_shape (k, v))
    return ae_ops_shape_error (err, "attention", what, v);
  return 0;
}

int
ae_attention (AeTensor * out, const AeTensor * q, const AeTensor * k,
    const AeTensor * v, const AeTensor * k_extra, const AeTensor * v_extra,
    int heads, float scale, AeArena * scratch, AeError * err)
{
  int64_t batch, lq, c, d, n_qt, n_tasks, per_thread, n_keys, tk_max,
      tq_max;
  int nthreads;
  size_t mark;
  float *work;
  AttnCtx a;

  if (q->ndim != 3)
    return ae_ops_shape_error (err, "attention", "query", q);
  batch = q->shape[0];
  lq = q->shape[1];
  c = q->shape[2];
  if (heads <= 0 || c % heads != 0)
    return ae_error (err, "attention: %lld channels not divisible by %d "
        "heads", (long long) c, heads);
  if (check_kv (k, v, batch, c, false, err) < 0)
    return -1;
  if ((k_extra == NULL) != (v_extra == NULL))
    return ae_error (err, "attention: extra keys and values go together");
  if (k_extra && check_kv (k_extra, v_extra, batch, c, true, err) < 0)
    return -1;
  if (!ae_tensor_same_shape (out, q))
    return ae_ops_shape_error (err, "attention", "output", out);
  if (k->shape[1] + (k_extra ? k_extra->shape[1] : 0) == 0)
    return ae_error (err, "attention: no keys");
  if (scratch == NULL)
    return ae_error (err, "attention: a scratch arena is needed");
  d = c / heads;
  if (scale <= 0.0f)
    scale = 1.0f / sqrtf ((float) d);

  nthreads = ae_threads_count ();
  /* Few keys (cross-attention to 77 tokens): taller query tiles in the
   * same scratch, so each sgemm is less thin. */
  n_keys = k->shape[1] + (k_extra ? k_extra->shape[1] : 0);
  tk_max = n_keys < AE_ATTN_TK ? n_keys : AE_ATTN_TK;
  tq_max = AE_ATTN_TQ;
  if (tk_max < AE_ATTN_TK) {
    tq_max = (AE_ATTN_TQ * AE_ATTN_TK / tk_max) & ~(int64_t) 15;
    tq_max = tq_max > 1024 ? 1024 : (tq_max < AE_ATTN_TQ ? AE_ATTN_TQ :
        tq_max);
  }
  per_thread = tq_max * tk_max + tq_max * d + 2 * tq_max;
  /* Keep each thread's block on its own cache lines. */
  per_thread = (per_thread + 15) & ~(int64_t) 15;
  mark = ae_arena_mark (scratch);
  work = ae_arena_alloc (scratch, (size_t) (per_thread * nthreads) *
      sizeof (float), err);
  if (work == NULL)
    return -1;

  n_qt = (lq + tq_max - 1) / tq_max;
  n_tasks = batch * heads * n_qt;
  a = (AttnCtx) { q, k, v, k_extra, v_extra, out, work, heads, lq, c, d,
    n_qt, tq_max, tk_max, per_thread, scale };
  /* ae_sgemm runs on the calling thread inside this parallel loop; thread
   * numbers stay below nthreads, the work blocks allocated. */
  ae_parallel_for (n_tasks, 1, nthreads, attend_tasks, &a);
  ae_arena_release (scratch, mark);
  return 0;
}
