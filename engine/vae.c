/* AutoencoderKL: config, weights and forward pass (see vae.h). Module
 * structure and key names follow diffusers (autoencoders/vae.py Encoder /
 * Decoder, autoencoder_kl.py, unet_2d_blocks.py DownEncoderBlock2D /
 * UpDecoderBlock2D / UNetMidBlock2D, resnet.py, attention_processor.py). */
#include "vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "config.h"
#include "ops.h"
#include "safetensors.h"

/* DownEncoderBlock2D has layers_per_block resnets, UpDecoderBlock2D one
 * more: bound both. */
#define AE_VAE_MAX_LAYERS 8
/* DiagonalGaussianDistribution clamps logvar to this range. */
#define AE_VAE_LOGVAR_MIN -30.0f
#define AE_VAE_LOGVAR_MAX 20.0f

/* ---- config ------------------------------------------------------------ */

static int
cfg_int (const AeConfig * c, const char *key, int64_t def, int lo, int hi,
    int *out, AeError * err)
{
  int64_t v;

  if (ae_config_get_int_or (c, key, def, &v, err) < 0)
    return -1;
  if (v < lo || v > hi)
    return ae_error (err, "%s: field '%s': value %lld out of range [%d, %d]",
        ae_config_path (c), key, (long long) v, lo, hi);
  *out = (int) v;
  return 0;
}

/* down_block_types / up_block_types: optional, but when present one entry
 * per level and only the plain VAE blocks. */
static int
cfg_block_types (const AeConfig * c, const char *key, const char *want,
    int n_levels, AeError * err)
{
  const char *types[AE_VAE_MAX_LEVELS];
  int n;

  if (!ae_config_has (c, key))
    return 0;
  if (ae_config_get_string_list (c, key, types, AE_VAE_MAX_LEVELS, &n,
          err) < 0)
    return -1;
  if (n != n_levels)
    return ae_error (err, "%s: field '%s': %d entries, expected %d (one per "
        "block_out_channels entry)", ae_config_path (c), key, n, n_levels);
  for (int i = 0; i < n; i++)
    if (strcmp (types[i], want) != 0)
      return ae_error (err, "%s: field '%s'[%d]: unsupported block type "
          "'%s' (expected %s)", ae_config_path (c), key, i, types[i], want);
  return 0;
}

int
ae_vae_config_parse (AeVaeConfig * cfg, const AeConfig * c, AeError * err)
{
  const char *path = ae_config_path (c);
  const char *act;
  int64_t boc[AE_VAE_MAX_LEVELS];
  double v;

  memset (cfg, 0, sizeof (*cfg));
  cfg->norm_eps = 1e-6f;
  if (ae_config_get_int_list (c, "block_out_channels", boc,
          AE_VAE_MAX_LEVELS, &cfg->n_levels, false, err) < 0)
    return -1;
  if (cfg->n_levels < 1)
    return ae_error (err, "%s: field 'block_out_channels': empty", path);
  if (cfg_int (c, "in_channels", 3, 1, 1 << 16, &cfg->in_channels, err) < 0
      || cfg_int (c, "out_channels", 3, 1, 1 << 16, &cfg->out_channels,
          err) < 0
      || cfg_int (c, "latent_channels", 4, 1, 1 << 16,
          &cfg->latent_channels, err) < 0
      || cfg_int (c, "layers_per_block", 1, 1, AE_VAE_MAX_LAYERS - 1,
          &cfg->layers_per_block, err) < 0
      || cfg_int (c, "norm_num_groups", 32, 1, 1 << 16,
          &cfg->norm_num_groups, err) < 0)
    return -1;
  for (int i = 0; i < cfg->n_levels; i++) {
    if (boc[i] < 1 || boc[i] > (1 << 16))
      return ae_error (err, "%s: field 'block_out_channels'[%d]: value %lld "
          "out of range", path, i, (long long) boc[i]);
    if (boc[i] % cfg->norm_num_groups != 0)
      return ae_error (err, "%s: field 'block_out_channels'[%d]: %lld "
          "channels not divisible by norm_num_groups %d", path, i,
          (long long) boc[i], cfg->norm_num_groups);
    cfg->block_out_channels[i] = (int) boc[i];
  }
  if (cfg_block_types (c, "down_block_types", "DownEncoderBlock2D",
          cfg->n_levels, err) < 0
      || cfg_block_types (c, "up_block_types", "UpDecoderBlock2D",
          cfg->n_levels, err) < 0)
    return -1;
  if (ae_config_get_string_or (c, "act_fn", "silu", &act, err) < 0)
    return -1;
  if (strcmp (act, "silu") != 0)
    return ae_error (err, "%s: field 'act_fn': unsupported '%s' (only "
        "silu)", path, act);
  if (ae_config_get_float_or (c, "scaling_factor", 0.18215, &v, err) < 0)
    return -1;
  if (!(v > 0.0))
    return ae_error (err, "%s: field 'scaling_factor': must be > 0", path);
  cfg->scaling_factor = (float) v;
  if (ae_config_get_float_or (c, "shift_factor", 0.0, &v, err) < 0)
    return -1;
  cfg->shift_factor = (float) v;
  if (ae_config_get_bool_or (c, "mid_block_add_attention", true,
          &cfg->mid_block_add_attention, err) < 0
      || ae_config_get_bool_or (c, "use_quant_conv", true,
          &cfg->use_quant_conv, err) < 0
      || ae_config_get_bool_or (c, "use_post_quant_conv", true,
          &cfg->use_post_quant_conv, err) < 0)
    return -1;
  return 0;
}

