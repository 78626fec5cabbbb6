/* The face recapture model: loading, identity encoder, conditioner,
 * reference faces and the per-user session (face-model.h). */
#include "face-model.h"

#include <math.h>
#include <string.h>

#include <glib.h>

#include "config.h"
#include "ops.h"
#include "safetensors.h"
#include "sampler.h"
#include "scheduler.h"

#define FM_WEIGHTS "diffusion_pytorch_model.safetensors"

typedef struct
{
  AeTensor weight, bias;
} FmParam;

typedef struct
{
  FmParam conv;                 /* down.N.conv (3x3, stride 2) */
  FmParam norm;                 /* down.N.norm (GroupNorm) */
} FmIdDown;

struct AeFaceModel
{
  char *path;
  AeFaceModelInfo info;
  AeUNet *unet;
  char *scheduler_json;
  char *scheduler_path;
  /* conditioner/ */
  AeSafetensors *cond_st;
  FmParam texture_proj;         /* texture_proj (D, C) */
  AeTensor texture_pos;         /* texture_pos (L_t, D) */
  FmParam id_proj;              /* id_proj (n D, E) */
  FmParam norm_out;             /* norm_out (D) */
  /* identity_encoder/ */
  AeSafetensors *id_st;
  FmParam id_conv_in;           /* conv_in (c0, 3, 3, 3) */
  FmIdDown id_down[AE_FACE_MAX_LEVELS]; /* down.N, levels - 1 of them */
  FmParam id_proj_out;          /* proj_out (E, c_last) */
};

struct AeFaceReference
{
  int tokens, dim;
  float *texture;               /* (C, h, w) */
  float *identity;              /* (E) */
  float *ctx;                   /* (tokens, D) */
};

struct AeFaceSession
{
  AeFaceModel *m;
  int size;
  AeScheduler *sched;
  float *crop, *masked, *hard, *soft, *heat, *gen, *tmp;
  float *input;                 /* (10, S, S) */
  float *pred;                  /* (3, S, S) */
  AeArena arena;
};

/* ---- loading ------------------------------------------------------------ */

static int
fm_int (const AeConfig * c, const char *key, int lo, int hi, int *out,
    AeError * err)
{
  int64_t v;

  if (ae_config_get_int (c, key, &v, err) < 0)
    return -1;
  if (v < lo || v > hi)
    return ae_error (err, "%s: field '%s': expected an integer in [%d, %d], "
        "found %lld", ae_config_path (c), key, lo, hi, (long long) v);
  *out = (int) v;
  return 0;
}

static int
fm_float (const AeConfig * c, const char *key, double lo, double hi,
    float *out, AeError * err)
{
  double v;

  if (ae_config_get_float (c, key, &v, err) < 0)
    return -1;
  if (!(v >= lo && v <= hi))
    return ae_error (err, "%s: field '%s': expected a number in [%g, %g], "
        "found %g", ae_config_path (c), key, lo, hi, v);
  *out = (float) v;
  return 0;
}

static int
fm_load_face_config (AeFaceModel * m, const char *path, AeError * err)
{
  AeConfig *c;
  AeFaceAlignParams *a = &m->info.align;
  double tpl[10];
  int n = 0, ret = -1;

  if (ae_config_load (&c, path, err) < 0)
    return -1;
  ae_face_align_params_default (a);
  if (fm_int (c, "crop_size", 8, 1024, &m->info.crop_size, err) < 0 ||
      fm_int (c, "texture_size", 8, 2048, &m->info.texture_size, err) < 0 ||
      fm_float (c, "heatmap_sigma", 1e-4, 1.0, &a->heatmap_sigma, err) < 0
      || fm_float (c, "brow_lift", 0.0, 1.0, &a->brow_lift, err) < 0
      || fm_float (c, "feather", 0.0, 0.5, &a->feather, err) < 0
      || fm_float (c, "min_confidence", 0.0, 1.0, &a->min_confidence,
          err) < 0)
    goto out;
  if (ae_config_get_float_list (c, "template", tpl, 10, &n, err) < 0)
    goto out;
  if (n != 10) {
    ae_error (err, "%s: field 'template': expected 10 numbers (five x, y "
        "pairs), found %d", path, n);
    goto out;
  }
  for (int i = 0; i < 5; i++) {
    a->template_pts[i][0] = (float) tpl[2 * i];
    a->template_pts[i][1] = (float) tpl[2 * i + 1];
  }
  ret = 0;
out:
  ae_config_free (c);
  return ret;
}

