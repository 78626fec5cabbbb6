/* TAESD / TAEF2 encoder and decoder (see taesd.h). The layer tables follow
 * the Sequential layout of taesd.py; every block has 64 channels. */
#include "taesd.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "ops.h"
#include "safetensors.h"

#define TAESD_C 64
#define TAESD_POOL_C 256        /* hidden width of the TAEF2 pool branch */
#define TAESD_POOL_GROUPS 4
#define TAESD_POOL_EPS 1e-5f
#define TAESD_CLAMP 3.0f        /* decoder input: 3 * tanh (x / 3) */
#define TAESD_MAX_LAYERS 20

typedef enum {
  L_CONV,                       /* 3x3, stride 1, pad 1, with bias */
  L_CONV_NB,                    /* 3x3, stride 1, pad 1, no bias */
  L_CONV_S2,                    /* 3x3, stride 2, pad 1, no bias */
  L_BLOCK,
  L_RELU,
  L_UP2,
  L_CLAMP,
} LayerKind;

typedef struct {
  LayerKind kind;
  AeTensor w, b;                /* convs */
  AeTensor conv_w[3], conv_b[3];        /* block: conv.0, conv.2, conv.4 */
  bool has_pool;
  AeTensor pool0_w, pool1_w, pool1_b, pool3_w;
} Layer;

typedef struct {
  AeSafetensors *st;
  int n_layers;
  Layer layers[TAESD_MAX_LAYERS];
} Coder;

struct AeTaesd {
  int latent_channels;
  Coder encoder, decoder;
};

static const LayerKind encoder_kinds[] = {
  L_CONV, L_BLOCK, L_CONV_S2, L_BLOCK, L_BLOCK, L_BLOCK, L_CONV_S2, L_BLOCK,
  L_BLOCK, L_BLOCK, L_CONV_S2, L_BLOCK, L_BLOCK, L_BLOCK, L_CONV,
};

static const LayerKind decoder_kinds[] = {
  L_CLAMP, L_CONV, L_RELU, L_BLOCK, L_BLOCK, L_BLOCK, L_UP2, L_CONV_NB,
  L_BLOCK, L_BLOCK, L_BLOCK, L_UP2, L_CONV_NB, L_BLOCK, L_BLOCK, L_BLOCK,
  L_UP2, L_CONV_NB, L_BLOCK, L_CONV,
};

/* ---- loading ----------------------------------------------------------- */

static int
get4 (AeSafetensors * st, AeTensor * t, int64_t o, int64_t i, int64_t k,
    const char *key, AeError * err)
{
  int64_t shape[4] = { o, i, k, k };
  return ae_st_get (st, key, 4, shape, t, err);
}

static int
get1 (AeSafetensors * st, AeTensor * t, int64_t n, const char *key,
    AeError * err)
{
  int64_t shape[1] = { n };
  return ae_st_get (st, key, 1, shape, t, err);
}

static int
load_block (AeSafetensors * st, Layer * l, int i, AeError * err)
{
  char k[64];

  for (int j = 0; j < 3; j++) {
    snprintf (k, sizeof (k), "%d.conv.%d.weight", i, 2 * j);
    if (get4 (st, &l->conv_w[j], TAESD_C, TAESD_C, 3, k, err) < 0)
      return -1;
    snprintf (k, sizeof (k), "%d.conv.%d.bias", i, 2 * j);
    if (get1 (st, &l->conv_b[j], TAESD_C, k, err) < 0)
      return -1;
  }
  snprintf (k, sizeof (k), "%d.pool.0.weight", i);
  l->has_pool = ae_st_find (st, k) != NULL;
  if (!l->has_pool)
    return 0;
  if (get4 (st, &l->pool0_w, TAESD_POOL_C, TAESD_C, 1, k, err) < 0)
    return -1;
  snprintf (k, sizeof (k), "%d.pool.1.weight", i);
  if (get1 (st, &l->pool1_w, TAESD_POOL_C, k, err) < 0)
    return -1;
  snprintf (k, sizeof (k), "%d.pool.1.bias", i);
  if (get1 (st, &l->pool1_b, TAESD_POOL_C, k, err) < 0)
    return -1;
  snprintf (k, sizeof (k), "%d.pool.3.weight", i);
  return get4 (st, &l->pool3_w, TAESD_C, TAESD_POOL_C, 1, k, err);
}