/* ---- weights ----------------------------------------------------------- */

/* VaeResnet, VaeAttention, VaeMidBlock, VaeLevel, VaeCoder, struct AeVae:
 * shared with the Vulkan backend. */
#include "vae-internal.h"

static int
get_w (AeVae * vae, AeTensor * t, int ndim, const int64_t * shape,
    AeError * err, const char *key)
{
  return ae_st_get (vae->st, key, ndim, shape, t, err);
}

/* prefix + name, shape given as up to 4 sizes (0 ends the list). */
static int
get_p (AeVae * vae, AeTensor * t, const char *prefix, const char *name,
    int64_t d0, int64_t d1, int64_t d2, int64_t d3, AeError * err)
{
  char key[320];
  int64_t shape[4] = { d0, d1, d2, d3 };
  int ndim = d1 == 0 ? 1 : d2 == 0 ? 2 : 4;

  snprintf (key, sizeof (key), "%s%s", prefix, name);
  return get_w (vae, t, ndim, shape, err, key);
}

static int
load_conv (AeVae * vae, AeTensor * w, AeTensor * b, const char *prefix,
    int cin, int cout, int k, bool bias, AeError * err)
{
  if (get_p (vae, w, prefix, "weight", cout, cin, k, k, err) < 0)
    return -1;
  if (bias && get_p (vae, b, prefix, "bias", cout, 0, 0, 0, err) < 0)
    return -1;
  return 0;
}

static int
load_norm (AeVae * vae, AeTensor * w, AeTensor * b, const char *prefix,
    int c, AeError * err)
{
  if (get_p (vae, w, prefix, "weight", c, 0, 0, 0, err) < 0 ||
      get_p (vae, b, prefix, "bias", c, 0, 0, 0, err) < 0)
    return -1;
  return 0;
}

static int
load_resnet (AeVae * vae, VaeResnet * r, const char *prefix, int cin,
    int cout, AeError * err)
{
  char p[256];

  r->cin = cin;
  r->cout = cout;
  r->has_shortcut = cin != cout;
  snprintf (p, sizeof (p), "%snorm1.", prefix);
  if (load_norm (vae, &r->norm1_w, &r->norm1_b, p, cin, err) < 0)
    return -1;
  snprintf (p, sizeof (p), "%sconv1.", prefix);
  if (load_conv (vae, &r->conv1_w, &r->conv1_b, p, cin, cout, 3, true,
          err) < 0)
    return -1;
  snprintf (p, sizeof (p), "%snorm2.", prefix);
  if (load_norm (vae, &r->norm2_w, &r->norm2_b, p, cout, err) < 0)
    return -1;
  snprintf (p, sizeof (p), "%sconv2.", prefix);
  if (load_conv (vae, &r->conv2_w, &r->conv2_b, p, cout, cout, 3, true,
          err) < 0)
    return -1;
  if (r->has_shortcut) {
    snprintf (p, sizeof (p), "%sconv_shortcut.", prefix);
    if (load_conv (vae, &r->shortcut_w, &r->shortcut_b, p, cin, cout, 1,
            true, err) < 0)
      return -1;
  }
  return 0;
}

