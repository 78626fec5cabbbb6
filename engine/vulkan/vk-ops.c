/* Engine ops on Vulkan: shape checks, push constants, grid sizes. The
 * arithmetic lives in shaders/<op>.comp. */
#include "vk-ops.h"

#include <math.h>
#include <string.h>

#define MAX_HEAD_DIM 160        /* MAX_D in attention.comp */
#define MAX_WIDE_HEAD_DIM 1024  /* MAX_DW in attention_wide.comp */

AeVkTensor
ae_vk_tensor_nd (AeVkBuffer * buf, int ndim, const int64_t * shape)
{
  AeVkTensor t = {.buf = buf,.ndim = ndim };

  for (int i = 0; i < AE_MAX_DIMS; i++)
    t.shape[i] = i < ndim ? shape[i] : 1;
  return t;
}

AeVkTensor
ae_vk_tensor_like (AeVkBuffer * buf, const AeTensor * t)
{
  return ae_vk_tensor_nd (buf, t->ndim, t->shape);
}

int64_t
ae_vk_tensor_numel (const AeVkTensor * t)
{
  int64_t n = 1;

  for (int i = 0; i < t->ndim; i++)
    n *= t->shape[i];
  return n;
}

/* Host view of the shape (data NULL) so the CPU checkers apply. */
static AeTensor
shape_of (const AeVkTensor * t)
{
  return ae_tensor_nd (NULL, t->ndim, t->shape);
}

/* The tensor has a buffer large enough and fits the shaders' 32-bit
 * indices. */
static int
check_any (const AeVkContext * ctx, const AeVkTensor * t, const char *op,
    const char *what, AeError * err)
{
  int64_t n = ae_vk_tensor_numel (t);
  size_t bytes;

  if (!t->buf)
    return ae_error (err, "vulkan %s: %s has no buffer", op, what);
  if (n < 0 || n > (int64_t) UINT32_MAX)
    return ae_error (err, "vulkan %s: %s has %lld elements (max 2^32-1)",
        op, what, (long long) n);
  bytes = t->buf->half ? ((size_t) n + 1) / 2 * 4 : (size_t) n * 4;
  if (bytes > t->buf->size)
    return ae_error (err, "vulkan %s: %s needs %lld %s, buffer holds "
        "%zu bytes", op, what, (long long) n, t->buf->half ? "halves" :
        "floats", t->buf->size);
  if (bytes > ae_vk_max_binding (ctx))
    return ae_error (err, "vulkan %s: %s is %zu bytes, %s binds at most "
        "%zu (maxStorageBufferRange)", op, what, bytes,
        ctx->props.deviceName, ae_vk_max_binding (ctx));
  return 0;
}

/* A float32 tensor (every binding except matrix weights). */
static int
check_tensor (const AeVkContext * ctx, const AeVkTensor * t, const char *op,
    const char *what, AeError * err)
{
  if (t->buf && t->buf->half)
    return ae_error (err, "vulkan %s: %s is stored as f16 (only linear and "
        "conv2d weights may be)", op, what);
  return check_any (ctx, t, op, what, err);
}

static int
shape_error (const char *op, const char *what, const AeVkTensor * t,
    AeError * err)
{
  char buf[128];

  return ae_error (err, "vulkan %s: %s has unexpected shape %s", op, what,
      ae_shape_str (t->ndim, t->shape, buf, sizeof (buf)));
}

static int
same_shape (const AeVkTensor * a, const AeVkTensor * b)
{
  AeTensor ta = shape_of (a), tb = shape_of (b);

  return ae_tensor_same_shape (&ta, &tb);
}

static int
dispatch_1d (AeVkContext * ctx, AeVkOp op, AeVkBuffer * b0, AeVkBuffer * b1,
    AeVkBuffer * b2, const void *push, uint64_t invocations, AeError * err)
{
  AeVkBuffer *const bind[AE_VK_BINDINGS] = { b0, b1, b2, NULL, NULL, NULL };
  uint32_t gx, gy;

  ae_vk_grid_1d (invocations, ae_vk_pipeline_info (ctx, op)->local_size[0],
      &gx, &gy);
  return ae_vk_dispatch (ctx, op, bind, push, gx, gy, 1, err);
}

