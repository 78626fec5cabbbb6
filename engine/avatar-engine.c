/* avatar-engine: run engine components on safetensors files, sample with
 * a scheduler, compare tensors. Usage in docs/engine.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "avatar-engine.h"
#include "tool-render.h"
#include "backend.h"

typedef struct {
  const char *component;
  const char *model, *in, *out;
  const char *unet, *vae, *scheduler_config;
  const char *device;
  int repeat, warmup, threads, steps;
  double guidance;
  bool acts;
} Args;

static int
usage (void)
{
  fprintf (stderr,
      "usage:\n"
      "  avatar-engine run unet|vae-encode|vae-decode|pose-guider --model DIR "
      "--in IN.safetensors --out OUT.safetensors\n"
      "      [--repeat N] [--warmup N] [--threads N] [--device cpu|vulkan|auto]\n"
      "      [--acts]\n"
      "  avatar-engine sample --unet DIR --vae DIR --scheduler-config FILE "
      "--steps N --guidance G --in IN --out OUT [--threads N]\n"
      "      [--device cpu|vulkan|auto]\n"
      "  avatar-engine compare A.safetensors B.safetensors\n"
      AE_TOOL_RENDER_USAGE);
  return 2;
}

static int
parse_int (const char *opt, const char *s, int *out)
{
  char *end;
  long v = strtol (s, &end, 10);

  if (*s == '\0' || *end != '\0' || v < 0 || v > 1000000) {
    fprintf (stderr, "avatar-engine: %s: not a valid number '%s'\n", opt, s);
    return -1;
  }
  *out = (int) v;
  return 0;
}

static int
parse_args (Args * a, int argc, char **argv, int first)
{
  memset (a, 0, sizeof *a);
  a->repeat = 0;
  a->device = "cpu";
  a->guidance = 1.0;
  for (int i = first; i < argc; i++) {
    const char *o = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool takes = strcmp (o, "--acts") != 0;
    if (takes && v == NULL) {
      fprintf (stderr, "avatar-engine: %s needs a value\n", o);
      return -1;
    }
    if (strcmp (o, "--model") == 0)
      a->model = v;
    else if (strcmp (o, "--in") == 0)
      a->in = v;
    else if (strcmp (o, "--out") == 0)
      a->out = v;
    else if (strcmp (o, "--unet") == 0)
      a->unet = v;
    else if (strcmp (o, "--vae") == 0)
      a->vae = v;
    else if (strcmp (o, "--scheduler-config") == 0)
      a->scheduler_config = v;
    else if (strcmp (o, "--device") == 0)
      a->device = v;
    else if (strcmp (o, "--repeat") == 0) {
      if (parse_int (o, v, &a->repeat) < 0)
        return -1;
    } else if (strcmp (o, "--warmup") == 0) {
      if (parse_int (o, v, &a->warmup) < 0)
        return -1;
    } else if (strcmp (o, "--threads") == 0) {
      if (parse_int (o, v, &a->threads) < 0)
        return -1;
    } else if (strcmp (o, "--steps") == 0) {
      if (parse_int (o, v, &a->steps) < 0)
        return -1;
    } else if (strcmp (o, "--guidance") == 0) {
      char *end;
      a->guidance = strtod (v, &end);
      if (*end != '\0') {
        fprintf (stderr, "avatar-engine: --guidance: not a number '%s'\n", v);
        return -1;
      }
    } else if (strcmp (o, "--acts") == 0) {
      a->acts = true;
      continue;
    } else {
      fprintf (stderr, "avatar-engine: unknown option '%s'\n", o);
      return -1;
    }
    i++;
  }
  return 0;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Reads a tensor of the input file as float32 (any dtype), heap copy. */
static int
read_input (AeSafetensors * st, const char *name, AeTensor * t,
    AeError * err)
{
  const AeStTensorInfo *info = ae_st_find (st, name);
  int64_t n;

  if (info == NULL)
    return ae_error (err, "%s: missing tensor '%s'", ae_st_path (st), name);
  *t = ae_tensor_nd (NULL, info->ndim, info->shape);
  n = ae_tensor_numel (t);
  t->data = g_new (float, n > 0 ? n : 1);
  if (ae_st_read_f32 (st, name, t->data, n, err) < 0) {
    g_free (t->data);
    t->data = NULL;
    return -1;
  }
  return 0;
}