/* One projection of the attention: the current name (to_q) or the one of
 * checkpoints saved before diffusers 0.14 (query). Either may be stored as
 * a linear (C, C) or a 1x1 conv (C, C, 1, 1); both are used as (C, C). */
static int
load_proj (AeVae * vae, AeTensor * w, AeTensor * b, const char *prefix,
    const char *name, const char *old_name, int c, AeError * err)
{
  char key[320];
  const char *use = name;
  int64_t shape4[4] = { c, c, 1, 1 };
  int64_t shape2[2] = { c, c };
  const AeStTensorInfo *info;

  snprintf (key, sizeof (key), "%s%s.weight", prefix, name);
  if (ae_st_find (vae->st, key) == NULL) {
    snprintf (key, sizeof (key), "%s%s.weight", prefix, old_name);
    if (ae_st_find (vae->st, key) != NULL)
      use = old_name;
    else
      snprintf (key, sizeof (key), "%s%s.weight", prefix, name);
  }
  info = ae_st_find (vae->st, key);
  if (info != NULL && info->ndim == 4) {
    if (get_w (vae, w, 4, shape4, err, key) < 0)
      return -1;
    if (ae_tensor_reshape (w, 2, shape2, err) < 0)
      return -1;
  } else if (get_w (vae, w, 2, shape2, err, key) < 0) {
    return -1;
  }
  snprintf (key, sizeof (key), "%s%s.bias", prefix, use);
  return get_w (vae, b, 1, shape2, err, key);
}

static int
load_attention (AeVae * vae, VaeAttention * a, const char *prefix, int c,
    AeError * err)
{
  char p[256];

  a->channels = c;
  snprintf (p, sizeof (p), "%sgroup_norm.", prefix);
  if (load_norm (vae, &a->norm_w, &a->norm_b, p, c, err) < 0)
    return -1;
  if (load_proj (vae, &a->q_w, &a->q_b, prefix, "to_q", "query", c, err) < 0
      || load_proj (vae, &a->k_w, &a->k_b, prefix, "to_k", "key", c, err) < 0
      || load_proj (vae, &a->v_w, &a->v_b, prefix, "to_v", "value", c,
          err) < 0
      || load_proj (vae, &a->out_w, &a->out_b, prefix, "to_out.0",
          "proj_attn", c, err) < 0)
    return -1;
  return 0;
}

static int
load_mid (AeVae * vae, VaeMidBlock * m, const char *coder, int c,
    AeError * err)
{
  char p[200];

  for (int i = 0; i < 2; i++) {
    snprintf (p, sizeof (p), "%s.mid_block.resnets.%d.", coder, i);
    if (load_resnet (vae, &m->resnets[i], p, c, c, err) < 0)
      return -1;
  }
  m->has_attention = vae->cfg.mid_block_add_attention;
  if (m->has_attention) {
    snprintf (p, sizeof (p), "%s.mid_block.attentions.0.", coder);
    if (load_attention (vae, &m->attention, p, c, err) < 0)
      return -1;
  }
  return 0;
}

static int
load_encoder (AeVae * vae, AeError * err)
{
  const AeVaeConfig *cfg = &vae->cfg;
  VaeCoder *e = &vae->encoder;
  const int *boc = cfg->block_out_channels;
  int last = boc[cfg->n_levels - 1];
  int cin = boc[0];
  char p[200];

  if (load_conv (vae, &e->conv_in_w, &e->conv_in_b, "encoder.conv_in.",
          cfg->in_channels, boc[0], 3, true, err) < 0)
    return -1;
  for (int i = 0; i < cfg->n_levels; i++) {
    VaeLevel *l = &e->levels[i];
    l->n_resnets = cfg->layers_per_block;
    for (int j = 0; j < l->n_resnets; j++) {
      snprintf (p, sizeof (p), "encoder.down_blocks.%d.resnets.%d.", i, j);
      if (load_resnet (vae, &l->resnets[j], p, j == 0 ? cin : boc[i],
              boc[i], err) < 0)
        return -1;
    }
    cin = boc[i];
    l->has_sampler = i < cfg->n_levels - 1;
    if (l->has_sampler) {
      snprintf (p, sizeof (p), "encoder.down_blocks.%d.downsamplers.0.conv.",
          i);
      if (load_conv (vae, &l->sampler_w, &l->sampler_b, p, boc[i], boc[i],
              3, true, err) < 0)
        return -1;
    }
  }
  if (load_mid (vae, &e->mid, "encoder", last, err) < 0 ||
      load_norm (vae, &e->norm_out_w, &e->norm_out_b,
          "encoder.conv_norm_out.", last, err) < 0 ||
      load_conv (vae, &e->conv_out_w, &e->conv_out_b, "encoder.conv_out.",
          last, 2 * cfg->latent_channels, 3, true, err) < 0)
    return -1;
  if (cfg->use_quant_conv && load_conv (vae, &vae->quant_w, &vae->quant_b,
          "quant_conv.", 2 * cfg->latent_channels,
          2 * cfg->latent_channels, 1, true, err) < 0)
    return -1;
  return 0;
}

