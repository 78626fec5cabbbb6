/* UNet2DConditionModel forward on Vulkan (see vk-unet.h). The structure
 * mirrors engine/unet.c function by function (resnet, attention, basic
 * transformer block, Transformer2D, down / mid / up blocks); activations
 * live in pooled device buffers managed like the CPU arena (mark /
 * release), every op is one dispatch in the pass's command buffer. */
#include "vk-unet.h"

#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "vk-model.h"

/* As engine/unet.c: Transformer2DModel GroupNorm eps, BasicTransformerBlock
 * LayerNorm eps. */
#define TRANSFORMER_GN_EPS 1e-6f
#define TRANSFORMER_LN_EPS 1e-5f
#define MAX_SKIPS 128

struct AeVkUNet {
  AeVkContext *ctx;
  const AeUNet *u;
  AeVkStack stack;
  /* Reference bank on the device (INJECT: uploaded per pass) and the
   * host-visible copies of the captured tokens (CAPTURE); grown only when
   * a bank has more entries than ever before. */
  AeVkBuffer **bank_bufs;
  AeVkTensor *bank_dev;
  AeVkBuffer **cap_bufs;
  AeVkTensor *cap_dev;
  int bank_alloc;
  uint64_t last_dispatches, last_submits;
};

/* State of one forward pass. */
typedef struct {
  AeVkUNet *vu;
  AeVkContext *ctx;
  const AeUNet *u;
  AeError *err;
  const AeUNetHooks *hooks;
  AeVkStack *s;
  AeVkTensor context;           /* encoder_hidden_states */
  AeVkTensor temb_silu;         /* silu(time embedding), (B, temb) */
  int block_index;              /* BasicTransformerBlock counter */
  int n_bank;                   /* bank entries uploaded (INJECT) */
  int n_captured;               /* entries captured (CAPTURE) */
  AeVkTensor skips[MAX_SKIPS];
  int n_skips;
} Fwd;

/* ---- weights ------------------------------------------------------------ */

static int
up_param (AeVkContext * ctx, const AeUNetParam * p, AeError * err)
{
  AeVkTensor t;

  if (p->weight.data && ae_vk_weight (ctx, &p->weight, &t, err) < 0)
    return -1;
  if (p->bias.data && ae_vk_weight (ctx, &p->bias, &t, err) < 0)
    return -1;
  return 0;
}

static void
forget_param (AeVkContext * ctx, const AeUNetParam * p)
{
  ae_vk_pool_forget (ctx, p->weight.data);
  ae_vk_pool_forget (ctx, p->bias.data);
}

/* Calls fn on every AeUNetParam of u (attention projections without a
 * bias are wrapped); stops at the first failure. */
typedef int (*ParamFn) (AeVkContext * ctx, const AeUNetParam * p,
    AeError * err);

static int
walk_attention (const AeUNetAttention * a, ParamFn fn, AeVkContext * ctx,
    AeError * err)
{
  AeUNetParam q = { a->to_q, {0} }, k = { a->to_k, {0} }, v = { a->to_v, {0} };

  return fn (ctx, &q, err) < 0 || fn (ctx, &k, err) < 0 ||
      fn (ctx, &v, err) < 0 || fn (ctx, &a->to_out, err) < 0 ? -1 : 0;
}

static int
walk_block (const AeUNetBlock * b, ParamFn fn, AeVkContext * ctx,
    AeError * err)
{
  int n_attn = b->type == AE_BLOCK_MID_CROSS_ATTN ? 1 : b->n_layers;

  for (int j = 0; j < b->n_layers; j++) {
    const AeResnetBlock2D *r = &b->resnets[j];
    if (fn (ctx, &r->norm1, err) < 0 || fn (ctx, &r->conv1, err) < 0 ||
        fn (ctx, &r->time_emb_proj, err) < 0 || fn (ctx, &r->norm2, err) < 0
        || fn (ctx, &r->conv2, err) < 0 || fn (ctx, &r->conv_shortcut,
            err) < 0)
      return -1;
  }
  for (int j = 0; b->attentions && j < n_attn; j++) {
    const AeTransformer2D *t = &b->attentions[j];
    if (fn (ctx, &t->norm, err) < 0 || fn (ctx, &t->proj_in, err) < 0 ||
        fn (ctx, &t->proj_out, err) < 0)
      return -1;
    for (int i = 0; i < t->n_layers; i++) {
      const AeBasicTransformerBlock *bb = &t->blocks[i];
      if (fn (ctx, &bb->norm1, err) < 0 ||
          walk_attention (&bb->attn1, fn, ctx, err) < 0 ||
          fn (ctx, &bb->norm2, err) < 0 ||
          walk_attention (&bb->attn2, fn, ctx, err) < 0 ||
          fn (ctx, &bb->norm3, err) < 0 || fn (ctx, &bb->ff_proj, err) < 0
          || fn (ctx, &bb->ff_out, err) < 0)
        return -1;
    }
  }
  if (b->has_sampler && fn (ctx, &b->sampler, err) < 0)
    return -1;
  return 0;
}