/* --acts: every captured activation is written as act.<name>. */
typedef struct {
  AeStWriter *w;
  int failures;
} ActSink;

static void
act_sink (void *user, const char *name, const AeTensor * t)
{
  ActSink *s = user;
  AeError err;
  char key[300];

  snprintf (key, sizeof key, "act.%s", name);
  if (ae_st_writer_add (s->w, key, t, &err) < 0) {
    fprintf (stderr, "avatar-engine: %s\n", err.msg);
    s->failures++;
  }
}

static int
run_unet (const Args * a, AeBackend * be, AeError * err)
{
  AeUNet *u = NULL;
  AeBackendUNet *bu = NULL;
  AeSafetensors *in = NULL;
  AeTensor sample = { 0 }, ts = { 0 }, ctx = { 0 }, out = { 0 };
  AeArena arena;
  AeStWriter *w = ae_st_writer_new ();
  ActSink sink = { w, 0 };
  AeUNetHooks hooks = { 0 };
  int ret = -1, n_calls = a->repeat > 0 ? a->repeat : 1;
  double *times = g_new0 (double, n_calls);

  ae_arena_init (&arena, 0, NULL);
  if (ae_unet_load (&u, a->model, err) < 0 ||
      ae_backend_unet_new (&bu, be, u, err) < 0 ||
      ae_st_open (&in, a->in, err) < 0 ||
      read_input (in, "sample", &sample, err) < 0 ||
      read_input (in, "timestep", &ts, err) < 0 ||
      read_input (in, "encoder_hidden_states", &ctx, err) < 0)
    goto done;
  out = sample;
  out.shape[1] = u->cfg.out_channels;
  out.data = g_new (float, ae_tensor_numel (&out));
  hooks.act_fn = act_sink;
  hooks.act_user = &sink;
  /* --warmup calls are not timed: the first call sizes the arena and
   * faults its pages in, which later calls never pay again. */
  for (int i = 0; i < a->warmup + n_calls; i++) {
    /* Activations only on the first call (they are copied). */
    double t0 = ae_seconds ();
    if (ae_backend_unet_forward (bu, &out, &sample, ts.data,
            (int) ae_tensor_numel (&ts), &ctx,
            a->acts && i == 0 ? &hooks : NULL, &arena, err) < 0)
      goto done;
    if (i >= a->warmup)
      times[i - a->warmup] = ae_seconds () - t0;
    if (ae_arena_reset (&arena, err) < 0)
      goto done;
  }
  if (a->repeat > 0) {
    qsort (times, n_calls, sizeof (double), cmp_double);
    printf ("time_per_call_s: %.6f\n", n_calls % 2 ? times[n_calls / 2] :
        0.5 * (times[n_calls / 2 - 1] + times[n_calls / 2]));
  }
  if (sink.failures == 0 && ae_st_writer_add (w, "sample", &out, err) == 0 &&
      ae_st_writer_save (w, a->out, err) == 0)
    ret = 0;
done:
  g_free (times);
  g_free (sample.data);
  g_free (ts.data);
  g_free (ctx.data);
  g_free (out.data);
  ae_st_writer_free (w);
  ae_st_close (in);
  ae_backend_unet_free (bu);
  ae_unet_free (u);
  ae_arena_clear (&arena);
  return ret;
}

static void
vae_act_sink (void *user, const char *name, const AeTensor * t)
{
  act_sink (user, name, t);
}

/* vae-encode: sample (B, 3, H, W) in [-1, 1] -> mean, logvar;
 * vae-decode: latent (already / scaling_factor) -> sample. */