/* Conv layer i: 64 channels except at the image / latent ends. */
static int
load_conv (AeSafetensors * st, Layer * l, int i, int cin, int cout,
    AeError * err)
{
  char k[64];

  snprintf (k, sizeof (k), "%d.weight", i);
  if (get4 (st, &l->w, cout, cin, 3, k, err) < 0)
    return -1;
  snprintf (k, sizeof (k), "%d.bias", i);
  if (l->kind == L_CONV && get1 (st, &l->b, cout, k, err) < 0)
    return -1;
  return 0;
}

/* The latent width is read from the weights: encoder's last conv output
 * or decoder's first conv input. */
static int
detect_latent (AeSafetensors * st, const char *key, int dim, int *out,
    AeError * err)
{
  const AeStTensorInfo *info = ae_st_find (st, key);

  if (info == NULL)
    return ae_error (err, "%s: missing tensor '%s'", ae_st_path (st), key);
  if (info->ndim != 4 || info->shape[dim] < 1 || info->shape[dim] > 4096)
    return ae_error (err, "%s: tensor '%s': expected a (O,I,3,3) conv "
        "weight", ae_st_path (st), key);
  *out = (int) info->shape[dim];
  return 0;
}

static int
load_coder (Coder * c, const char *path, const LayerKind * kinds, int n,
    int cin_first, int cout_last, AeError * err)
{
  if (ae_st_open (&c->st, path, err) < 0)
    return -1;
  c->n_layers = n;
  for (int i = 0; i < n; i++) {
    Layer *l = &c->layers[i];
    l->kind = kinds[i];
    if (l->kind == L_BLOCK) {
      if (load_block (c->st, l, i, err) < 0)
        return -1;
    } else if (l->kind == L_CONV || l->kind == L_CONV_NB ||
        l->kind == L_CONV_S2) {
      int first = 1;
      for (int j = 0; j < i; j++)
        if (kinds[j] == L_CONV)
          first = 0;
      if (load_conv (c->st, l, i, first ? cin_first : TAESD_C,
              i == n - 1 ? cout_last : TAESD_C, err) < 0)
        return -1;
    }
  }
  return 0;
}

int
ae_taesd_load (AeTaesd ** out, const char *encoder_path,
    const char *decoder_path, AeError * err)
{
  AeTaesd *t;
  int n_enc = G_N_ELEMENTS (encoder_kinds);
  int n_dec = G_N_ELEMENTS (decoder_kinds);

  *out = NULL;
  if (encoder_path == NULL && decoder_path == NULL)
    return ae_error (err, "taesd: neither an encoder nor a decoder given");
  t = g_new0 (AeTaesd, 1);
  if (encoder_path != NULL) {
    AeSafetensors *st = NULL;
    int lat = 0;
    if (ae_st_open (&st, encoder_path, err) < 0 ||
        detect_latent (st, "14.weight", 0, &lat, err) < 0) {
      ae_st_close (st);
      goto fail;
    }
    ae_st_close (st);
    t->latent_channels = lat;
    if (load_coder (&t->encoder, encoder_path, encoder_kinds, n_enc, 3, lat,
            err) < 0)
      goto fail;
  }
  if (decoder_path != NULL) {
    AeSafetensors *st = NULL;
    int lat = 0;
    if (ae_st_open (&st, decoder_path, err) < 0 ||
        detect_latent (st, "1.weight", 1, &lat, err) < 0) {
      ae_st_close (st);
      goto fail;
    }
    ae_st_close (st);
    if (t->latent_channels != 0 && t->latent_channels != lat) {
      ae_error (err, "%s: tensor '1.weight': %d latent channels, but the "
          "encoder %s has %d", decoder_path, lat, encoder_path,
          t->latent_channels);
      goto fail;
    }
    t->latent_channels = lat;
    if (load_coder (&t->decoder, decoder_path, decoder_kinds, n_dec, lat, 3,
            err) < 0)
      goto fail;
  }
  *out = t;
  return 0;
fail:
  ae_taesd_free (t);
  return -1;
}

int
ae_taesd_load_dir (AeTaesd ** out, const char *dir, AeError * err)
{
  char *e = g_build_filename (dir, "taesd_encoder.safetensors", NULL);
  char *d = g_build_filename (dir, "taesd_decoder.safetensors", NULL);
  bool he = g_file_test (e, G_FILE_TEST_EXISTS);
  bool hd = g_file_test (d, G_FILE_TEST_EXISTS);
  int ret;

  if (!he && !hd)
    ret = ae_error (err, "%s: neither taesd_encoder.safetensors nor "
        "taesd_decoder.safetensors found", dir);
  else
    ret = ae_taesd_load (out, he ? e : NULL, hd ? d : NULL, err);
  g_free (e);
  g_free (d);
  return ret;
}

