/* Test helper (header only, for test_avatar.c and tests/vulkan): a copy of
 * a model folder whose Denoising UNet takes `in_channels` input channels,
 * e.g. 8 = [z_t, reference latent] (reference concat, SVD / MimicMotion
 * image conditioning; docs/model-format.md). Every part but unet/ is a
 * symlink to the original; unet/config.json says in_channels N and
 * conv_in.weight keeps the original's first min(N, C) input channels (C =
 * the original's): N < C narrows a concat model to one without the concat,
 * N > C adds N - C input channels of seeded Gaussian values with the
 * original kernel's standard deviation, rounded to f16-exact values like an
 * exported model's, so that the concatenated channels move the output as
 * much as z_t does. Needs test_util.h and avatar-engine.h
 * (or safetensors.h + sampler.h) included before it. */
#ifndef AE_TEST_WIDEN_MODEL_H
#define AE_TEST_WIDEN_MODEL_H

#include <math.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

/* Nearest value with an 11-bit mantissa (f16-exact in f16's normal range,
 * which conv weights are in). */
static float
widen_f16_round (float v)
{
  int e;
  float m = frexpf (v, &e);

  return ldexpf (roundf (m * 2048.0f) / 2048.0f, e);
}

/* Writes DST/diffusion_pytorch_model.safetensors: SRC's tensors with
 * conv_in.weight widened to in_channels inputs. */
static int
widen_unet_weights (const char *src, const char *dst, int in_channels,
    AeError * err)
{
  AeSafetensors *st;
  AeStWriter *wr = ae_st_writer_new ();
  float *wide = NULL;
  int ret = -1;

  if (ae_st_open (&st, src, err) < 0) {
    ae_st_writer_free (wr);
    return -1;
  }
  for (int i = 0; i < ae_st_count (st); i++) {
    const AeStTensorInfo *ti = ae_st_info_at (st, i);
    AeTensor t;
    if (ae_st_get (st, ti->name, ti->ndim, NULL, &t, err) < 0)
      goto out;
    if (strcmp (ti->name, "conv_in.weight") == 0) {
      int64_t co = t.shape[0], ci = t.shape[1];
      int64_t k = t.shape[2] * t.shape[3];
      int64_t n = co * in_channels * k;
      double sum = 0.0, sq = 0.0, sd;
      int64_t numel = ae_tensor_numel (&t);
      float *noise;

      for (int64_t q = 0; q < numel; q++) {
        sum += t.data[q];
        sq += (double) t.data[q] * t.data[q];
      }
      sd = sqrt (fmax (sq / numel - (sum / numel) * (sum / numel), 1e-12));
      wide = g_new (float, n);
      noise = g_new (float, n);
      ae_noise_fill (1234, 0, 0, noise, (size_t) n);
      for (int64_t o = 0; o < co; o++)
        for (int64_t c = 0; c < in_channels; c++)
          for (int64_t q = 0; q < k; q++)
            wide[(o * in_channels + c) * k + q] = c < ci ?
                t.data[(o * ci + c) * k + q] :
                widen_f16_round ((float) sd * noise[(o * in_channels + c) *
                        k + q]);
      g_free (noise);
      t.data = wide;
      t.shape[1] = in_channels;
    }
    if (ae_st_writer_add (wr, ti->name, &t, err) < 0)
      goto out;
  }
  ret = ae_st_writer_save (wr, dst, err);
out:
  g_free (wide);
  ae_st_writer_free (wr);
  ae_st_close (st);
  return ret;
}

/* Removes a folder made by widen_model_new (links, unet/, itself). */
static void
widen_model_remove (char *dir)
{
  const char *names[] = { "vae", "reference_unet", "pose_guider",
    "hand_encoder", "scheduler_config.json", "references",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet"
  };

  if (dir == NULL)
    return;
  for (size_t i = 0; i < G_N_ELEMENTS (names); i++) {
    char *p = g_build_filename (dir, names[i], NULL);
    g_remove (p);               /* files, links and the empty unet/ */
    g_free (p);
  }
  g_rmdir (dir);
  g_free (dir);
}

/* The widened copy of model_dir in a new temporary folder (free with
 * widen_model_remove). NULL on error (err set). */
static char *
widen_model_new (const char *model_dir, int in_channels, AeError * err)
{
  const char *links[] = { "vae", "reference_unet", "pose_guider",
    "hand_encoder", "scheduler_config.json", "references"
  };
  char *dir = g_dir_make_tmp ("avatar-widened-XXXXXX", NULL);
  char *unet, *src_cfg, *dst_cfg, *src_w, *dst_w, *text = NULL, *edited;
  const char *key = "\"in_channels\": ";
  const char *at, *end;
  char want[64];
  int ok;

  if (dir == NULL) {
    ae_error (err, "cannot make a temporary folder");
    return NULL;
  }
  for (size_t i = 0; i < G_N_ELEMENTS (links); i++) {
    char *src = g_build_filename (model_dir, links[i], NULL);
    char *abs = g_canonicalize_filename (src, NULL);
    char *dst = g_build_filename (dir, links[i], NULL);
    ok = symlink (abs, dst) == 0;
    g_free (src);
    g_free (abs);
    g_free (dst);
    if (!ok) {
      ae_error (err, "%s: cannot link %s", dir, links[i]);
      widen_model_remove (dir);
      return NULL;
    }
  }
  unet = g_build_filename (dir, "unet", NULL);
  src_cfg = g_build_filename (model_dir, "unet", "config.json", NULL);
  dst_cfg = g_build_filename (unet, "config.json", NULL);
  src_w = g_build_filename (model_dir, "unet",
      "diffusion_pytorch_model.safetensors", NULL);
  dst_w = g_build_filename (unet, "diffusion_pytorch_model.safetensors",
      NULL);
  g_mkdir (unet, 0755);
  ok = g_file_get_contents (src_cfg, &text, NULL, NULL) &&
      (at = strstr (text, key)) != NULL;
  if (!ok)
    ae_error (err, "%s: no '%s'", src_cfg, key);
  if (ok) {
    /* replace the number after the key, whatever it is */
    for (end = at + strlen (key); *end >= '0' && *end <= '9'; end++);
    snprintf (want, sizeof want, "%s%d", key, in_channels);
    edited = g_strdup_printf ("%.*s%s%s", (int) (at - text), text, want, end);
    ok = g_file_set_contents (dst_cfg, edited, -1, NULL);
    g_free (edited);
    if (!ok)
      ae_error (err, "%s: cannot write", dst_cfg);
  }
  if (ok)
    ok = widen_unet_weights (src_w, dst_w, in_channels, err) == 0;
  g_free (text);
  g_free (unet);
  g_free (src_cfg);
  g_free (dst_cfg);
  g_free (src_w);
  g_free (dst_w);
  if (!ok) {
    widen_model_remove (dir);
    return NULL;
  }
  return dir;
}

#endif /* AE_TEST_WIDEN_MODEL_H */