static int
run_vae (const Args * a, bool encode, AeBackend * be, AeError * err)
{
  AeVae *v = NULL;
  AeBackendVae *bv = NULL;
  AeSafetensors *in = NULL;
  AeTensor x = { 0 }, y = { 0 }, lv = { 0 };
  AeArena arena;
  AeStWriter *w = ae_st_writer_new ();
  ActSink sink = { w, 0 };
  int ret = -1, n_calls = a->repeat > 0 ? a->repeat : 1;
  double *times = g_new0 (double, n_calls);

  ae_arena_init (&arena, 0, NULL);
  if (ae_vae_load (&v, a->model, err) < 0 ||
      ae_backend_vae_new (&bv, be, v, err) < 0 ||
      ae_st_open (&in, a->in, err) < 0 || read_input (in, encode ? "sample" : "latent", &x, err) < 0)
    goto done;
  if (x.ndim != 4) {
    ae_error (err, "%s: tensor '%s': expected 4 dims (B,C,H,W)", a->in,
        encode ? "sample" : "latent");
    goto done;
  }
  {
    const AeVaeConfig *c = ae_vae_config (v);
    int f = ae_vae_downscale (v);
    if (encode)
      y = ae_tensor_4d (NULL, x.shape[0], c->latent_channels,
          x.shape[2] / f, x.shape[3] / f);
    else
      y = ae_tensor_4d (NULL, x.shape[0], c->out_channels, x.shape[2] * f,
          x.shape[3] * f);
  }
  y.data = g_new (float, ae_tensor_numel (&y));
  lv = y;
  lv.data = encode ? g_new (float, ae_tensor_numel (&y)) : NULL;
  for (int i = 0; i < a->warmup + n_calls; i++) {
    double t0 = ae_seconds ();
    AeVaeActFn fn = a->acts && i == 0 ? vae_act_sink : NULL;
    int rc = encode ?
        ae_backend_vae_encode (bv, &x, &y, &lv, fn, &sink, &arena, err) :
        ae_backend_vae_decode (bv, &x, &y, fn, &sink, &arena, err);
    if (rc < 0 || ae_arena_reset (&arena, err) < 0)
      goto done;
    if (i >= a->warmup)
      times[i - a->warmup] = ae_seconds () - t0;
  }
  if (a->repeat > 0) {
    qsort (times, n_calls, sizeof (double), cmp_double);
    printf ("time_per_call_s: %.6f\n", n_calls % 2 ? times[n_calls / 2] :
        0.5 * (times[n_calls / 2 - 1] + times[n_calls / 2]));
  }
  if (sink.failures == 0 &&
      ae_st_writer_add (w, encode ? "mean" : "sample", &y, err) == 0 &&
      (!encode || ae_st_writer_add (w, "logvar", &lv, err) == 0) &&
      ae_st_writer_save (w, a->out, err) == 0)
    ret = 0;
done:
  g_free (times);
  g_free (x.data);
  g_free (y.data);
  g_free (lv.data);
  ae_st_writer_free (w);
  ae_st_close (in);
  ae_backend_vae_free (bv);
  ae_vae_free (v);
  ae_arena_clear (&arena);
  return ret;
}

/* image = vae.decode(latent / scaling_factor) into the writer. */
static int
decode_image (const char *dir, const AeTensor * latent, AeStWriter * w,
    AeBackend * be, AeError * err)
{
  AeVae *v = NULL;
  AeBackendVae *bv = NULL;
  AeArena arena;
  AeTensor z = *latent, img = { 0 };
  int ret = -1;
  int64_t n = ae_tensor_numel (latent);

  ae_arena_init (&arena, 0, NULL);
  z.data = g_new (float, n);
  if (ae_vae_load (&v, dir, err) < 0 ||
      ae_backend_vae_new (&bv, be, v, err) < 0)
    goto done;
  for (int64_t i = 0; i < n; i++)
    z.data[i] = latent->data[i] / ae_vae_scaling_factor (v);
  {
    int f = ae_vae_downscale (v);
    img = ae_tensor_4d (NULL, z.shape[0], ae_vae_config (v)->out_channels,
        z.shape[2] * f, z.shape[3] * f);
  }
  img.data = g_new (float, ae_tensor_numel (&img));
  if (ae_backend_vae_decode (bv, &z, &img, NULL, NULL, &arena, err) == 0 &&
      ae_st_writer_add (w, "image", &img, err) == 0)
    ret = 0;
done:
  g_free (z.data);
  g_free (img.data);
  ae_backend_vae_free (bv);
  ae_vae_free (v);
  ae_arena_clear (&arena);
  return ret;
}

/* pose-guider: input `pose` (B, conditioning_channels, H, W); output
 * `sample` (the residual added after the UNet's conv_in). */
