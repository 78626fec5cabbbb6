/* AutoencoderKL on Vulkan (see vk-vae.h). Mirrors engine/vae.c stage by
 * stage; the current activation `x` lives in its own pooled device buffer
 * that the next stage replaces. */
#include "vk-vae.h"

#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "vae-internal.h"
#include "vk-model.h"

/* DiagonalGaussianDistribution's logvar clamp (as engine/vae.c). */
#define LOGVAR_MIN -30.0f
#define LOGVAR_MAX 20.0f

struct AeVkVae {
  AeVkContext *ctx;
  const AeVae *vae;
  AeVkStack stack;
};

typedef struct {
  AeVkVae *vv;
  AeVkContext *ctx;
  const AeVaeConfig *cfg;
  AeError *err;
  AeVkStack *s;
  AeVkTensor x;                 /* current activation */
  AeVkBuffer *x_buf;            /* its buffer when owned by the pass */
} Pass;

/* ---- weights ------------------------------------------------------------ */

typedef int (*TensorFn) (AeVkContext * ctx, const AeTensor * t,
    AeError * err);

static int
up_tensor (AeVkContext * ctx, const AeTensor * t, AeError * err)
{
  AeVkTensor d;

  return t->data ? ae_vk_weight (ctx, t, &d, err) : 0;
}

static int
forget_tensor (AeVkContext * ctx, const AeTensor * t, AeError * err)
{
  ae_vk_pool_forget (ctx, t->data);
  return 0;
}

static int
walk_tensors (TensorFn fn, AeVkContext * ctx, AeError * err, int n,
    const AeTensor * const *list)
{
  for (int i = 0; i < n; i++)
    if (fn (ctx, list[i], err) < 0)
      return -1;
  return 0;
}

static int
walk_resnet (const VaeResnet * r, TensorFn fn, AeVkContext * ctx,
    AeError * err)
{
  const AeTensor *const l[] = { &r->norm1_w, &r->norm1_b, &r->conv1_w,
    &r->conv1_b, &r->norm2_w, &r->norm2_b, &r->conv2_w, &r->conv2_b,
    &r->shortcut_w, &r->shortcut_b
  };
  return walk_tensors (fn, ctx, err, r->has_shortcut ? 10 : 8, l);
}

static int
walk_coder (const VaeCoder * c, int n_levels, TensorFn fn, AeVkContext * ctx,
    AeError * err)
{
  const AeTensor *const io[] = { &c->conv_in_w, &c->conv_in_b,
    &c->norm_out_w, &c->norm_out_b, &c->conv_out_w, &c->conv_out_b
  };
  const VaeAttention *a = &c->mid.attention;
  const AeTensor *const at[] = { &a->norm_w, &a->norm_b, &a->q_w, &a->q_b,
    &a->k_w, &a->k_b, &a->v_w, &a->v_b, &a->out_w, &a->out_b
  };

  if (walk_tensors (fn, ctx, err, 6, io) < 0 ||
      walk_resnet (&c->mid.resnets[0], fn, ctx, err) < 0 ||
      walk_resnet (&c->mid.resnets[1], fn, ctx, err) < 0 ||
      (c->mid.has_attention && walk_tensors (fn, ctx, err, 10, at) < 0))
    return -1;
  for (int i = 0; i < n_levels; i++) {
    const VaeLevel *l = &c->levels[i];
    const AeTensor *const smp[] = { &l->sampler_w, &l->sampler_b };
    for (int j = 0; j < l->n_resnets; j++)
      if (walk_resnet (&l->resnets[j], fn, ctx, err) < 0)
        return -1;
    if (l->has_sampler && walk_tensors (fn, ctx, err, 2, smp) < 0)
      return -1;
  }
  return 0;
}

static int
walk_vae (const AeVae * v, TensorFn fn, AeVkContext * ctx, AeError * err)
{
  const AeTensor *const q[] = { &v->quant_w, &v->quant_b };
  const AeTensor *const pq[] = { &v->post_quant_w, &v->post_quant_b };

  if (walk_coder (&v->encoder, v->cfg.n_levels, fn, ctx, err) < 0 ||
      walk_coder (&v->decoder, v->cfg.n_levels, fn, ctx, err) < 0 ||
      (v->cfg.use_quant_conv && walk_tensors (fn, ctx, err, 2, q) < 0) ||
      (v->cfg.use_post_quant_conv && walk_tensors (fn, ctx, err, 2, pq) < 0))
    return -1;
  return 0;
}

