/* UNet2DConditionModel: config, weights and forward pass (see unet.h).
 * Module structure and key names follow diffusers (unets/unet_2d_condition.py,
 * unet_2d_blocks.py, resnet.py, transformer_2d.py, attention.py). */
#include "unet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "config.h"
#include "ops.h"

/* Transformer2DModel's GroupNorm eps (fixed in diffusers) and the
 * BasicTransformerBlock LayerNorm eps (its default, not passed by the
 * UNet). */
#define AE_TRANSFORMER_GN_EPS 1e-6f
#define AE_TRANSFORMER_LN_EPS 1e-5f
#define AE_MAX_SKIPS 128

/* ---- config ------------------------------------------------------------ */

static int
parse_block_type (const char *path, const char *field, int i,
    const char *name, bool down, AeBlockType * out, AeError * err)
{
  if (down && strcmp (name, "DownBlock2D") == 0)
    *out = AE_BLOCK_DOWN;
  else if (down && strcmp (name, "CrossAttnDownBlock2D") == 0)
    *out = AE_BLOCK_CROSS_ATTN_DOWN;
  else if (!down && strcmp (name, "UpBlock2D") == 0)
    *out = AE_BLOCK_UP;
  else if (!down && strcmp (name, "CrossAttnUpBlock2D") == 0)
    *out = AE_BLOCK_CROSS_ATTN_UP;
  else
    return ae_error (err, "%s: field '%s'[%d]: unsupported block type '%s'",
        path, field, i, name);
  return 0;
}

static int
config_get_int (const AeConfig * c, const char *key, int *out, AeError * err)
{
  int64_t v;

  if (ae_config_get_int (c, key, &v, err) < 0)
    return -1;
  if (v < 0 || v > (1 << 20))
    return ae_error (err, "%s: field '%s': value %lld out of range",
        ae_config_path (c), key, (long long) v);
  *out = (int) v;
  return 0;
}

static int
config_block_types (AeUNetConfig * cfg, const AeConfig * c, AeError * err)
{
  const char *path = ae_config_path (c);
  const char *names[AE_UNET_MAX_LEVELS];
  const char *mid;
  int n;

  if (ae_config_get_string_list (c, "down_block_types", names,
          AE_UNET_MAX_LEVELS, &n, err) < 0)
    return -1;
  if (n != cfg->n_levels)
    return ae_error (err, "%s: field 'down_block_types': %d entries, "
        "block_out_channels has %d", path, n, cfg->n_levels);
  for (int i = 0; i < n; i++)
    if (parse_block_type (path, "down_block_types", i, names[i], true,
            &cfg->down_types[i], err) < 0)
      return -1;
  if (ae_config_get_string_list (c, "up_block_types", names,
          AE_UNET_MAX_LEVELS, &n, err) < 0)
    return -1;
  if (n != cfg->n_levels)
    return ae_error (err, "%s: field 'up_block_types': %d entries, "
        "block_out_channels has %d", path, n, cfg->n_levels);
  for (int i = 0; i < n; i++)
    if (parse_block_type (path, "up_block_types", i, names[i], false,
            &cfg->up_types[i], err) < 0)
      return -1;
  if (ae_config_get_string_or (c, "mid_block_type",
          "UNetMidBlock2DCrossAttn", &mid, err) < 0)
    return -1;
  if (strcmp (mid, "UNetMidBlock2DCrossAttn") != 0)
    return ae_error (err, "%s: field 'mid_block_type': unsupported block "
        "type '%s'", path, mid);
  return 0;
}

/* Heads per down block: num_attention_heads if set, else the legacy
 * attention_head_dim (which diffusers uses as the number of heads). */
static int
config_heads (AeUNetConfig * cfg, const AeConfig * c, AeError * err)
{
  const char *path = ae_config_path (c);
  const char *key = ae_config_has (c, "num_attention_heads") ?
      "num_attention_heads" : "attention_head_dim";
  int64_t v[AE_UNET_MAX_LEVELS];
  int n;

  if (ae_config_get_int_list (c, key, v, AE_UNET_MAX_LEVELS, &n, true,
          err) < 0)
    return -1;
  if (n != 1 && n != cfg->n_levels)
    return ae_error (err, "%s: field '%s': %d entries, expected 1 or %d",
        path, key, n, cfg->n_levels);
  for (int i = 0; i < cfg->n_levels; i++) {
    int64_t h = v[n == 1 ? 0 : i];
    if (h <= 0 || cfg->block_out_channels[i] % h != 0)
      return ae_error (err, "%s: field '%s': %lld heads do not divide %d "
          "channels", path, key, (long long) h, cfg->block_out_channels[i]);
    cfg->heads[i] = (int) h;
  }
  return 0;
}

static int
config_check_unsupported (const AeConfig * c, AeError * err)
{
  /* Options of other UNet variants: accepted only at their SD1.5 value. */
  static const char *must_be_null[] = { "class_embed_type",
    "addition_embed_type", "encoder_hid_dim", "time_cond_proj_dim",
    "num_class_embeds", NULL
  };
  const char *s;

  for (int i = 0; must_be_null[i]; i++)
    if (ae_config_has (c, must_be_null[i]))
      return ae_error (err, "%s: field '%s': not supported (must be null)",
          ae_config_path (c), must_be_null[i]);
  if (ae_config_get_string_or (c, "act_fn", "silu", &s, err) < 0)
    return -1;
  if (strcmp (s, "silu") != 0)
    return ae_error (err, "%s: field 'act_fn': unsupported '%s'",
        ae_config_path (c), s);
  if (ae_config_get_string_or (c, "resnet_time_scale_shift", "default", &s,
          err) < 0)
    return -1;
  if (strcmp (s, "default") != 0)
    return ae_error (err, "%s: field 'resnet_time_scale_shift': "
        "unsupported '%s'", ae_config_path (c), s);
  return 0;
}