static int
walk_unet (const AeUNet * u, ParamFn fn, AeVkContext * ctx, AeError * err)
{
  if (fn (ctx, &u->conv_in, err) < 0 || fn (ctx, &u->time_linear_1, err) < 0
      || fn (ctx, &u->time_linear_2, err) < 0)
    return -1;
  for (int i = 0; i < u->cfg.n_levels; i++)
    if (walk_block (&u->down[i], fn, ctx, err) < 0 ||
        walk_block (&u->up[i], fn, ctx, err) < 0)
      return -1;
  if (walk_block (&u->mid, fn, ctx, err) < 0 ||
      fn (ctx, &u->conv_norm_out, err) < 0 || fn (ctx, &u->conv_out, err) < 0)
    return -1;
  return 0;
}

static int
forget_fn (AeVkContext * ctx, const AeUNetParam * p, AeError * err)
{
  forget_param (ctx, p);
  return 0;
}

int
ae_vk_unet_new (AeVkUNet ** out, AeVkContext * ctx, const AeUNet * u,
    AeError * err)
{
  AeVkUNet *vu = g_new0 (AeVkUNet, 1);

  *out = NULL;
  vu->ctx = ctx;
  vu->u = u;
  ae_vk_stack_init (&vu->stack, ctx);
  if (walk_unet (u, up_param, ctx, err) < 0) {
    char msg[sizeof err->msg];
    snprintf (msg, sizeof msg, "%s", err->msg);
    ae_vk_unet_free (vu);
    return ae_error (err, "vulkan unet: uploading the weights of %s: %s",
        u->config_path ? u->config_path : "(random model)", msg);
  }
  *out = vu;
  return 0;
}

void
ae_vk_unet_free (AeVkUNet * vu)
{
  if (vu == NULL)
    return;
  walk_unet (vu->u, forget_fn, vu->ctx, NULL);
  ae_vk_stack_clear (&vu->stack);
  g_free (vu->bank_bufs);
  g_free (vu->bank_dev);
  g_free (vu->cap_bufs);
  g_free (vu->cap_dev);
  g_free (vu);
}

uint64_t
ae_vk_unet_last_dispatches (const AeVkUNet * vu)
{
  return vu->last_dispatches;
}

uint64_t
ae_vk_unet_last_submits (const AeVkUNet * vu)
{
  return vu->last_submits;
}

/* ---- blocks --------------------------------------------------------------- */

/* ResnetBlock2D: y = (shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x)))
 * + proj(temb))))) / output_scale_factor. */
static int
resnet_forward (Fwd * f, AeVkTensor * y, const AeVkTensor * x,
    const AeResnetBlock2D * r)
{
  int mark = ae_vk_stack_mark (f->s);
  int64_t b = x->shape[0], h = x->shape[2], w = x->shape[3];
  int groups = f->u->cfg.norm_num_groups;
  float eps = f->u->cfg.norm_eps;
  AeVkTensor n1, h1, tp, sc;
  int ret = -1;

  if (ae_vk_stack_tensor4 (f->s, &n1, b, r->in_channels, h, w, f->err) < 0
      || ae_vk_stack_tensor4 (f->s, &h1, b, r->out_channels, h, w,
          f->err) < 0
      || ae_vk_stack_tensor2 (f->s, &tp, b, r->out_channels, f->err) < 0)
    goto out;
  if (ae_vk_group_norm_w (f->ctx, &n1, x, groups, eps, &r->norm1.weight,
          &r->norm1.bias, true, f->err) < 0 ||
      ae_vk_conv2d_w (f->ctx, &h1, &n1, &r->conv1.weight, &r->conv1.bias, 1,
          1, 1, 1, 1, f->err) < 0 ||
      ae_vk_linear_w (f->ctx, &tp, &f->temb_silu, &r->time_emb_proj.weight,
          &r->time_emb_proj.bias, f->err) < 0 ||
      ae_vk_add_channel (f->ctx, &h1, &tp, f->err) < 0 ||
      ae_vk_group_norm_w (f->ctx, &h1, &h1, groups, eps, &r->norm2.weight,
          &r->norm2.bias, true, f->err) < 0 ||
      ae_vk_conv2d_w (f->ctx, y, &h1, &r->conv2.weight, &r->conv2.bias, 1, 1,
          1, 1, 1, f->err) < 0)
    goto out;
  if (r->conv_shortcut.weight.data) {
    if (ae_vk_stack_tensor4 (f->s, &sc, b, r->out_channels, h, w,
            f->err) < 0 ||
        ae_vk_conv2d_w (f->ctx, &sc, x, &r->conv_shortcut.weight,
            &r->conv_shortcut.bias, 1, 0, 0, 0, 0, f->err) < 0)
      goto out;
    ret = ae_vk_add_scaled (f->ctx, y, &sc, y, r->output_scale_factor,
        f->err);
  } else {
    ret = ae_vk_add_scaled (f->ctx, y, x, y, r->output_scale_factor, f->err);
  }
out:
  ae_vk_stack_release (f->s, mark);
  return ret;
}

/* attn1 with the hooks: plain, temporal (all frames) or reference-injected
 * (keys / values extended by the bank tokens, per batch element by the
 * mask). */