int
ae_vk_vae_new (AeVkVae ** out, AeVkContext * ctx, const AeVae * vae,
    AeError * err)
{
  AeVkVae *vv = g_new0 (AeVkVae, 1);

  *out = NULL;
  vv->ctx = ctx;
  vv->vae = vae;
  ae_vk_stack_init (&vv->stack, ctx);
  if (walk_vae (vae, up_tensor, ctx, err) < 0) {
    char msg[sizeof err->msg];
    snprintf (msg, sizeof msg, "%s", err->msg);
    ae_vk_vae_free (vv);
    return ae_error (err, "vulkan vae: uploading the weights of %s: %s",
        ae_st_path (vae->st), msg);
  }
  *out = vv;
  return 0;
}

void
ae_vk_vae_free (AeVkVae * vv)
{
  if (vv == NULL)
    return;
  walk_vae (vv->vae, forget_tensor, vv->ctx, NULL);
  ae_vk_stack_clear (&vv->stack);
  g_free (vv);
}

/* ---- stages ------------------------------------------------------------- */

/* A new activation buffer for the next stage's output. */
static int
next (Pass * p, AeVkTensor * y, AeVkBuffer ** buf, int64_t c, int64_t h,
    int64_t w)
{
  int64_t shape[4] = { p->x.shape[0], c, h, w };

  *buf = ae_vk_pool_acquire_mem (p->ctx, (size_t) (shape[0] * c * h * w) *
      sizeof (float), AE_VK_MEM_DEVICE, p->err);
  if (*buf == NULL)
    return -1;
  *y = ae_vk_tensor_nd (*buf, 4, shape);
  return 0;
}

/* y becomes the current activation; the old one's buffer goes back. */
static void
swap (Pass * p, const AeVkTensor * y, AeVkBuffer * buf)
{
  if (p->x_buf)
    ae_vk_pool_release (p->ctx, p->x_buf);
  p->x = *y;
  p->x_buf = buf;
}

static int
resnet_forward (Pass * p, const VaeResnet * r)
{
  const AeVkTensor *x = &p->x;
  int64_t b = x->shape[0], h = x->shape[2], w = x->shape[3];
  int mark = ae_vk_stack_mark (p->s);
  int groups = p->cfg->norm_num_groups;
  float eps = p->cfg->norm_eps;
  AeVkTensor n1, t, y;
  AeVkBuffer *yb;
  int ret = -1;

  if (next (p, &y, &yb, r->cout, h, w) < 0)
    return -1;
  if (ae_vk_stack_tensor4 (p->s, &n1, b, r->cin, h, w, p->err) < 0 ||
      ae_vk_stack_tensor4 (p->s, &t, b, r->cout, h, w, p->err) < 0 ||
      ae_vk_group_norm_w (p->ctx, &n1, x, groups, eps, &r->norm1_w,
          &r->norm1_b, true, p->err) < 0 ||
      ae_vk_conv2d_w (p->ctx, &t, &n1, &r->conv1_w, &r->conv1_b, 1, 1, 1, 1,
          1, p->err) < 0 ||
      ae_vk_group_norm_w (p->ctx, &t, &t, groups, eps, &r->norm2_w,
          &r->norm2_b, true, p->err) < 0 ||
      ae_vk_conv2d_w (p->ctx, &y, &t, &r->conv2_w, &r->conv2_b, 1, 1, 1, 1,
          1, p->err) < 0)
    goto out;
  if (r->has_shortcut) {
    if (ae_vk_conv2d_w (p->ctx, &t, x, &r->shortcut_w, &r->shortcut_b, 1, 0,
            0, 0, 0, p->err) < 0 ||
        ae_vk_add_scaled (p->ctx, &y, &t, &y, 1.0f, p->err) < 0)
      goto out;
  } else if (ae_vk_add_scaled (p->ctx, &y, x, &y, 1.0f, p->err) < 0) {
    goto out;
  }
  ret = 0;
out:
  ae_vk_stack_release (p->s, mark);
  if (ret < 0)
    ae_vk_pool_release (p->ctx, yb);
  else
    swap (p, &y, yb);
  return ret;
}