static int
config_fill (AeUNetConfig * cfg, const AeConfig * c, AeError * err)
{
  const char *path = ae_config_path (c);
  int64_t boc[AE_UNET_MAX_LEVELS], tl;
  double d;
  int n;

  memset (cfg, 0, sizeof *cfg);
  if (config_check_unsupported (c, err) < 0 ||
      config_get_int (c, "in_channels", &cfg->in_channels, err) < 0 ||
      config_get_int (c, "out_channels", &cfg->out_channels, err) < 0 ||
      ae_config_get_int_list (c, "block_out_channels", boc,
          AE_UNET_MAX_LEVELS, &n, false, err) < 0)
    return -1;
  if (n < 1)
    return ae_error (err, "%s: field 'block_out_channels': empty", path);
  cfg->n_levels = n;
  for (int i = 0; i < n; i++)
    cfg->block_out_channels[i] = (int) boc[i];
  if (config_get_int (c, "layers_per_block", &cfg->layers_per_block,
          err) < 0 ||
      config_get_int (c, "cross_attention_dim", &cfg->cross_attention_dim,
          err) < 0 ||
      config_get_int (c, "norm_num_groups", &cfg->norm_num_groups, err) < 0)
    return -1;
  if (ae_config_get_float (c, "norm_eps", &d, err) < 0)
    return -1;
  cfg->norm_eps = (float) d;
  if (ae_config_get_int_or (c, "transformer_layers_per_block", 1, &tl,
          err) < 0)
    return -1;
  cfg->transformer_layers_per_block = (int) tl;
  if (ae_config_get_bool_or (c, "use_linear_projection", false,
          &cfg->use_linear_projection, err) < 0 ||
      ae_config_get_bool_or (c, "flip_sin_to_cos", true,
          &cfg->flip_sin_to_cos, err) < 0)
    return -1;
  if (ae_config_get_float_or (c, "freq_shift", 0.0, &d, err) < 0)
    return -1;
  cfg->freq_shift = (float) d;
  if (ae_config_get_int_or (c, "downsample_padding", 1, &tl, err) < 0)
    return -1;
  cfg->downsample_padding = (int) tl;
  if (ae_config_get_float_or (c, "mid_block_scale_factor", 1.0, &d, err) < 0)
    return -1;
  cfg->mid_block_scale_factor = (float) d;
  if (ae_config_get_float_or (c, "resnet_out_scale_factor", 1.0, &d, err) < 0)
    return -1;
  cfg->resnet_out_scale_factor = (float) d;
  if (cfg->mid_block_scale_factor <= 0 || cfg->resnet_out_scale_factor <= 0)
    return ae_error (err, "%s: field 'mid_block_scale_factor' / "
        "'resnet_out_scale_factor': must be > 0", path);
  for (int i = 0; i < n; i++)
    if (boc[i] <= 0 || cfg->norm_num_groups <= 0 ||
        boc[i] % cfg->norm_num_groups != 0)
      return ae_error (err, "%s: field 'norm_num_groups': %d groups do not "
          "divide block_out_channels[%d] = %lld", path, cfg->norm_num_groups,
          i, (long long) boc[i]);
  if (cfg->layers_per_block < 1 || cfg->transformer_layers_per_block < 1)
    return ae_error (err, "%s: field 'layers_per_block': must be >= 1", path);
  cfg->time_embed_dim = 4 * cfg->block_out_channels[0];
  if (config_block_types (cfg, c, err) < 0 || config_heads (cfg, c, err) < 0)
    return -1;
  return 0;
}

int
ae_unet_config_parse (AeUNetConfig * cfg, const AeConfig * c, AeError * err)
{
  return config_fill (cfg, c, err);
}

int
ae_unet_config_load (AeUNetConfig * cfg, const char *path, AeError * err)
{
  AeConfig *c;
  int ret;

  if (ae_config_load (&c, path, err) < 0)
    return -1;
  ret = config_fill (cfg, c, err);
  ae_config_free (c);
  return ret;
}

/* ---- weights ----------------------------------------------------------- */

/* Weights come from a safetensors file, or (st NULL) are created in memory
 * with seeded random values (tests, benchmarks): every tensor is then
 * recorded with its key so that it can be listed and freed. */
typedef struct {
  AeSafetensors *st;
  AeError *err;
  AeUNet *u;                    /* random mode: owner of the tensors */
  uint64_t rng;
} Loader;

typedef struct {
  char *name;
  AeTensor t;
} OwnedWeight;

/* Uniform in [-sqrt 3, sqrt 3) (mean 0, variance 1) from splitmix64: cheap
 * enough for the 860M weights of a full SD1.5 UNet. */
static float
rng_unit (uint64_t * s)
{
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float) (((z >> 40) * (1.0 / 16777216.0) - 0.5) *
      3.4641016151377544);
}

/* Random tensor: norms get weight 1 + N(0, 0.1), bias N(0, 0.1); other
 * weights N(0, 1/fan_in) so activations keep their scale. */
static int
random_tensor (Loader * l, AeTensor * t, int ndim, const int64_t * dims,
    const char *key, bool is_bias, bool is_norm)
{
  OwnedWeight *w = g_new0 (OwnedWeight, 1);
  int64_t n, fan_in = 1;
  float std, mean = 0.0f;

  w->t = ae_tensor_nd (NULL, ndim, dims);
  n = ae_tensor_numel (&w->t);
  w->t.data = g_new (float, n > 0 ? n : 1);
  w->name = g_strdup (key);
  for (int i = 1; i < ndim; i++)
    fan_in *= dims[i];
  std = is_bias || is_norm ? 0.1f : (float) (1.0 / sqrt ((double) fan_in));
  if (is_norm && !is_bias)
    mean = 1.0f;
  for (int64_t i = 0; i < n; i++)
    w->t.data[i] = mean + std * rng_unit (&l->rng);
  g_ptr_array_add (l->u->owned, w);
  *t = w->t;
  return 0;
}

/* Gets "<prefix><name>.weight|bias" with the expected shape (ndim entries
 * of dims; the bias is (dims[0])). */
static int
load_param (Loader * l, AeUNetParam * p, bool bias, int ndim,
    const int64_t * dims, const char *prefix, const char *name)
{
  char key[1024];
  bool norm = ndim == 1;

  memset (&p->bias, 0, sizeof p->bias);
  if (l->st == NULL) {
    snprintf (key, sizeof key, "%s%s.weight", prefix, name);
    random_tensor (l, &p->weight, ndim, dims, key, false, norm);
    snprintf (key, sizeof key, "%s%s.bias", prefix, name);
    if (bias)
      random_tensor (l, &p->bias, 1, dims, key, true, norm);
    return 0;
  }
  if (ae_st_getf (l->st, &p->weight, ndim, dims, l->err, "%s%s.weight",
          prefix, name) < 0)
    return -1;
  if (bias && ae_st_getf (l->st, &p->bias, 1, dims, l->err, "%s%s.bias",
          prefix, name) < 0)
    return -1;
  return 0;
}

static int
load_conv (Loader * l, AeUNetParam * p, int64_t cout, int64_t cin, int k,
    const char *prefix, const char *name)
{
  int64_t d[4] = { cout, cin, k, k };
  return load_param (l, p, true, 4, d, prefix, name);
}

static int
load_linear (Loader * l, AeUNetParam * p, bool bias, int64_t out, int64_t in,
    const char *prefix, const char *name)
{
  int64_t d[2] = { out, in };
  return load_param (l, p, bias, 2, d, prefix, name);
}

static int
load_norm (Loader * l, AeUNetParam * p, int64_t c, const char *prefix,
    const char *name)
{
  int64_t d[1] = { c };
  return load_param (l, p, true, 1, d, prefix, name);
}

static int
load_resnet (Loader * l, AeResnetBlock2D * r, int cin, int cout, int temb,
    const char *prefix)
{
  r->in_channels = cin;
  r->out_channels = cout;
  if (load_norm (l, &r->norm1, cin, prefix, "norm1") < 0 ||
      load_conv (l, &r->conv1, cout, cin, 3, prefix, "conv1") < 0 ||
      load_linear (l, &r->time_emb_proj, true, cout, temb, prefix,
          "time_emb_proj") < 0 ||
      load_norm (l, &r->norm2, cout, prefix, "norm2") < 0 ||
      load_conv (l, &r->conv2, cout, cout, 3, prefix, "conv2") < 0)
    return -1;
  memset (&r->conv_shortcut, 0, sizeof r->conv_shortcut);
  if (cin != cout &&
      load_conv (l, &r->conv_shortcut, cout, cin, 1, prefix,
          "conv_shortcut") < 0)
    return -1;
  return 0;
}