static int
attn1_core (Fwd * f, AeVkTensor * o, const AeVkTensor * q,
    const AeVkTensor * k, const AeVkTensor * v,
    const AeBasicTransformerBlock * blk)
{
  const AeUNetHooks *hk = f->hooks;
  int64_t b = q->shape[0], l = q->shape[1], c = q->shape[2];
  const AeVkTensor *ref;
  AeVkTensor ke, ve;
  int mark, ret;

  if (hk && hk->temporal) {
    int64_t s[3] = { 1, b * l, c };
    AeVkTensor q1 = ae_vk_tensor_nd (q->buf, 3, s);
    AeVkTensor k1 = ae_vk_tensor_nd (k->buf, 3, s);
    AeVkTensor v1 = ae_vk_tensor_nd (v->buf, 3, s);
    AeVkTensor o1 = ae_vk_tensor_nd (o->buf, 3, s);
    bool inj = hk->ref_mode == AE_REF_INJECT &&
        (hk->ref_batch_mask == NULL || hk->ref_batch_mask[0]);
    /* Temporal + reference (Make-Your-Anchor), as engine/unet.c: keys and
     * values = every frame's tokens, then the reference tokens; one
     * sequence, so the batch mask must be the same for every frame. */
    for (int64_t i = 1; hk->ref_mode == AE_REF_INJECT &&
        hk->ref_batch_mask && i < b; i++)
      if (hk->ref_batch_mask[i] != hk->ref_batch_mask[0])
        return ae_error (f->err, "unet: temporal attention needs the same "
            "ref_batch_mask for every frame of the batch");
    if (!inj)
      return ae_vk_attention (f->ctx, &o1, &q1, &k1, &v1, NULL, NULL,
          blk->heads, 0.0f, f->err);
    ref = f->block_index < f->n_bank ?
        &f->vu->bank_dev[f->block_index] : NULL;
    if (ref == NULL || ref->ndim != 3 || ref->shape[0] != 1 ||
        ref->shape[2] != c)
      return ae_error (f->err, "unet: temporal attention needs one "
          "reference bank entry (1, L, %lld) for transformer block %d",
          (long long) c, f->block_index);
    mark = ae_vk_stack_mark (f->s);
    ret = -1;
    if (ae_vk_stack_tensor3 (f->s, &ke, 1, ref->shape[1], c, f->err) == 0
        && ae_vk_stack_tensor3 (f->s, &ve, 1, ref->shape[1], c,
            f->err) == 0
        && ae_vk_linear_w (f->ctx, &ke, ref, &blk->attn1.to_k, NULL,
            f->err) == 0
        && ae_vk_linear_w (f->ctx, &ve, ref, &blk->attn1.to_v, NULL,
            f->err) == 0)
      ret = ae_vk_attention (f->ctx, &o1, &q1, &k1, &v1, &ke, &ve,
          blk->heads, 0.0f, f->err);
    ae_vk_stack_release (f->s, mark);
    return ret;
  }
  if (hk == NULL || hk->ref_mode != AE_REF_INJECT)
    return ae_vk_attention (f->ctx, o, q, k, v, NULL, NULL, blk->heads, 0.0f,
        f->err);
  if (f->block_index >= f->n_bank)
    return ae_error (f->err, "unet: reference bank has no entry for "
        "transformer block %d", f->block_index);
  ref = &f->vu->bank_dev[f->block_index];
  if (ref->ndim != 3 || ref->shape[2] != c ||
      (ref->shape[0] != 1 && ref->shape[0] != b))
    return ae_error (f->err, "unet: reference bank entry %d has %d dims / "
        "%lld channels, block expects %lld", f->block_index, ref->ndim,
        (long long) (ref->ndim == 3 ? ref->shape[2] : 0), (long long) c);
  mark = ae_vk_stack_mark (f->s);
  ret = -1;
  if (ae_vk_stack_tensor3 (f->s, &ke, ref->shape[0], ref->shape[1], c,
          f->err) < 0 ||
      ae_vk_stack_tensor3 (f->s, &ve, ref->shape[0], ref->shape[1], c,
          f->err) < 0 ||
      ae_vk_linear_w (f->ctx, &ke, ref, &blk->attn1.to_k, NULL, f->err) < 0
      || ae_vk_linear_w (f->ctx, &ve, ref, &blk->attn1.to_v, NULL,
          f->err) < 0)
    goto out;
  ret = ae_vk_attention_masked (f->ctx, o, q, k, v, &ke, &ve,
      hk->ref_batch_mask, blk->heads, 0.0f, f->err);
out:
  ae_vk_stack_release (f->s, mark);
  return ret;
}