/* Mid-block attention: GroupNorm, one head over the H*W tokens, residual. */
static int
attention_forward (Pass * p, const VaeAttention * a)
{
  const AeVkTensor *x = &p->x;
  int64_t b = x->shape[0], c = a->channels, h = x->shape[2], w = x->shape[3];
  int mark = ae_vk_stack_mark (p->s);
  AeVkTensor n, seq, q, k, v, o, y;
  AeVkBuffer *yb;
  int ret = -1;

  if (next (p, &y, &yb, c, h, w) < 0)
    return -1;
  if (ae_vk_stack_tensor4 (p->s, &n, b, c, h, w, p->err) < 0 ||
      ae_vk_stack_tensor3 (p->s, &seq, b, h * w, c, p->err) < 0 ||
      ae_vk_stack_tensor3 (p->s, &q, b, h * w, c, p->err) < 0 ||
      ae_vk_stack_tensor3 (p->s, &k, b, h * w, c, p->err) < 0 ||
      ae_vk_stack_tensor3 (p->s, &v, b, h * w, c, p->err) < 0)
    goto out;
  if (ae_vk_group_norm_w (p->ctx, &n, x, p->cfg->norm_num_groups,
          p->cfg->norm_eps, &a->norm_w, &a->norm_b, false, p->err) < 0 ||
      ae_vk_nchw_to_nlc (p->ctx, &seq, &n, p->err) < 0 ||
      ae_vk_linear_w (p->ctx, &q, &seq, &a->q_w, &a->q_b, p->err) < 0 ||
      ae_vk_linear_w (p->ctx, &k, &seq, &a->k_w, &a->k_b, p->err) < 0 ||
      ae_vk_linear_w (p->ctx, &v, &seq, &a->v_w, &a->v_b, p->err) < 0)
    goto out;
  o = seq;
  if (ae_vk_attention (p->ctx, &o, &q, &k, &v, NULL, NULL, 1, 0.0f,
          p->err) < 0 ||
      ae_vk_linear_w (p->ctx, &q, &o, &a->out_w, &a->out_b, p->err) < 0 ||
      ae_vk_nlc_to_nchw (p->ctx, &y, &q, p->err) < 0 ||
      ae_vk_add_scaled (p->ctx, &y, &y, x, 1.0f, p->err) < 0)
    goto out;
  ret = 0;
out:
  ae_vk_stack_release (p->s, mark);
  if (ret < 0)
    ae_vk_pool_release (p->ctx, yb);
  else
    swap (p, &y, yb);
  return ret;
}

/* Conv into a new buffer: conv_in, conv_out, quant convs, samplers. y_buf
 * non-NULL: write into that (host-visible) buffer instead. */
static int
conv_forward (Pass * p, const AeTensor * w, const AeTensor * bias,
    int stride, int pt, int pb, int pl, int pr, AeVkBuffer * y_buf)
{
  int k = (int) w->shape[2];
  int64_t ho = ae_conv2d_out_size (p->x.shape[2], k, stride, pt, pb);
  int64_t wo = ae_conv2d_out_size (p->x.shape[3], k, stride, pl, pr);
  AeVkTensor y;
  AeVkBuffer *yb = y_buf;

  if (yb == NULL) {
    if (next (p, &y, &yb, w->shape[0], ho, wo) < 0)
      return -1;
  } else {
    int64_t shape[4] = { p->x.shape[0], w->shape[0], ho, wo };
    y = ae_vk_tensor_nd (yb, 4, shape);
  }
  if (ae_vk_conv2d_w (p->ctx, &y, &p->x, w, bias, stride, pt, pb, pl, pr,
          p->err) < 0) {
    if (y_buf == NULL)
      ae_vk_pool_release (p->ctx, yb);
    return -1;
  }
  swap (p, &y, y_buf ? NULL : yb);
  return 0;
}

static int
mid_forward (Pass * p, const VaeMidBlock * m)
{
  if (resnet_forward (p, &m->resnets[0]) < 0 ||
      (m->has_attention && attention_forward (p, &m->attention) < 0) ||
      resnet_forward (p, &m->resnets[1]) < 0)
    return -1;
  return 0;
}

/* conv_norm_out + SiLU (fused), conv_out into out_buf. */
static int
out_forward (Pass * p, const VaeCoder * cd, AeVkBuffer * out_buf)
{
  AeVkTensor y;
  AeVkBuffer *yb;

  if (next (p, &y, &yb, p->x.shape[1], p->x.shape[2], p->x.shape[3]) < 0)
    return -1;
  if (ae_vk_group_norm_w (p->ctx, &y, &p->x, p->cfg->norm_num_groups,
          p->cfg->norm_eps, &cd->norm_out_w, &cd->norm_out_b, true,
          p->err) < 0) {
    ae_vk_pool_release (p->ctx, yb);
    return -1;
  }
  swap (p, &y, yb);
  return conv_forward (p, &cd->conv_out_w, &cd->conv_out_b, 1, 1, 1, 1, 1,
      out_buf);
}