/* Decoder level i works on reversed(block_out_channels)[i]. */
static int
dec_channels (const AeVaeConfig * cfg, int i)
{
  return cfg->block_out_channels[cfg->n_levels - 1 - i];
}

static int
load_decoder (AeVae * vae, AeError * err)
{
  const AeVaeConfig *cfg = &vae->cfg;
  VaeCoder *d = &vae->decoder;
  int first = dec_channels (cfg, 0);
  int cin = first;
  char p[200];

  if (cfg->use_post_quant_conv && load_conv (vae, &vae->post_quant_w,
          &vae->post_quant_b, "post_quant_conv.", cfg->latent_channels,
          cfg->latent_channels, 1, true, err) < 0)
    return -1;
  if (load_conv (vae, &d->conv_in_w, &d->conv_in_b, "decoder.conv_in.",
          cfg->latent_channels, first, 3, true, err) < 0 ||
      load_mid (vae, &d->mid, "decoder", first, err) < 0)
    return -1;
  for (int i = 0; i < cfg->n_levels; i++) {
    VaeLevel *l = &d->levels[i];
    int c = dec_channels (cfg, i);
    l->n_resnets = cfg->layers_per_block + 1;
    for (int j = 0; j < l->n_resnets; j++) {
      snprintf (p, sizeof (p), "decoder.up_blocks.%d.resnets.%d.", i, j);
      if (load_resnet (vae, &l->resnets[j], p, j == 0 ? cin : c, c,
              err) < 0)
        return -1;
    }
    cin = c;
    l->has_sampler = i < cfg->n_levels - 1;
    if (l->has_sampler) {
      snprintf (p, sizeof (p), "decoder.up_blocks.%d.upsamplers.0.conv.", i);
      if (load_conv (vae, &l->sampler_w, &l->sampler_b, p, c, c, 3, true,
              err) < 0)
        return -1;
    }
  }
  if (load_norm (vae, &d->norm_out_w, &d->norm_out_b,
          "decoder.conv_norm_out.", cin, err) < 0 ||
      load_conv (vae, &d->conv_out_w, &d->conv_out_b, "decoder.conv_out.",
          cin, cfg->out_channels, 3, true, err) < 0)
    return -1;
  return 0;
}

int
ae_vae_load_files (AeVae ** out, const char *config_path,
    const char *weights_path, AeError * err)
{
  AeConfig *c = NULL;
  AeVae *vae;

  *out = NULL;
  vae = g_new0 (AeVae, 1);
  if (ae_config_load (&c, config_path, err) < 0 ||
      ae_vae_config_parse (&vae->cfg, c, err) < 0 ||
      ae_st_open (&vae->st, weights_path, err) < 0 ||
      load_encoder (vae, err) < 0 || load_decoder (vae, err) < 0) {
    ae_config_free (c);
    ae_vae_free (vae);
    return -1;
  }
  ae_config_free (c);
  *out = vae;
  return 0;
}

int
ae_vae_load (AeVae ** out, const char *dir, AeError * err)
{
  char *cfg = g_build_filename (dir, "config.json", NULL);
  char *w = g_build_filename (dir, "diffusion_pytorch_model.safetensors",
      NULL);
  int ret;

  /* A sharded checkpoint: let ae_st_open find the index in the dir. */
  if (!g_file_test (w, G_FILE_TEST_EXISTS)) {
    g_free (w);
    w = g_strdup (dir);
  }
  ret = ae_vae_load_files (out, cfg, w, err);
  g_free (cfg);
  g_free (w);
  return ret;
}