void
ae_taesd_free (AeTaesd * t)
{
  if (t == NULL)
    return;
  ae_st_close (t->encoder.st);
  ae_st_close (t->decoder.st);
  g_free (t);
}

int
ae_taesd_latent_channels (const AeTaesd * t)
{
  return t->latent_channels;
}

bool
ae_taesd_has_encoder (const AeTaesd * t)
{
  return t->encoder.st != NULL;
}

bool
ae_taesd_has_decoder (const AeTaesd * t)
{
  return t->decoder.st != NULL;
}

int64_t
ae_taesd_latent_size (int64_t n)
{
  for (int i = 0; i < 3; i++)
    n = ae_conv2d_out_size (n, 3, 2, 1, 1);
  return n;
}

/* ---- forward ----------------------------------------------------------- */

typedef struct {
  AeArena *arena;
  float *buf[2];
  int cur;
  AeTensor x;
} Pass;

static AeTensor
next_view (Pass * p, int64_t c, int64_t h, int64_t w)
{
  return ae_tensor_4d (p->buf[1 - p->cur], p->x.shape[0], c, h, w);
}

static void
swap_in (Pass * p, const AeTensor * y)
{
  p->cur = 1 - p->cur;
  p->x = *y;
}

static int
relu (AeTensor * t, AeError * err)
{
  return ae_clamp (t, t, 0.0f, INFINITY, err);
}

/* TAEF2 pool branch: x += C1 (ReLU (GroupNorm (C1 (x)))), in place. */
static int
pool_branch (Pass * p, const Layer * l, AeError * err)
{
  AeTensor *x = &p->x;
  AeTensor h, d;

  if (ae_arena_tensor4 (p->arena, &h, x->shape[0], TAESD_POOL_C, x->shape[2],
          x->shape[3], err) < 0 ||
      ae_arena_tensor4 (p->arena, &d, x->shape[0], TAESD_C, x->shape[2],
          x->shape[3], err) < 0)
    return -1;
  if (ae_conv2d (&h, x, &l->pool0_w, NULL, 1, 0, p->arena, err) < 0 ||
      ae_group_norm (&h, &h, TAESD_POOL_GROUPS, TAESD_POOL_EPS, &l->pool1_w,
          &l->pool1_b, false, err) < 0 || relu (&h, err) < 0 ||
      ae_conv2d (&d, &h, &l->pool3_w, NULL, 1, 0, p->arena, err) < 0)
    return -1;
  return ae_add (x, x, &d, err);
}

/* ReLU (conv4 (ReLU (conv2 (ReLU (conv0 (x))))) + x). x is always one of
 * the pass buffers here (blocks never come first), so the pool branch may
 * update it in place. */
static int
block_forward (Pass * p, const Layer * l, AeError * err)
{
  size_t mark = ae_arena_mark (p->arena);
  int64_t b = p->x.shape[0], h = p->x.shape[2], w = p->x.shape[3];
  AeTensor t1, t2, y = next_view (p, TAESD_C, h, w);
  int ret = -1;

  if (l->has_pool && pool_branch (p, l, err) < 0)
    goto out;
  if (ae_arena_tensor4 (p->arena, &t1, b, TAESD_C, h, w, err) < 0 ||
      ae_arena_tensor4 (p->arena, &t2, b, TAESD_C, h, w, err) < 0)
    goto out;
  if (ae_conv2d (&t1, &p->x, &l->conv_w[0], &l->conv_b[0], 1, 1, p->arena,
          err) < 0 || relu (&t1, err) < 0 ||
      ae_conv2d (&t2, &t1, &l->conv_w[1], &l->conv_b[1], 1, 1, p->arena,
          err) < 0 || relu (&t2, err) < 0 ||
      ae_conv2d (&y, &t2, &l->conv_w[2], &l->conv_b[2], 1, 1, p->arena,
          err) < 0 || ae_add (&y, &y, &p->x, err) < 0 || relu (&y, err) < 0)
    goto out;
  swap_in (p, &y);
  ret = 0;
out:
  ae_arena_release (p->arena, mark);
  return ret;
}