static int
load_attention (Loader * l, AeUNetAttention * a, int dim, int kv_dim,
    const char *prefix)
{
  AeUNetParam p;

  if (load_linear (l, &p, false, dim, dim, prefix, "to_q") < 0)
    return -1;
  a->to_q = p.weight;
  if (load_linear (l, &p, false, dim, kv_dim, prefix, "to_k") < 0)
    return -1;
  a->to_k = p.weight;
  if (load_linear (l, &p, false, dim, kv_dim, prefix, "to_v") < 0)
    return -1;
  a->to_v = p.weight;
  return load_linear (l, &a->to_out, true, dim, dim, prefix, "to_out.0");
}

static int
load_basic_block (Loader * l, AeBasicTransformerBlock * b, int dim, int heads,
    int ctx, const char *prefix)
{
  char p[1024];

  b->dim = dim;
  b->heads = heads;
  if (load_norm (l, &b->norm1, dim, prefix, "norm1") < 0)
    return -1;
  snprintf (p, sizeof p, "%sattn1.", prefix);
  if (load_attention (l, &b->attn1, dim, dim, p) < 0)
    return -1;
  if (load_norm (l, &b->norm2, dim, prefix, "norm2") < 0)
    return -1;
  snprintf (p, sizeof p, "%sattn2.", prefix);
  if (load_attention (l, &b->attn2, dim, ctx, p) < 0)
    return -1;
  if (load_norm (l, &b->norm3, dim, prefix, "norm3") < 0 ||
      load_linear (l, &b->ff_proj, true, 8 * (int64_t) dim, dim, prefix,
          "ff.net.0.proj") < 0 ||
      load_linear (l, &b->ff_out, true, dim, 4 * (int64_t) dim, prefix,
          "ff.net.2") < 0)
    return -1;
  return 0;
}

static int
load_transformer (Loader * l, AeTransformer2D * t, const AeUNetConfig * cfg,
    int ch, int heads, const char *prefix)
{
  char p[512];
  int ok;

  t->channels = ch;
  t->heads = heads;
  t->n_layers = cfg->transformer_layers_per_block;
  t->linear_projection = cfg->use_linear_projection;
  t->blocks = g_new0 (AeBasicTransformerBlock, t->n_layers);
  if (load_norm (l, &t->norm, ch, prefix, "norm") < 0)
    return -1;
  ok = t->linear_projection ?
      load_linear (l, &t->proj_in, true, ch, ch, prefix, "proj_in") :
      load_conv (l, &t->proj_in, ch, ch, 1, prefix, "proj_in");
  if (ok < 0)
    return -1;
  for (int i = 0; i < t->n_layers; i++) {
    snprintf (p, sizeof p, "%stransformer_blocks.%d.", prefix, i);
    if (load_basic_block (l, &t->blocks[i], ch, heads,
            cfg->cross_attention_dim, p) < 0)
      return -1;
  }
  return t->linear_projection ?
      load_linear (l, &t->proj_out, true, ch, ch, prefix, "proj_out") :
      load_conv (l, &t->proj_out, ch, ch, 1, prefix, "proj_out");
}

static bool
block_has_attention (AeBlockType t)
{
  return t == AE_BLOCK_CROSS_ATTN_DOWN || t == AE_BLOCK_CROSS_ATTN_UP ||
      t == AE_BLOCK_MID_CROSS_ATTN;
}

/* Allocates and loads n_layers resnets (+ transformers); in_ch[j] gives
 * the input channels of resnet j. */
static int
load_block (Loader * l, AeUNet * u, AeUNetBlock * b, AeBlockType type,
    int n_layers, const int *in_ch, int out_ch, int heads, const char *prefix)
{
  char p[512];
  int temb = u->cfg.time_embed_dim;

  b->type = type;
  b->n_layers = n_layers;
  b->resnets = g_new0 (AeResnetBlock2D, n_layers + 1);
  if (block_has_attention (type))
    b->attentions = g_new0 (AeTransformer2D, n_layers + 1);
  for (int j = 0; j < n_layers; j++) {
    snprintf (p, sizeof p, "%sresnets.%d.", prefix, j);
    if (load_resnet (l, &b->resnets[j], in_ch[j], out_ch, temb, p) < 0)
      return -1;
    b->resnets[j].output_scale_factor = type == AE_BLOCK_MID_CROSS_ATTN ?
        u->cfg.mid_block_scale_factor : u->cfg.resnet_out_scale_factor;
  }
  if (b->attentions == NULL)
    return 0;
  /* The mid block has one transformer between its two resnets. */
  for (int j = 0; j < (type == AE_BLOCK_MID_CROSS_ATTN ? 1 : n_layers); j++) {
    snprintf (p, sizeof p, "%sattentions.%d.", prefix, j);
    if (load_transformer (l, &b->attentions[j], &u->cfg, out_ch, heads, p) < 0)
      return -1;
    u->n_transformer_blocks += b->attentions[j].n_layers;
  }
  return 0;
}

static int
load_down_blocks (Loader * l, AeUNet * u)
{
  const AeUNetConfig *cfg = &u->cfg;
  int in_ch[AE_UNET_MAX_LEVELS + 64];
  char p[64];
  int prev = cfg->block_out_channels[0];

  if (cfg->layers_per_block > 64)
    return ae_error (l->err, "layers_per_block %d too large",
        cfg->layers_per_block);
  for (int i = 0; i < cfg->n_levels; i++) {
    int out = cfg->block_out_channels[i];
    AeUNetBlock *b = &u->down[i];
    for (int j = 0; j < cfg->layers_per_block; j++)
      in_ch[j] = j == 0 ? prev : out;
    snprintf (p, sizeof p, "down_blocks.%d.", i);
    if (load_block (l, u, b, cfg->down_types[i], cfg->layers_per_block,
            in_ch, out, cfg->heads[i], p) < 0)
      return -1;
    b->has_sampler = i < cfg->n_levels - 1;
    if (b->has_sampler && load_conv (l, &b->sampler, out, out, 3, p,
            "downsamplers.0.conv") < 0)
      return -1;
    prev = out;
  }
  return 0;
}

static int
load_mid_up_blocks (Loader * l, AeUNet * u)
{
  const AeUNetConfig *cfg = &u->cfg;
  int n = cfg->n_levels, last = cfg->block_out_channels[n - 1];
  int in_ch[AE_UNET_MAX_LEVELS + 65];
  int prev_out = last;
  char p[64];

  in_ch[0] = in_ch[1] = last;
  if (load_block (l, u, &u->mid, AE_BLOCK_MID_CROSS_ATTN, 2, in_ch, last,
          cfg->heads[n - 1], "mid_block.") < 0)
    return -1;
  for (int i = 0; i < n; i++) {
    int out = cfg->block_out_channels[n - 1 - i];
    int in = cfg->block_out_channels[n - 1 - (i + 1 < n ? i + 1 : n - 1)];
    int layers = cfg->layers_per_block + 1;
    AeUNetBlock *b = &u->up[i];
    /* resnet j consumes cat(h, skip): the last one takes the skip from
     * the level above (in), the others a skip of this level (out). */
    for (int j = 0; j < layers; j++)
      in_ch[j] = (j == 0 ? prev_out : out) + (j == layers - 1 ? in : out);
    snprintf (p, sizeof p, "up_blocks.%d.", i);
    if (load_block (l, u, b, cfg->up_types[i], layers, in_ch, out,
            cfg->heads[n - 1 - i], p) < 0)
      return -1;
    b->has_sampler = i < n - 1;
    if (b->has_sampler && load_conv (l, &b->sampler, out, out, 3, p,
            "upsamplers.0.conv") < 0)
      return -1;
    prev_out = out;
  }
  return 0;
}