static int
run_pose_guider (const Args * a, AeError * err)
{
  AePoseGuider *g = NULL;
  AeSafetensors *in = NULL;
  AeTensor x = { 0 }, y = { 0 };
  AeArena arena;
  AeStWriter *w = ae_st_writer_new ();
  int ret = -1;

  ae_arena_init (&arena, 0, NULL);
  if (ae_pose_guider_load (&g, a->model, err) < 0 ||
      ae_st_open (&in, a->in, err) < 0 ||
      read_input (in, "pose", &x, err) < 0)
    goto done;
  if (x.ndim != 4) {
    ae_error (err, "%s: tensor 'pose': expected 4 dims (B,C,H,W)", a->in);
    goto done;
  }
  y = ae_tensor_4d (NULL, x.shape[0],
      g->cfg.conditioning_embedding_channels, 1, 1);
  ae_pose_guider_out_size (g, x.shape[2], x.shape[3], &y.shape[2],
      &y.shape[3]);
  y.data = g_new (float, ae_tensor_numel (&y));
  if (ae_pose_guider_forward (g, &y, &x, &arena, err) == 0 &&
      ae_st_writer_add (w, "sample", &y, err) == 0 &&
      ae_st_writer_save (w, a->out, err) == 0)
    ret = 0;
done:
  g_free (x.data);
  g_free (y.data);
  ae_st_writer_free (w);
  ae_st_close (in);
  ae_pose_guider_free (g);
  ae_arena_clear (&arena);
  return ret;
}

/* --device: opens the backend; `auto` says on stderr when it fell back to
 * the CPU and why. */
static int
open_backend (AeDevice dev, AeBackend ** be)
{
  AeError err = { {0} };

  if (ae_backend_open (be, dev, &err) < 0) {
    fprintf (stderr, "avatar-engine: --device %s: %s\n",
        ae_device_name (dev), err.msg);
    return -1;
  }
  if (dev != AE_DEVICE_CPU)
    fprintf (stderr, "avatar-engine: device %s%s%s\n",
        ae_backend_describe (*be), *ae_backend_note (*be) ? " -- " : "",
        ae_backend_note (*be));
  return 0;
}

static int
cmd_run (int argc, char **argv)
{
  Args a;
  AeError err = { {0} };
  AeDevice dev;
  AeBackend *be = NULL;
  int ret;

  if (argc < 3 || parse_args (&a, argc, argv, 3) < 0)
    return usage ();
  a.component = argv[2];
  if (ae_device_parse (a.device, &dev, &err) < 0) {
    fprintf (stderr, "avatar-engine: --device: %s\n", err.msg);
    return 2;
  }
  if (a.model == NULL || a.in == NULL || a.out == NULL) {
    fprintf (stderr, "avatar-engine: run needs --model, --in and --out\n");
    return 2;
  }
  if (strcmp (a.component, "pose-guider") == 0 && dev == AE_DEVICE_VULKAN) {
    fprintf (stderr, "avatar-engine: --device vulkan: the pose guider runs "
        "on the CPU only (use --device cpu or auto)\n");
    return 1;
  }
  ae_threads_init (a.threads);
  if (open_backend (dev, &be) < 0)
    return 1;
  if (strcmp (a.component, "unet") == 0) {
    ret = run_unet (&a, be, &err);
  } else if (strcmp (a.component, "pose-guider") == 0) {
    ret = run_pose_guider (&a, &err);
  } else if (strcmp (a.component, "vae-encode") == 0 ||
      strcmp (a.component, "vae-decode") == 0) {
    ret = run_vae (&a, strcmp (a.component, "vae-encode") == 0, be, &err);
  } else {
    fprintf (stderr, "avatar-engine: run: unknown component '%s' (unet, "
        "vae-encode, vae-decode, pose-guider)\n", a.component);
    ae_backend_free (be);
    return 2;
  }
  ae_backend_free (be);
  if (ret < 0) {
    fprintf (stderr, "avatar-engine: %s\n", err.msg);
    return 1;
  }
  return 0;
}

/* Per tensor of A also present in B: max abs error and rel L2 (B is the
 * reference). Exit 1 when a tensor is missing or shapes differ. */