static int
fm_get (AeSafetensors * st, const char *key, AeTensor * t, int ndim,
    int64_t d0, int64_t d1, int64_t d2, int64_t d3, AeError * err)
{
  int64_t d[4] = { d0, d1, d2, d3 };

  return ae_st_get (st, key, ndim, d, t, err);
}

static char *
fm_weights_path (const char *dir)
{
  return g_build_filename (dir, FM_WEIGHTS, NULL);
}

static int
fm_load_conditioner (AeFaceModel * m, const char *dir, AeError * err)
{
  char *cfg_path = g_build_filename (dir, "config.json", NULL);
  char *w_path = fm_weights_path (dir);
  AeFaceModelInfo *i = &m->info;
  AeConfig *c = NULL;
  int64_t d, n;
  int ret = -1;

  if (ae_config_load (&c, cfg_path, err) < 0)
    goto out;
  if (fm_int (c, "latent_channels", 1, 64, &i->latent_channels, err) < 0 ||
      fm_int (c, "texture_tokens", 1, 65536, &i->texture_tokens, err) < 0 ||
      fm_int (c, "identity_dim", 1, 4096, &i->identity_dim, err) < 0 ||
      fm_int (c, "identity_tokens", 1, 64, &i->identity_tokens, err) < 0 ||
      fm_int (c, "cross_attention_dim", 1, 4096, &i->cross_attention_dim,
          err) < 0)
    goto out;
  if (ae_st_open (&m->cond_st, w_path, err) < 0)
    goto out;
  d = i->cross_attention_dim;
  n = i->identity_tokens;
  if (fm_get (m->cond_st, "texture_proj.weight", &m->texture_proj.weight, 2,
          d, i->latent_channels, 0, 0, err) < 0 ||
      fm_get (m->cond_st, "texture_proj.bias", &m->texture_proj.bias, 1, d,
          0, 0, 0, err) < 0 ||
      fm_get (m->cond_st, "texture_pos", &m->texture_pos, 2,
          i->texture_tokens, d, 0, 0, err) < 0 ||
      fm_get (m->cond_st, "id_proj.weight", &m->id_proj.weight, 2, n * d,
          i->identity_dim, 0, 0, err) < 0 ||
      fm_get (m->cond_st, "id_proj.bias", &m->id_proj.bias, 1, n * d, 0, 0,
          0, err) < 0 ||
      fm_get (m->cond_st, "norm_out.weight", &m->norm_out.weight, 1, d, 0, 0,
          0, err) < 0 ||
      fm_get (m->cond_st, "norm_out.bias", &m->norm_out.bias, 1, d, 0, 0, 0,
          err) < 0)
    goto out;
  ret = 0;
out:
  ae_config_free (c);
  g_free (cfg_path);
  g_free (w_path);
  return ret;
}