static int
load_unet_weights (Loader * l, AeUNet * u)
{
  const AeUNetConfig *cfg = &u->cfg;
  int c0 = cfg->block_out_channels[0], td = cfg->time_embed_dim;

  if (load_conv (l, &u->conv_in, c0, cfg->in_channels, 3, "", "conv_in") < 0
      || load_linear (l, &u->time_linear_1, true, td, c0, "",
          "time_embedding.linear_1") < 0
      || load_linear (l, &u->time_linear_2, true, td, td, "",
          "time_embedding.linear_2") < 0
      || load_down_blocks (l, u) < 0 || load_mid_up_blocks (l, u) < 0
      || load_norm (l, &u->conv_norm_out, c0, "", "conv_norm_out") < 0
      || load_conv (l, &u->conv_out, cfg->out_channels, c0, 3, "",
          "conv_out") < 0)
    return -1;
  return 0;
}

int
ae_unet_load_files (AeUNet ** out, const char *config_path,
    const char *weights_path, AeError * err)
{
  AeUNet *u = g_new0 (AeUNet, 1);
  Loader l = { 0 };

  *out = NULL;
  u->config_path = g_strdup (config_path);
  if (ae_unet_config_load (&u->cfg, config_path, err) < 0 ||
      ae_st_open (&u->st, weights_path, err) < 0) {
    ae_unet_free (u);
    return -1;
  }
  l.st = u->st;
  l.err = err;
  if (load_unet_weights (&l, u) < 0) {
    ae_unet_free (u);
    return -1;
  }
  *out = u;
  return 0;
}

int
ae_unet_new_random (AeUNet ** out, const AeUNetConfig * cfg, uint64_t seed,
    AeError * err)
{
  AeUNet *u = g_new0 (AeUNet, 1);
  Loader l = { NULL, err, u, seed };

  u->cfg = *cfg;
  u->owned = g_ptr_array_new ();
  load_unet_weights (&l, u);
  *out = u;
  return 0;
}

void
ae_unet_foreach_weight (const AeUNet * u, AeWeightFn fn, void *user)
{
  if (u->owned == NULL)
    return;
  for (guint i = 0; i < u->owned->len; i++) {
    OwnedWeight *w = g_ptr_array_index (u->owned, i);
    fn (user, w->name, &w->t);
  }
}

int
ae_unet_load (AeUNet ** out, const char *dir, AeError * err)
{
  char *cfg = g_build_filename (dir, "config.json", NULL);
  char *w = g_build_filename (dir, "diffusion_pytorch_model.safetensors",
      NULL);
  int ret;

  /* The file itself when present, so that messages name it. */
  ret = ae_unet_load_files (out, cfg, g_file_test (w, G_FILE_TEST_EXISTS) ?
      w : dir, err);
  g_free (cfg);
  g_free (w);
  return ret;
}

static void
free_block (AeUNetBlock * b)
{
  if (b->attentions)
    for (int j = 0; j <= b->n_layers; j++)
      g_free (b->attentions[j].blocks);
  g_free (b->attentions);
  g_free (b->resnets);
}

void
ae_unet_free (AeUNet * u)
{
  if (u == NULL)
    return;
  for (int i = 0; i < AE_UNET_MAX_LEVELS; i++) {
    free_block (&u->down[i]);
    free_block (&u->up[i]);
  }
  free_block (&u->mid);
  if (u->owned) {
    for (guint i = 0; i < u->owned->len; i++) {
      OwnedWeight *w = g_ptr_array_index (u->owned, i);
      g_free (w->t.data);
      g_free (w->name);
      g_free (w);
    }
    g_ptr_array_free (u->owned, TRUE);
  }
  ae_st_close (u->st);
  g_free (u->config_path);
  g_free (u);
}

void
ae_ref_bank_clear (AeRefBank * bank)
{
  if (bank == NULL)
    return;
  for (int i = 0; i < bank->n; i++)
    g_free (bank->tokens[i].data);
  g_free (bank->tokens);
  g_free (bank->capacity);
  memset (bank, 0, sizeof *bank);
}

/* ---- forward ------------------------------------------------------------ */

/* State of one forward pass. */
typedef struct {
  AeUNet *u;
  AeArena *a;
  AeError *err;
  const AeUNetHooks *hooks;
  const AeTensor *context;      /* encoder_hidden_states */
  AeTensor temb_silu;           /* silu(time embedding), (B, temb) */
  int block_index;              /* BasicTransformerBlock counter */
  AeTensor skips[AE_MAX_SKIPS];
  int n_skips;
} Fwd;

static void
emit (Fwd * f, const AeTensor * t, const char *fmt, ...)
    __attribute__((format (printf, 3, 4)));

static void
emit (Fwd * f, const AeTensor * t, const char *fmt, ...)
{
  char name[256];
  va_list ap;

  if (f->hooks == NULL || f->hooks->act_fn == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (name, sizeof name, fmt, ap);
  va_end (ap);
  f->hooks->act_fn (f->hooks->act_user, name, t);
}

static bool
want_acts (const Fwd * f)
{
  return f->hooks != NULL && f->hooks->act_fn != NULL;
}

/* GroupNorm then SiLU; unfused when activations are captured so that the
 * norm's own output (what diffusers' hook sees) can be emitted. */
static int
norm_silu (Fwd * f, AeTensor * y, const AeTensor * x, const AeUNetParam * p,
    const char *prefix, const char *name)
{
  int groups = f->u->cfg.norm_num_groups;
  float eps = f->u->cfg.norm_eps;

  if (!want_acts (f))
    return ae_group_norm (y, x, groups, eps, &p->weight, &p->bias, true,
        f->err);
  if (ae_group_norm (y, x, groups, eps, &p->weight, &p->bias, false,
          f->err) < 0)
    return -1;
  emit (f, y, "%s%s", prefix, name);
  return ae_silu (y, y, f->err);
}

/* ResnetBlock2D (time_embedding_norm "default"):
 * y = (shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(temb)))))
 *     / output_scale_factor */
static int
resnet_forward (Fwd * f, AeTensor * y, const AeTensor * x,
    const AeResnetBlock2D * r, const char *prefix)
{
  size_t mark = ae_arena_mark (f->a);
  int64_t b = x->shape[0], h = x->shape[2], w = x->shape[3];
  AeTensor n1, h1, tp, sc;
  int ret = -1;

  if (ae_arena_tensor4 (f->a, &n1, b, r->in_channels, h, w, f->err) < 0 ||
      ae_arena_tensor4 (f->a, &h1, b, r->out_channels, h, w, f->err) < 0 ||
      ae_arena_tensor2 (f->a, &tp, b, r->out_channels, f->err) < 0)
    goto out;
  if (norm_silu (f, &n1, x, &r->norm1, prefix, "norm1") < 0 ||
      ae_conv2d (&h1, &n1, &r->conv1.weight, &r->conv1.bias, 1, 1, f->a,
          f->err) < 0)
    goto out;
  emit (f, &h1, "%sconv1", prefix);
  if (ae_linear (&tp, &f->temb_silu, &r->time_emb_proj.weight,
          &r->time_emb_proj.bias, f->err) < 0)
    goto out;
  emit (f, &tp, "%stime_emb_proj", prefix);
  if (ae_add_channel (&h1, &tp, f->err) < 0 ||
      norm_silu (f, &h1, &h1, &r->norm2, prefix, "norm2") < 0 ||
      ae_conv2d (y, &h1, &r->conv2.weight, &r->conv2.bias, 1, 1, f->a,
          f->err) < 0)
    goto out;
  emit (f, y, "%sconv2", prefix);
  if (r->conv_shortcut.weight.data) {
    /* n1 is free again and has the input's size; the shortcut needs the
     * output's, so take a fresh tensor. */
    if (ae_arena_tensor4 (f->a, &sc, b, r->out_channels, h, w, f->err) < 0 ||
        ae_conv2d (&sc, x, &r->conv_shortcut.weight, &r->conv_shortcut.bias,
            1, 0, f->a, f->err) < 0)
      goto out;
    emit (f, &sc, "%sconv_shortcut", prefix);
    ret = ae_add_scaled (y, &sc, y, r->output_scale_factor, f->err);
  } else {
    ret = ae_add_scaled (y, x, y, r->output_scale_factor, f->err);
  }
  emit (f, y, "%.*s", (int) strlen (prefix) - 1, prefix);
out:
  ae_arena_release (f->a, mark);
  return ret;
}

/* The ref-attention bank entry of the current block, (re)allocated to the
 * shape of t. Allocation happens on the first capture at a shape only. */
static int
bank_store (Fwd * f, const AeTensor * t)
{
  AeRefBank *bank = f->hooks->bank;
  int i = f->block_index;
  size_t need = (size_t) ae_tensor_numel (t);

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
    bank->tokens[i] = *t;
    bank->tokens[i].data = data;
  }
  return ae_copy (&bank->tokens[i], t, f->err);
}

