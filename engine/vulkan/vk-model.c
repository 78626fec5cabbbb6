/* Helpers of the Vulkan model forwards (see vk-model.h). */
#include "vk-model.h"

#include <glib.h>

void
ae_vk_stack_init (AeVkStack * s, AeVkContext * ctx)
{
  s->ctx = ctx;
  s->bufs = NULL;
  s->n = s->alloc = 0;
}

void
ae_vk_stack_clear (AeVkStack * s)
{
  ae_vk_stack_release (s, 0);
  g_free (s->bufs);
  s->bufs = NULL;
  s->alloc = 0;
}

int
ae_vk_stack_tensor (AeVkStack * s, AeVkTensor * t, int ndim,
    const int64_t * shape, AeError * err)
{
  AeVkBuffer *b;
  int64_t n = 1;

  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  b = ae_vk_pool_acquire_mem (s->ctx, (size_t) n * sizeof (float),
      AE_VK_MEM_DEVICE, err);
  if (b == NULL)
    return -1;
  if (s->n == s->alloc) {
    s->alloc = s->alloc ? 2 * s->alloc : 64;
    s->bufs = g_renew (AeVkBuffer *, s->bufs, s->alloc);
  }
  s->bufs[s->n++] = b;
  *t = ae_vk_tensor_nd (b, ndim, shape);
  return 0;
}

int
ae_vk_stack_tensor4 (AeVkStack * s, AeVkTensor * t, int64_t n, int64_t c,
    int64_t h, int64_t w, AeError * err)
{
  int64_t shape[4] = { n, c, h, w };
  return ae_vk_stack_tensor (s, t, 4, shape, err);
}

int
ae_vk_stack_tensor3 (AeVkStack * s, AeVkTensor * t, int64_t n, int64_t l,
    int64_t c, AeError * err)
{
  int64_t shape[3] = { n, l, c };
  return ae_vk_stack_tensor (s, t, 3, shape, err);
}

int
ae_vk_stack_tensor2 (AeVkStack * s, AeVkTensor * t, int64_t n, int64_t c,
    AeError * err)
{
  int64_t shape[2] = { n, c };
  return ae_vk_stack_tensor (s, t, 2, shape, err);
}

int
ae_vk_stack_mark (const AeVkStack * s)
{
  return s->n;
}

void
ae_vk_stack_release (AeVkStack * s, int mark)
{
  while (s->n > mark)
    ae_vk_pool_release (s->ctx, s->bufs[--s->n]);
}

int
ae_vk_weight (AeVkContext * ctx, const AeTensor * host, AeVkTensor * out,
    AeError * err)
{
  /* Matrices and conv kernels (ndim >= 2) may be stored as f16. */
  AeVkBuffer *b = host->ndim >= 2 ?
      ae_vk_pool_matrix (ctx, host->data, (size_t) ae_tensor_numel (host),
      err) : ae_vk_pool_weight (ctx, host->data,
      (size_t) ae_tensor_numel (host), err);

  if (b == NULL)
    return -1;
  *out = ae_vk_tensor_like (b, host);
  return 0;
}

/* Device copies of an optional pair (b NULL or b->data NULL: none). */
static int
opt_weight (AeVkContext * ctx, const AeTensor * host, AeVkTensor * dev,
    const AeVkTensor ** use, AeError * err)
{
  *use = NULL;
  if (host == NULL || host->data == NULL)
    return 0;
  if (ae_vk_weight (ctx, host, dev, err) < 0)
    return -1;
  *use = dev;
  return 0;
}

int
ae_vk_conv2d_w (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    const AeTensor * w, const AeTensor * b, int stride, int pad_top,
    int pad_bottom, int pad_left, int pad_right, AeError * err)
{
  AeVkTensor dw, db;
  const AeVkTensor *pb;

  if (ae_vk_weight (ctx, w, &dw, err) < 0
      || opt_weight (ctx, b, &db, &pb, err) < 0)
    return -1;
  return ae_vk_conv2d_pad (ctx, y, x, &dw, pb, stride, pad_top, pad_bottom,
      pad_left, pad_right, err);
}

int
ae_vk_linear_w (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    const AeTensor * w, const AeTensor * b, AeError * err)
{
  AeVkTensor dw, db;
  const AeVkTensor *pb;

  if (ae_vk_weight (ctx, w, &dw, err) < 0
      || opt_weight (ctx, b, &db, &pb, err) < 0)
    return -1;
  return ae_vk_linear (ctx, y, x, &dw, pb, err);
}

int
ae_vk_group_norm_w (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    int groups, float eps, const AeTensor * gamma, const AeTensor * beta,
    bool silu, AeError * err)
{
  AeVkTensor dg, db;
  const AeVkTensor *pg, *pb;

  if (opt_weight (ctx, gamma, &dg, &pg, err) < 0
      || opt_weight (ctx, beta, &db, &pb, err) < 0)
    return -1;
  return ae_vk_group_norm (ctx, y, x, groups, eps, pg, pb, silu, err);
}

int
ae_vk_layer_norm_w (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    float eps, const AeTensor * gamma, const AeTensor * beta, AeError * err)
{
  AeVkTensor dg, db;
  const AeVkTensor *pg, *pb;

  if (opt_weight (ctx, gamma, &dg, &pg, err) < 0
      || opt_weight (ctx, beta, &db, &pb, err) < 0)
    return -1;
  return ae_vk_layer_norm (ctx, y, x, eps, pg, pb, err);
}

int
ae_vk_input (AeVkContext * ctx, const AeTensor * t, AeVkBuffer ** buf,
    AeVkTensor * out, AeError * err)
{
  size_t n = (size_t) ae_tensor_numel (t);

  *buf = ae_vk_pool_acquire (ctx, n * sizeof (float), err);
  if (*buf == NULL)
    return -1;
  if (ae_vk_upload (*buf, t->data, n, err) < 0) {
    ae_vk_pool_release (ctx, *buf);
    *buf = NULL;
    return -1;
  }
  *out = ae_vk_tensor_like (*buf, t);
  return 0;
}