void
ae_vae_free (AeVae * vae)
{
  if (vae == NULL)
    return;
  ae_st_close (vae->st);
  g_free (vae);
}

const AeVaeConfig *
ae_vae_config (const AeVae * vae)
{
  return &vae->cfg;
}

float
ae_vae_scaling_factor (const AeVae * vae)
{
  return vae->cfg.scaling_factor;
}

int
ae_vae_downscale (const AeVae * vae)
{
  return 1 << (vae->cfg.n_levels - 1);
}

/* ---- forward ----------------------------------------------------------- */

/* Two ping-pong activation buffers sized for the largest activation of the
 * pass; each stage reads one and writes the other, temporaries inside a
 * stage are taken from the arena and released at its end. */
typedef struct {
  AeVae *vae;
  AeArena *arena;
  float *buf[2];
  int cur;                      /* buffer holding x */
  AeTensor x;                   /* current activation */
  AeVaeActFn act_fn;
  void *act_user;
} VaePass;

static AeTensor
pass_next (VaePass * p, int64_t c, int64_t h, int64_t w)
{
  return ae_tensor_4d (p->buf[1 - p->cur], p->x.shape[0], c, h, w);
}

static void
pass_swap (VaePass * p, const AeTensor * y)
{
  p->cur = 1 - p->cur;
  p->x = *y;
}

static void
pass_act (VaePass * p, const char *fmt, int a, int b)
{
  char name[160];

  if (p->act_fn == NULL)
    return;
  snprintf (name, sizeof (name), fmt, a, b);
  p->act_fn (p->act_user, name, &p->x);
}

static int
resnet_forward (VaePass * p, const VaeResnet * r, AeError * err)
{
  const AeVaeConfig *cfg = &p->vae->cfg;
  const AeTensor *x = &p->x;
  int64_t b = x->shape[0], h = x->shape[2], w = x->shape[3];
  size_t mark = ae_arena_mark (p->arena);
  AeTensor n1, t, y = pass_next (p, r->cout, h, w);
  int ret = -1;

  if (ae_arena_tensor4 (p->arena, &n1, b, r->cin, h, w, err) < 0 ||
      ae_arena_tensor4 (p->arena, &t, b, r->cout, h, w, err) < 0)
    goto out;
  if (ae_group_norm (&n1, x, cfg->norm_num_groups, cfg->norm_eps,
          &r->norm1_w, &r->norm1_b, true, err) < 0 ||
      ae_conv2d (&t, &n1, &r->conv1_w, &r->conv1_b, 1, 1, p->arena,
          err) < 0 ||
      ae_group_norm (&t, &t, cfg->norm_num_groups, cfg->norm_eps,
          &r->norm2_w, &r->norm2_b, true, err) < 0 ||
      ae_conv2d (&y, &t, &r->conv2_w, &r->conv2_b, 1, 1, p->arena, err) < 0)
    goto out;
  if (r->has_shortcut) {
    /* t is free again: reuse it for the 1x1 shortcut. */
    if (ae_conv2d (&t, x, &r->shortcut_w, &r->shortcut_b, 1, 0, p->arena,
            err) < 0 || ae_add_scaled (&y, &t, &y, 1.0f, err) < 0)
      goto out;
  } else if (ae_add_scaled (&y, x, &y, 1.0f, err) < 0) {
    goto out;
  }
  pass_swap (p, &y);
  ret = 0;
out:
  ae_arena_release (p->arena, mark);
  return ret;
}

