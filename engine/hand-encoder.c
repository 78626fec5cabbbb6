/* HandEncoder: config, weights and forward (see hand-encoder.h). */
#include "hand-encoder.h"

#include <math.h>
#include <string.h>

#include <glib.h>

#include "config.h"
#include "ops.h"
#include "safetensors.h"
#include "tensor.h"

struct AeHandEncoder
{
  AeHandEncoderConfig cfg;
  AeSafetensors *st;
  AeTensor linear_1_weight, linear_1_bias;      /* (H, 2+4F), (H) */
  AeTensor linear_2_weight, linear_2_bias;      /* (D, H), (D) */
  AeTensor keypoint_embedding;  /* (K, D) */
  AeTensor missing_embedding;   /* (D) */
  AeTensor norm_out_weight, norm_out_bias;      /* (D) */
  float *freqs;                 /* w_f = 2^f pi, (F) */
  /* Scratch for max_batch * K points: pe (N, 2+4F) and hidden (N, H). */
  int max_batch;
  float *pe, *hidden;
  float *gate;                  /* (N) */
};

static int
he_positive (const AeConfig * c, const char *key, int *out, AeError * err)
{
  int64_t v;

  if (ae_config_get_int (c, key, &v, err) < 0)
    return -1;
  if (v <= 0 || v > (1 << 20))
    return ae_error (err, "%s: field '%s': expected an integer in "
        "[1, 1048576], found %lld", ae_config_path (c), key, (long long) v);
  *out = (int) v;
  return 0;
}

static int
he_config_fill (AeHandEncoderConfig * cfg, const AeConfig * c, AeError * err)
{
  double thr;

  memset (cfg, 0, sizeof *cfg);
  if (he_positive (c, "num_keypoints", &cfg->num_keypoints, err) < 0 ||
      he_positive (c, "num_frequencies", &cfg->num_frequencies, err) < 0 ||
      he_positive (c, "hidden_dim", &cfg->hidden_dim, err) < 0 ||
      he_positive (c, "cross_attention_dim", &cfg->cross_attention_dim,
          err) < 0)
    return -1;
  /* 2^f pi must stay a finite float: f < 64 is far beyond any use. */
  if (cfg->num_frequencies > 64)
    return ae_error (err, "%s: field 'num_frequencies': expected <= 64, "
        "found %d", ae_config_path (c), cfg->num_frequencies);
  if (ae_config_get_float (c, "confidence_threshold", &thr, err) < 0)
    return -1;
  if (!(thr >= 0.0 && thr <= 1.0))
    return ae_error (err, "%s: field 'confidence_threshold': expected a "
        "number in [0, 1], found %g", ae_config_path (c), thr);
  cfg->confidence_threshold = (float) thr;
  return 0;
}

int
ae_hand_encoder_config_load (AeHandEncoderConfig * cfg, const char *path,
    AeError * err)
{
  AeConfig *c;
  int ret;

  if (ae_config_load (&c, path, err) < 0)
    return -1;
  ret = he_config_fill (cfg, c, err);
  ae_config_free (c);
  return ret;
}

static int
he_get (AeSafetensors * st, const char *key, AeTensor * t, int ndim,
    int64_t d0, int64_t d1, AeError * err)
{
  int64_t d[2] = { d0, d1 };

  return ae_st_get (st, key, ndim, d, t, err);
}

static int
he_load_weights (AeHandEncoder * enc, AeError * err)
{
  const AeHandEncoderConfig *c = &enc->cfg;
  AeSafetensors *st = enc->st;
  int64_t in = 2 + 4 * (int64_t) c->num_frequencies;
  int64_t h = c->hidden_dim, d = c->cross_attention_dim;

  if (he_get (st, "linear_1.weight", &enc->linear_1_weight, 2, h, in,
          err) < 0 ||
      he_get (st, "linear_1.bias", &enc->linear_1_bias, 1, h, 0, err) < 0 ||
      he_get (st, "linear_2.weight", &enc->linear_2_weight, 2, d, h,
          err) < 0 ||
      he_get (st, "linear_2.bias", &enc->linear_2_bias, 1, d, 0, err) < 0 ||
      he_get (st, "keypoint_embedding.weight", &enc->keypoint_embedding, 2,
          c->num_keypoints, d, err) < 0 ||
      he_get (st, "missing_embedding", &enc->missing_embedding, 1, d, 0,
          err) < 0 ||
      he_get (st, "norm_out.weight", &enc->norm_out_weight, 1, d, 0,
          err) < 0 ||
      he_get (st, "norm_out.bias", &enc->norm_out_bias, 1, d, 0, err) < 0)
    return -1;
  return 0;
}