/* ---- element-wise --------------------------------------------------- */

int
ae_vk_add_scaled (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * a,
    const AeVkTensor * b, float output_scale_factor, AeError * err)
{
  struct { uint32_t n; float osf; } push;

  if (check_tensor (ctx, y, "add", "y", err) < 0
      || check_tensor (ctx, a, "add", "a", err) < 0
      || check_tensor (ctx, b, "add", "b", err) < 0)
    return -1;
  if (!same_shape (a, b))
    return shape_error ("add", "b", b, err);
  if (!same_shape (y, a))
    return shape_error ("add", "y", y, err);
  if (output_scale_factor == 0.0f)
    return ae_error (err, "vulkan add: output_scale_factor is 0");
  push.n = (uint32_t) ae_vk_tensor_numel (y);
  push.osf = output_scale_factor;
  return dispatch_1d (ctx, AE_VK_OP_ADD, y->buf, a->buf, b->buf, &push,
      push.n, err);
}

int
ae_vk_add (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * a,
    const AeVkTensor * b, AeError * err)
{
  return ae_vk_add_scaled (ctx, y, a, b, 1.0f, err);
}

enum { UNARY_SILU, UNARY_GELU_ERF, UNARY_GELU_TANH, UNARY_SCALE, UNARY_CLAMP };

static int
unary (AeVkContext * ctx, const char *name, AeVkTensor * y,
    const AeVkTensor * x, uint32_t mode, float p0, float p1, AeError * err)
{
  struct { uint32_t n, mode; float p0, p1; } push = { 0, mode, p0, p1 };

  if (check_tensor (ctx, y, name, "y", err) < 0
      || check_tensor (ctx, x, name, "x", err) < 0)
    return -1;
  if (!same_shape (y, x))
    return shape_error (name, "y", y, err);
  push.n = (uint32_t) ae_vk_tensor_numel (y);
  return dispatch_1d (ctx, AE_VK_OP_UNARY, y->buf, x->buf, NULL, &push,
      push.n, err);
}

int
ae_vk_silu (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeError * err)
{
  return unary (ctx, "silu", y, x, UNARY_SILU, 0, 0, err);
}

int
ae_vk_gelu (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeGeluKind kind, AeError * err)
{
  return unary (ctx, "gelu", y, x,
      kind == AE_GELU_TANH ? UNARY_GELU_TANH : UNARY_GELU_ERF, 0, 0, err);
}

int
ae_vk_scale (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    float s, AeError * err)
{
  return unary (ctx, "scale", y, x, UNARY_SCALE, s, 0, err);
}

int
ae_vk_clamp (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    float lo, float hi, AeError * err)
{
  return unary (ctx, "clamp", y, x, UNARY_CLAMP, lo, hi, err);
}

int
ae_vk_geglu (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeError * err)
{
  struct { uint32_t rows, hidden; } push;
  int64_t h2 = x->shape[x->ndim - 1];

  if (check_tensor (ctx, y, "geglu", "y", err) < 0
      || check_tensor (ctx, x, "geglu", "x", err) < 0)
    return -1;
  if (x->ndim < 1 || h2 % 2 != 0)
    return shape_error ("geglu", "x (last dim must be even)", x, err);
  if (y->ndim != x->ndim || y->shape[y->ndim - 1] != h2 / 2
      || ae_vk_tensor_numel (y) * 2 != ae_vk_tensor_numel (x))
    return shape_error ("geglu", "y", y, err);
  push.hidden = (uint32_t) (h2 / 2);
  push.rows = push.hidden ? (uint32_t) (ae_vk_tensor_numel (y) / push.hidden)
      : 0;
  return dispatch_1d (ctx, AE_VK_OP_GEGLU, y->buf, x->buf, NULL, &push,
      (uint64_t) push.rows * push.hidden, err);
}