static int
attention_forward (VaePass * p, const VaeAttention * a, AeError * err)
{
  const AeVaeConfig *cfg = &p->vae->cfg;
  const AeTensor *x = &p->x;
  int64_t b = x->shape[0], c = a->channels, h = x->shape[2], w = x->shape[3];
  size_t mark = ae_arena_mark (p->arena);
  AeTensor n, seq, q, k, v, o, y = pass_next (p, c, h, w);
  int ret = -1;

  if (ae_arena_tensor4 (p->arena, &n, b, c, h, w, err) < 0 ||
      ae_arena_tensor3 (p->arena, &seq, b, h * w, c, err) < 0 ||
      ae_arena_tensor3 (p->arena, &q, b, h * w, c, err) < 0 ||
      ae_arena_tensor3 (p->arena, &k, b, h * w, c, err) < 0 ||
      ae_arena_tensor3 (p->arena, &v, b, h * w, c, err) < 0)
    goto out;
  if (ae_group_norm (&n, x, cfg->norm_num_groups, cfg->norm_eps, &a->norm_w,
          &a->norm_b, false, err) < 0 ||
      ae_nchw_to_nlc (&seq, &n, err) < 0 ||
      ae_linear (&q, &seq, &a->q_w, &a->q_b, err) < 0 ||
      ae_linear (&k, &seq, &a->k_w, &a->k_b, err) < 0 ||
      ae_linear (&v, &seq, &a->v_w, &a->v_b, err) < 0)
    goto out;
  /* seq is free: attention output there, projection back into q. */
  o = seq;
  if (ae_attention (&o, &q, &k, &v, NULL, NULL, 1, 0.0f, p->arena, err) < 0
      || ae_linear (&q, &o, &a->out_w, &a->out_b, err) < 0
      || ae_nlc_to_nchw (&y, &q, err) < 0
      || ae_add_scaled (&y, &y, x, 1.0f, err) < 0)
    goto out;
  pass_swap (p, &y);
  ret = 0;
out:
  ae_arena_release (p->arena, mark);
  return ret;
}

/* Conv into the other buffer: conv_in, conv_out, quant convs, samplers. */
static int
conv_forward (VaePass * p, const AeTensor * w, const AeTensor * bias,
    int stride, int pad_t, int pad_b, int pad_l, int pad_r, AeError * err)
{
  int k = (int) w->shape[2];
  AeTensor y = pass_next (p, w->shape[0],
      ae_conv2d_out_size (p->x.shape[2], k, stride, pad_t, pad_b),
      ae_conv2d_out_size (p->x.shape[3], k, stride, pad_l, pad_r));

  if (ae_conv2d_pad (&y, &p->x, w, bias, stride, pad_t, pad_b, pad_l, pad_r,
          p->arena, err) < 0)
    return -1;
  pass_swap (p, &y);
  return 0;
}

static int
mid_forward (VaePass * p, const VaeMidBlock * m, const char *coder,
    AeError * err)
{
  char fmt[80];

  snprintf (fmt, sizeof (fmt), "%s.mid_block.resnets.%%d", coder);
  if (resnet_forward (p, &m->resnets[0], err) < 0)
    return -1;
  pass_act (p, fmt, 0, 0);
  if (m->has_attention) {
    snprintf (fmt, sizeof (fmt), "%s.mid_block.attentions.%%d", coder);
    if (attention_forward (p, &m->attention, err) < 0)
      return -1;
    pass_act (p, fmt, 0, 0);
  }
  snprintf (fmt, sizeof (fmt), "%s.mid_block.resnets.%%d", coder);
  if (resnet_forward (p, &m->resnets[1], err) < 0)
    return -1;
  pass_act (p, fmt, 1, 0);
  snprintf (fmt, sizeof (fmt), "%s.mid_block", coder);
  pass_act (p, fmt, 0, 0);
  return 0;
}

/* conv_norm_out (GroupNorm, reported before its SiLU as diffusers' hook
 * sees it), SiLU, conv_out. */
static int
out_forward (VaePass * p, const VaeCoder * cd, const char *coder,
    AeError * err)
{
  const AeVaeConfig *cfg = &p->vae->cfg;
  char name[80];
  AeTensor y = pass_next (p, p->x.shape[1], p->x.shape[2], p->x.shape[3]);

  if (ae_group_norm (&y, &p->x, cfg->norm_num_groups, cfg->norm_eps,
          &cd->norm_out_w, &cd->norm_out_b, false, err) < 0)
    return -1;
  pass_swap (p, &y);
  snprintf (name, sizeof (name), "%s.conv_norm_out", coder);
  pass_act (p, name, 0, 0);
  if (ae_silu (&p->x, &p->x, err) < 0 ||
      conv_forward (p, &cd->conv_out_w, &cd->conv_out_b, 1, 1, 1, 1, 1,
          err) < 0)
    return -1;
  snprintf (name, sizeof (name), "%s.conv_out", coder);
  pass_act (p, name, 0, 0);
  return 0;
}