/* out = to_out(attn(to_q(x), to_k(ctx), to_v(ctx))); self_attn: attn1. */
static int
attention_forward (Fwd * f, AeVkTensor * out, const AeVkTensor * x,
    const AeVkTensor * ctx, const AeUNetAttention * at,
    const AeBasicTransformerBlock * blk, bool self_attn)
{
  int mark = ae_vk_stack_mark (f->s);
  int64_t b = x->shape[0], l = x->shape[1], c = x->shape[2];
  int64_t lk = ctx->shape[1];
  AeVkTensor q, k, v, o;
  int ret = -1;

  if (ae_vk_stack_tensor3 (f->s, &q, b, l, c, f->err) < 0 ||
      ae_vk_stack_tensor3 (f->s, &k, b, lk, c, f->err) < 0 ||
      ae_vk_stack_tensor3 (f->s, &v, b, lk, c, f->err) < 0 ||
      ae_vk_stack_tensor3 (f->s, &o, b, l, c, f->err) < 0)
    goto out;
  if (ae_vk_linear_w (f->ctx, &q, x, &at->to_q, NULL, f->err) < 0 ||
      ae_vk_linear_w (f->ctx, &k, ctx, &at->to_k, NULL, f->err) < 0 ||
      ae_vk_linear_w (f->ctx, &v, ctx, &at->to_v, NULL, f->err) < 0)
    goto out;
  if (self_attn) {
    if (attn1_core (f, &o, &q, &k, &v, blk) < 0)
      goto out;
  } else if (ae_vk_attention (f->ctx, &o, &q, &k, &v, NULL, NULL,
          blk->heads, 0.0f, f->err) < 0) {
    goto out;
  }
  ret = ae_vk_linear_w (f->ctx, out, &o, &at->to_out.weight,
      &at->to_out.bias, f->err);
out:
  ae_vk_stack_release (f->s, mark);
  return ret;
}

/* CAPTURE: copies the norm1 output into a host-visible buffer that stays
 * until the pass has run (then read into the host bank). */
static int
capture (Fwd * f, const AeVkTensor * n)
{
  AeVkUNet *vu = f->vu;
  int i = f->block_index;
  size_t bytes = (size_t) ae_vk_tensor_numel (n) * sizeof (float);

  if (i >= vu->bank_alloc)
    return ae_error (f->err, "unet: transformer block %d beyond the %d the "
        "model has", i, vu->bank_alloc);
  vu->cap_bufs[i] = ae_vk_pool_acquire (f->ctx, bytes, f->err);
  if (vu->cap_bufs[i] == NULL)
    return -1;
  vu->cap_dev[i] = ae_vk_tensor_nd (vu->cap_bufs[i], n->ndim, n->shape);
  f->n_captured = i + 1;
  return ae_vk_copy (f->ctx, &vu->cap_dev[i], n, f->err);
}

/* BasicTransformerBlock, in place on h (B, L, C). */
static int
basic_block_forward (Fwd * f, AeVkTensor * h,
    const AeBasicTransformerBlock * blk)
{
  int mark = ae_vk_stack_mark (f->s);
  int64_t b = h->shape[0], l = h->shape[1], c = h->shape[2];
  const AeUNetHooks *hk = f->hooks;
  AeVkTensor n, o, ff1, ff2;
  int ret = -1;

  if (ae_vk_stack_tensor3 (f->s, &n, b, l, c, f->err) < 0 ||
      ae_vk_stack_tensor3 (f->s, &o, b, l, c, f->err) < 0 ||
      ae_vk_stack_tensor3 (f->s, &ff1, b, l, 8 * c, f->err) < 0 ||
      ae_vk_stack_tensor3 (f->s, &ff2, b, l, 4 * c, f->err) < 0)
    goto out;
  if (ae_vk_layer_norm_w (f->ctx, &n, h, TRANSFORMER_LN_EPS,
          &blk->norm1.weight, &blk->norm1.bias, f->err) < 0)
    goto out;
  if (hk && hk->ref_mode == AE_REF_CAPTURE) {
    if (hk->bank == NULL) {
      ae_error (f->err, "unet: reference capture without a bank");
      goto out;
    }
    if (capture (f, &n) < 0)
      goto out;
  }
  if (attention_forward (f, &o, &n, &n, &blk->attn1, blk, true) < 0 ||
      ae_vk_add (f->ctx, h, h, &o, f->err) < 0 ||
      ae_vk_layer_norm_w (f->ctx, &n, h, TRANSFORMER_LN_EPS,
          &blk->norm2.weight, &blk->norm2.bias, f->err) < 0 ||
      attention_forward (f, &o, &n, &f->context, &blk->attn2, blk,
          false) < 0 ||
      ae_vk_add (f->ctx, h, h, &o, f->err) < 0 ||
      ae_vk_layer_norm_w (f->ctx, &n, h, TRANSFORMER_LN_EPS,
          &blk->norm3.weight, &blk->norm3.bias, f->err) < 0 ||
      ae_vk_linear_w (f->ctx, &ff1, &n, &blk->ff_proj.weight,
          &blk->ff_proj.bias, f->err) < 0 ||
      ae_vk_geglu (f->ctx, &ff2, &ff1, f->err) < 0 ||
      ae_vk_linear_w (f->ctx, &o, &ff2, &blk->ff_out.weight,
          &blk->ff_out.bias, f->err) < 0)
    goto out;
  ret = ae_vk_add (f->ctx, h, h, &o, f->err);
out:
  f->block_index++;
  ae_vk_stack_release (f->s, mark);
  return ret;
}

