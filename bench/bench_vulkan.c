/* Vulkan backend throughput next to the CPU ops: per op the best-of-N
 * time on the Vulkan device (record + one submit + wait, so it includes
 * the submit overhead) and on the CPU, and GFLOP/s for the matrix ops.
 * Prints the device's name and its measured peak (an FMA probe shader).
 * Not a test: figures only.
 *   bench_vulkan [repeats] [--full]
 *   bench_vulkan --unet [DIR] [--batch B] [--latent S] [--ctx L] [repeats]
 *   bench_vulkan --unet --sd15 [--batch B] [--latent S] [repeats]
 * Default op shapes are small enough for lavapipe on 2 cores; --full uses
 * SD 1.5 shapes at 64x64 latents (for a real GPU). --unet times one whole
 * UNet step (one command buffer) on Vulkan and on the CPU backend in the
 * same run: DIR defaults to models/avatar-default/unet (from the source
 * tree, $AVATAR_SOURCE_DIR or the working directory), batch 32 (2 x 16
 * frames: CFG over a 16-frame window), 32x32 latents, 16 context tokens;
 * --sd15 uses a random UNet of the SD 1.5 config instead (3.4 GB of f32
 * weights: for a GPU machine). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "ops.h"
#include "threads.h"
#include "unet.h"
#include "vk-ops.h"
#include "vk-unet.h"

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

/* ---- device peak ---------------------------------------------------- */

/* Best-of-N FLOP/s of peak.comp: 2^20 invocations x 8 FMA chains. */
static double
measure_peak (void)
{
  struct { uint32_t n, iters; float a, b; } push = { 1u << 20, 2048,
    0.999f, 1e-3f
  };
  AeVkBuffer *buf;
  AeVkBuffer *bind[AE_VK_BINDINGS] = { 0 };
  AeError err;
  uint32_t gx, gy;
  double best = 1e30;

  buf = ae_vk_pool_acquire (&ctx, push.n * sizeof (float), &err);
  if (buf == NULL)
    return 0;
  bind[0] = buf;
  ae_vk_grid_1d (push.n, 256, &gx, &gy);
  for (int r = 0; r <= repeats; r++) {
    double t0 = now ();
    if (ae_vk_dispatch (&ctx, AE_VK_OP_PEAK, bind, &push, gx, gy, 1,
            &err) < 0 || ae_vk_submit (&ctx, &err) < 0) {
      fprintf (stderr, "bench_vulkan: peak: %s\n", err.msg);
      return 0;
    }
    if (r > 0 && now () - t0 < best)
      best = now () - t0;
  }
  ae_vk_pool_release (&ctx, buf);
  return 16.0 * push.n * push.iters / best;
}

/* ---- whole UNet step ------------------------------------------------- */

static AeUNetConfig
sd15_config (void)
{
  AeUNetConfig c;
  static const int boc[4] = { 320, 640, 1280, 1280 };

  memset (&c, 0, sizeof c);
  c.in_channels = c.out_channels = 4;
  c.n_levels = 4;
  for (int i = 0; i < 4; i++) {
    c.block_out_channels[i] = boc[i];
    c.heads[i] = 8;
    c.down_types[i] = i < 3 ? AE_BLOCK_CROSS_ATTN_DOWN : AE_BLOCK_DOWN;
    c.up_types[i] = i == 0 ? AE_BLOCK_UP : AE_BLOCK_CROSS_ATTN_UP;
  }
  c.layers_per_block = 2;
  c.transformer_layers_per_block = 1;
  c.cross_attention_dim = 768;
  c.norm_num_groups = 32;
  c.norm_eps = 1e-5f;
  c.flip_sin_to_cos = true;
  c.downsample_padding = 1;
  c.mid_block_scale_factor = c.resnet_out_scale_factor = 1.0f;
  c.time_embed_dim = 4 * boc[0];
  return c;
}

static AeTensor
heap_copy (AeTensor t)
{
  float *d = g_memdup2 (t.data, (gsize) ae_tensor_numel (&t) * sizeof (float));

  t.data = d;
  return t;
}