/* attn1 with the hooks: plain self-attention, temporal (all frames), or
 * reference-injected (keys/values extended by the saved tokens). q, k, v
 * are (B, L, C) projections of n; out (B, L, C). */
static int
attn1_core (Fwd * f, AeTensor * out, AeTensor * q, AeTensor * k, AeTensor * v,
    const AeBasicTransformerBlock * blk)
{
  const AeUNetHooks *hk = f->hooks;
  int64_t b = q->shape[0], l = q->shape[1], c = q->shape[2];
  AeTensor ke, ve, qs, ks, vs, os;
  const AeTensor *ref;
  int ret = -1;
  size_t mark;

  if (hk && hk->temporal) {
    AeTensor q1 = *q, k1 = *k, v1 = *v, o1 = *out;
    int64_t s[3] = { 1, b * l, c };
    bool inj = hk->ref_mode == AE_REF_INJECT &&
        (hk->ref_batch_mask == NULL || hk->ref_batch_mask[0]);
    if (ae_tensor_reshape (&q1, 3, s, f->err) < 0 ||
        ae_tensor_reshape (&k1, 3, s, f->err) < 0 ||
        ae_tensor_reshape (&v1, 3, s, f->err) < 0 ||
        ae_tensor_reshape (&o1, 3, s, f->err) < 0)
      return -1;
    /* Temporal + reference (Make-Your-Anchor): keys/values = every
     * frame's tokens, then the reference tokens; one sequence, so the
     * batch mask must be the same for every frame. */
    for (int64_t i = 1; hk->ref_mode == AE_REF_INJECT &&
        hk->ref_batch_mask && i < b; i++)
      if (hk->ref_batch_mask[i] != hk->ref_batch_mask[0])
        return ae_error (f->err, "unet: temporal attention needs the same "
            "ref_batch_mask for every frame of the batch");
    if (!inj)
      return ae_attention (&o1, &q1, &k1, &v1, NULL, NULL, blk->heads,
          0.0f, f->a, f->err);
    if (hk->bank == NULL || f->block_index >= hk->bank->n ||
        hk->bank->tokens[f->block_index].ndim != 3 ||
        hk->bank->tokens[f->block_index].shape[0] != 1 ||
        hk->bank->tokens[f->block_index].shape[2] != c)
      return ae_error (f->err, "unet: temporal attention needs one "
          "reference bank entry (1, L, %lld) for transformer block %d",
          (long long) c, f->block_index);
    ref = &hk->bank->tokens[f->block_index];
    mark = ae_arena_mark (f->a);
    if (ae_arena_tensor3 (f->a, &ke, 1, ref->shape[1], c, f->err) == 0 &&
        ae_arena_tensor3 (f->a, &ve, 1, ref->shape[1], c, f->err) == 0 &&
        ae_linear (&ke, ref, &blk->attn1.to_k, NULL, f->err) == 0 &&
        ae_linear (&ve, ref, &blk->attn1.to_v, NULL, f->err) == 0)
      ret = ae_attention (&o1, &q1, &k1, &v1, &ke, &ve, blk->heads, 0.0f,
          f->a, f->err);
    ae_arena_release (f->a, mark);
    return ret;
  }
  if (hk == NULL || hk->ref_mode != AE_REF_INJECT)
    return ae_attention (out, q, k, v, NULL, NULL, blk->heads, 0.0f, f->a,
        f->err);
  if (hk->bank == NULL || f->block_index >= hk->bank->n)
    return ae_error (f->err, "unet: reference bank has no entry for "
        "transformer block %d", f->block_index);
  ref = &hk->bank->tokens[f->block_index];
  if (ref->ndim != 3 || ref->shape[2] != c ||
      (ref->shape[0] != 1 && ref->shape[0] != b))
    return ae_error (f->err, "unet: reference bank entry %d has %d dims / "
        "%lld channels, block expects %lld", f->block_index, ref->ndim,
        (long long) (ref->ndim == 3 ? ref->shape[2] : 0), (long long) c);
  mark = ae_arena_mark (f->a);
  if (ae_arena_tensor3 (f->a, &ke, ref->shape[0], ref->shape[1], c,
          f->err) < 0 ||
      ae_arena_tensor3 (f->a, &ve, ref->shape[0], ref->shape[1], c,
          f->err) < 0 ||
      ae_linear (&ke, ref, &blk->attn1.to_k, NULL, f->err) < 0 ||
      ae_linear (&ve, ref, &blk->attn1.to_v, NULL, f->err) < 0)
    goto out;
  if (hk->ref_batch_mask == NULL) {
    ret = ae_attention (out, q, k, v, &ke, &ve, blk->heads, 0.0f, f->a,
        f->err);
    goto out;
  }
  /* Per batch element: with or without the reference tokens. */
  for (int64_t i = 0; i < b; i++) {
    bool inject = hk->ref_batch_mask[i];
    AeTensor kei = ke, vei = ve;
    qs = ae_tensor_3d (q->data + i * l * c, 1, l, c);
    ks = ae_tensor_3d (k->data + i * l * c, 1, l, c);
    vs = ae_tensor_3d (v->data + i * l * c, 1, l, c);
    os = ae_tensor_3d (out->data + i * l * c, 1, l, c);
    if (ke.shape[0] > 1) {
      int64_t n = ke.shape[1] * c;
      kei = ae_tensor_3d (ke.data + i * n, 1, ke.shape[1], c);
      vei = ae_tensor_3d (ve.data + i * n, 1, ve.shape[1], c);
    }
    if (ae_attention (&os, &qs, &ks, &vs, inject ? &kei : NULL,
            inject ? &vei : NULL, blk->heads, 0.0f, f->a, f->err) < 0)
      goto out;
  }
  ret = 0;
out:
  ae_arena_release (f->a, mark);
  return ret;
}

/* One attention module: out = to_out(attn(to_q(x), to_k(ctx), to_v(ctx))).
 * self_attn selects attn1 (hooks apply) vs attn2. */
