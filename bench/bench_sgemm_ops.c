/* OpenBLAS sgemm GFLOP/s on this machine next to the engine's conv2d,
 * attention and norm throughput on SD1.5 shapes (64x64 latents, batch 2 as
 * with classifier-free guidance). Not a test: prints figures only.
 *   bench_sgemm_ops [repeats] [--cpu-time]
 * --cpu-time times with the process CPU clock instead of the wall clock:
 * run with AE_NUM_THREADS=1 on a busy machine, it still gives the
 * per-core rate that other processes would otherwise hide. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops.h"
#include "tensor.h"
#include "threads.h"

static bool use_cpu_time = false;

static double
now (void)
{
  struct timespec ts;

  clock_gettime (use_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC,
      &ts);
  return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static float *
random_buf (int64_t n, unsigned seed)
{
  float *p = malloc ((size_t) n * sizeof (float));

  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = ((float) (seed >> 8) / 16777216.0f - 0.5f);
  }
  return p;
}

/* Best of `reps` runs (after one warm-up), in seconds. */
#define TIME_BEST(reps, best, stmt) \
  do { \
    stmt; \
    best = 1e30; \
    for (int r_ = 0; r_ < (reps); r_++) { \
      double t0_ = now (); \
      stmt; \
      double t_ = now () - t0_; \
      if (t_ < best) best = t_; \
    } \
  } while (0)

static double
bench_sgemm (int64_t m, int64_t n, int64_t k, int reps)
{
  float *a = random_buf (m * k, 1), *b = random_buf (k * n, 2);
  float *c = random_buf (m * n, 3);
  double best, gflops;

  TIME_BEST (reps, best, ae_sgemm (false, false, m, n, k, 1.0f, a, k, b, n,
          0.0f, c, n));
  gflops = 2.0 * m * n * k / best * 1e-9;
  printf ("sgemm   M=%-5lld N=%-5lld K=%-5lld %8.2f ms %7.1f GFLOP/s\n",
      (long long) m, (long long) n, (long long) k, best * 1e3, gflops);
  free (a);
  free (b);
  free (c);
  return gflops;
}

static double
bench_conv (AeArena * arena, int64_t batch, int64_t cin, int64_t cout,
    int64_t hw, int k, int stride, int reps)
{
  int pad = k / 2;
  int64_t ho = ae_conv2d_out_size (hw, k, stride, pad, pad);
  float *xd = random_buf (batch * cin * hw * hw, 4);
  float *wd = random_buf (cout * cin * k * k, 5), *bd = random_buf (cout, 6);
  float *yd = random_buf (batch * cout * ho * ho, 7);
  AeTensor x = ae_tensor_4d (xd, batch, cin, hw, hw);
  AeTensor w = ae_tensor_4d (wd, cout, cin, k, k), b = ae_tensor_1d (bd,
      cout);
  AeTensor y = ae_tensor_4d (yd, batch, cout, ho, ho);
  AeError err;
  double best, gflops;
  int ret = 0;

  TIME_BEST (reps, best, ret |= ae_conv2d (&y, &x, &w, &b, stride, pad,
          arena, &err));
  if (ret)
    fprintf (stderr, "conv2d failed: %s\n", err.msg);
  gflops = 2.0 * batch * cout * ho * ho * cin * k * k / best * 1e-9;
  printf ("conv2d  B=%lld %4lld->%-4lld %dx%d s%d at %3lldx%-3lld %8.2f ms "
      "%7.1f GFLOP/s\n", (long long) batch, (long long) cin,
      (long long) cout, k, k, stride, (long long) hw, (long long) hw,
      best * 1e3, gflops);
  free (xd);
  free (wd);
  free (bd);
  free (yd);
  return gflops;
}

static void
bench_attention (AeArena * arena, int64_t batch, int64_t lq, int64_t lk,
    int heads, int64_t d, int reps)
{
  int64_t c = heads * d;
  float *qd = random_buf (batch * lq * c, 8), *kd = random_buf (batch * lk *
      c, 9);
  float *vd = random_buf (batch * lk * c, 10), *od = random_buf (batch * lq *
      c, 11);
  AeTensor q = ae_tensor_3d (qd, batch, lq, c), k = ae_tensor_3d (kd, batch,
      lk, c);
  AeTensor v = ae_tensor_3d (vd, batch, lk, c), o = ae_tensor_3d (od, batch,
      lq, c);
  AeError err;
  double best;

  TIME_BEST (reps, best, ae_attention (&o, &q, &k, &v, NULL, NULL, heads,
          0.0f, arena, &err));
  printf ("attn    B=%lld q=%-5lld k=%-5lld heads=%d d=%-3lld      %8.2f ms "
      "%7.1f GFLOP/s (arena peak %zu KiB)\n", (long long) batch, (long long) lq,
      (long long) lk, heads, (long long) d, best * 1e3,
      4.0 * batch * heads * lq * lk * d / best * 1e-9, arena->peak / 1024);
  free (qd);
  free (kd);
  free (vd);
  free (od);
}

