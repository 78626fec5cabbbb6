/* Timing of the VAE decoders on random weights at real model sizes:
 * AutoencoderKL with the SD1.5 config (block_out_channels 128,256,512,512,
 * layers_per_block 2, groups 32) and TAESD (SD1.x latent 4). Usage:
 * bench_vae [latent_size (default 32)] [iterations (default 2)]. */
#include "test_util.h"
#include "taesd.h"
#include "vae.h"

#include <glib/gstdio.h>

static const int boc[4] = { 128, 256, 512, 512 };

static void
put (AeStWriter * w, TestRng * r, const char *key, int ndim, int64_t d0,
    int64_t d1, int64_t k, float std, float mean)
{
  int64_t shape[4] = { d0, d1, k, k };
  AeTensor t = test_tensor (r, ndim, shape, mean, std);
  AeError err;

  REQUIRE (ae_st_writer_add (w, key, &t, &err) == 0, "%s", err.msg);
  g_free (t.data);
}

static void
conv (AeStWriter * w, TestRng * r, const char *p, int cin, int cout, int k,
    bool bias)
{
  char key[200];
  snprintf (key, sizeof (key), "%sweight", p);
  put (w, r, key, 4, cout, cin, k, 1.0f / sqrtf ((float) cin * k * k), 0);
  if (bias) {
    snprintf (key, sizeof (key), "%sbias", p);
    put (w, r, key, 1, cout, 1, 1, 0.02f, 0);
  }
}

static void
norm (AeStWriter * w, TestRng * r, const char *p, int c)
{
  char key[200];
  snprintf (key, sizeof (key), "%sweight", p);
  put (w, r, key, 1, c, 1, 1, 0.1f, 1.0f);
  snprintf (key, sizeof (key), "%sbias", p);
  put (w, r, key, 1, c, 1, 1, 0.1f, 0);
}

static void
resnet (AeStWriter * w, TestRng * r, const char *p, int cin, int cout)
{
  char q[160];
  snprintf (q, sizeof (q), "%snorm1.", p);
  norm (w, r, q, cin);
  snprintf (q, sizeof (q), "%sconv1.", p);
  conv (w, r, q, cin, cout, 3, true);
  snprintf (q, sizeof (q), "%snorm2.", p);
  norm (w, r, q, cout);
  snprintf (q, sizeof (q), "%sconv2.", p);
  conv (w, r, q, cout, cout, 3, true);
  if (cin != cout) {
    snprintf (q, sizeof (q), "%sconv_shortcut.", p);
    conv (w, r, q, cin, cout, 1, true);
  }
}

/* SD1.5 decoder side only (the encoder is not timed, but load needs it). */
static void
kl_model (const char *dir)
{
  AeStWriter *w = ae_st_writer_new ();
  TestRng r = { 1 };
  AeError err;
  char p[160], *path;
  const char *coder[2] = { "encoder", "decoder" };
  int cin = boc[0];

  conv (w, &r, "encoder.conv_in.", 3, boc[0], 3, true);
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 2; j++) {
      snprintf (p, sizeof (p), "encoder.down_blocks.%d.resnets.%d.", i, j);
      resnet (w, &r, p, j == 0 ? cin : boc[i], boc[i]);
    }
    cin = boc[i];
    if (i < 3) {
      snprintf (p, sizeof (p), "encoder.down_blocks.%d.downsamplers.0.conv.",
          i);
      conv (w, &r, p, boc[i], boc[i], 3, true);
    }
  }
  for (int c = 0; c < 2; c++) {
    const char *n[4] = { "to_q", "to_k", "to_v", "to_out.0" };
    for (int j = 0; j < 2; j++) {
      snprintf (p, sizeof (p), "%s.mid_block.resnets.%d.", coder[c], j);
      resnet (w, &r, p, 512, 512);
    }
    snprintf (p, sizeof (p), "%s.mid_block.attentions.0.group_norm.",
        coder[c]);
    norm (w, &r, p, 512);
    for (int j = 0; j < 4; j++) {
      char key[160];
      snprintf (key, sizeof (key), "%s.mid_block.attentions.0.%s.weight",
          coder[c], n[j]);
      put (w, &r, key, 2, 512, 512, 1, 0.044f, 0);
      snprintf (key, sizeof (key), "%s.mid_block.attentions.0.%s.bias",
          coder[c], n[j]);
      put (w, &r, key, 1, 512, 1, 1, 0.02f, 0);
    }
  }
  norm (w, &r, "encoder.conv_norm_out.", 512);
  conv (w, &r, "encoder.conv_out.", 512, 8, 3, true);
  conv (w, &r, "quant_conv.", 8, 8, 1, true);
  conv (w, &r, "post_quant_conv.", 4, 4, 1, true);
  conv (w, &r, "decoder.conv_in.", 4, 512, 3, true);
  cin = 512;
  for (int i = 0; i < 4; i++) {
    int c = boc[3 - i];
    for (int j = 0; j < 3; j++) {
      snprintf (p, sizeof (p), "decoder.up_blocks.%d.resnets.%d.", i, j);
      resnet (w, &r, p, j == 0 ? cin : c, c);
    }
    cin = c;
    if (i < 3) {
      snprintf (p, sizeof (p), "decoder.up_blocks.%d.upsamplers.0.conv.", i);
      conv (w, &r, p, c, c, 3, true);
    }
  }
  norm (w, &r, "decoder.conv_norm_out.", 128);
  conv (w, &r, "decoder.conv_out.", 128, 3, 3, true);
  path = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
  REQUIRE (ae_st_writer_save (w, path, &err) == 0, "%s", err.msg);
  g_free (path);
  ae_st_writer_free (w);
  path = g_build_filename (dir, "config.json", NULL);
  REQUIRE (g_file_set_contents (path, "{\"block_out_channels\": [128, 256, "
          "512, 512], \"layers_per_block\": 2, \"latent_channels\": 4, "
          "\"norm_num_groups\": 32}", -1, NULL), "write %s", path);
  g_free (path);
}

