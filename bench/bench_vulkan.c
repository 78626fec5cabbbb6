/* Vulkan backend throughput next to the CPU ops: per op the best-of-N
 * time on the Vulkan device (record + one submit + wait, so it includes
 * the submit overhead) and on the CPU, and GFLOP/s for the matrix ops.
 * Prints the device's name. Not a test: figures only.
 *   bench_vulkan [repeats] [--full]
 * Default shapes are small enough for lavapipe on 2 cores; --full uses
 * SD 1.5 shapes at 64x64 latents (for a real GPU). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops.h"
#include "vk-ops.h"

static AeVkContext ctx;
static AeArena arena;
static int repeats = 3;

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static AeTensor
host_rand (int ndim, const int64_t *shape, unsigned seed)
{
  AeTensor t;
  AeError err;

  if (ae_arena_tensor (&arena, &t, ndim, shape, &err) < 0) {
    fprintf (stderr, "bench_vulkan: %s\n", err.msg);
    exit (1);
  }
  for (int64_t i = 0; i < ae_tensor_numel (&t); i++) {
    seed = seed * 1664525u + 1013904223u;
    t.data[i] = (float) (seed >> 8) / 16777216.0f - 0.5f;
  }
  return t;
}

static AeVkTensor
dev_of (const AeTensor *h)
{
  AeError err;
  size_t n = (size_t) ae_tensor_numel (h);
  AeVkBuffer *b = ae_vk_pool_acquire (&ctx, n * sizeof (float), &err);

  if (!b || ae_vk_upload (b, h->data, n, &err) < 0) {
    fprintf (stderr, "bench_vulkan: %s\n", err.msg);
    exit (1);
  }
  return ae_vk_tensor_like (b, h);
}

/* One op, two ways; each callback runs the op once (Vulkan: records and
 * submits). Returns -1 on error. */
typedef int (*RunFn) (void *args, AeError * err);

static double
best_time (RunFn fn, void *args)
{
  AeError err;
  double best = 1e30;

  for (int r = 0; r <= repeats; r++) {  /* r == 0 warms up (pipelines) */
    double t0 = now ();
    if (fn (args, &err) < 0) {
      fprintf (stderr, "bench_vulkan: %s\n", err.msg);
      return -1;
    }
    double t = now () - t0;
    if (r > 0 && t < best)
      best = t;
  }
  return best;
}

static void
report (const char *name, double flops, RunFn vk, RunFn cpu, void *args)
{
  double tv = best_time (vk, args), tc = best_time (cpu, args);

  if (flops > 0)
    printf ("%-34s vulkan %8.2f ms %7.1f GFLOP/s | cpu %8.2f ms %7.1f "
        "GFLOP/s\n", name, tv * 1e3, flops / tv * 1e-9, tc * 1e3,
        flops / tc * 1e-9);
  else
    printf ("%-34s vulkan %8.2f ms                 | cpu %8.2f ms\n", name,
        tv * 1e3, tc * 1e3);
}

/* ---- cases ---------------------------------------------------------- */

typedef struct {
  AeTensor x, w, b, y, g, beta, k, v;
  AeVkTensor dx, dw, db, dy, dg, dbeta, dk, dv;
  int stride, pad, groups, heads;
} Args;

static int
vk_linear (void *p, AeError *err)
{
  Args *a = p;
  return ae_vk_linear (&ctx, &a->dy, &a->dx, &a->dw, &a->db, err) < 0 ? -1 :
      ae_vk_submit (&ctx, err);
}

static int
cpu_linear (void *p, AeError *err)
{
  Args *a = p;
  return ae_linear (&a->y, &a->x, &a->w, &a->b, err);
}

static int
vk_conv (void *p, AeError *err)
{
  Args *a = p;
  return ae_vk_conv2d (&ctx, &a->dy, &a->dx, &a->dw, &a->db, a->stride,
      a->pad, err) < 0 ? -1 : ae_vk_submit (&ctx, err);
}

static int
cpu_conv (void *p, AeError *err)
{
  Args *a = p;
  return ae_conv2d (&a->y, &a->x, &a->w, &a->b, a->stride, a->pad, &arena,
      err);
}

static int
vk_attn (void *p, AeError *err)
{
  Args *a = p;
  return ae_vk_attention (&ctx, &a->dy, &a->dx, &a->dk, &a->dv, NULL, NULL,
      a->heads, 0, err) < 0 ? -1 : ae_vk_submit (&ctx, err);
}

static int
cpu_attn (void *p, AeError *err)
{
  Args *a = p;
  return ae_attention (&a->y, &a->x, &a->k, &a->v, NULL, NULL, a->heads, 0,
      &arena, err);
}

static int
vk_gn (void *p, AeError *err)
{
  Args *a = p;
  return ae_vk_group_norm (&ctx, &a->dy, &a->dx, a->groups, 1e-5f, &a->dg,
      &a->dbeta, true, err) < 0 ? -1 : ae_vk_submit (&ctx, err);
}

static int
cpu_gn (void *p, AeError *err)
{
  Args *a = p;
  return ae_group_norm (&a->y, &a->x, a->groups, 1e-5f, &a->g, &a->beta,
      true, err);
}

static int
vk_silu (void *p, AeError *err)
{
  Args *a = p;
  return ae_vk_silu (&ctx, &a->dy, &a->dx, err) < 0 ? -1 :
      ae_vk_submit (&ctx, err);
}

static int
cpu_silu (void *p, AeError *err)
{
  Args *a = p;
  return ae_silu (&a->y, &a->x, err);
}