static int
bench_unet (const char *dir, bool sd15, int64_t batch, int64_t latent,
    int64_t ctx_len, double peak)
{
  AeUNet *u = NULL;
  AeVkUNet *vu = NULL;
  AeError err;
  AeTensor x = { 0 }, c = { 0 }, o_vk = { 0 }, o_cpu = { 0 };
  float t = 500.0f;
  double tv = 1e30, tc = 1e30, macs, max_abs = 0, rel = 0;
  int ret = 1;

  if (sd15) {
    AeUNetConfig cfg = sd15_config ();
    if (ae_unet_new_random (&u, &cfg, 1, &err) < 0)
      goto fail;
  } else if (ae_unet_load (&u, dir, &err) < 0) {
    goto fail;
  }
  if (ae_vk_unet_new (&vu, &ctx, u, &err) < 0)
    goto fail;
  /* Heap copies: the CPU pass resets the arena after every step. */
  x = heap_copy (host_rand (4, D (batch, u->cfg.in_channels, latent,
              latent), 5));
  c = heap_copy (host_rand (3, D (batch, ctx_len,
              u->cfg.cross_attention_dim), 6));
  o_vk = heap_copy (host_rand (4, D (batch, u->cfg.out_channels, latent,
              latent), 7));
  o_cpu = heap_copy (o_vk);
  ae_arena_reset (&arena, NULL);
  macs = ae_unet_macs (u, batch, latent, latent, ctx_len);
  printf ("unet %s: batch %lld, %lldx%lld latents, %lld context tokens, "
      "%.1f GFLOP per step, %.1f MB of weights on the device\n",
      sd15 ? "SD 1.5 config (random weights)" : dir, (long long) batch,
      (long long) latent, (long long) latent, (long long) ctx_len,
      2 * macs * 1e-9, ctx.weight_bytes / 1e6);
  for (int r = 0; r <= repeats; r++) {
    double t0 = now ();
    if (ae_vk_unet_forward (vu, &o_vk, &x, &t, 1, &c, NULL, &err) < 0)
      goto fail;
    if (r > 0 && now () - t0 < tv)
      tv = now () - t0;
  }
  printf ("  vulkan: %9.1f ms per step %8.1f GFLOP/s (%4.1f%% of the "
      "measured peak), %llu dispatches in %llu submit(s)\n", tv * 1e3,
      2 * macs / tv * 1e-9, peak > 0 ? 100.0 * 2 * macs / tv / peak : 0.0,
      (unsigned long long) ae_vk_unet_last_dispatches (vu),
      (unsigned long long) ae_vk_unet_last_submits (vu));
  fflush (stdout);
  for (int r = 0; r <= repeats; r++) {
    double t0 = now ();
    if (ae_unet_forward (u, &o_cpu, &x, &t, 1, &c, NULL, &arena, &err) < 0
        || ae_arena_reset (&arena, &err) < 0)
      goto fail;
    if (r > 0 && now () - t0 < tc)
      tc = now () - t0;
  }
  ae_compare (&o_vk, &o_cpu, &max_abs, &rel, &err);
  printf ("  cpu:    %9.1f ms per step %8.1f GFLOP/s (%d threads)\n",
      tc * 1e3, 2 * macs / tc * 1e-9, ae_threads_count ());
  printf ("  vulkan / cpu time: %.2f; outputs max abs %.2e, rel L2 %.2e\n",
      tv / tc, max_abs, rel);
  ret = 0;
  goto done;
fail:
  fprintf (stderr, "bench_vulkan: unet: %s\n", err.msg);
done:
  g_free (x.data);
  g_free (c.data);
  g_free (o_vk.data);
  g_free (o_cpu.data);
  ae_vk_unet_free (vu);
  ae_unet_free (u);
  return ret;
}

int
main (int argc, char **argv)
{
  AeError err;
  bool full = false, unet = false, sd15 = false;
  const char *unet_dir = NULL;
  int64_t batch = 32, latent = 32, ctx_len = 16;
  char *default_dir = NULL;
  double peak;
  int ret = 0;

  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp (argv[i], "--full") == 0)
      full = true;
    else if (strcmp (argv[i], "--unet") == 0) {
      unet = true;
      if (v && v[0] != '-' && !g_ascii_isdigit (v[0]))
        unet_dir = argv[++i];
    } else if (strcmp (argv[i], "--sd15") == 0)
      sd15 = unet = true;
    else if (strcmp (argv[i], "--batch") == 0 && v)
      batch = atoi (argv[++i]);
    else if (strcmp (argv[i], "--latent") == 0 && v)
      latent = atoi (argv[++i]);
    else if (strcmp (argv[i], "--ctx") == 0 && v)
      ctx_len = atoi (argv[++i]);
    else
      repeats = atoi (argv[i]) > 0 ? atoi (argv[i]) : repeats;
  }
  if (batch < 1 || latent < 1 || ctx_len < 1) {
    fprintf (stderr, "bench_vulkan: --batch, --latent and --ctx must be "
        ">= 1\n");
    return 2;
  }
  if (ae_vk_context_init (&ctx, &err) < 0) {
    fprintf (stderr, "bench_vulkan: %s\n", err.msg);
    ae_vk_context_free (&ctx);
    return 1;
  }
  ae_arena_init (&arena, 0, &err);
  ae_threads_init (0);
  peak = measure_peak ();
  printf ("device: %s (%s), measured peak %.1f GFLOP/s (FMA probe), best "
      "of %d\n", ae_vk_device_name (&ctx), ae_vk_device_type_name (&ctx),
      peak * 1e-9, repeats);
  if (unet) {
    if (unet_dir == NULL && !sd15) {
      const char *src = g_getenv ("AVATAR_SOURCE_DIR");
      default_dir = g_build_filename (src ? src : ".", "models",
          "avatar-default", "unet", NULL);
      unet_dir = default_dir;
    }
    ret = bench_unet (unet_dir, sd15, batch, latent, ctx_len, peak);
    g_free (default_dir);
  } else if (full) {
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
  return ret;
}