static int
fm_load_identity (AeFaceModel * m, const char *dir, AeError * err)
{
  char *cfg_path = g_build_filename (dir, "config.json", NULL);
  char *w_path = fm_weights_path (dir);
  AeFaceModelInfo *i = &m->info;
  AeConfig *c = NULL;
  int64_t ch[AE_FACE_MAX_LEVELS];
  int ret = -1, e = 0;

  if (ae_config_load (&c, cfg_path, err) < 0)
    goto out;
  if (fm_int (c, "image_size", 8, 1024, &i->id_image_size, err) < 0 ||
      fm_int (c, "norm_num_groups", 1, 1024, &i->id_groups, err) < 0 ||
      fm_int (c, "embedding_dim", 1, 4096, &e, err) < 0 ||
      ae_config_get_int_list (c, "block_out_channels", ch,
          AE_FACE_MAX_LEVELS, &i->id_levels, false, err) < 0)
    goto out;
  if (i->id_levels < 1) {
    ae_error (err, "%s: field 'block_out_channels': empty", cfg_path);
    goto out;
  }
  for (int l = 0; l < i->id_levels; l++) {
    if (ch[l] <= 0 || ch[l] > 4096 || ch[l] % i->id_groups != 0) {
      ae_error (err, "%s: field 'block_out_channels': %lld is not a "
          "positive multiple of norm_num_groups %d", cfg_path,
          (long long) ch[l], i->id_groups);
      goto out;
    }
    i->id_channels[l] = (int) ch[l];
  }
  if (e != i->identity_dim) {
    ae_error (err, "%s: embedding_dim %d != the conditioner's identity_dim "
        "%d", cfg_path, e, i->identity_dim);
    goto out;
  }
  if (ae_st_open (&m->id_st, w_path, err) < 0 ||
      fm_get (m->id_st, "conv_in.weight", &m->id_conv_in.weight, 4,
          i->id_channels[0], 3, 3, 3, err) < 0 ||
      fm_get (m->id_st, "conv_in.bias", &m->id_conv_in.bias, 1,
          i->id_channels[0], 0, 0, 0, err) < 0)
    goto out;
  for (int l = 1; l < i->id_levels; l++) {
    FmIdDown *dn = &m->id_down[l - 1];
    int64_t co = i->id_channels[l], ci = i->id_channels[l - 1];
    if (ae_st_getf (m->id_st, &dn->conv.weight, 4,
            (int64_t[]) { co, ci, 3, 3 }, err, "down.%d.conv.weight",
            l - 1) < 0 ||
        ae_st_getf (m->id_st, &dn->conv.bias, 1, (int64_t[]) { co }, err,
            "down.%d.conv.bias", l - 1) < 0 ||
        ae_st_getf (m->id_st, &dn->norm.weight, 1, (int64_t[]) { co }, err,
            "down.%d.norm.weight", l - 1) < 0 ||
        ae_st_getf (m->id_st, &dn->norm.bias, 1, (int64_t[]) { co }, err,
            "down.%d.norm.bias", l - 1) < 0)
      goto out;
  }
  if (fm_get (m->id_st, "proj_out.weight", &m->id_proj_out.weight, 2, e,
          i->id_channels[i->id_levels - 1], 0, 0, err) < 0 ||
      fm_get (m->id_st, "proj_out.bias", &m->id_proj_out.bias, 1, e, 0, 0,
          0, err) < 0)
    goto out;
  ret = 0;
out:
  ae_config_free (c);
  g_free (cfg_path);
  g_free (w_path);
  return ret;
}

static int
fm_check_unet (AeFaceModel * m, const char *unet_cfg, AeError * err)
{
  const AeUNetConfig *u = &m->unet->cfg;
  int mult = 1 << (u->n_levels - 1);

  if (u->in_channels != AE_FACE_UNET_IN_CHANNELS)
    return ae_error (err, "%s: in_channels %d, the face model needs %d "
        "(x_t, masked crop, mask, heatmap)", unet_cfg, u->in_channels,
        AE_FACE_UNET_IN_CHANNELS);
  if (u->out_channels != 3)
    return ae_error (err, "%s: out_channels %d, the face model needs 3 "
        "(RGB)", unet_cfg, u->out_channels);
  if (u->cross_attention_dim != m->info.cross_attention_dim)
    return ae_error (err, "%s/conditioner/config.json: cross_attention_dim "
        "%d != %s cross_attention_dim %d", m->path,
        m->info.cross_attention_dim, unet_cfg, u->cross_attention_dim);
  if (m->info.crop_size % mult != 0)
    return ae_error (err, "%s/face_config.json: crop_size %d is not a "
        "multiple of %d (UNet levels)", m->path, m->info.crop_size, mult);
  return 0;
}

int
ae_face_model_load (AeFaceModel ** out, const char *dir, AeError * err)
{
  AeFaceModel *m;
  char *face_cfg, *unet_dir, *unet_cfg, *cond_dir, *id_dir;
  gsize len;
  int ret = -1;

  *out = NULL;
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    return ae_error (err, "%s: missing folder (the face model)", dir);
  m = g_new0 (AeFaceModel, 1);
  m->path = g_strdup (dir);
  face_cfg = g_build_filename (dir, "face_config.json", NULL);
  unet_dir = g_build_filename (dir, "unet", NULL);
  unet_cfg = g_build_filename (dir, "unet", "config.json", NULL);
  cond_dir = g_build_filename (dir, "conditioner", NULL);
  id_dir = g_build_filename (dir, "identity_encoder", NULL);
  m->scheduler_path = g_build_filename (dir, "scheduler_config.json", NULL);
  if (fm_load_face_config (m, face_cfg, err) < 0 ||
      fm_load_conditioner (m, cond_dir, err) < 0 ||
      fm_load_identity (m, id_dir, err) < 0 ||
      ae_unet_load (&m->unet, unet_dir, err) < 0 ||
      fm_check_unet (m, unet_cfg, err) < 0)
    goto out;
  if (!g_file_get_contents (m->scheduler_path, &m->scheduler_json, &len,
          NULL)) {
    ae_error (err, "%s: missing or unreadable", m->scheduler_path);
    goto out;
  }
  {
    AeScheduler *s;
    if (ae_scheduler_load_data (&s, m->scheduler_path, m->scheduler_json,
            NULL, err) < 0)
      goto out;
    ae_scheduler_free (s);
  }
  ret = 0;
out:
  g_free (face_cfg);
  g_free (unet_dir);
  g_free (unet_cfg);
  g_free (cond_dir);
  g_free (id_dir);
  if (ret < 0)
    ae_face_model_free (m);
  else
    *out = m;
  return ret;
}