static int64_t
max64 (int64_t a, int64_t b)
{
  return a > b ? a : b;
}

/* Largest activation (floats per batch element) of the encoder at input
 * H x W: level i runs at (H >> i) with boc[i-1] and boc[i] channels. */
static int64_t
encoder_peak (const AeVaeConfig * cfg, int64_t h, int64_t w)
{
  int64_t m = (int64_t) max64 (cfg->in_channels,
      cfg->block_out_channels[0]) * h * w;

  for (int i = 0; i < cfg->n_levels; i++) {
    int64_t c = max64 (cfg->block_out_channels[i],
        cfg->block_out_channels[i > 0 ? i - 1 : 0]);
    m = max64 (m, c * (h >> i) * (w >> i));
  }
  h >>= cfg->n_levels - 1;
  w >>= cfg->n_levels - 1;
  return max64 (m, 2 * (int64_t) cfg->latent_channels * h * w);
}

/* Decoder at latent h x w: level i runs at (h << i) with reversed
 * channels i-1 and i. */
static int64_t
decoder_peak (const AeVaeConfig * cfg, int64_t h, int64_t w)
{
  int64_t m = (int64_t) max64 (cfg->latent_channels,
      dec_channels (cfg, 0)) * h * w;

  for (int i = 0; i < cfg->n_levels; i++) {
    int64_t c = max64 (dec_channels (cfg, i),
        dec_channels (cfg, i > 0 ? i - 1 : 0));
    m = max64 (m, c * (h << i) * (w << i));
  }
  h <<= cfg->n_levels - 1;
  w <<= cfg->n_levels - 1;
  return max64 (m, (int64_t) cfg->out_channels * h * w);
}