static int
attention_forward (Fwd * f, AeTensor * out, const AeTensor * x,
    const AeTensor * ctx, const AeUNetAttention * at,
    const AeBasicTransformerBlock * blk, bool self_attn)
{
  size_t mark = ae_arena_mark (f->a);
  int64_t b = x->shape[0], l = x->shape[1], c = x->shape[2];
  int64_t lk = ctx->shape[1];
  AeTensor q, k, v, o;
  int ret = -1;

  if (ae_arena_tensor3 (f->a, &q, b, l, c, f->err) < 0 ||
      ae_arena_tensor3 (f->a, &k, b, lk, c, f->err) < 0 ||
      ae_arena_tensor3 (f->a, &v, b, lk, c, f->err) < 0 ||
      ae_arena_tensor3 (f->a, &o, b, l, c, f->err) < 0)
    goto out;
  if (ae_linear (&q, x, &at->to_q, NULL, f->err) < 0 ||
      ae_linear (&k, ctx, &at->to_k, NULL, f->err) < 0 ||
      ae_linear (&v, ctx, &at->to_v, NULL, f->err) < 0)
    goto out;
  if (self_attn) {
    if (attn1_core (f, &o, &q, &k, &v, blk) < 0)
      goto out;
  } else if (ae_attention (&o, &q, &k, &v, NULL, NULL, blk->heads, 0.0f,
          f->a, f->err) < 0) {
    goto out;
  }
  ret = ae_linear (out, &o, &at->to_out.weight, &at->to_out.bias, f->err);
out:
  ae_arena_release (f->a, mark);
  return ret;
}

/* BasicTransformerBlock, in place on h (B, L, C):
 * h += attn1(norm1 h); h += attn2(norm2 h, ctx); h += ff(norm3 h). */
static int
basic_block_forward (Fwd * f, AeTensor * h,
    const AeBasicTransformerBlock * blk, const char *prefix)
{
  size_t mark = ae_arena_mark (f->a);
  int64_t b = h->shape[0], l = h->shape[1], c = h->shape[2];
  const AeUNetHooks *hk = f->hooks;
  AeTensor n, o, ff1, ff2;
  int ret = -1;

  if (ae_arena_tensor3 (f->a, &n, b, l, c, f->err) < 0 ||
      ae_arena_tensor3 (f->a, &o, b, l, c, f->err) < 0 ||
      ae_arena_tensor3 (f->a, &ff1, b, l, 8 * c, f->err) < 0 ||
      ae_arena_tensor3 (f->a, &ff2, b, l, 4 * c, f->err) < 0)
    goto out;
  if (ae_layer_norm (&n, h, AE_TRANSFORMER_LN_EPS, &blk->norm1.weight,
          &blk->norm1.bias, f->err) < 0)
    goto out;
  emit (f, &n, "%snorm1", prefix);
  if (hk && hk->ref_mode == AE_REF_CAPTURE) {
    if (hk->bank == NULL) {
      ae_error (f->err, "unet: reference capture without a bank");
      goto out;
    }
    if (bank_store (f, &n) < 0)
      goto out;
  }
  if (attention_forward (f, &o, &n, &n, &blk->attn1, blk, true) < 0)
    goto out;
  emit (f, &o, "%sattn1", prefix);
  if (ae_add (h, h, &o, f->err) < 0 ||
      ae_layer_norm (&n, h, AE_TRANSFORMER_LN_EPS, &blk->norm2.weight,
          &blk->norm2.bias, f->err) < 0)
    goto out;
  emit (f, &n, "%snorm2", prefix);
  if (attention_forward (f, &o, &n, f->context, &blk->attn2, blk, false) < 0)
    goto out;
  emit (f, &o, "%sattn2", prefix);
  if (ae_add (h, h, &o, f->err) < 0 ||
      ae_layer_norm (&n, h, AE_TRANSFORMER_LN_EPS, &blk->norm3.weight,
          &blk->norm3.bias, f->err) < 0)
    goto out;
  emit (f, &n, "%snorm3", prefix);
  if (ae_linear (&ff1, &n, &blk->ff_proj.weight, &blk->ff_proj.bias,
          f->err) < 0 || ae_geglu (&ff2, &ff1, f->err) < 0 ||
      ae_linear (&o, &ff2, &blk->ff_out.weight, &blk->ff_out.bias,
          f->err) < 0)
    goto out;
  emit (f, &o, "%sff", prefix);
  ret = ae_add (h, h, &o, f->err);
out:
  f->block_index++;
  ae_arena_release (f->a, mark);
  return ret;
}

/* Transformer2DModel (continuous input): y = x + proj_out(blocks(proj_in(
 * norm(x)))), with 1x1 convs or (use_linear_projection) Linear layers on
 * the token layout. */
static int
transformer_forward (Fwd * f, AeTensor * y, const AeTensor * x,
    const AeTransformer2D * t, const char *prefix)
{
  size_t mark = ae_arena_mark (f->a);
  int64_t b = x->shape[0], c = x->shape[1], hh = x->shape[2];
  int64_t ww = x->shape[3], l = hh * ww;
  AeTensor n, p, tok, tok2;
  char bp[512];
  int ret = -1;

  if (ae_arena_tensor4 (f->a, &n, b, c, hh, ww, f->err) < 0 ||
      ae_arena_tensor4 (f->a, &p, b, c, hh, ww, f->err) < 0 ||
      ae_arena_tensor3 (f->a, &tok, b, l, c, f->err) < 0 ||
      ae_arena_tensor3 (f->a, &tok2, b, l, c, f->err) < 0)
    goto out;
  if (ae_group_norm (&n, x, f->u->cfg.norm_num_groups, AE_TRANSFORMER_GN_EPS,
          &t->norm.weight, &t->norm.bias, false, f->err) < 0)
    goto out;
  emit (f, &n, "%snorm", prefix);
  if (!t->linear_projection) {
    if (ae_conv2d (&p, &n, &t->proj_in.weight, &t->proj_in.bias, 1, 0, f->a,
            f->err) < 0 || ae_nchw_to_nlc (&tok, &p, f->err) < 0)
      goto out;
    emit (f, &p, "%sproj_in", prefix);
  } else {
    if (ae_nchw_to_nlc (&tok2, &n, f->err) < 0 ||
        ae_linear (&tok, &tok2, &t->proj_in.weight, &t->proj_in.bias,
            f->err) < 0)
      goto out;
    emit (f, &tok, "%sproj_in", prefix);
  }
  for (int i = 0; i < t->n_layers; i++) {
    snprintf (bp, sizeof bp, "%stransformer_blocks.%d.", prefix, i);
    if (basic_block_forward (f, &tok, &t->blocks[i], bp) < 0)
      goto out;
  }
  if (!t->linear_projection) {
    if (ae_nlc_to_nchw (&n, &tok, f->err) < 0 ||
        ae_conv2d (&p, &n, &t->proj_out.weight, &t->proj_out.bias, 1, 0,
            f->a, f->err) < 0)
      goto out;
  } else {
    if (ae_linear (&tok2, &tok, &t->proj_out.weight, &t->proj_out.bias,
            f->err) < 0 || ae_nlc_to_nchw (&p, &tok2, f->err) < 0)
      goto out;
  }
  emit (f, &p, "%sproj_out", prefix);
  ret = ae_add (y, &p, x, f->err);
  emit (f, y, "%.*s", (int) strlen (prefix) - 1, prefix);
out:
  ae_arena_release (f->a, mark);
  return ret;
}