/* ---- normalisation -------------------------------------------------- */

/* gamma and beta: both NULL or both (C). */
static int
check_affine (const AeVkContext * ctx, const char *op, const AeVkTensor * gamma,
    const AeVkTensor * beta, int64_t c, AeError * err)
{
  if (!gamma && !beta)
    return 0;
  if (!gamma || !beta)
    return ae_error (err, "vulkan %s: gamma and beta must both be given "
        "or both NULL", op);
  if (check_tensor (ctx, gamma, op, "gamma", err) < 0
      || check_tensor (ctx, beta, op, "beta", err) < 0)
    return -1;
  if (ae_vk_tensor_numel (gamma) != c)
    return shape_error (op, "gamma", gamma, err);
  if (ae_vk_tensor_numel (beta) != c)
    return shape_error (op, "beta", beta, err);
  return 0;
}

int
ae_vk_group_norm (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    int groups, float eps, const AeVkTensor * gamma, const AeVkTensor * beta,
    bool silu, AeError * err)
{
  struct { uint32_t channels, hw, groups; float eps; uint32_t silu, affine; }
  push;
  AeVkBuffer *bind[AE_VK_BINDINGS] = { 0 };
  int64_t b, c, hw = 1;

  if (check_tensor (ctx, y, "group_norm", "y", err) < 0
      || check_tensor (ctx, x, "group_norm", "x", err) < 0)
    return -1;
  if (x->ndim < 2)
    return shape_error ("group_norm", "x", x, err);
  if (!same_shape (y, x))
    return shape_error ("group_norm", "y", y, err);
  b = x->shape[0];
  c = x->shape[1];
  for (int i = 2; i < x->ndim; i++)
    hw *= x->shape[i];
  if (groups <= 0 || c % groups != 0)
    return ae_error (err, "vulkan group_norm: %lld channels not divisible "
        "by %d groups", (long long) c, groups);
  if (check_affine (ctx, "group_norm", gamma, beta, c, err) < 0)
    return -1;
  push.channels = (uint32_t) c;
  push.hw = (uint32_t) hw;
  push.groups = (uint32_t) groups;
  push.eps = eps;
  push.silu = silu;
  push.affine = gamma != NULL;
  bind[0] = y->buf;
  bind[1] = x->buf;
  bind[2] = gamma ? gamma->buf : NULL;
  bind[3] = beta ? beta->buf : NULL;
  if (b * groups > 65535)
    return ae_error (err, "vulkan group_norm: %lld (batch x groups) "
        "workgroups exceed 65535", (long long) (b * groups));
  return ae_vk_dispatch (ctx, AE_VK_OP_GROUP_NORM, bind, &push,
      (uint32_t) (b * groups), 1, 1, err);
}

int
ae_vk_layer_norm (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    float eps, const AeVkTensor * gamma, const AeVkTensor * beta,
    AeError * err)
{
  struct { uint32_t rows, c; float eps; uint32_t affine; } push;
  AeVkBuffer *bind[AE_VK_BINDINGS] = { 0 };
  uint32_t gx, gy;
  int64_t c;

  if (check_tensor (ctx, y, "layer_norm", "y", err) < 0
      || check_tensor (ctx, x, "layer_norm", "x", err) < 0)
    return -1;
  if (x->ndim < 1 || !same_shape (y, x))
    return shape_error ("layer_norm", "y", y, err);
  c = x->shape[x->ndim - 1];
  if (check_affine (ctx, "layer_norm", gamma, beta, c, err) < 0)
    return -1;
  push.c = (uint32_t) c;
  push.rows = c ? (uint32_t) (ae_vk_tensor_numel (x) / c) : 0;
  push.eps = eps;
  push.affine = gamma != NULL;
  bind[0] = y->buf;
  bind[1] = x->buf;
  bind[2] = gamma ? gamma->buf : NULL;
  bind[3] = beta ? beta->buf : NULL;
  /* one workgroup per row, rows spread over a 2-D grid */
  ae_vk_grid_1d (push.rows, 1, &gx, &gy);
  return ae_vk_dispatch (ctx, AE_VK_OP_LAYER_NORM, bind, &push, gx, gy, 1,
      err);
}