void
ae_face_model_free (AeFaceModel * m)
{
  if (m == NULL)
    return;
  if (m->unet)
    ae_unet_free (m->unet);
  ae_st_close (m->cond_st);
  ae_st_close (m->id_st);
  g_free (m->scheduler_json);
  g_free (m->scheduler_path);
  g_free (m->path);
  g_free (m);
}

const AeFaceModelInfo *
ae_face_model_info (const AeFaceModel * m)
{
  return &m->info;
}

const char *
ae_face_model_path (const AeFaceModel * m)
{
  return m->path;
}

AeUNet *
ae_face_model_unet (const AeFaceModel * m)
{
  return m->unet;
}

static size_t
fm_st_bytes (AeSafetensors * st)
{
  size_t n = 0;

  for (int i = 0; st && i < ae_st_count (st); i++)
    n += ae_st_info_at (st, i)->nbytes;
  return n;
}

size_t
ae_face_model_weight_bytes (const AeFaceModel * m)
{
  return fm_st_bytes (m->cond_st) + fm_st_bytes (m->id_st)
      + fm_st_bytes (m->unet->st);
}

/* ---- identity encoder and conditioner ----------------------------------- */

int
ae_face_identity_encode (AeFaceModel * m, const float *x, int B, float *e,
    AeArena * arena, AeError * err)
{
  const AeFaceModelInfo *i = &m->info;
  size_t mark = ae_arena_mark (arena);
  int64_t s = i->id_image_size;
  AeTensor in, h, pooled, out;
  int ret = -1;

  if (B <= 0)
    return ae_error (err, "%s: identity encoder: batch %d", m->path, B);
  in = ae_tensor_4d ((float *) x, B, 3, s, s);
  if (ae_arena_tensor4 (arena, &h, B, i->id_channels[0], s, s, err) < 0 ||
      ae_conv2d (&h, &in, &m->id_conv_in.weight, &m->id_conv_in.bias, 1, 1,
          arena, err) < 0 || ae_silu (&h, &h, err) < 0)
    goto out;
  for (int l = 1; l < i->id_levels; l++) {
    const FmIdDown *dn = &m->id_down[l - 1];
    int64_t hs = ae_conv2d_out_size (h.shape[2], 3, 2, 1, 1);
    AeTensor nh;
    if (ae_arena_tensor4 (arena, &nh, B, i->id_channels[l], hs, hs,
            err) < 0 ||
        ae_conv2d (&nh, &h, &dn->conv.weight, &dn->conv.bias, 2, 1, arena,
            err) < 0 ||
        ae_group_norm (&nh, &nh, i->id_groups, 1e-5f, &dn->norm.weight,
            &dn->norm.bias, true, err) < 0)
      goto out;
    h = nh;
  }
  {
    int64_t c = h.shape[1], hw = h.shape[2] * h.shape[3];
    if (ae_arena_tensor2 (arena, &pooled, B, c, err) < 0)
      goto out;
    for (int64_t b = 0; b < B; b++)
      for (int64_t k = 0; k < c; k++) {
        const float *p = h.data + (b * c + k) * hw;
        float sum = 0.0f;
        for (int64_t j = 0; j < hw; j++)
          sum += p[j];
        pooled.data[b * c + k] = sum / (float) hw;
      }
  }
  out = ae_tensor_2d (e, B, i->identity_dim);
  if (ae_linear (&out, &pooled, &m->id_proj_out.weight,
          &m->id_proj_out.bias, err) < 0)
    goto out;
  for (int b = 0; b < B; b++) {
    float *v = e + (size_t) b * i->identity_dim;
    double n2 = 0.0;
    float n;
    for (int k = 0; k < i->identity_dim; k++)
      n2 += (double) v[k] * v[k];
    n = (float) sqrt (n2);
    if (n < 1e-6f)
      n = 1e-6f;
    for (int k = 0; k < i->identity_dim; k++)
      v[k] /= n;
  }
  ret = 0;
out:
  ae_arena_release (arena, mark);
  return ret;
}