static int
cmd_compare (int argc, char **argv)
{
  AeSafetensors *a = NULL, *b = NULL;
  AeError err;
  int bad = 0;

  if (argc != 4)
    return usage ();
  if (ae_st_open (&a, argv[2], &err) < 0 || ae_st_open (&b, argv[3],
          &err) < 0) {
    fprintf (stderr, "avatar-engine: %s\n", err.msg);
    ae_st_close (a);
    return 1;
  }
  for (int i = 0; i < ae_st_count (a); i++) {
    const AeStTensorInfo *ia = ae_st_info_at (a, i);
    AeTensor ta, tb;
    double ma, rl;
    if (ae_st_find (b, ia->name) == NULL) {
      printf ("%-60s missing in %s\n", ia->name, argv[3]);
      bad = 1;
      continue;
    }
    if (read_input (a, ia->name, &ta, &err) < 0 ||
        read_input (b, ia->name, &tb, &err) < 0) {
      fprintf (stderr, "avatar-engine: %s\n", err.msg);
      ae_st_close (a);
      ae_st_close (b);
      return 1;
    }
    if (!ae_tensor_same_shape (&ta, &tb)) {
      char sa[64], sb[64];
      printf ("%-60s shape %s vs %s\n", ia->name,
          ae_shape_str (ta.ndim, ta.shape, sa, sizeof sa),
          ae_shape_str (tb.ndim, tb.shape, sb, sizeof sb));
      bad = 1;
    } else if (ae_compare (&ta, &tb, &ma, &rl, &err) == 0) {
      printf ("%-60s max_abs %.3e rel_l2 %.3e\n", ia->name, ma, rl);
    }
    g_free (ta.data);
    g_free (tb.data);
  }
  ae_st_close (a);
  ae_st_close (b);
  return bad;
}

/* ---- sample --------------------------------------------------------------- */

typedef struct {
  AeUNet *u;
  AeBackendUNet *bu;            /* u on the --device backend */
  AeArena arena;
  AeTensor ctx;                 /* (2 or 1, L, D): uncond half first */
  AeTensor x2, out2;            /* batched model input / output */
  AeStWriter *w;                /* per-step tensors */
  int64_t n;                    /* latent floats of one sample */
  int64_t shape[4];             /* latent shape (1, C, H, W) */
} SampleCtx;

/* The UNet on [x_in, x_in] (CFG) or x_in; eps gets the raw predictions
 * (uncond first), which the sampler combines. */
static int
sample_eps (void *user, int step, float t, const float *x_in, int cfg,
    float *eps, AeError * err)
{
  SampleCtx *c = user;
  int64_t b = cfg ? 2 : 1;
  AeTensor x = ae_tensor_4d (c->x2.data, b, c->shape[1], c->shape[2],
      c->shape[3]);
  AeTensor o = ae_tensor_4d (eps, b, c->shape[1], c->shape[2], c->shape[3]);
  AeTensor ctx = c->ctx;
  char key[64];

  for (int64_t i = 0; i < b; i++)
    memcpy (x.data + i * c->n, x_in, c->n * sizeof (float));
  if (!cfg) {
    /* Conditional half only. */
    ctx.shape[0] = 1;
    if (c->ctx.shape[0] == 2)
      ctx.data += ae_tensor_numel (&c->ctx) / 2;
  }
  if (ae_backend_unet_forward (c->bu, &o, &x, &t, 1, &ctx, NULL, &c->arena,
          err) < 0 || ae_arena_reset (&c->arena, err) < 0)
    return -1;
  snprintf (key, sizeof key, "step%02d.unet_out", step);
  return ae_st_writer_add (c->w, key, &o, err);
}

static int
sample_hook (void *user, int step, float *latents, size_t n, AeError * err)
{
  SampleCtx *c = user;
  AeTensor l = ae_tensor_nd (latents, 4, c->shape);
  char key[64];

  (void) n;
  snprintf (key, sizeof key, "step%02d.latents", step);
  return ae_st_writer_add (c->w, key, &l, err);
}