/* ---- matrix products ------------------------------------------------ */

#define TILE 32                 /* output tile of conv2d.comp */
#define MATMUL_TILE 32          /* output tile of matmul.comp */

int
ae_vk_linear (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    const AeVkTensor * w, const AeVkTensor * b, AeError * err)
{
  struct { uint32_t m, n, k, has_bias; } push;
  AeVkBuffer *bind[AE_VK_BINDINGS] = { 0 };
  int64_t in, out, rows;
  AeVkOp op;

  if (check_tensor (ctx, y, "linear", "y", err) < 0
      || check_tensor (ctx, x, "linear", "x", err) < 0
      || check_any (ctx, w, "linear", "w", err) < 0)
    return -1;
  if (w->ndim != 2)
    return shape_error ("linear", "w", w, err);
  out = w->shape[0];
  in = w->shape[1];
  if (x->ndim < 1 || x->shape[x->ndim - 1] != in)
    return shape_error ("linear", "x", x, err);
  rows = ae_vk_tensor_numel (x) / (in ? in : 1);
  if (y->ndim != x->ndim || y->shape[y->ndim - 1] != out
      || ae_vk_tensor_numel (y) != rows * out)
    return shape_error ("linear", "y", y, err);
  if (b && check_tensor (ctx, b, "linear", "b", err) < 0)
    return -1;
  if (b && ae_vk_tensor_numel (b) != out)
    return shape_error ("linear", "b", b, err);
  push.m = (uint32_t) rows;
  push.n = (uint32_t) out;
  push.k = (uint32_t) in;
  push.has_bias = b != NULL;
  bind[0] = y->buf;
  bind[1] = x->buf;
  bind[2] = w->buf;
  bind[3] = b ? b->buf : NULL;
  if ((rows + MATMUL_TILE - 1) / MATMUL_TILE > 65535)
    return ae_error (err, "vulkan linear: %lld rows exceed the grid",
        (long long) rows);
  /* both shaders write a 32x32 tile per workgroup */
  if (ctx->use_direct)
    op = w->buf->half ? AE_VK_OP_MATMUL_DIRECT_F16W : AE_VK_OP_MATMUL_DIRECT;
  else
    op = w->buf->half ? AE_VK_OP_MATMUL_F16W : AE_VK_OP_MATMUL;
  return ae_vk_dispatch (ctx, op, bind, &push,
      (uint32_t) ((out + MATMUL_TILE - 1) / MATMUL_TILE),
      (uint32_t) ((rows + MATMUL_TILE - 1) / MATMUL_TILE), 1, err);
}