static int
pass_begin (VaePass * p, AeVae * vae, const AeTensor * x, int64_t peak,
    AeVaeActFn act_fn, void *act_user, AeArena * arena, AeError * err)
{
  size_t bytes = (size_t) (peak * x->shape[0]) * sizeof (float);

  memset (p, 0, sizeof (*p));
  p->vae = vae;
  p->arena = arena;
  p->act_fn = act_fn;
  p->act_user = act_user;
  p->buf[0] = ae_arena_alloc (arena, bytes, err);
  p->buf[1] = p->buf[0] ? ae_arena_alloc (arena, bytes, err) : NULL;
  if (p->buf[1] == NULL)
    return -1;
  /* The input is read in place by the first conv (never written). */
  p->x = *x;
  p->cur = 1;
  return 0;
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

static int
encode_levels (VaePass * p, AeError * err)
{
  const VaeCoder *e = &p->vae->encoder;

  if (conv_forward (p, &e->conv_in_w, &e->conv_in_b, 1, 1, 1, 1, 1, err) < 0)
    return -1;
  pass_act (p, "encoder.conv_in", 0, 0);
  for (int i = 0; i < p->vae->cfg.n_levels; i++) {
    const VaeLevel *l = &e->levels[i];
    for (int j = 0; j < l->n_resnets; j++) {
      if (resnet_forward (p, &l->resnets[j], err) < 0)
        return -1;
      pass_act (p, "encoder.down_blocks.%d.resnets.%d", i, j);
    }
    /* Downsample2D: F.pad (0, 1, 0, 1), then stride 2 without padding. */
    if (l->has_sampler && conv_forward (p, &l->sampler_w, &l->sampler_b, 2,
            0, 1, 0, 1, err) < 0)
      return -1;
    pass_act (p, "encoder.down_blocks.%d", i, 0);
  }
  if (mid_forward (p, &e->mid, "encoder", err) < 0 ||
      out_forward (p, e, "encoder", err) < 0)
    return -1;
  if (p->vae->cfg.use_quant_conv) {
    if (conv_forward (p, &p->vae->quant_w, &p->vae->quant_b, 1, 0, 0, 0, 0,
            err) < 0)
      return -1;
    pass_act (p, "quant_conv", 0, 0);
  }
  return 0;
}

/* moments (B, 2L, h, w) -> mean = first L channels, logvar = the rest. */
static int
split_moments (const AeTensor * m, AeTensor * mean, AeTensor * logvar,
    AeError * err)
{
  int64_t b = m->shape[0], l = m->shape[1] / 2;
  int64_t plane = l * m->shape[2] * m->shape[3];

  for (int64_t i = 0; i < b; i++) {
    const float *src = m->data + i * 2 * plane;
    memcpy (mean->data + i * plane, src, (size_t) plane * sizeof (float));
    if (logvar != NULL)
      memcpy (logvar->data + i * plane, src + plane,
          (size_t) plane * sizeof (float));
  }
  if (logvar != NULL && ae_clamp (logvar, logvar, AE_VAE_LOGVAR_MIN,
          AE_VAE_LOGVAR_MAX, err) < 0)
    return -1;
  return 0;
}

int
ae_vae_encode (AeVae * vae, const AeTensor * x, AeTensor * mean,
    AeTensor * logvar, AeVaeActFn act_fn, void *act_user, AeArena * arena,
    AeError * err)
{
  const AeVaeConfig *cfg = &vae->cfg;
  int f = ae_vae_downscale (vae);
  size_t mark;
  VaePass p;
  int64_t shape[4];
  int ret = -1;

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
  mark = ae_arena_mark (arena);
  if (pass_begin (&p, vae, x, encoder_peak (cfg, x->shape[2], x->shape[3]),
          act_fn, act_user, arena, err) < 0)
    goto out;
  if (encode_levels (&p, err) < 0 ||
      split_moments (&p.x, mean, logvar, err) < 0)
    goto out;
  ret = 0;
out:
  ae_arena_release (arena, mark);
  return ret;
}

static int
decode_levels (VaePass * p, AeError * err)
{
  const VaeCoder *d = &p->vae->decoder;

  if (conv_forward (p, &d->conv_in_w, &d->conv_in_b, 1, 1, 1, 1, 1, err) < 0)
    return -1;
  pass_act (p, "decoder.conv_in", 0, 0);
  if (mid_forward (p, &d->mid, "decoder", err) < 0)
    return -1;
  for (int i = 0; i < p->vae->cfg.n_levels; i++) {
    const VaeLevel *l = &d->levels[i];
    for (int j = 0; j < l->n_resnets; j++) {
      if (resnet_forward (p, &l->resnets[j], err) < 0)
        return -1;
      pass_act (p, "decoder.up_blocks.%d.resnets.%d", i, j);
    }
    if (l->has_sampler) {
      /* Upsample2D: nearest 2x into the other buffer, then the 3x3 conv
       * back. */
      AeTensor up = pass_next (p, p->x.shape[1], 2 * p->x.shape[2],
          2 * p->x.shape[3]);
      if (ae_upsample_nearest2x (&up, &p->x, err) < 0)
        return -1;
      pass_swap (p, &up);
      if (conv_forward (p, &l->sampler_w, &l->sampler_b, 1, 1, 1, 1, 1,
              err) < 0)
        return -1;
    }
    pass_act (p, "decoder.up_blocks.%d", i, 0);
  }
  return out_forward (p, d, "decoder", err);
}

int
ae_vae_decode (AeVae * vae, const AeTensor * latent, AeTensor * sample,
    AeVaeActFn act_fn, void *act_user, AeArena * arena, AeError * err)
{
  const AeVaeConfig *cfg = &vae->cfg;
  int f = ae_vae_downscale (vae);
  size_t mark;
  VaePass p;
  int64_t shape[4];
  int ret = -1;

  if (check_input (vae, latent, "decode latent", cfg->latent_channels, 1,
          err) < 0)
    return -1;
  shape[0] = latent->shape[0];
  shape[1] = cfg->out_channels;
  shape[2] = latent->shape[2] * f;
  shape[3] = latent->shape[3] * f;
  if (ae_tensor_check_shape (sample, "decode sample", 4, shape, err) < 0)
    return -1;
  mark = ae_arena_mark (arena);
  if (pass_begin (&p, vae, latent, decoder_peak (cfg, latent->shape[2],
              latent->shape[3]), act_fn, act_user, arena, err) < 0)
    goto out;
  if (cfg->use_post_quant_conv) {
    if (conv_forward (&p, &vae->post_quant_w, &vae->post_quant_b, 1, 0, 0, 0,
            0, err) < 0)
      goto out;
    pass_act (&p, "post_quant_conv", 0, 0);
  }
  if (decode_levels (&p, err) < 0 || ae_copy (sample, &p.x, err) < 0)
    goto out;
  ret = 0;
out:
  ae_arena_release (arena, mark);
  return ret;
}