static int
sample_run (const Args * a, AeBackend * be, AeError * err)
{
  SampleCtx c;
  AeScheduler *s = NULL;
  AeSafetensors *in = NULL;
  AeTensor noise = { 0 };
  AeSampleParams p = { 0 };
  float *scratch = NULL, *eps_buf = NULL;
  int ret = -1;

  memset (&c, 0, sizeof c);
  c.w = ae_st_writer_new ();
  ae_arena_init (&c.arena, 0, NULL);
  if (ae_unet_load (&c.u, a->unet, err) < 0 ||
      ae_backend_unet_new (&c.bu, be, c.u, err) < 0 ||
      ae_scheduler_load (&s, a->scheduler_config, NULL, err) < 0 ||
      ae_scheduler_set_timesteps (s, a->steps, err) < 0 ||
      ae_st_open (&in, a->in, err) < 0 ||
      read_input (in, "noise_init", &noise, err) < 0 ||
      read_input (in, "encoder_hidden_states", &c.ctx, err) < 0)
    goto done;
  if (noise.ndim != 4 || noise.shape[0] != 1) {
    ae_error (err, "%s: tensor 'noise_init': expected (1,C,H,W)", a->in);
    goto done;
  }
  if (noise.shape[1] != c.u->cfg.in_channels) {
    /* a reference-concat UNet takes [z_t, reference latent]: only `render`
     * has the reference */
    ae_error (err, "%s: tensor 'noise_init': %lld channels, but the UNet of "
        "%s takes in_channels %d%s", a->in, (long long) noise.shape[1],
        a->unet, c.u->cfg.in_channels,
        c.u->cfg.in_channels == 2 * c.u->cfg.out_channels ?
        " (a reference-concat UNet: use `avatar-engine render`, which gives "
        "it the reference latent)" : "");
    goto done;
  }
  if (a->guidance > 1.0 && c.ctx.shape[0] != 2) {
    ae_error (err, "%s: tensor 'encoder_hidden_states': guidance %.3g needs "
        "2 entries (uncond, cond), found %lld", a->in, a->guidance,
        (long long) c.ctx.shape[0]);
    goto done;
  }
  memcpy (c.shape, noise.shape, sizeof c.shape);
  c.n = ae_tensor_numel (&noise);
  c.x2 = noise;
  c.x2.data = eps_buf = g_new (float, 2 * c.n);
  scratch = g_new (float, ae_sample_scratch_floats (c.n));
  p.guidance_scale = (float) a->guidance;
  p.eps_fn = sample_eps;
  p.step_hook = sample_hook;
  p.user = &c;
  if (ae_sample (s, &p, noise.data, c.n, scratch, err) < 0 ||
      ae_st_writer_add (c.w, "latent", &noise, err) < 0)
    goto done;
  if (a->vae != NULL && decode_image (a->vae, &noise, c.w, be, err) < 0)
    goto done;
  ret = ae_st_writer_save (c.w, a->out, err);
done:
  g_free (scratch);
  g_free (eps_buf);
  g_free (noise.data);
  g_free (c.ctx.data);
  ae_st_close (in);
  ae_scheduler_free (s);
  ae_backend_unet_free (c.bu);
  ae_unet_free (c.u);
  ae_arena_clear (&c.arena);
  ae_st_writer_free (c.w);
  return ret;
}

static int
cmd_sample (int argc, char **argv)
{
  Args a;
  AeError err = { {0} };
  AeDevice dev;
  AeBackend *be = NULL;
  int ret;

  if (parse_args (&a, argc, argv, 2) < 0)
    return usage ();
  if (a.unet == NULL || a.scheduler_config == NULL || a.in == NULL ||
      a.out == NULL || a.steps <= 0) {
    fprintf (stderr, "avatar-engine: sample needs --unet, "
        "--scheduler-config, --steps, --in and --out\n");
    return 2;
  }
  if (ae_device_parse (a.device, &dev, &err) < 0) {
    fprintf (stderr, "avatar-engine: --device: %s\n", err.msg);
    return 2;
  }
  ae_threads_init (a.threads);
  if (open_backend (dev, &be) < 0)
    return 1;
  ret = sample_run (&a, be, &err);
  ae_backend_free (be);
  if (ret < 0) {
    fprintf (stderr, "avatar-engine: %s\n", err.msg);
    return 1;
  }
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    return usage ();
  if (strcmp (argv[1], "run") == 0)
    return cmd_run (argc, argv);
  if (strcmp (argv[1], "compare") == 0)
    return cmd_compare (argc, argv);
  if (strcmp (argv[1], "sample") == 0)
    return cmd_sample (argc, argv);
  if (strcmp (argv[1], "render") == 0)
    return ae_tool_render (argc, argv);
  return usage ();
}