int
ae_vk_conv2d_pad (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    const AeVkTensor * w, const AeVkTensor * b, int stride, int pad_top,
    int pad_bottom, int pad_left, int pad_right, AeError * err)
{
  struct {
    uint32_t cin, h, w, cout, ho, wo, kh, kw, stride, pad_top, pad_left,
        has_bias;
  } push;
  AeVkBuffer *bind[AE_VK_BINDINGS] = { 0 };
  int64_t bn, cin, h, wd, cout, kh, kw, ho, wo;
  AeVkOp op;

  if (check_tensor (ctx, y, "conv2d", "y", err) < 0
      || check_tensor (ctx, x, "conv2d", "x", err) < 0
      || check_any (ctx, w, "conv2d", "w", err) < 0)
    return -1;
  if (x->ndim != 4)
    return shape_error ("conv2d", "x", x, err);
  if (w->ndim != 4 || w->shape[1] != x->shape[1])
    return shape_error ("conv2d", "w", w, err);
  if (stride < 1 || pad_top < 0 || pad_bottom < 0 || pad_left < 0
      || pad_right < 0)
    return ae_error (err, "vulkan conv2d: bad stride %d or padding", stride);
  bn = x->shape[0];
  cin = x->shape[1];
  h = x->shape[2];
  wd = x->shape[3];
  cout = w->shape[0];
  kh = w->shape[2];
  kw = w->shape[3];
  ho = ae_conv2d_out_size (h, (int) kh, stride, pad_top, pad_bottom);
  wo = ae_conv2d_out_size (wd, (int) kw, stride, pad_left, pad_right);
  if (ho <= 0 || wo <= 0)
    return shape_error ("conv2d", "x (smaller than the kernel)", x, err);
  if (y->ndim != 4 || y->shape[0] != bn || y->shape[1] != cout
      || y->shape[2] != ho || y->shape[3] != wo)
    return shape_error ("conv2d", "y", y, err);
  if (b && check_tensor (ctx, b, "conv2d", "b", err) < 0)
    return -1;
  if (b && ae_vk_tensor_numel (b) != cout)
    return shape_error ("conv2d", "b", b, err);
  push.cin = (uint32_t) cin;
  push.h = (uint32_t) h;
  push.w = (uint32_t) wd;
  push.cout = (uint32_t) cout;
  push.ho = (uint32_t) ho;
  push.wo = (uint32_t) wo;
  push.kh = (uint32_t) kh;
  push.kw = (uint32_t) kw;
  push.stride = (uint32_t) stride;
  push.pad_top = (uint32_t) pad_top;
  push.pad_left = (uint32_t) pad_left;
  push.has_bias = b != NULL;
  bind[0] = y->buf;
  bind[1] = x->buf;
  bind[2] = w->buf;
  bind[3] = b ? b->buf : NULL;
  /* both shaders write 32 channels x 32 pixels per workgroup */
  if (ctx->use_direct)
    op = w->buf->half ? AE_VK_OP_CONV2D_DIRECT_F16W : AE_VK_OP_CONV2D_DIRECT;
  else
    op = w->buf->half ? AE_VK_OP_CONV2D_F16W : AE_VK_OP_CONV2D;
  return ae_vk_dispatch (ctx, op, bind, &push,
      (uint32_t) ((ho * wo + TILE - 1) / TILE),
      (uint32_t) ((cout + TILE - 1) / TILE), (uint32_t) bn, err);
}

int
ae_vk_conv2d (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    const AeVkTensor * w, const AeVkTensor * b, int stride, int pad,
    AeError * err)
{
  return ae_vk_conv2d_pad (ctx, y, x, w, b, stride, pad, pad, pad, pad, err);
}

/* ---- attention ------------------------------------------------------ */

int
ae_vk_attention (AeVkContext * ctx, AeVkTensor * out, const AeVkTensor * q,
    const AeVkTensor * k, const AeVkTensor * v, const AeVkTensor * k_extra,
    const AeVkTensor * v_extra, int heads, float scale, AeError * err)
{
  return ae_vk_attention_masked (ctx, out, q, k, v, k_extra, v_extra, NULL,
      heads, scale, err);
}