static void
bench_norms (int64_t batch, int64_t ch, int64_t hw, int reps)
{
  int64_t n = batch * ch * hw * hw;
  float *xd = random_buf (n, 12), *yd = random_buf (n, 13);
  float *g = random_buf (ch, 14), *b = random_buf (ch, 15);
  AeTensor x = ae_tensor_4d (xd, batch, ch, hw, hw);
  AeTensor y = ae_tensor_4d (yd, batch, ch, hw, hw);
  AeTensor gt = ae_tensor_1d (g, ch), bt = ae_tensor_1d (b, ch);
  AeTensor x2 = ae_tensor_3d (xd, batch, hw * hw * ch / 2560, 2560);
  AeTensor y2 = ae_tensor_3d (yd, batch, hw * hw * ch / 2560, 1280);
  double best;
  AeError err;

  TIME_BEST (reps, best, ae_group_norm (&y, &x, 32, 1e-5f, &gt, &bt, true,
          &err));
  printf ("gnorm+silu B=%lld C=%lld %lldx%lld               %8.2f ms %7.2f "
      "GB/s\n", (long long) batch, (long long) ch, (long long) hw,
      (long long) hw, best * 1e3, 3.0 * n * 4 / best * 1e-9);
  TIME_BEST (reps, best, ae_geglu (&y2, &x2, &err));
  printf ("geglu   (%lld,%lld,2560)->1280                  %8.2f ms\n",
      (long long) batch, (long long) x2.shape[1], best * 1e3);
  free (xd);
  free (yd);
  free (g);
  free (b);
}

int
main (int argc, char **argv)
{
  int reps = argc > 1 ? atoi (argv[1]) : 3;
  AeArena arena;
  AeError err;
  double peak = 0, g;

  FILE *la = fopen ("/proc/loadavg", "r");
  char load[64] = "?";

  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--cpu-time") == 0)
      use_cpu_time = true;
  if (reps <= 0)
    reps = 3;
  ae_threads_init (0);
  if (la) {
    if (fgets (load, sizeof load, la) == NULL)
      strcpy (load, "?");
    fclose (la);
  }
  /* Figures are wall-clock: a busy machine (load above the core count)
   * depresses them, so say how busy it was. */
  printf ("threads: %d   clock: %s   load average: %s", ae_threads_count (),
      use_cpu_time ? "process CPU time" : "wall", load);
  if (ae_arena_init (&arena, 64u << 20, &err) < 0) {
    fprintf (stderr, "%s\n", err.msg);
    return 1;
  }
  g = bench_sgemm (2048, 2048, 2048, reps);
  peak = g > peak ? g : peak;
  g = bench_sgemm (320, 4096, 2880, reps);
  peak = g > peak ? g : peak;
  g = bench_sgemm (640, 1024, 5760, reps);
  peak = g > peak ? g : peak;
  g = bench_sgemm (8192, 320, 320, reps);
  peak = g > peak ? g : peak;
  printf ("sgemm best: %.1f GFLOP/s\n", peak);

  g = bench_conv (&arena, 2, 320, 320, 64, 3, 1, reps);
  printf ("  -> %.0f%% of sgemm best\n", 100.0 * g / peak);
  bench_conv (&arena, 2, 640, 640, 32, 3, 1, reps);
  bench_conv (&arena, 2, 1280, 1280, 16, 3, 1, reps);
  bench_conv (&arena, 2, 1280, 1280, 8, 3, 1, reps);
  bench_conv (&arena, 2, 320, 320, 64, 3, 2, reps);
  bench_conv (&arena, 2, 320, 320, 64, 1, 1, reps);
  bench_conv (&arena, 2, 4, 320, 64, 3, 1, reps);
  bench_attention (&arena, 2, 4096, 4096, 8, 40, reps);
  bench_attention (&arena, 2, 4096, 77, 8, 40, reps);
  bench_attention (&arena, 2, 1024, 1024, 8, 80, reps);
  /* avatar-default, all-frame attention over a 16-frame window with CFG:
   * 16 x 256 tokens of 96 channels, 16 x 64 tokens of 192 (narrow heads) */
  bench_attention (&arena, 2, 4096, 4096, 8, 12, reps);
  bench_attention (&arena, 2, 1024, 1024, 8, 24, reps);
  bench_norms (2, 320, 64, reps);
  ae_arena_clear (&arena);
  return 0;
}