static int
check_input (const AeVae * vae, const AeTensor * x, const char *what,
    int channels, int multiple, AeError * err)
{
  if (x->ndim != 4 || x->shape[1] != channels || x->shape[0] < 1 ||
      x->shape[2] < multiple || x->shape[3] < multiple ||
      x->shape[2] % multiple != 0 || x->shape[3] % multiple != 0) {
    char s[64];
    return ae_error (err, "%s: %s: shape %s, expected (B,%d,H,W) with H and "
        "W multiples of %d", ae_st_path (vae->st), what,
        ae_shape_str (x->ndim, x->shape, s, sizeof (s)), channels, multiple);
  }
  return 0;
}

/* Runs the recorded pass, reads `out_buf` into host and gives back every
 * buffer of the pass. */
static int
pass_finish (Pass * p, int ok, AeVkBuffer * in_buf, AeVkBuffer * out_buf,
    AeTensor * host_out)
{
  int ret = -1;

  if (!ok)
    ae_vk_abort (p->ctx);
  else if (ae_vk_submit (p->ctx, p->err) == 0 &&
      ae_vk_download (out_buf, host_out->data,
          (size_t) ae_tensor_numel (host_out), p->err) == 0)
    ret = 0;
  if (p->x_buf)
    ae_vk_pool_release (p->ctx, p->x_buf);
  ae_vk_stack_release (p->s, 0);
  if (in_buf)
    ae_vk_pool_release (p->ctx, in_buf);
  if (out_buf)
    ae_vk_pool_release (p->ctx, out_buf);
  return ret;
}

static void
pass_init (Pass * p, AeVkVae * vv, AeError * err)
{
  memset (p, 0, sizeof (*p));
  p->vv = vv;
  p->ctx = vv->ctx;
  p->cfg = &vv->vae->cfg;
  p->err = err;
  p->s = &vv->stack;
}

static int
decode_levels (Pass * p, AeVkBuffer * out_buf)
{
  const AeVae *vae = p->vv->vae;
  const VaeCoder *d = &vae->decoder;

  if (vae->cfg.use_post_quant_conv &&
      conv_forward (p, &vae->post_quant_w, &vae->post_quant_b, 1, 0, 0, 0, 0,
          NULL) < 0)
    return -1;
  if (conv_forward (p, &d->conv_in_w, &d->conv_in_b, 1, 1, 1, 1, 1,
          NULL) < 0 || mid_forward (p, &d->mid) < 0)
    return -1;
  for (int i = 0; i < vae->cfg.n_levels; i++) {
    const VaeLevel *l = &d->levels[i];
    for (int j = 0; j < l->n_resnets; j++)
      if (resnet_forward (p, &l->resnets[j]) < 0)
        return -1;
    if (l->has_sampler) {
      AeVkTensor up;
      AeVkBuffer *ub;
      if (next (p, &up, &ub, p->x.shape[1], 2 * p->x.shape[2],
              2 * p->x.shape[3]) < 0)
        return -1;
      if (ae_vk_upsample_nearest2x (p->ctx, &up, &p->x, p->err) < 0) {
        ae_vk_pool_release (p->ctx, ub);
        return -1;
      }
      swap (p, &up, ub);
      if (conv_forward (p, &l->sampler_w, &l->sampler_b, 1, 1, 1, 1, 1,
              NULL) < 0)
        return -1;
    }
  }
  return out_forward (p, d, out_buf);
}

int
ae_vk_vae_decode (AeVkVae * vv, const AeTensor * latent, AeTensor * sample,
    AeError * err)
{
  const AeVae *vae = vv->vae;
  int f = ae_vae_downscale (vae);
  AeVkBuffer *in_buf = NULL, *out_buf;
  int64_t shape[4];
  Pass p;
  int ok;

  if (check_input (vae, latent, "decode latent", vae->cfg.latent_channels, 1,
          err) < 0)
    return -1;
  shape[0] = latent->shape[0];
  shape[1] = vae->cfg.out_channels;
  shape[2] = latent->shape[2] * f;
  shape[3] = latent->shape[3] * f;
  if (ae_tensor_check_shape (sample, "decode sample", 4, shape, err) < 0)
    return -1;
  pass_init (&p, vv, err);
  out_buf = ae_vk_pool_acquire (vv->ctx,
      (size_t) ae_tensor_numel (sample) * sizeof (float), err);
  if (out_buf == NULL)
    return -1;
  ok = ae_vk_input (vv->ctx, latent, &in_buf, &p.x, err) == 0 &&
      decode_levels (&p, out_buf) == 0;
  return pass_finish (&p, ok, in_buf, out_buf, sample);
}