int
ae_vk_attention_masked (AeVkContext * ctx, AeVkTensor * out,
    const AeVkTensor * q, const AeVkTensor * k, const AeVkTensor * v,
    const AeVkTensor * k_extra, const AeVkTensor * v_extra,
    const bool *extra_mask, int heads, float scale, AeError * err)
{
  struct {
    uint32_t lq, lk, le, heads, d, extra_shared;
    float scale;
    uint32_t use_mask, mask[AE_VK_ATTN_MAX_MASK / 32];
  } push;
  AeVkBuffer *bind[AE_VK_BINDINGS] = { 0 };
  int64_t bn, lq, lk, le = 0, hd, d;

  if (check_tensor (ctx, out, "attention", "out", err) < 0
      || check_tensor (ctx, q, "attention", "q", err) < 0
      || check_tensor (ctx, k, "attention", "k", err) < 0
      || check_tensor (ctx, v, "attention", "v", err) < 0)
    return -1;
  if (q->ndim != 3)
    return shape_error ("attention", "q", q, err);
  bn = q->shape[0];
  lq = q->shape[1];
  hd = q->shape[2];
  if (heads <= 0 || hd % heads != 0)
    return ae_error (err, "vulkan attention: width %lld not divisible by "
        "%d heads", (long long) hd, heads);
  d = hd / heads;
  if (d > MAX_WIDE_HEAD_DIM)
    return ae_error (err, "vulkan attention: head dim %lld > %d",
        (long long) d, MAX_WIDE_HEAD_DIM);
  if (k->ndim != 3 || k->shape[0] != bn || k->shape[2] != hd)
    return shape_error ("attention", "k", k, err);
  lk = k->shape[1];
  if (!same_shape (v, k))
    return shape_error ("attention", "v", v, err);
  if (!same_shape (out, q))
    return shape_error ("attention", "out", out, err);
  if ((k_extra == NULL) != (v_extra == NULL))
    return ae_error (err, "vulkan attention: k_extra and v_extra must both "
        "be given or both NULL");
  memset (&push, 0, sizeof (push));
  if (k_extra) {
    if (check_tensor (ctx, k_extra, "attention", "k_extra", err) < 0
        || check_tensor (ctx, v_extra, "attention", "v_extra", err) < 0)
      return -1;
    if (k_extra->ndim != 3 || k_extra->shape[2] != hd
        || (k_extra->shape[0] != bn && k_extra->shape[0] != 1))
      return shape_error ("attention", "k_extra", k_extra, err);
    if (!same_shape (v_extra, k_extra))
      return shape_error ("attention", "v_extra", v_extra, err);
    le = k_extra->shape[1];
    push.extra_shared = k_extra->shape[0] == 1;
  }
  if (lk + le == 0)
    return ae_error (err, "vulkan attention: no keys");
  if (extra_mask && k_extra) {
    if (bn > AE_VK_ATTN_MAX_MASK)
      return ae_error (err, "vulkan attention: a per-element extra-token "
          "mask covers at most %d batch elements, q has %lld",
          AE_VK_ATTN_MAX_MASK, (long long) bn);
    push.use_mask = 1;
    for (int64_t i = 0; i < bn; i++)
      if (extra_mask[i])
        push.mask[i / 32] |= 1u << (i % 32);
    if (lk == 0)
      for (int64_t i = 0; i < bn; i++)
        if (!extra_mask[i])
          return ae_error (err, "vulkan attention: batch element %lld has "
              "no keys (masked extra tokens, Lk 0)", (long long) i);
  }
  push.lq = (uint32_t) lq;
  push.lk = (uint32_t) lk;
  push.le = (uint32_t) le;
  push.heads = (uint32_t) heads;
  push.d = (uint32_t) d;
  push.scale = scale > 0.0f ? scale : 1.0f / sqrtf ((float) d);
  bind[0] = out->buf;
  bind[1] = q->buf;
  bind[2] = k->buf;
  bind[3] = v->buf;
  bind[4] = k_extra ? k_extra->buf : NULL;
  bind[5] = v_extra ? v_extra->buf : NULL;
  if (d > MAX_HEAD_DIM)
    /* one workgroup per query row; rows beyond 65535 in grid z */
    return ae_vk_dispatch (ctx, AE_VK_OP_ATTENTION_WIDE, bind, &push,
        (uint32_t) (lq < 65535 ? lq : 65535), (uint32_t) (bn * heads),
        (uint32_t) ((lq + 65534) / 65535), err);
  return ae_vk_dispatch (ctx, AE_VK_OP_ATTENTION, bind, &push,
      (uint32_t) ((lq + 63) / 64), (uint32_t) (bn * heads), 1, err);
}

/* ---- resampling, embeddings ----------------------------------------- */