/* Transformer2DModel: y = x + proj_out(blocks(proj_in(norm(x)))). */
static int
transformer_forward (Fwd * f, AeVkTensor * y, const AeVkTensor * x,
    const AeTransformer2D * t)
{
  int mark = ae_vk_stack_mark (f->s);
  int64_t b = x->shape[0], c = x->shape[1], hh = x->shape[2];
  int64_t ww = x->shape[3], l = hh * ww;
  AeVkTensor n, p, tok, tok2;
  int ret = -1;

  if (ae_vk_stack_tensor4 (f->s, &n, b, c, hh, ww, f->err) < 0 ||
      ae_vk_stack_tensor4 (f->s, &p, b, c, hh, ww, f->err) < 0 ||
      ae_vk_stack_tensor3 (f->s, &tok, b, l, c, f->err) < 0 ||
      ae_vk_stack_tensor3 (f->s, &tok2, b, l, c, f->err) < 0)
    goto out;
  if (ae_vk_group_norm_w (f->ctx, &n, x, f->u->cfg.norm_num_groups,
          TRANSFORMER_GN_EPS, &t->norm.weight, &t->norm.bias, false,
          f->err) < 0)
    goto out;
  if (!t->linear_projection) {
    if (ae_vk_conv2d_w (f->ctx, &p, &n, &t->proj_in.weight,
            &t->proj_in.bias, 1, 0, 0, 0, 0, f->err) < 0 ||
        ae_vk_nchw_to_nlc (f->ctx, &tok, &p, f->err) < 0)
      goto out;
  } else if (ae_vk_nchw_to_nlc (f->ctx, &tok2, &n, f->err) < 0 ||
      ae_vk_linear_w (f->ctx, &tok, &tok2, &t->proj_in.weight,
          &t->proj_in.bias, f->err) < 0) {
    goto out;
  }
  for (int i = 0; i < t->n_layers; i++)
    if (basic_block_forward (f, &tok, &t->blocks[i]) < 0)
      goto out;
  if (!t->linear_projection) {
    if (ae_vk_nlc_to_nchw (f->ctx, &n, &tok, f->err) < 0 ||
        ae_vk_conv2d_w (f->ctx, &p, &n, &t->proj_out.weight,
            &t->proj_out.bias, 1, 0, 0, 0, 0, f->err) < 0)
      goto out;
  } else if (ae_vk_linear_w (f->ctx, &tok2, &tok, &t->proj_out.weight,
          &t->proj_out.bias, f->err) < 0 ||
      ae_vk_nlc_to_nchw (f->ctx, &p, &tok2, f->err) < 0) {
    goto out;
  }
  ret = ae_vk_add (f->ctx, y, &p, x, f->err);
out:
  ae_vk_stack_release (f->s, mark);
  return ret;
}

static int
push_skip (Fwd * f, const AeVkTensor * t)
{
  if (f->n_skips >= MAX_SKIPS)
    return ae_error (f->err, "unet: more than %d skip connections",
        MAX_SKIPS);
  f->skips[f->n_skips++] = *t;
  return 0;
}

/* Resnet j (+ transformer j); the new tensor stays on the stack. */
static int
layer_forward (Fwd * f, AeVkTensor * h, const AeVkTensor * x,
    const AeUNetBlock * blk, int j)
{
  const AeResnetBlock2D *rn = &blk->resnets[j];
  AeVkTensor r;

  if (ae_vk_stack_tensor4 (f->s, &r, x->shape[0], rn->out_channels,
          x->shape[2], x->shape[3], f->err) < 0 ||
      resnet_forward (f, &r, x, rn) < 0)
    return -1;
  *h = r;
  if (blk->attentions == NULL)
    return 0;
  if (ae_vk_stack_tensor4 (f->s, &r, x->shape[0], rn->out_channels,
          x->shape[2], x->shape[3], f->err) < 0 ||
      transformer_forward (f, &r, h, &blk->attentions[j]) < 0)
    return -1;
  *h = r;
  return 0;
}

static int
down_block_forward (Fwd * f, AeVkTensor * h, int i)
{
  const AeUNetBlock *blk = &f->u->down[i];
  int pad = f->u->cfg.downsample_padding;

  for (int j = 0; j < blk->n_layers; j++)
    if (layer_forward (f, h, h, blk, j) < 0 || push_skip (f, h) < 0)
      return -1;
  if (blk->has_sampler) {
    AeVkTensor d;
    int64_t ho = ae_conv2d_out_size (h->shape[2], 3, 2, pad, pad);
    int64_t wo = ae_conv2d_out_size (h->shape[3], 3, 2, pad, pad);
    if (ae_vk_stack_tensor4 (f->s, &d, h->shape[0], h->shape[1], ho, wo,
            f->err) < 0 ||
        ae_vk_conv2d_w (f->ctx, &d, h, &blk->sampler.weight,
            &blk->sampler.bias, 2, pad, pad, pad, pad, f->err) < 0)
      return -1;
    *h = d;
    if (push_skip (f, h) < 0)
      return -1;
  }
  return 0;
}