static int
push_skip (Fwd * f, const AeTensor * t)
{
  if (f->n_skips >= AE_MAX_SKIPS)
    return ae_error (f->err, "unet: more than %d skip connections",
        AE_MAX_SKIPS);
  f->skips[f->n_skips++] = *t;
  return 0;
}

/* Resnet j (+ transformer j) of a block; the new tensor stays allocated. */
static int
layer_forward (Fwd * f, AeTensor * h, const AeTensor * x,
    const AeUNetBlock * blk, int j, const char *bp)
{
  char p[512];
  AeTensor r;
  const AeResnetBlock2D *rn = &blk->resnets[j];

  if (ae_arena_tensor4 (f->a, &r, x->shape[0], rn->out_channels,
          x->shape[2], x->shape[3], f->err) < 0)
    return -1;
  snprintf (p, sizeof p, "%sresnets.%d.", bp, j);
  if (resnet_forward (f, &r, x, rn, p) < 0)
    return -1;
  *h = r;
  if (blk->attentions == NULL)
    return 0;
  if (ae_arena_tensor4 (f->a, &r, x->shape[0], rn->out_channels,
          x->shape[2], x->shape[3], f->err) < 0)
    return -1;
  snprintf (p, sizeof p, "%sattentions.%d.", bp, j);
  if (transformer_forward (f, &r, h, &blk->attentions[j], p) < 0)
    return -1;
  *h = r;
  return 0;
}

static int
down_block_forward (Fwd * f, AeTensor * h, int i)
{
  const AeUNetBlock *blk = &f->u->down[i];
  int first_skip = f->n_skips;
  char bp[64];

  snprintf (bp, sizeof bp, "down_blocks.%d.", i);
  for (int j = 0; j < blk->n_layers; j++) {
    if (layer_forward (f, h, h, blk, j, bp) < 0 || push_skip (f, h) < 0)
      return -1;
  }
  if (blk->has_sampler) {
    AeTensor d;
    int64_t ho = ae_conv2d_out_size (h->shape[2], 3, 2,
        f->u->cfg.downsample_padding, f->u->cfg.downsample_padding);
    int64_t wo = ae_conv2d_out_size (h->shape[3], 3, 2,
        f->u->cfg.downsample_padding, f->u->cfg.downsample_padding);
    if (ae_arena_tensor4 (f->a, &d, h->shape[0], h->shape[1], ho, wo,
            f->err) < 0 ||
        ae_conv2d (&d, h, &blk->sampler.weight, &blk->sampler.bias, 2,
            f->u->cfg.downsample_padding, f->a, f->err) < 0)
      return -1;
    emit (f, &d, "%sdownsamplers.0", bp);
    *h = d;
    if (push_skip (f, h) < 0)
      return -1;
  }
  emit (f, h, "down_blocks.%d", i);
  for (int k = first_skip; k < f->n_skips; k++)
    emit (f, &f->skips[k], "%sres.%d", bp, k - first_skip);
  return 0;
}

static int
mid_block_forward (Fwd * f, AeTensor * h)
{
  const AeUNetBlock *blk = &f->u->mid;
  AeTensor r;

  if (ae_arena_tensor4 (f->a, &r, h->shape[0], h->shape[1], h->shape[2],
          h->shape[3], f->err) < 0 ||
      resnet_forward (f, &r, h, &blk->resnets[0], "mid_block.resnets.0.") < 0)
    return -1;
  *h = r;
  if (ae_arena_tensor4 (f->a, &r, h->shape[0], h->shape[1], h->shape[2],
          h->shape[3], f->err) < 0 ||
      transformer_forward (f, &r, h, &blk->attentions[0],
          "mid_block.attentions.0.") < 0)
    return -1;
  *h = r;
  if (ae_arena_tensor4 (f->a, &r, h->shape[0], h->shape[1], h->shape[2],
          h->shape[3], f->err) < 0 ||
      resnet_forward (f, &r, h, &blk->resnets[1], "mid_block.resnets.1.") < 0)
    return -1;
  *h = r;
  emit (f, h, "mid_block");
  return 0;
}

static int
up_block_forward (Fwd * f, AeTensor * h, int i)
{
  const AeUNetBlock *blk = &f->u->up[i];
  char bp[64];

  snprintf (bp, sizeof bp, "up_blocks.%d.", i);
  for (int j = 0; j < blk->n_layers; j++) {
    AeTensor cat;
    const AeTensor *skip;
    if (f->n_skips == 0)
      return ae_error (f->err, "unet: %s: no skip connection left", bp);
    skip = &f->skips[--f->n_skips];
    if (skip->shape[2] != h->shape[2] || skip->shape[3] != h->shape[3])
      return ae_error (f->err, "unet: %s: skip %lldx%lld vs %lldx%lld "
          "(latent size must be divisible by 2^(levels-1))", bp,
          (long long) skip->shape[2], (long long) skip->shape[3],
          (long long) h->shape[2], (long long) h->shape[3]);
    if (ae_arena_tensor4 (f->a, &cat, h->shape[0],
            h->shape[1] + skip->shape[1], h->shape[2], h->shape[3],
            f->err) < 0 || ae_concat_channels (&cat, h, skip, f->err) < 0 ||
        layer_forward (f, h, &cat, blk, j, bp) < 0)
      return -1;
  }
  if (blk->has_sampler) {
    AeTensor up, c;
    if (ae_arena_tensor4 (f->a, &up, h->shape[0], h->shape[1],
            2 * h->shape[2], 2 * h->shape[3], f->err) < 0 ||
        ae_arena_tensor4 (f->a, &c, h->shape[0], h->shape[1],
            2 * h->shape[2], 2 * h->shape[3], f->err) < 0 ||
        ae_upsample_nearest2x (&up, h, f->err) < 0 ||
        ae_conv2d (&c, &up, &blk->sampler.weight, &blk->sampler.bias, 1, 1,
            f->a, f->err) < 0)
      return -1;
    emit (f, &c, "%supsamplers.0", bp);
    *h = c;
  }
  emit (f, h, "up_blocks.%d", i);
  return 0;
}

/* time_proj (sinusoidal) -> time_embedding (linear_1, silu, linear_2);
 * keeps silu(temb), which is all the resnets use. */
static int
time_forward (Fwd * f, const float *timesteps, int n_t, int64_t batch)
{
  const AeUNetConfig *cfg = &f->u->cfg;
  int64_t c0 = cfg->block_out_channels[0], td = cfg->time_embed_dim;
  size_t mark;
  float *ts;
  AeTensor tp, t1;
  int ret = -1;

  if (n_t != 1 && n_t != batch)
    return ae_error (f->err, "unet: %d timesteps for a batch of %lld", n_t,
        (long long) batch);
  if (ae_arena_tensor2 (f->a, &f->temb_silu, batch, td, f->err) < 0)
    return -1;
  mark = ae_arena_mark (f->a);
  ts = ae_arena_alloc (f->a, (size_t) batch * sizeof (float), f->err);
  if (ts == NULL || ae_arena_tensor2 (f->a, &tp, batch, c0, f->err) < 0 ||
      ae_arena_tensor2 (f->a, &t1, batch, td, f->err) < 0)
    goto out;
  for (int64_t i = 0; i < batch; i++)
    ts[i] = timesteps[n_t == 1 ? 0 : i];
  if (ae_timestep_embedding (&tp, ts, batch, cfg->flip_sin_to_cos,
          cfg->freq_shift, 1.0f, 10000.0f, f->err) < 0)
    goto out;
  emit (f, &tp, "time_proj");
  if (ae_linear (&t1, &tp, &f->u->time_linear_1.weight,
          &f->u->time_linear_1.bias, f->err) < 0 ||
      ae_silu (&t1, &t1, f->err) < 0 ||
      ae_linear (&f->temb_silu, &t1, &f->u->time_linear_2.weight,
          &f->u->time_linear_2.bias, f->err) < 0)
    goto out;
  emit (f, &f->temb_silu, "time_embedding");
  ret = ae_silu (&f->temb_silu, &f->temb_silu, f->err);
out:
  ae_arena_release (f->a, mark);
  return ret;
}