static void
release (Args *a)
{
  AeVkTensor *ts[] = { &a->dx, &a->dw, &a->db, &a->dy, &a->dg, &a->dbeta,
    &a->dk, &a->dv
  };
  for (size_t i = 0; i < sizeof (ts) / sizeof (ts[0]); i++)
    if (ts[i]->buf)
      ae_vk_pool_release (&ctx, ts[i]->buf);
  ae_arena_reset (&arena, NULL);
}

#define D(...) (int64_t[]) { __VA_ARGS__ }

static void
bench_linear (int64_t m, int64_t k, int64_t n)
{
  Args a = { 0 };
  char name[64];

  a.x = host_rand (2, D (m, k), 1);
  a.w = host_rand (2, D (n, k), 2);
  a.b = host_rand (1, D (n), 3);
  a.y = host_rand (2, D (m, n), 4);
  a.dx = dev_of (&a.x);
  a.dw = dev_of (&a.w);
  a.db = dev_of (&a.b);
  a.dy = dev_of (&a.y);
  snprintf (name, sizeof (name), "matmul %lldx%lldx%lld", (long long) m,
      (long long) k, (long long) n);
  report (name, 2.0 * m * n * k, vk_linear, cpu_linear, &a);
  release (&a);
}

static void
bench_conv (int64_t bn, int64_t c, int64_t hw, int64_t cout)
{
  Args a = { 0 };
  char name[64];

  a.stride = 1;
  a.pad = 1;
  a.x = host_rand (4, D (bn, c, hw, hw), 1);
  a.w = host_rand (4, D (cout, c, 3, 3), 2);
  a.b = host_rand (1, D (cout), 3);
  a.y = host_rand (4, D (bn, cout, hw, hw), 4);
  a.dx = dev_of (&a.x);
  a.dw = dev_of (&a.w);
  a.db = dev_of (&a.b);
  a.dy = dev_of (&a.y);
  snprintf (name, sizeof (name), "conv3x3 (%lld,%lld,%lld,%lld)->%lld",
      (long long) bn, (long long) c, (long long) hw, (long long) hw,
      (long long) cout);
  report (name, 2.0 * bn * cout * hw * hw * c * 9, vk_conv, cpu_conv, &a);
  release (&a);
}

static void
bench_attn (int64_t bn, int64_t l, int heads, int64_t d)
{
  Args a = { 0 };
  char name[64];

  a.heads = heads;
  a.x = host_rand (3, D (bn, l, heads * d), 1);
  a.k = host_rand (3, D (bn, l, heads * d), 2);
  a.v = host_rand (3, D (bn, l, heads * d), 3);
  a.y = host_rand (3, D (bn, l, heads * d), 4);
  a.dx = dev_of (&a.x);
  a.dk = dev_of (&a.k);
  a.dv = dev_of (&a.v);
  a.dy = dev_of (&a.y);
  snprintf (name, sizeof (name), "attention B%lld L%lld h%d d%lld",
      (long long) bn, (long long) l, heads, (long long) d);
  report (name, 4.0 * bn * heads * l * l * d, vk_attn, cpu_attn, &a);
  release (&a);
}

static void
bench_norm_silu (int64_t bn, int64_t c, int64_t hw)
{
  Args a = { 0 };
  char name[64];

  a.groups = 32;
  a.x = host_rand (4, D (bn, c, hw, hw), 1);
  a.y = host_rand (4, D (bn, c, hw, hw), 2);
  a.g = host_rand (1, D (c), 3);
  a.beta = host_rand (1, D (c), 4);
  a.dx = dev_of (&a.x);
  a.dy = dev_of (&a.y);
  a.dg = dev_of (&a.g);
  a.dbeta = dev_of (&a.beta);
  snprintf (name, sizeof (name), "group_norm+silu (%lld,%lld,%lld,%lld)",
      (long long) bn, (long long) c, (long long) hw, (long long) hw);
  report (name, 0, vk_gn, cpu_gn, &a);
  snprintf (name, sizeof (name), "silu %lld floats",
      (long long) (bn * c * hw * hw));
  report (name, 0, vk_silu, cpu_silu, &a);
  release (&a);
}

int
main (int argc, char **argv)
{
  AeError err;
  bool full = false;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--full") == 0)
      full = true;
    else
      repeats = atoi (argv[i]) > 0 ? atoi (argv[i]) : repeats;
  }
  if (ae_vk_context_init (&ctx, &err) < 0) {
    fprintf (stderr, "bench_vulkan: %s\n", err.msg);
    ae_vk_context_free (&ctx);
    return 1;
  }
  ae_arena_init (&arena, 0, &err);
  printf ("device: %s (%s), best of %d\n", ae_vk_device_name (&ctx),
      ae_vk_device_type_name (&ctx), repeats);
  if (full) {
    /* SD 1.5 at 64x64 latents, batch 2 (classifier-free guidance) */
    bench_linear (2 * 4096, 320, 2560);
    bench_linear (2 * 1024, 640, 640);
    bench_conv (2, 320, 64, 320);
    bench_conv (2, 640, 32, 640);
    bench_attn (2, 4096, 8, 40);
    bench_attn (2, 1024, 8, 80);
    bench_norm_silu (2, 320, 64);
  } else {
    bench_linear (256, 320, 640);
    bench_linear (1024, 320, 1280);
    bench_conv (1, 64, 32, 64);
    bench_conv (1, 128, 16, 128);
    bench_attn (1, 256, 8, 40);
    bench_attn (1, 1024, 8, 40);
    bench_norm_silu (1, 320, 32);
  }
  ae_arena_clear (&arena);
  ae_vk_context_free (&ctx);
  return 0;
}