static int
mid_block_forward (Fwd * f, AeVkTensor * h)
{
  const AeUNetBlock *blk = &f->u->mid;
  AeVkTensor r;

  for (int k = 0; k < 3; k++) {
    if (ae_vk_stack_tensor4 (f->s, &r, h->shape[0], h->shape[1],
            h->shape[2], h->shape[3], f->err) < 0)
      return -1;
    int rc = k == 1 ? transformer_forward (f, &r, h, &blk->attentions[0]) :
        resnet_forward (f, &r, h, &blk->resnets[k / 2]);
    if (rc < 0)
      return -1;
    *h = r;
  }
  return 0;
}

static int
up_block_forward (Fwd * f, AeVkTensor * h, int i)
{
  const AeUNetBlock *blk = &f->u->up[i];

  for (int j = 0; j < blk->n_layers; j++) {
    AeVkTensor cat;
    const AeVkTensor *skip;
    if (f->n_skips == 0)
      return ae_error (f->err, "unet: up_blocks.%d: no skip connection "
          "left", i);
    skip = &f->skips[--f->n_skips];
    if (skip->shape[2] != h->shape[2] || skip->shape[3] != h->shape[3])
      return ae_error (f->err, "unet: up_blocks.%d: skip %lldx%lld vs "
          "%lldx%lld (latent size must be divisible by 2^(levels-1))", i,
          (long long) skip->shape[2], (long long) skip->shape[3],
          (long long) h->shape[2], (long long) h->shape[3]);
    if (ae_vk_stack_tensor4 (f->s, &cat, h->shape[0],
            h->shape[1] + skip->shape[1], h->shape[2], h->shape[3],
            f->err) < 0 ||
        ae_vk_concat_channels (f->ctx, &cat, h, skip, f->err) < 0 ||
        layer_forward (f, h, &cat, blk, j) < 0)
      return -1;
  }
  if (blk->has_sampler) {
    AeVkTensor up, c;
    if (ae_vk_stack_tensor4 (f->s, &up, h->shape[0], h->shape[1],
            2 * h->shape[2], 2 * h->shape[3], f->err) < 0 ||
        ae_vk_stack_tensor4 (f->s, &c, h->shape[0], h->shape[1],
            2 * h->shape[2], 2 * h->shape[3], f->err) < 0 ||
        ae_vk_upsample_nearest2x (f->ctx, &up, h, f->err) < 0 ||
        ae_vk_conv2d_w (f->ctx, &c, &up, &blk->sampler.weight,
            &blk->sampler.bias, 1, 1, 1, 1, 1, f->err) < 0)
      return -1;
    *h = c;
  }
  return 0;
}

/* time_proj -> linear_1 -> silu -> linear_2 -> silu (kept). ts: (B) on
 * the device. */
static int
time_forward (Fwd * f, const AeVkTensor * ts, int64_t batch)
{
  const AeUNetConfig *cfg = &f->u->cfg;
  int64_t c0 = cfg->block_out_channels[0], td = cfg->time_embed_dim;
  AeVkTensor tp, t1;
  int mark;
  int ret = -1;

  if (ae_vk_stack_tensor2 (f->s, &f->temb_silu, batch, td, f->err) < 0)
    return -1;
  mark = ae_vk_stack_mark (f->s);
  if (ae_vk_stack_tensor2 (f->s, &tp, batch, c0, f->err) < 0 ||
      ae_vk_stack_tensor2 (f->s, &t1, batch, td, f->err) < 0)
    goto out;
  if (ae_vk_timestep_embedding (f->ctx, &tp, ts, cfg->flip_sin_to_cos,
          cfg->freq_shift, 1.0f, 10000.0f, f->err) < 0 ||
      ae_vk_linear_w (f->ctx, &t1, &tp, &f->u->time_linear_1.weight,
          &f->u->time_linear_1.bias, f->err) < 0 ||
      ae_vk_silu (f->ctx, &t1, &t1, f->err) < 0 ||
      ae_vk_linear_w (f->ctx, &f->temb_silu, &t1,
          &f->u->time_linear_2.weight, &f->u->time_linear_2.bias,
          f->err) < 0)
    goto out;
  ret = ae_vk_silu (f->ctx, &f->temb_silu, &f->temb_silu, f->err);
out:
  ae_vk_stack_release (f->s, mark);
  return ret;
}

/* ---- the pass ----------------------------------------------------------- */