static int
check_inputs (AeUNet * u, const AeTensor * out, const AeTensor * sample,
    const AeTensor * ctx, const AeUNetHooks * hooks, AeError * err)
{
  const AeUNetConfig *cfg = &u->cfg;
  int64_t div = 1 << (cfg->n_levels - 1);
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
  if (ae_tensor_check_shape (out, "unet output 'sample'", 4, out_shape,
          err) < 0)
    return -1;
  ctx_shape[0] = sample->shape[0];
  ctx_shape[1] = -1;
  ctx_shape[2] = cfg->cross_attention_dim;
  if (ae_tensor_check_shape (ctx, "unet input 'encoder_hidden_states'", 3,
          ctx_shape, err) < 0)
    return -1;
  if (hooks && hooks->conv_in_residual) {
    int64_t r[4] = { sample->shape[0], cfg->block_out_channels[0],
      sample->shape[2], sample->shape[3]
    };
    if (ae_tensor_check_shape (hooks->conv_in_residual,
            "unet conv_in residual", 4, r, err) < 0)
      return -1;
  }
  return 0;
}

static int
unet_forward_body (Fwd * f, AeTensor * out, const AeTensor * sample,
    const float *timesteps, int n_t)
{
  AeUNet *u = f->u;
  const AeUNetConfig *cfg = &u->cfg;
  int64_t b = sample->shape[0], hh = sample->shape[2], ww = sample->shape[3];
  int c0 = cfg->block_out_channels[0];
  AeTensor h, n;

  if (time_forward (f, timesteps, n_t, b) < 0 ||
      ae_arena_tensor4 (f->a, &h, b, c0, hh, ww, f->err) < 0 ||
      ae_conv2d (&h, sample, &u->conv_in.weight, &u->conv_in.bias, 1, 1,
          f->a, f->err) < 0)
    return -1;
  emit (f, &h, "conv_in");
  if (f->hooks && f->hooks->conv_in_residual &&
      ae_add (&h, &h, f->hooks->conv_in_residual, f->err) < 0)
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
  if (ae_arena_tensor4 (f->a, &n, b, c0, hh, ww, f->err) < 0 ||
      ae_group_norm (&n, &h, cfg->norm_num_groups, cfg->norm_eps,
          &u->conv_norm_out.weight, &u->conv_norm_out.bias, false,
          f->err) < 0)
    return -1;
  emit (f, &n, "conv_norm_out");
  if (ae_silu (&n, &n, f->err) < 0 ||
      ae_conv2d (out, &n, &u->conv_out.weight, &u->conv_out.bias, 1, 1,
          f->a, f->err) < 0)
    return -1;
  emit (f, out, "conv_out");
  return 0;
}

int
ae_unet_forward (AeUNet * u, AeTensor * out, const AeTensor * sample,
    const float *timesteps, int n_timesteps,
    const AeTensor * encoder_hidden_states, const AeUNetHooks * hooks,
    AeArena * arena, AeError * err)
{
  Fwd f;
  size_t mark;
  int ret;

  if (check_inputs (u, out, sample, encoder_hidden_states, hooks, err) < 0)
    return -1;
  memset (&f, 0, sizeof f);
  f.u = u;
  f.a = arena;
  f.err = err;
  f.hooks = hooks;
  f.context = encoder_hidden_states;
  mark = ae_arena_mark (arena);
  ret = unet_forward_body (&f, out, sample, timesteps, n_timesteps);
  ae_arena_release (arena, mark);
  return ret;
}

/* ---- cost model ------------------------------------------------------- */

static double
conv_macs (int64_t b, int64_t cout, int64_t cin, int k, int64_t h, int64_t w)
{
  return (double) b * cout * cin * k * k * h * w;
}

static double
resnet_macs (const AeResnetBlock2D * r, int64_t b, int64_t h, int64_t w)
{
  double m = conv_macs (b, r->out_channels, r->in_channels, 3, h, w) +
      conv_macs (b, r->out_channels, r->out_channels, 3, h, w);
  if (r->in_channels != r->out_channels)
    m += conv_macs (b, r->out_channels, r->in_channels, 1, h, w);
  return m;
}

static double
transformer_macs (const AeTransformer2D * t, int64_t b, int64_t l,
    int64_t lc, int64_t ctx_dim)
{
  double c = t->channels, m = 2.0 * b * l * c * c;      /* proj in/out */
  for (int i = 0; i < t->n_layers; i++) {
    m += 4.0 * b * l * c * c + 2.0 * b * l * l * c;     /* attn1 */
    m += 2.0 * b * l * c * c + 2.0 * b * lc * ctx_dim * c +
        2.0 * b * l * lc * c;   /* attn2 */
    m += 12.0 * b * l * c * c;  /* GEGLU ff: c->8c, 4c->c */
  }
  return m;
}

static double
block_macs (const AeUNetBlock * blk, int64_t b, int64_t h, int64_t w,
    int64_t lc, int64_t ctx_dim)
{
  double m = 0;
  for (int j = 0; j < blk->n_layers; j++) {
    m += resnet_macs (&blk->resnets[j], b, h, w);
    if (blk->attentions && (blk->type != AE_BLOCK_MID_CROSS_ATTN || j == 0))
      m += transformer_macs (&blk->attentions[j], b, h * w, lc, ctx_dim);
  }
  return m;
}

double
ae_unet_macs (const AeUNet * u, int64_t b, int64_t h, int64_t w,
    int64_t lc)
{
  const AeUNetConfig *cfg = &u->cfg;
  int64_t cd = cfg->cross_attention_dim;
  double m = conv_macs (b, cfg->block_out_channels[0], cfg->in_channels, 3,
      h, w) + conv_macs (b, cfg->out_channels, cfg->block_out_channels[0], 3,
      h, w);

  for (int i = 0; i < cfg->n_levels; i++) {
    const AeUNetBlock *d = &u->down[i];
    int64_t c = cfg->block_out_channels[i];
    m += block_macs (d, b, h, w, lc, cd);
    if (d->has_sampler)
      m += conv_macs (b, c, c, 3, h / 2, w / 2);
    if (i < cfg->n_levels - 1) {
      h /= 2;
      w /= 2;
    }
  }
  m += block_macs (&u->mid, b, h, w, lc, cd);
  for (int i = 0; i < cfg->n_levels; i++) {
    const AeUNetBlock *up = &u->up[i];
    int64_t c = cfg->block_out_channels[cfg->n_levels - 1 - i];
    m += block_macs (up, b, h, w, lc, cd);
    if (up->has_sampler) {
      h *= 2;
      w *= 2;
      m += conv_macs (b, c, c, 3, h, w);
    }
  }
  return m;
}