int
ae_face_condition (AeFaceModel * m, const float *texture,
    const float *identity, float *ctx, AeArena * arena, AeError * err)
{
  const AeFaceModelInfo *i = &m->info;
  int64_t lt = i->texture_tokens, d = i->cross_attention_dim;
  int64_t n = i->identity_tokens, c = i->latent_channels;
  size_t mark = ae_arena_mark (arena);
  AeTensor z, tok, tex, e, ident, all;
  int ret = -1;

  z = ae_tensor_3d ((float *) texture, 1, c, lt);
  e = ae_tensor_2d ((float *) identity, 1, i->identity_dim);
  tex = ae_tensor_3d (ctx, 1, lt, d);
  ident = ae_tensor_2d (ctx + lt * d, 1, n * d);
  all = ae_tensor_3d (ctx, 1, lt + n, d);
  if (ae_arena_tensor3 (arena, &tok, 1, lt, c, err) < 0)
    goto out;
  /* (C, L) -> (L, C) */
  for (int64_t k = 0; k < c; k++)
    for (int64_t j = 0; j < lt; j++)
      tok.data[j * c + k] = z.data[k * lt + j];
  if (ae_linear (&tex, &tok, &m->texture_proj.weight, &m->texture_proj.bias,
          err) < 0)
    goto out;
  for (int64_t j = 0; j < lt * d; j++)
    ctx[j] += m->texture_pos.data[j];
  if (ae_linear (&ident, &e, &m->id_proj.weight, &m->id_proj.bias, err) < 0
      || ae_layer_norm (&all, &all, 1e-5f, &m->norm_out.weight,
          &m->norm_out.bias, err) < 0)
    goto out;
  ret = 0;
out:
  ae_arena_release (arena, mark);
  return ret;
}

/* ---- reference ------------------------------------------------------------ */

int
ae_face_reference_new_from_parts (AeFaceReference ** out, AeFaceModel * m,
    const float *texture, const float *identity, AeArena * arena,
    AeError * err)
{
  const AeFaceModelInfo *i = &m->info;
  AeFaceReference *r = g_new0 (AeFaceReference, 1);
  size_t tex_n = (size_t) i->latent_channels * i->texture_tokens;

  *out = NULL;
  r->tokens = i->texture_tokens + i->identity_tokens;
  r->dim = i->cross_attention_dim;
  r->texture = g_memdup2 (texture, tex_n * sizeof (float));
  r->identity = g_memdup2 (identity, (size_t) i->identity_dim *
      sizeof (float));
  r->ctx = g_new (float, (size_t) r->tokens * r->dim);
  if (ae_face_condition (m, r->texture, r->identity, r->ctx, arena,
          err) < 0) {
    ae_face_reference_free (r);
    return -1;
  }
  *out = r;
  return 0;
}