static int
check_inputs (const AeUNet * u, const AeTensor * out, const AeTensor * sample,
    const AeTensor * ctx, const float *timesteps, int n_t,
    const AeUNetHooks * hooks, AeError * err)
{
  const AeUNetConfig *cfg = &u->cfg;
  int64_t div = (int64_t) 1 << (cfg->n_levels - 1);
  int64_t in_shape[4] = { -1, cfg->in_channels, -1, -1 };
  int64_t out_shape[4], ctx_shape[3];

  if (ae_tensor_check_shape (sample, "unet input 'sample'", 4, in_shape,
          err) < 0)
    return -1;
  if (sample->shape[2] % div != 0 || sample->shape[3] % div != 0)
    return ae_error (err, "unet input 'sample': height and width must be "
        "multiples of %lld, found %lldx%lld", (long long) div,
        (long long) sample->shape[2], (long long) sample->shape[3]);
  out_shape[0] = sample->shape[0];
  out_shape[1] = cfg->out_channels;
  out_shape[2] = sample->shape[2];
  out_shape[3] = sample->shape[3];
  ctx_shape[0] = sample->shape[0];
  ctx_shape[1] = -1;
  ctx_shape[2] = cfg->cross_attention_dim;
  if (ae_tensor_check_shape (out, "unet output 'sample'", 4, out_shape,
          err) < 0 ||
      ae_tensor_check_shape (ctx, "unet input 'encoder_hidden_states'", 3,
          ctx_shape, err) < 0)
    return -1;
  if (timesteps == NULL || (n_t != 1 && n_t != sample->shape[0]))
    return ae_error (err, "unet: %d timesteps for a batch of %lld", n_t,
        (long long) sample->shape[0]);
  if (hooks && hooks->conv_in_residual) {
    int64_t r[4] = { sample->shape[0], cfg->block_out_channels[0],
      sample->shape[2], sample->shape[3]
    };
    if (ae_tensor_check_shape (hooks->conv_in_residual,
            "unet conv_in residual", 4, r, err) < 0)
      return -1;
  }
  if (hooks && hooks->act_fn)
    return ae_error (err, "vulkan unet: activation capture (act_fn) is "
        "only available on the CPU backend");
  if (hooks && hooks->ref_mode == AE_REF_INJECT && hooks->bank == NULL)
    return ae_error (err, "unet: reference injection without a bank");
  return 0;
}

/* Bank arrays sized for the model's transformer blocks (once). */
static void
ensure_bank_arrays (AeVkUNet * vu, int n)
{
  if (n <= vu->bank_alloc)
    return;
  vu->bank_bufs = g_renew (AeVkBuffer *, vu->bank_bufs, n);
  vu->bank_dev = g_renew (AeVkTensor, vu->bank_dev, n);
  vu->cap_bufs = g_renew (AeVkBuffer *, vu->cap_bufs, n);
  vu->cap_dev = g_renew (AeVkTensor, vu->cap_dev, n);
  for (int i = vu->bank_alloc; i < n; i++) {
    vu->bank_bufs[i] = vu->cap_bufs[i] = NULL;
    memset (&vu->bank_dev[i], 0, sizeof (AeVkTensor));
    memset (&vu->cap_dev[i], 0, sizeof (AeVkTensor));
  }
  vu->bank_alloc = n;
}

/* INJECT: the bank's host tokens into host-visible device buffers. */
static int
upload_bank (Fwd * f)
{
  const AeRefBank *bank = f->hooks->bank;

  ensure_bank_arrays (f->vu, bank->n > f->u->n_transformer_blocks ?
      bank->n : f->u->n_transformer_blocks);
  for (int i = 0; i < bank->n; i++) {
    if (ae_vk_input (f->ctx, &bank->tokens[i], &f->vu->bank_bufs[i],
            &f->vu->bank_dev[i], f->err) < 0)
      return -1;
    f->n_bank = i + 1;
  }
  return 0;
}

/* CAPTURE, after the pass ran: the copies into the host bank (entries
 * (re)allocated only on the first capture at a shape, as on the CPU). */
static int
read_captured (Fwd * f)
{
  AeRefBank *bank = f->hooks->bank;

  for (int i = 0; i < f->n_captured; i++) {
    const AeVkTensor *d = &f->vu->cap_dev[i];
    size_t need = (size_t) ae_vk_tensor_numel (d);
    if (i >= bank->n) {
      bank->tokens = g_renew (AeTensor, bank->tokens, i + 1);
      bank->capacity = g_renew (size_t, bank->capacity, i + 1);
      for (int j = bank->n; j <= i; j++) {
        memset (&bank->tokens[j], 0, sizeof (AeTensor));
        bank->capacity[j] = 0;
      }
      bank->n = i + 1;
    }
    if (bank->capacity[i] < need) {
      g_free (bank->tokens[i].data);
      bank->tokens[i].data = g_new (float, need);
      bank->capacity[i] = need;
    }
    {
      float *data = bank->tokens[i].data;
      bank->tokens[i] = ae_tensor_nd (data, d->ndim, d->shape);
    }
    if (ae_vk_download (d->buf, bank->tokens[i].data, need, f->err) < 0)
      return -1;
  }
  return 0;
}