static void
taesd_decoder (const char *path)
{
  AeStWriter *w = ae_st_writer_new ();
  TestRng r = { 2 };
  AeError err;
  char p[32];
  const int blocks[] = { 3, 4, 5, 8, 9, 10, 13, 14, 15, 18 };

  conv (w, &r, "1.", 4, 64, 3, true);
  for (int b = 0; b < 10; b++)
    for (int j = 0; j < 5; j += 2) {
      snprintf (p, sizeof (p), "%d.conv.%d.", blocks[b], j);
      conv (w, &r, p, 64, 64, 3, true);
    }
  conv (w, &r, "7.", 64, 64, 3, false);
  conv (w, &r, "12.", 64, 64, 3, false);
  conv (w, &r, "17.", 64, 64, 3, false);
  conv (w, &r, "19.", 64, 3, 3, true);
  REQUIRE (ae_st_writer_save (w, path, &err) == 0, "%s", err.msg);
  ae_st_writer_free (w);
}

static double
now (void)
{
  return g_get_monotonic_time () / 1e6;
}

int
main (int argc, char **argv)
{
  int lat = argc > 1 ? atoi (argv[1]) : 32;
  int iters = argc > 2 ? atoi (argv[2]) : 2;
  char *dir = g_dir_make_tmp ("bench_vae_XXXXXX", NULL);
  char *tpath = g_build_filename (dir, "taesd_decoder.safetensors", NULL);
  char *wpath = g_build_filename (dir, "diffusion_pytorch_model.safetensors",
      NULL);
  char *cpath = g_build_filename (dir, "config.json", NULL);
  TestRng r = { 3 };
  AeArena arena;
  AeError err;
  AeVae *vae = NULL;
  AeTaesd *t = NULL;
  AeTensor z, img;
  double t0, best;

  REQUIRE (lat > 0 && iters > 0, "usage: bench_vae [latent] [iters]");
  REQUIRE (ae_arena_init (&arena, 0, &err) == 0, "%s", err.msg);
  kl_model (dir);
  taesd_decoder (tpath);
  REQUIRE (ae_vae_load (&vae, dir, &err) == 0, "%s", err.msg);
  REQUIRE (ae_taesd_load (&t, NULL, tpath, &err) == 0, "%s", err.msg);
  z = test_tensor4 (&r, 1, 4, lat, lat);
  img = test_tensor4 (NULL, 1, 3, 8 * lat, 8 * lat);

  best = 1e9;
  for (int i = 0; i <= iters; i++) {
    t0 = now ();
    REQUIRE (ae_taesd_decode (t, &z, &img, NULL, NULL, &arena, &err) == 0,
        "%s", err.msg);
    if (i > 0 && now () - t0 < best)
      best = now () - t0;
    if (i == 0)
      REQUIRE (ae_arena_reset (&arena, &err) == 0, "%s", err.msg);
  }
  printf ("taesd decode   latent %dx%d -> %dx%d: %.3f s (best of %d), arena "
      "%.1f MiB\n", lat, lat, 8 * lat, 8 * lat, best, iters,
      arena.capacity / 1048576.0);

  best = 1e9;
  for (int i = 0; i <= iters; i++) {
    t0 = now ();
    REQUIRE (ae_vae_decode (vae, &z, &img, NULL, NULL, &arena, &err) == 0,
        "%s", err.msg);
    if (i > 0 && now () - t0 < best)
      best = now () - t0;
    if (i == 0)
      REQUIRE (ae_arena_reset (&arena, &err) == 0, "%s", err.msg);
  }
  printf ("sd15 vae decode latent %dx%d -> %dx%d: %.3f s (best of %d), "
      "arena %.1f MiB\n", lat, lat, 8 * lat, 8 * lat, best, iters,
      arena.capacity / 1048576.0);

  ae_vae_free (vae);
  ae_taesd_free (t);
  ae_arena_clear (&arena);
  g_free (z.data);
  g_free (img.data);
  g_remove (tpath);
  g_remove (wpath);
  g_remove (cpath);
  g_rmdir (dir);
  g_free (tpath);
  g_free (wpath);
  g_free (cpath);
  g_free (dir);
  return 0;
}