int
ae_vk_upsample_nearest2x (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * x, AeError * err)
{
  struct { uint32_t planes, h, w; } push;

  if (check_tensor (ctx, y, "upsample", "y", err) < 0
      || check_tensor (ctx, x, "upsample", "x", err) < 0)
    return -1;
  if (x->ndim != 4)
    return shape_error ("upsample", "x", x, err);
  if (y->ndim != 4 || y->shape[0] != x->shape[0]
      || y->shape[1] != x->shape[1] || y->shape[2] != 2 * x->shape[2]
      || y->shape[3] != 2 * x->shape[3])
    return shape_error ("upsample", "y", y, err);
  push.planes = (uint32_t) (x->shape[0] * x->shape[1]);
  push.h = (uint32_t) x->shape[2];
  push.w = (uint32_t) x->shape[3];
  return dispatch_1d (ctx, AE_VK_OP_UPSAMPLE_NEAREST2X, y->buf, x->buf, NULL,
      &push, ae_vk_tensor_numel (y), err);
}

int
ae_vk_timestep_embedding (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * timesteps, bool flip_sin_to_cos, float freq_shift,
    float scale, float max_period, AeError * err)
{
  struct {
    uint32_t n, dim, flip;
    float freq_shift, scale, log_max_period;
  } push;
  int64_t n;

  if (check_tensor (ctx, y, "timestep_embedding", "y", err) < 0
      || check_tensor (ctx, timesteps, "timestep_embedding", "timesteps",
          err) < 0)
    return -1;
  n = ae_vk_tensor_numel (timesteps);
  if (y->ndim != 2 || y->shape[0] != n)
    return shape_error ("timestep_embedding", "y", y, err);
  if (y->shape[1] / 2 > 0 && (float) (y->shape[1] / 2) - freq_shift == 0.0f)
    return ae_error (err, "vulkan timestep_embedding: half dim equals "
        "freq_shift");
  push.n = (uint32_t) n;
  push.dim = (uint32_t) y->shape[1];
  push.flip = flip_sin_to_cos;
  push.freq_shift = freq_shift;
  push.scale = scale;
  push.log_max_period = logf (max_period);
  return dispatch_1d (ctx, AE_VK_OP_TIMESTEP_EMBEDDING, y->buf,
      timesteps->buf, NULL, &push, ae_vk_tensor_numel (y), err);
}

/* ---- layout --------------------------------------------------------- */

enum { LAYOUT_COPY, LAYOUT_NCHW_TO_NLC, LAYOUT_NLC_TO_NCHW, LAYOUT_CONCAT,
  LAYOUT_ADD_CHANNEL
};

typedef struct { uint32_t n, mode, c, s, c2, per_batch; } LayoutPush;

int
ae_vk_copy (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeError * err)
{
  LayoutPush push = { 0, LAYOUT_COPY, 0, 0, 0, 0 };

  if (check_tensor (ctx, y, "copy", "y", err) < 0
      || check_tensor (ctx, x, "copy", "x", err) < 0)
    return -1;
  if (ae_vk_tensor_numel (y) != ae_vk_tensor_numel (x))
    return shape_error ("copy", "y", y, err);
  push.n = (uint32_t) ae_vk_tensor_numel (y);
  return dispatch_1d (ctx, AE_VK_OP_LAYOUT, y->buf, x->buf, NULL, &push,
      push.n, err);
}

int
ae_vk_nchw_to_nlc (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeError * err)
{
  LayoutPush push = { 0, LAYOUT_NCHW_TO_NLC, 0, 0, 0, 0 };

  if (check_tensor (ctx, y, "nchw_to_nlc", "y", err) < 0
      || check_tensor (ctx, x, "nchw_to_nlc", "x", err) < 0)
    return -1;
  if (x->ndim != 4)
    return shape_error ("nchw_to_nlc", "x", x, err);
  if (y->ndim != 3 || y->shape[0] != x->shape[0]
      || y->shape[1] != x->shape[2] * x->shape[3]
      || y->shape[2] != x->shape[1])
    return shape_error ("nchw_to_nlc", "y", y, err);
  push.n = (uint32_t) ae_vk_tensor_numel (y);
  push.c = (uint32_t) x->shape[1];
  push.s = (uint32_t) (x->shape[2] * x->shape[3]);
  return dispatch_1d (ctx, AE_VK_OP_LAYOUT, y->buf, x->buf, NULL, &push,
      push.n, err);
}