static int
forward_body (Fwd * f, AeVkBuffer * out_buf, const AeTensor * out,
    const AeVkTensor * sample, const AeVkTensor * ts,
    const AeVkTensor * residual)
{
  const AeUNetConfig *cfg = &f->u->cfg;
  int64_t b = sample->shape[0], hh = sample->shape[2], ww = sample->shape[3];
  int c0 = cfg->block_out_channels[0];
  AeVkTensor h, n, o = ae_vk_tensor_like (out_buf, out);

  if (time_forward (f, ts, b) < 0 ||
      ae_vk_stack_tensor4 (f->s, &h, b, c0, hh, ww, f->err) < 0 ||
      ae_vk_conv2d_w (f->ctx, &h, sample, &f->u->conv_in.weight,
          &f->u->conv_in.bias, 1, 1, 1, 1, 1, f->err) < 0)
    return -1;
  if (residual && ae_vk_add (f->ctx, &h, &h, residual, f->err) < 0)
    return -1;
  if (push_skip (f, &h) < 0)
    return -1;
  for (int i = 0; i < cfg->n_levels; i++)
    if (down_block_forward (f, &h, i) < 0)
      return -1;
  if (mid_block_forward (f, &h) < 0)
    return -1;
  for (int i = 0; i < cfg->n_levels; i++)
    if (up_block_forward (f, &h, i) < 0)
      return -1;
  if (ae_vk_stack_tensor4 (f->s, &n, b, c0, hh, ww, f->err) < 0 ||
      ae_vk_group_norm_w (f->ctx, &n, &h, cfg->norm_num_groups,
          cfg->norm_eps, &f->u->conv_norm_out.weight,
          &f->u->conv_norm_out.bias, true, f->err) < 0 ||
      ae_vk_conv2d_w (f->ctx, &o, &n, &f->u->conv_out.weight,
          &f->u->conv_out.bias, 1, 1, 1, 1, 1, f->err) < 0)
    return -1;
  return 0;
}

int
ae_vk_unet_forward (AeVkUNet * vu, AeTensor * out, const AeTensor * sample,
    const float *timesteps, int n_timesteps,
    const AeTensor * encoder_hidden_states, const AeUNetHooks * hooks,
    AeError * err)
{
  AeVkContext *ctx = vu->ctx;
  enum { IN_SAMPLE, IN_TS, IN_CTX, IN_RES, IN_OUT, N_IO };
  AeVkBuffer *io[N_IO] = { NULL };
  AeVkTensor d_sample, d_ts, d_res;
  AeTensor ts_host;
  float ts_vals[64];             /* batches above 64: ts_heap */
  float *ts_heap = NULL;
  uint64_t d0 = ctx->dispatches, s0 = ctx->submits;
  int64_t b;
  Fwd f;
  int ret = -1;

  if (check_inputs (vu->u, out, sample, encoder_hidden_states, timesteps,
          n_timesteps, hooks, err) < 0)
    return -1;
  b = sample->shape[0];
  memset (&f, 0, sizeof f);
  f.vu = vu;
  f.ctx = ctx;
  f.u = vu->u;
  f.err = err;
  f.hooks = hooks;
  f.s = &vu->stack;
  ensure_bank_arrays (vu, vu->u->n_transformer_blocks);
  /* One timestep per batch element, as the CPU pass broadcasts. */
  ts_host = ae_tensor_1d (b <= 64 ? ts_vals : (ts_heap = g_new (float, b)),
      b);
  for (int64_t i = 0; i < b; i++)
    ts_host.data[i] = timesteps[n_timesteps == 1 ? 0 : i];
  if (ae_vk_input (ctx, sample, &io[IN_SAMPLE], &d_sample, err) < 0 ||
      ae_vk_input (ctx, &ts_host, &io[IN_TS], &d_ts, err) < 0 ||
      ae_vk_input (ctx, encoder_hidden_states, &io[IN_CTX], &f.context,
          err) < 0 ||
      (hooks && hooks->conv_in_residual &&
          ae_vk_input (ctx, hooks->conv_in_residual, &io[IN_RES], &d_res,
              err) < 0))
    goto done;
  io[IN_OUT] = ae_vk_pool_acquire (ctx,
      (size_t) ae_tensor_numel (out) * sizeof (float), err);
  if (io[IN_OUT] == NULL)
    goto done;
  if (hooks && hooks->ref_mode == AE_REF_INJECT && upload_bank (&f) < 0)
    goto done;
  if (forward_body (&f, io[IN_OUT], out, &d_sample, &d_ts,
          io[IN_RES] ? &d_res : NULL) < 0) {
    ae_vk_abort (ctx);
    goto done;
  }
  if (ae_vk_submit (ctx, err) < 0 ||
      ae_vk_download (io[IN_OUT], out->data,
          (size_t) ae_tensor_numel (out), err) < 0)
    goto done;
  if (f.n_captured > 0 && read_captured (&f) < 0)
    goto done;
  ret = 0;
done:
  vu->last_dispatches = ctx->dispatches - d0;
  vu->last_submits = ctx->submits - s0;
  ae_vk_stack_release (&vu->stack, 0);
  for (int i = 0; i < N_IO; i++)
    if (io[i])
      ae_vk_pool_release (ctx, io[i]);
  for (int i = 0; i < f.n_bank; i++) {
    ae_vk_pool_release (ctx, vu->bank_bufs[i]);
    vu->bank_bufs[i] = NULL;
  }
  for (int i = 0; i < f.n_captured; i++) {
    if (vu->cap_bufs[i])
      ae_vk_pool_release (ctx, vu->cap_bufs[i]);
    vu->cap_bufs[i] = NULL;
  }
  g_free (ts_heap);
  return ret;
}