static int
encode_levels (Pass * p, AeVkBuffer * out_buf)
{
  const AeVae *vae = p->vv->vae;
  const VaeCoder *e = &vae->encoder;

  if (conv_forward (p, &e->conv_in_w, &e->conv_in_b, 1, 1, 1, 1, 1,
          NULL) < 0)
    return -1;
  for (int i = 0; i < vae->cfg.n_levels; i++) {
    const VaeLevel *l = &e->levels[i];
    for (int j = 0; j < l->n_resnets; j++)
      if (resnet_forward (p, &l->resnets[j]) < 0)
        return -1;
    /* Downsample2D: F.pad (0, 1, 0, 1), then stride 2 without padding. */
    if (l->has_sampler && conv_forward (p, &l->sampler_w, &l->sampler_b, 2,
            0, 1, 0, 1, NULL) < 0)
      return -1;
  }
  if (mid_forward (p, &e->mid) < 0)
    return -1;
  if (!vae->cfg.use_quant_conv)
    return out_forward (p, e, out_buf);
  return out_forward (p, e, NULL) < 0 ? -1 :
      conv_forward (p, &vae->quant_w, &vae->quant_b, 1, 0, 0, 0, 0, out_buf);
}

int
ae_vk_vae_encode (AeVkVae * vv, const AeTensor * x, AeTensor * mean,
    AeTensor * logvar, AeError * err)
{
  const AeVae *vae = vv->vae;
  const AeVaeConfig *cfg = &vae->cfg;
  int f = ae_vae_downscale (vae);
  AeVkBuffer *in_buf = NULL, *out_buf;
  AeTensor moments;
  int64_t shape[4], plane;
  Pass p;
  int ok, ret;

  if (check_input (vae, x, "encode input", cfg->in_channels, f, err) < 0)
    return -1;
  shape[0] = x->shape[0];
  shape[1] = cfg->latent_channels;
  shape[2] = x->shape[2] / f;
  shape[3] = x->shape[3] / f;
  if (ae_tensor_check_shape (mean, "encode mean", 4, shape, err) < 0 ||
      (logvar != NULL && ae_tensor_check_shape (logvar, "encode logvar", 4,
              shape, err) < 0))
    return -1;
  /* moments (B, 2L, h, w): read back whole, split on the host. */
  moments = ae_tensor_4d (NULL, shape[0], 2 * shape[1], shape[2], shape[3]);
  pass_init (&p, vv, err);
  out_buf = ae_vk_pool_acquire (vv->ctx,
      (size_t) ae_tensor_numel (&moments) * sizeof (float), err);
  if (out_buf == NULL)
    return -1;
  ok = ae_vk_input (vv->ctx, x, &in_buf, &p.x, err) == 0 &&
      encode_levels (&p, out_buf) == 0;
  if (!ok)
    return pass_finish (&p, 0, in_buf, out_buf, &moments);
  /* pass_finish downloads into host memory: read straight from the
   * mapped output buffer instead (no temporary copy). */
  ret = ae_vk_submit (vv->ctx, err);
  moments.data = out_buf->map;
  plane = shape[1] * shape[2] * shape[3];
  for (int64_t i = 0; ret == 0 && i < shape[0]; i++) {
    const float *src = moments.data + i * 2 * plane;
    memcpy (mean->data + i * plane, src, (size_t) plane * sizeof (float));
    if (logvar != NULL)
      memcpy (logvar->data + i * plane, src + plane,
          (size_t) plane * sizeof (float));
  }
  if (ret == 0 && logvar != NULL)
    ret = ae_clamp (logvar, logvar, LOGVAR_MIN, LOGVAR_MAX, err);
  if (p.x_buf)
    ae_vk_pool_release (p.ctx, p.x_buf);
  ae_vk_stack_release (p.s, 0);
  ae_vk_pool_release (vv->ctx, in_buf);
  ae_vk_pool_release (vv->ctx, out_buf);
  return ret;
}