int
ae_vk_nlc_to_nchw (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeError * err)
{
  LayoutPush push = { 0, LAYOUT_NLC_TO_NCHW, 0, 0, 0, 0 };

  if (check_tensor (ctx, y, "nlc_to_nchw", "y", err) < 0
      || check_tensor (ctx, x, "nlc_to_nchw", "x", err) < 0)
    return -1;
  if (y->ndim != 4)
    return shape_error ("nlc_to_nchw", "y", y, err);
  if (x->ndim != 3 || x->shape[0] != y->shape[0]
      || x->shape[1] != y->shape[2] * y->shape[3]
      || x->shape[2] != y->shape[1])
    return shape_error ("nlc_to_nchw", "x", x, err);
  push.n = (uint32_t) ae_vk_tensor_numel (y);
  push.c = (uint32_t) y->shape[1];
  push.s = (uint32_t) (y->shape[2] * y->shape[3]);
  return dispatch_1d (ctx, AE_VK_OP_LAYOUT, y->buf, x->buf, NULL, &push,
      push.n, err);
}

/* Product of the dims after the channel dim. */
static int64_t
spatial (const AeVkTensor * t)
{
  int64_t s = 1;

  for (int i = 2; i < t->ndim; i++)
    s *= t->shape[i];
  return s;
}

int
ae_vk_concat_channels (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * a, const AeVkTensor * b, AeError * err)
{
  LayoutPush push = { 0, LAYOUT_CONCAT, 0, 0, 0, 0 };

  if (check_tensor (ctx, y, "concat_channels", "y", err) < 0
      || check_tensor (ctx, a, "concat_channels", "a", err) < 0
      || check_tensor (ctx, b, "concat_channels", "b", err) < 0)
    return -1;
  if (a->ndim < 2)
    return shape_error ("concat_channels", "a", a, err);
  if (b->ndim != a->ndim || b->shape[0] != a->shape[0]
      || spatial (b) != spatial (a))
    return shape_error ("concat_channels", "b", b, err);
  if (y->ndim != a->ndim || y->shape[0] != a->shape[0]
      || y->shape[1] != a->shape[1] + b->shape[1]
      || spatial (y) != spatial (a))
    return shape_error ("concat_channels", "y", y, err);
  push.n = (uint32_t) ae_vk_tensor_numel (y);
  push.c = (uint32_t) a->shape[1];
  push.c2 = (uint32_t) b->shape[1];
  push.s = (uint32_t) spatial (a);
  return dispatch_1d (ctx, AE_VK_OP_LAYOUT, y->buf, a->buf, b->buf, &push,
      push.n, err);
}

int
ae_vk_add_channel (AeVkContext * ctx, AeVkTensor * x, const AeVkTensor * v,
    AeError * err)
{
  LayoutPush push = { 0, LAYOUT_ADD_CHANNEL, 0, 0, 0, 0 };

  if (check_tensor (ctx, x, "add_channel", "x", err) < 0
      || check_tensor (ctx, v, "add_channel", "v", err) < 0)
    return -1;
  if (x->ndim < 2)
    return shape_error ("add_channel", "x", x, err);
  if (v->ndim == 2 && v->shape[0] == x->shape[0]
      && v->shape[1] == x->shape[1])
    push.per_batch = 1;
  else if (!(v->ndim == 1 && v->shape[0] == x->shape[1]))
    return shape_error ("add_channel", "v", v, err);
  push.n = (uint32_t) ae_vk_tensor_numel (x);
  push.c = (uint32_t) x->shape[1];
  push.s = (uint32_t) spatial (x);
  return dispatch_1d (ctx, AE_VK_OP_LAYOUT, x->buf, v->buf, NULL, &push,
      push.n, err);
}
