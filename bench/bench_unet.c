/* One UNet step of the real SD1.5 config (block_out_channels 320, 640,
 * 1280, 1280; 8 heads; cross_attention_dim 768) on seeded random weights:
 * batch 2 (as with CFG), 64x64 latents, 77 context tokens. Prints the
 * seconds per step (median of --repeat N, default 1, after one warm-up
 * pass that sizes the arena), the achieved GFLOP/s (2 x multiply-adds of
 * the convs, linears and attention products) and the peak RSS.
 * Usage: bench_unet [--repeat N] [--threads N] [--size S] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <glib.h>

#include "avatar-engine.h"

static const char *sd15_config =
    "{\"_class_name\": \"UNet2DConditionModel\", \"act_fn\": \"silu\","
    " \"attention_head_dim\": 8, \"block_out_channels\": [320, 640, 1280,"
    " 1280], \"center_input_sample\": false, \"cross_attention_dim\": 768,"
    " \"down_block_types\": [\"CrossAttnDownBlock2D\","
    " \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
    " \"downsample_padding\": 1, \"flip_sin_to_cos\": true,"
    " \"freq_shift\": 0, \"in_channels\": 4, \"layers_per_block\": 2,"
    " \"mid_block_scale_factor\": 1, \"norm_eps\": 1e-05,"
    " \"norm_num_groups\": 32, \"out_channels\": 4, \"sample_size\": 64,"
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\","
    " \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}";

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
fill (AeTensor * t, uint64_t seed)
{
  int64_t n = ae_tensor_numel (t);

  for (int64_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    t->data[i] = (float) ((seed >> 40) * (1.0 / 16777216.0) - 0.5) * 2.0f;
  }
}

int
main (int argc, char **argv)
{
  AeConfig *c;
  AeUNetConfig cfg;
  AeUNet *u;
  AeArena arena;
  AeError err;
  AeTensor sample, ctx, out;
  int repeat = 1, threads = 0;
  int64_t size = 64, b = 2, l = 77;
  float t = 999.0f;
  double *times, macs, med, t0;
  struct rusage ru;

  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp (argv[i], "--repeat") == 0)
      repeat = atoi (argv[i + 1]);
    else if (strcmp (argv[i], "--threads") == 0)
      threads = atoi (argv[i + 1]);
    else if (strcmp (argv[i], "--size") == 0)
      size = atoi (argv[i + 1]);
  }
  if (repeat < 1 || size < 8 || size % 8 != 0) {
    fprintf (stderr, "usage: bench_unet [--repeat N] [--threads N] "
        "[--size S (multiple of 8)]\n");
    return 2;
  }
  ae_threads_init (threads);
  if (ae_config_load_data (&c, "sd15-unet-config", sd15_config, &err) < 0 ||
      ae_unet_config_parse (&cfg, c, &err) < 0 ||
      ae_unet_new_random (&u, &cfg, 1, &err) < 0 ||
      ae_arena_init (&arena, 0, &err) < 0) {
    fprintf (stderr, "bench_unet: %s\n", err.msg);
    return 1;
  }
  ae_config_free (c);
  sample = ae_tensor_4d (g_new (float, b * 4 * size * size), b, 4, size,
      size);
  ctx = ae_tensor_3d (g_new (float, b * l * 768), b, l, 768);
  out = ae_tensor_4d (g_new (float, b * 4 * size * size), b, 4, size, size);
  fill (&sample, 1);
  fill (&ctx, 2);
  times = g_new (double, repeat);
  printf ("config: SD1.5 UNet (320,640,1280,1280), batch %lld, %lldx%lld "
      "latents, %lld tokens, %d threads\n", (long long) b, (long long) size,
      (long long) size, (long long) l, ae_threads_count ());
  for (int i = -1; i < repeat; i++) {
    t0 = now_s ();
    if (ae_unet_forward (u, &out, &sample, &t, 1, &ctx, NULL, &arena,
            &err) < 0 || ae_arena_reset (&arena, &err) < 0) {
      fprintf (stderr, "bench_unet: %s\n", err.msg);
      return 1;
    }
    if (i < 0)
      printf ("warm-up step (sizes the arena): %.3f s\n", now_s () - t0);
    else
      times[i] = now_s () - t0;
  }
  qsort (times, repeat, sizeof (double), cmp_double);
  med = times[repeat / 2];
  macs = ae_unet_macs (u, b, size, size, l);
  getrusage (RUSAGE_SELF, &ru);
  printf ("unet_step_s: %.3f\n", med);
  printf ("tflop_per_step: %.3f\n", 2.0 * macs * 1e-12);
  printf ("gflops: %.1f\n", 2.0 * macs / med * 1e-9);
  printf ("arena_bytes: %zu\n", arena.capacity);
  printf ("peak_rss_mib: %.0f\n", ru.ru_maxrss / 1024.0);
  ae_unet_free (u);
  ae_arena_clear (&arena);
  g_free (sample.data);
  g_free (ctx.data);
  g_free (out.data);
  g_free (times);
  return 0;
}