static int
layer_forward (Pass * p, const Layer * l, AeError * err)
{
  const AeTensor *x = &p->x;
  AeTensor y;

  switch (l->kind) {
    case L_BLOCK:
      return block_forward (p, l, err);
    case L_RELU:
      /* Only after a conv, so x is a pass buffer. */
      return relu (&p->x, err);
    case L_CLAMP:
      y = next_view (p, x->shape[1], x->shape[2], x->shape[3]);
      for (int64_t i = 0; i < ae_tensor_numel (x); i++)
        y.data[i] = TAESD_CLAMP * tanhf (x->data[i] / TAESD_CLAMP);
      break;
    case L_UP2:
      y = next_view (p, x->shape[1], 2 * x->shape[2], 2 * x->shape[3]);
      if (ae_upsample_nearest2x (&y, x, err) < 0)
        return -1;
      break;
    default:{
      int stride = l->kind == L_CONV_S2 ? 2 : 1;
      y = next_view (p, l->w.shape[0],
          ae_conv2d_out_size (x->shape[2], 3, stride, 1, 1),
          ae_conv2d_out_size (x->shape[3], 3, stride, 1, 1));
      if (ae_conv2d (&y, x, &l->w, l->kind == L_CONV ? &l->b : NULL, stride,
              1, p->arena, err) < 0)
        return -1;
      break;
    }
  }
  swap_in (p, &y);
  return 0;
}

static int
run_coder (const Coder * c, const char *name, const AeTensor * in,
    AeTensor * out, int64_t peak, AeVaeActFn act_fn, void *act_user,
    AeArena * arena, AeError * err)
{
  size_t mark = ae_arena_mark (arena);
  size_t bytes = (size_t) peak * sizeof (float);
  Pass p = { arena, { NULL, NULL }, 1, *in };
  int ret = -1;

  p.buf[0] = ae_arena_alloc (arena, bytes, err);
  p.buf[1] = p.buf[0] ? ae_arena_alloc (arena, bytes, err) : NULL;
  if (p.buf[1] == NULL)
    goto out;
  for (int i = 0; i < c->n_layers; i++) {
    if (layer_forward (&p, &c->layers[i], err) < 0)
      goto out;
    if (act_fn != NULL) {
      char n[48];
      snprintf (n, sizeof (n), "%s.%d", name, i);
      act_fn (act_user, n, &p.x);
    }
  }
  ret = ae_copy (out, &p.x, err);
out:
  ae_arena_release (arena, mark);
  return ret;
}

static int
check_shapes (const char *path, const char *what, const AeTensor * in,
    int cin, const AeTensor * out, const int64_t * want, AeError * err)
{
  char s[64];

  if (in->ndim != 4 || in->shape[1] != cin || in->shape[0] < 1 ||
      in->shape[2] < 1 || in->shape[3] < 1)
    return ae_error (err, "%s: %s input: shape %s, expected (B,%d,H,W)",
        path, what, ae_shape_str (in->ndim, in->shape, s, sizeof (s)), cin);
  return ae_tensor_check_shape (out, what, 4, want, err);
}

int
ae_taesd_encode (AeTaesd * t, const AeTensor * image, AeTensor * latent,
    AeVaeActFn act_fn, void *act_user, AeArena * arena, AeError * err)
{
  int64_t want[4];

  if (t->encoder.st == NULL)
    return ae_error (err, "taesd: no encoder loaded");
  want[0] = image->shape[0];
  want[1] = t->latent_channels;
  want[2] = ae_taesd_latent_size (image->shape[2]);
  want[3] = ae_taesd_latent_size (image->shape[3]);
  if (check_shapes (ae_st_path (t->encoder.st), "taesd encode", image, 3,
          latent, want, err) < 0)
    return -1;
  /* Widest activation: 64 channels at full resolution. */
  return run_coder (&t->encoder, "encoder", image, latent,
      image->shape[0] * TAESD_C * image->shape[2] * image->shape[3], act_fn,
      act_user, arena, err);
}

int
ae_taesd_decode (AeTaesd * t, const AeTensor * latent, AeTensor * image,
    AeVaeActFn act_fn, void *act_user, AeArena * arena, AeError * err)
{
  int64_t want[4];

  if (t->decoder.st == NULL)
    return ae_error (err, "taesd: no decoder loaded");
  want[0] = latent->shape[0];
  want[1] = 3;
  want[2] = 8 * latent->shape[2];
  want[3] = 8 * latent->shape[3];
  if (check_shapes (ae_st_path (t->decoder.st), "taesd decode", latent,
          t->latent_channels, image, want, err) < 0)
    return -1;
  return run_coder (&t->decoder, "decoder", latent, image,
      want[0] * TAESD_C * want[2] * want[3], act_fn, act_user, arena, err);
}