int
ae_face_reference_new (AeFaceReference ** out, AeFaceModel * m, AeVae * vae,
    const uint8_t * rgb, int width, int height, int stride,
    const float *face, int n_face, AeArena * arena, AeError * err)
{
  const AeFaceModelInfo *i = &m->info;
  int ts = i->texture_size, is = i->id_image_size;
  size_t mark = ae_arena_mark (arena);
  AeFaceTransform tr;
  AeTensor x, mean, idx;
  float *hard, *identity;
  int f, ret = -1;

  *out = NULL;
  if (!ae_face_confident (face, n_face, i->align.min_confidence))
    return ae_error (err, "reference has no confident face: need 68 face "
        "points, all present, mean confidence >= %g (found %d points)",
        i->align.min_confidence, face ? n_face : 0);
  f = ae_vae_downscale (vae);
  if (ts % f != 0 || (ts / f) * (ts / f) != i->texture_tokens
      || ae_vae_config (vae)->latent_channels != i->latent_channels)
    return ae_error (err, "%s: texture_size %d with the VAE's downscale %d "
        "and %d latent channels does not give the conditioner's %d tokens "
        "of %d channels", m->path, ts, f,
        ae_vae_config (vae)->latent_channels, i->texture_tokens,
        i->latent_channels);
  /* texture: aligned at texture_size, VAE mean * scaling factor */
  if (ae_face_fit (face, n_face, &i->align, ts, &tr, err) < 0 ||
      ae_arena_tensor4 (arena, &x, 1, 3, ts, ts, err) < 0 ||
      ae_arena_tensor4 (arena, &mean, 1, i->latent_channels, ts / f, ts / f,
          err) < 0)
    goto out;
  ae_face_warp_crop (rgb, width, height, stride, &tr, ts, x.data);
  if (ae_vae_encode (vae, &x, &mean, NULL, NULL, NULL, arena, err) < 0)
    goto out;
  {
    float sf = ae_vae_scaling_factor (vae);
    for (int64_t k = 0; k < ae_tensor_numel (&mean); k++)
      mean.data[k] *= sf;
  }
  /* identity: aligned at the encoder's size, times the hard mask */
  if (ae_face_fit (face, n_face, &i->align, is, &tr, err) < 0 ||
      ae_arena_tensor4 (arena, &idx, 1, 3, is, is, err) < 0 ||
      (hard = ae_arena_alloc (arena, (size_t) is * is * sizeof (float),
              err)) == NULL ||
      (identity = ae_arena_alloc (arena, (size_t) i->identity_dim *
              sizeof (float), err)) == NULL)
    goto out;
  ae_face_warp_crop (rgb, width, height, stride, &tr, is, idx.data);
  ae_face_hard_mask (face, n_face, &tr, is, i->align.brow_lift, hard);
  for (int c = 0; c < 3; c++)
    for (size_t k = 0; k < (size_t) is * is; k++)
      idx.data[c * (size_t) is * is + k] *= hard[k];
  if (ae_face_identity_encode (m, idx.data, 1, identity, arena, err) < 0 ||
      ae_face_reference_new_from_parts (out, m, mean.data, identity, arena,
          err) < 0)
    goto out;
  ret = 0;
out:
  ae_arena_release (arena, mark);
  return ret;
}

void
ae_face_reference_free (AeFaceReference * r)
{
  if (r == NULL)
    return;
  g_free (r->texture);
  g_free (r->identity);
  g_free (r->ctx);
  g_free (r);
}

const float *
ae_face_reference_identity (const AeFaceReference * r)
{
  return r->identity;
}

const float *
ae_face_reference_texture (const AeFaceReference * r)
{
  return r->texture;
}

const float *
ae_face_reference_context (const AeFaceReference * r, int *tokens)
{
  if (tokens)
    *tokens = r->tokens;
  return r->ctx;
}

/* ---- session ------------------------------------------------------------- */

int
ae_face_session_new (AeFaceSession ** out, AeFaceModel * m, int crop_size,
    AeError * err)
{
  AeFaceSession *s;
  int mult = 1 << (m->unet->cfg.n_levels - 1);
  size_t plane;

  *out = NULL;
  if (crop_size == 0)
    crop_size = m->info.crop_size;
  if (crop_size < mult || crop_size > 1024 || crop_size % mult != 0)
    return ae_error (err, "%s: crop size %d must be a multiple of %d in "
        "[%d, 1024]", m->path, crop_size, mult, mult);
  s = g_new0 (AeFaceSession, 1);
  s->m = m;
  s->size = crop_size;
  plane = (size_t) crop_size * crop_size;
  if (ae_scheduler_load_data (&s->sched, m->scheduler_path,
          m->scheduler_json, NULL, err) < 0
      || ae_arena_init (&s->arena, 0, err) < 0) {
    ae_face_session_free (s);
    return -1;
  }
  s->crop = g_new0 (float, 3 * plane);
  s->masked = g_new0 (float, 3 * plane);
  s->hard = g_new0 (float, plane);
  s->soft = g_new0 (float, plane);
  s->tmp = g_new0 (float, plane);
  s->heat = g_new0 (float, AE_FACE_HEAT_CHANNELS * plane);
  s->gen = g_new0 (float, 3 * plane);
  s->pred = g_new0 (float, 3 * plane);
  s->input = g_new0 (float, AE_FACE_UNET_IN_CHANNELS * plane);
  *out = s;
  return 0;
}