int
ae_hand_encoder_load_files (AeHandEncoder ** out, const char *config_path,
    const char *weights_path, AeError * err)
{
  AeHandEncoder *enc = g_new0 (AeHandEncoder, 1);

  *out = NULL;
  if (ae_hand_encoder_config_load (&enc->cfg, config_path, err) < 0 ||
      ae_st_open (&enc->st, weights_path, err) < 0 ||
      he_load_weights (enc, err) < 0)
    goto fail;
  /* Same rounding as torch: (2^f as float32) * pi in float32. */
  enc->freqs = g_new (float, enc->cfg.num_frequencies);
  for (int f = 0; f < enc->cfg.num_frequencies; f++)
    enc->freqs[f] = ldexpf (1.0f, f) * (float) G_PI;
  if (ae_hand_encoder_reserve (enc, 1, err) < 0)
    goto fail;
  *out = enc;
  return 0;
fail:
  ae_hand_encoder_free (enc);
  return -1;
}

int
ae_hand_encoder_load (AeHandEncoder ** out, const char *dir, AeError * err)
{
  char *cfg = g_build_filename (dir, "config.json", NULL);
  char *weights = g_build_filename (dir,
      "diffusion_pytorch_model.safetensors", NULL);
  int ret;

  /* Open the file itself when present so that errors name it; otherwise
   * the folder (a sharded .index.json, or the "missing file" error). */
  ret = ae_hand_encoder_load_files (out, cfg,
      g_file_test (weights, G_FILE_TEST_IS_REGULAR) ? weights : dir, err);
  g_free (weights);
  g_free (cfg);
  return ret;
}

void
ae_hand_encoder_free (AeHandEncoder * enc)
{
  if (enc == NULL)
    return;
  ae_st_close (enc->st);
  g_free (enc->freqs);
  g_free (enc->pe);
  g_free (enc->hidden);
  g_free (enc->gate);
  g_free (enc);
}

const AeHandEncoderConfig *
ae_hand_encoder_get_config (const AeHandEncoder * enc)
{
  return &enc->cfg;
}

int
ae_hand_encoder_reserve (AeHandEncoder * enc, int max_batch, AeError * err)
{
  const AeHandEncoderConfig *c = &enc->cfg;
  size_t n, in = 2 + 4 * (size_t) c->num_frequencies;

  if (max_batch <= 0 || max_batch > (1 << 16))
    return ae_error (err, "hand encoder: batch %d out of range [1, 65536]",
        max_batch);
  if (max_batch <= enc->max_batch)
    return 0;
  n = (size_t) max_batch * (size_t) c->num_keypoints;
  g_free (enc->pe);
  g_free (enc->hidden);
  g_free (enc->gate);
  enc->pe = g_try_new (float, n * in);
  enc->hidden = g_try_new (float, n * (size_t) c->hidden_dim);
  enc->gate = g_try_new (float, n);
  enc->max_batch = max_batch;
  if (enc->pe == NULL || enc->hidden == NULL || enc->gate == NULL) {
    enc->max_batch = 0;
    return ae_error (err, "hand encoder: out of memory for batch %d",
        max_batch);
  }
  return 0;
}

/* Gate g and positional encoding of one point; a missing point gets
 * pe = 0 so that garbage coordinates cannot reach the matmul. */
static int
he_encode_point (const AeHandEncoder * enc, const float *kp, float *pe,
    float *gate, int64_t index, AeError * err)
{
  int nf = enc->cfg.num_frequencies;
  float x = kp[0], y = kp[1], c = kp[2];

  /* torch: c.clamp(0, 1); NaN confidence compares false -> missing. */
  c = c < 0.0f ? 0.0f : (c > 1.0f ? 1.0f : c);
  *gate = (c >= enc->cfg.confidence_threshold) ? c : 0.0f;
  if (*gate == 0.0f) {
    memset (pe, 0, (size_t) (2 + 4 * nf) * sizeof (float));
    return 0;
  }
  /* The highest frequency must keep w x finite, or sin() gives NaN. */
  if (!isfinite (x * enc->freqs[nf - 1]) || !isfinite (y * enc->freqs[nf - 1]))
    return ae_error (err, "hand encoder: keypoint %lld has non-finite or "
        "huge x/y (%g, %g) with confidence %g", (long long) index, x, y, c);
  pe[0] = x;
  pe[1] = y;
  for (int f = 0; f < nf; f++) {
    float ax = x * enc->freqs[f], ay = y * enc->freqs[f];
    pe[2 + f] = sinf (ax);
    pe[2 + nf + f] = cosf (ax);
    pe[2 + 2 * nf + f] = sinf (ay);
    pe[2 + 3 * nf + f] = cosf (ay);
  }
  return 0;
}