void
ae_face_session_free (AeFaceSession * s)
{
  if (s == NULL)
    return;
  if (s->sched)
    ae_scheduler_free (s->sched);
  ae_arena_clear (&s->arena);
  g_free (s->crop);
  g_free (s->masked);
  g_free (s->hard);
  g_free (s->soft);
  g_free (s->tmp);
  g_free (s->heat);
  g_free (s->gen);
  g_free (s->pred);
  g_free (s->input);
  g_free (s);
}

int
ae_face_session_crop_size (const AeFaceSession * s)
{
  return s->size;
}

void
ae_face_session_prepare (AeFaceSession * s, const uint8_t * rgb, int width,
    int height, int stride, const float *face, int n_face,
    const AeFaceTransform * t)
{
  const AeFaceAlignParams *a = &s->m->info.align;
  size_t plane = (size_t) s->size * s->size;

  ae_face_warp_crop (rgb, width, height, stride, t, s->size, s->crop);
  ae_face_hard_mask (face, n_face, t, s->size, a->brow_lift, s->hard);
  ae_face_soft_mask (s->hard, s->size, ae_face_feather_radius (a, s->size),
      s->tmp, s->soft);
  ae_face_heatmap (face, n_face, t, s->size, a->heatmap_sigma * s->size,
      a->min_confidence, s->heat);
  for (int c = 0; c < 3; c++)
    for (size_t k = 0; k < plane; k++)
      s->masked[c * plane + k] = s->crop[c * plane + k] * (1.0f - s->hard[k]);
}

int
ae_face_session_generate (AeFaceSession * s, const AeFaceReference * r,
    int steps, uint64_t seed, AeError * err)
{
  size_t plane = (size_t) s->size * s->size, n = 3 * plane;
  AeTensor sample, pred, ctx;
  float sigma;

  if (steps < 1 || steps > 1000)
    return ae_error (err, "%s: steps %d out of range [1, 1000]", s->m->path,
        steps);
  if (r->dim != s->m->info.cross_attention_dim)
    return ae_error (err, "%s: reference prepared for another face model",
        s->m->path);
  if (ae_scheduler_set_timesteps (s->sched, steps, err) < 0)
    return -1;
  ae_noise_fill (seed, AE_NOISE_STREAM_INIT, 0, s->gen, n);
  sigma = ae_scheduler_init_noise_sigma (s->sched);
  for (size_t k = 0; k < n; k++)
    s->gen[k] *= sigma;
  /* the conditioning planes are fixed over the steps */
  memcpy (s->input + 3 * plane, s->masked, 3 * plane * sizeof (float));
  memcpy (s->input + 6 * plane, s->hard, plane * sizeof (float));
  memcpy (s->input + 7 * plane, s->heat, 3 * plane * sizeof (float));
  sample = ae_tensor_4d (s->input, 1, AE_FACE_UNET_IN_CHANNELS, s->size,
      s->size);
  pred = ae_tensor_4d (s->pred, 1, 3, s->size, s->size);
  ctx = ae_tensor_3d (r->ctx, 1, r->tokens, r->dim);
  for (int i = 0; i < steps; i++) {
    float t = ae_scheduler_timestep (s->sched, i);
    ae_scheduler_scale_model_input (s->sched, i, s->gen, s->input, n);
    if (ae_unet_forward (s->m->unet, &pred, &sample, &t, 1, &ctx, NULL,
            &s->arena, err) < 0)
      return -1;
    if (ae_arena_reset (&s->arena, err) < 0)
      return -1;
    ae_scheduler_step (s->sched, i, s->pred, s->gen, NULL, NULL, n);
  }
  return 0;
}

void
ae_face_session_blend (AeFaceSession * s, uint8_t * rgb, int width,
    int height, int stride, const AeFaceTransform * t, float strength)
{
  ae_face_blend (rgb, width, height, stride, s->gen, s->soft, s->size, t,
      strength);
}

const float *
ae_face_session_plane (const AeFaceSession * s, const char *name)
{
  if (g_strcmp0 (name, "crop") == 0)
    return s->crop;
  if (g_strcmp0 (name, "masked") == 0)
    return s->masked;
  if (g_strcmp0 (name, "hard") == 0)
    return s->hard;
  if (g_strcmp0 (name, "soft") == 0)
    return s->soft;
  if (g_strcmp0 (name, "heat") == 0)
    return s->heat;
  if (g_strcmp0 (name, "generated") == 0)
    return s->gen;
  return NULL;
}