/* tok = g h + (1 - g) missing + keypoint_embedding[k], in torch's order. */
static void
he_mix (const AeHandEncoder * enc, float *tok, float g, int k)
{
  int64_t d = enc->cfg.cross_attention_dim;
  const float *miss = enc->missing_embedding.data;
  const float *emb = enc->keypoint_embedding.data + (int64_t) k * d;
  float ng = 1.0f - g;

  if (g == 0.0f) {
    for (int64_t i = 0; i < d; i++)
      tok[i] = miss[i] + emb[i];
    return;
  }
  for (int64_t i = 0; i < d; i++)
    tok[i] = (g * tok[i] + ng * miss[i]) + emb[i];
}

int
ae_hand_encoder_forward (AeHandEncoder * enc, const float *keypoints, int B,
    float *tokens, AeError * err)
{
  const AeHandEncoderConfig *c;
  int64_t k, in, n, d;
  AeTensor pe, hid, tok;

  if (enc == NULL || keypoints == NULL || tokens == NULL)
    return ae_error (err, "hand encoder: encoder/keypoints/tokens is NULL");
  c = &enc->cfg;
  k = c->num_keypoints;
  in = 2 + 4 * (int64_t) c->num_frequencies;
  d = c->cross_attention_dim;
  if (ae_hand_encoder_reserve (enc, B, err) < 0)
    return -1;
  n = (int64_t) B * k;
  for (int64_t p = 0; p < n; p++)
    if (he_encode_point (enc, keypoints + 3 * p, enc->pe + p * in,
            enc->gate + p, p, err) < 0)
      return -1;
  pe = ae_tensor_2d (enc->pe, n, in);
  hid = ae_tensor_2d (enc->hidden, n, c->hidden_dim);
  tok = ae_tensor_2d (tokens, n, d);
  if (ae_linear (&hid, &pe, &enc->linear_1_weight, &enc->linear_1_bias,
          err) < 0 || ae_silu (&hid, &hid, err) < 0 ||
      ae_linear (&tok, &hid, &enc->linear_2_weight, &enc->linear_2_bias,
          err) < 0)
    return -1;
  for (int64_t p = 0; p < n; p++)
    he_mix (enc, tokens + p * d, enc->gate[p], (int) (p % k));
  return ae_layer_norm (&tok, &tok, 1e-5f, &enc->norm_out_weight,
      &enc->norm_out_bias, err);
}

static void
he_fill_hand (float *dst, const float *src, float w, float h)
{
  for (int i = 0; i < AE_HAND_POINTS; i++, dst += 3) {
    const float *p = src ? src + 3 * i : NULL;
    if (p == NULL || !(p[2] > 0.0f) || !isfinite (p[0]) ||
        !isfinite (p[1]) || !isfinite (p[2])) {
      dst[0] = dst[1] = dst[2] = 0.0f;
      continue;
    }
    dst[0] = p[0] / w;
    dst[1] = p[1] / h;
    dst[2] = p[2];
  }
}

int
ae_hand_keypoints_fill (float *keypoints, const float *left,
    const float *right, int canvas_width, int canvas_height, AeError * err)
{
  if (keypoints == NULL)
    return ae_error (err, "hand keypoints: output is NULL");
  if (canvas_width <= 0 || canvas_height <= 0)
    return ae_error (err, "hand keypoints: canvas %dx%d must be > 0",
        canvas_width, canvas_height);
  he_fill_hand (keypoints, left, (float) canvas_width, (float) canvas_height);
  he_fill_hand (keypoints + 3 * AE_HAND_POINTS, right, (float) canvas_width,
      (float) canvas_height);
  return 0;
}
