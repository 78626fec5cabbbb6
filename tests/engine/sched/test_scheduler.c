/* Schedulers and the sampling loop against diffusers (golden/schedulers, the
 * cheap denoiser eps = 0.1 x_in + cos(t / 100)), a float64 DDIM written out
 * here, config errors, and the noise contract. */
#include <json-glib/json-glib.h>

#include "sampler.h"
#include "scheduler.h"
#include "test_util.h"

/* ---- max abs / rel L2 over float arrays ---- */

static void
compare (const char *what, const float *got, const float *ref, size_t n,
    double max_abs_tol, double rel_tol)
{
  double max_abs = 0, diff2 = 0, ref2 = 0;

  for (size_t i = 0; i < n; i++) {
    double d = fabs ((double) got[i] - ref[i]);
    max_abs = fmax (max_abs, d);
    diff2 += d * d;
    ref2 += (double) ref[i] * ref[i];
  }
  double rel = ref2 > 0 ? sqrt (diff2 / ref2) : sqrt (diff2);
  CHECK (max_abs <= max_abs_tol && rel <= rel_tol,
      "%s: max_abs %.3g (tol %.3g), rel_l2 %.3g (tol %.3g)", what, max_abs,
      max_abs_tol, rel, rel_tol);
}

/* ---- the golden loop ---- */

typedef struct {
  AeSafetensors *st;
  size_t n;
  float *buf;
  double tol_abs, tol_rel;
} GoldenLoop;

static float *
read_all (AeSafetensors * st, const char *name, size_t n)
{
  AeError err;
  float *out = g_new (float, n);

  REQUIRE (ae_st_read_f32 (st, name, out, n, &err) == 0, "%s", err.msg);
  return out;
}

static void
check_tensor (GoldenLoop * g, const char *name, const float *got)
{
  float *ref = read_all (g->st, name, g->n);

  compare (name, got, ref, g->n, g->tol_abs, g->tol_rel);
  g_free (ref);
}

static int
cheap_eps (void *user, int step, float t, const float *x_in, int cfg,
    float *eps, AeError * err)
{
  GoldenLoop *g = user;
  char name[64];

  snprintf (name, sizeof name, "step%02d.model_input", step);
  check_tensor (g, name, x_in);
  for (size_t i = 0; i < g->n; i++)
    eps[i] = 0.1f * x_in[i] + (float) cos ((double) t / 100.0);
  snprintf (name, sizeof name, "step%02d.eps", step);
  check_tensor (g, name, eps);
  return 0;
}

static int
check_step (void *user, int step, float *latents, size_t n, AeError * err)
{
  char name[64];

  snprintf (name, sizeof name, "step%02d.prev_sample", step);
  check_tensor (user, name, latents);
  return 0;
}

static void
replay_noise (void *user, int step, float *noise, size_t n)
{
  GoldenLoop *g = user;
  char name[64];
  AeError err;

  snprintf (name, sizeof name, "step%02d.noise", step);
  REQUIRE (ae_st_read_f32 (g->st, name, noise, n, &err) == 0, "%s", err.msg);
}

static void
tolerance (JsonObject * tol, const char *key, double *abs_tol, double *rel)
{
  JsonObject *o = json_object_get_object_member (tol, key);

  *abs_tol = json_object_get_double_member (o, "max_abs");
  *rel = json_object_get_double_member (o, "rel_l2");
}

static void
run_golden_case (const char *dir)
{
  char *case_path = g_build_filename (dir, "case.json", NULL);
  char *cfg_path = g_build_filename (dir, "scheduler_config.json", NULL);
  char *st_path = g_build_filename (dir, "schedule.safetensors", NULL);
  JsonParser *parser = json_parser_new ();
  AeScheduler *s;
  AeError err;
  GoldenLoop g = { 0 };

  REQUIRE (json_parser_load_from_file (parser, case_path, NULL), "%s",
      case_path);
  JsonObject *c = json_node_get_object (json_parser_get_root (parser));
  JsonObject *tol = json_object_get_object_member (c, "tolerance");
  int steps = json_object_get_int_member (c, "num_inference_steps");

  REQUIRE (ae_scheduler_load (&s, cfg_path, NULL, &err) == 0, "%s", err.msg);
  REQUIRE (ae_st_open (&g.st, st_path, &err) == 0, "%s", err.msg);
  REQUIRE (ae_scheduler_set_timesteps (s, steps, &err) == 0, "%s", err.msg);

  /* Schedule: timesteps exact (Euler: within 1e-3), sigmas, alphas. */
  float *ts = read_all (g.st, "timesteps", steps);
  for (int i = 0; i < steps; i++)
    CHECK (fabsf (ae_scheduler_timestep (s, i) - ts[i]) <= 1e-3f,
        "%s: timestep %d: %g, expected %g", dir, i,
        ae_scheduler_timestep (s, i), ts[i]);
  g_free (ts);
  float *ac = read_all (g.st, "alphas_cumprod", 1000);
  compare ("alphas_cumprod", ae_scheduler_alphas_cumprod (s), ac, 1000, 1e-6,
      1e-6);
  g_free (ac);
  if (ae_st_find (g.st, "sigmas")) {
    float sig[1001];
    double a, r;
    float *ref = read_all (g.st, "sigmas", steps + 1);
    for (int i = 0; i <= steps; i++)
      sig[i] = ae_scheduler_sigma (s, i);
    tolerance (tol, "sigmas", &a, &r);
    compare ("sigmas", sig, ref, steps + 1, a, r);
    g_free (ref);
  }
  float *init_sigma = read_all (g.st, "init_noise_sigma", 1);
  CHECK (fabsf (ae_scheduler_init_noise_sigma (s) - *init_sigma) <= 1e-5f *
      *init_sigma, "%s: init_noise_sigma %g, expected %g", dir,
      ae_scheduler_init_noise_sigma (s), *init_sigma);
  g_free (init_sigma);

  /* The whole loop through ae_sample, every step checked by the hooks. */
  const AeStTensorInfo *info = ae_st_find (g.st, "noise_init");
  REQUIRE (info != NULL, "noise_init missing");
  g.n = info->nbytes / sizeof (float);
  tolerance (tol, "step*", &g.tol_abs, &g.tol_rel);
  float *latents = read_all (g.st, "noise_init", g.n);
  float *scratch = g_new (float, ae_sample_scratch_floats (g.n));
  AeSampleParams p = {.guidance_scale = 1.0f,.eps_fn = cheap_eps,
    .step_hook = check_step,.noise_fn = replay_noise,.user = &g
  };
  REQUIRE (ae_sample (s, &p, latents, g.n, scratch, &err) == 0, "%s", err.msg);
  tolerance (tol, "final", &g.tol_abs, &g.tol_rel);
  check_tensor (&g, "final", latents);
  printf ("ok: %s (%d steps)\n", dir, steps);

  g_free (latents);
  g_free (scratch);
  ae_st_close (g.st);
  ae_scheduler_free (s);
  g_object_unref (parser);
  g_free (case_path);
  g_free (cfg_path);
  g_free (st_path);
}

static void
test_cfg_golden (const char *dir)
{
  char *path = g_build_filename (dir, "cfg.safetensors", NULL);
  AeSafetensors *st;
  AeError err;

  REQUIRE (ae_st_open (&st, path, &err) == 0, "%s", err.msg);
  size_t n = ae_st_find (st, "eps")->nbytes / sizeof (float);
  float *eps2 = g_new (float, 2 * n);
  float g;
  REQUIRE (ae_st_read_f32 (st, "eps_uncond", eps2, n, &err) == 0, "%s",
      err.msg);
  REQUIRE (ae_st_read_f32 (st, "eps_cond", eps2 + n, n, &err) == 0, "%s",
      err.msg);
  REQUIRE (ae_st_read_f32 (st, "guidance_scale", &g, 1, &err) == 0, "%s",
      err.msg);
  ae_guidance_combine (eps2, g, n);
  float *ref = read_all (st, "eps", n);
  compare ("cfg eps", eps2, ref, n, 1e-5, 1e-6);
  g_free (ref);
  g_free (eps2);
  ae_st_close (st);
  g_free (path);
}

/* ---- pipeline_ddim4_cfg_tiny: the CFG loop with the stored UNet outputs ---- */

typedef struct {
  AeSafetensors *st;
  size_t n;
  double tol_abs, tol_rel;
} PipelineReplay;

/* Gives back the stored [uncond, cond] UNet batch of step `step`, after
 * checking that the loop feeds the UNet the golden latents. */
static int
replay_unet (void *user, int step, float t, const float *x_in, int cfg,
    float *eps, AeError * err)
{
  PipelineReplay *r = user;
  char name[64];

  CHECK (cfg == 1, "guidance 7.5 must ask for both passes");
  if (step > 0) {
    snprintf (name, sizeof name, "step%02d.latents", step - 1);
    float *ref = read_all (r->st, name, r->n);
    compare (name, x_in, ref, r->n, r->tol_abs, r->tol_rel);
    g_free (ref);
  }
  snprintf (name, sizeof name, "step%02d.unet_out", step);
  REQUIRE (ae_st_read_f32 (r->st, name, eps, 2 * r->n, err) == 0, "%s",
      err->msg);
  return 0;
}

static int
check_pipeline_step (void *user, int step, float *latents, size_t n,
    AeError * err)
{
  PipelineReplay *r = user;
  char name[64];

  snprintf (name, sizeof name, "step%02d.latents", step);
  float *ref = read_all (r->st, name, n);
  compare (name, latents, ref, n, r->tol_abs, r->tol_rel);
  g_free (ref);
  return 0;
}

static void
test_pipeline_cfg_golden (const char *golden)
{
  char *st_path = g_build_filename (golden, "pipeline_ddim4_cfg_tiny",
      "pipeline.safetensors", NULL);
  /* The pipeline used the SD1.5 DDIM config, stored with ddim_4. */
  char *cfg_path = g_build_filename (golden, "schedulers", "ddim_4",
      "scheduler_config.json", NULL);
  char *case_path = g_build_filename (golden, "pipeline_ddim4_cfg_tiny",
      "case.json", NULL);
  JsonParser *parser = json_parser_new ();
  PipelineReplay r = { 0 };
  AeScheduler *s;
  AeError err;
  int64_t ts[4];

  REQUIRE (json_parser_load_from_file (parser, case_path, NULL), "%s",
      case_path);
  JsonObject *c = json_node_get_object (json_parser_get_root (parser));
  tolerance (json_object_get_object_member (c, "tolerance"), "step*",
      &r.tol_abs, &r.tol_rel);
  REQUIRE (json_object_get_double_member (c, "guidance_scale") == 7.5,
      "%s: guidance_scale is not 7.5", case_path);

  REQUIRE (ae_st_open (&r.st, st_path, &err) == 0, "%s", err.msg);
  REQUIRE (ae_scheduler_load (&s, cfg_path, NULL, &err) == 0, "%s", err.msg);
  REQUIRE (ae_scheduler_set_timesteps (s, 4, &err) == 0, "%s", err.msg);
  REQUIRE (ae_st_read_i64 (r.st, "timesteps", ts, 4, &err) == 0, "%s",
      err.msg);
  for (int i = 0; i < 4; i++)
    CHECK (ae_scheduler_timestep (s, i) == (float) ts[i],
        "pipeline timestep %d: %g, expected %lld", i,
        ae_scheduler_timestep (s, i), (long long) ts[i]);

  r.n = ae_st_find (r.st, "noise_init")->nbytes / sizeof (float);
  float *latents = read_all (r.st, "noise_init", r.n);
  float *scratch = g_new (float, ae_sample_scratch_floats (r.n));
  AeSampleParams p = {.guidance_scale = 7.5f,.eps_fn = replay_unet,
    .step_hook = check_pipeline_step,.user = &r
  };
  REQUIRE (ae_sample (s, &p, latents, r.n, scratch, &err) == 0, "%s",
      err.msg);

  /* The guided eps of every step, on its own. */
  float *eps2 = g_new (float, 2 * r.n);
  for (int i = 0; i < 4; i++) {
    char name[64];
    snprintf (name, sizeof name, "step%02d.unet_out", i);
    REQUIRE (ae_st_read_f32 (r.st, name, eps2, 2 * r.n, &err) == 0, "%s",
        err.msg);
    ae_guidance_combine (eps2, 7.5f, r.n);
    snprintf (name, sizeof name, "step%02d.eps", i);
    float *ref = read_all (r.st, name, r.n);
    compare (name, eps2, ref, r.n, r.tol_abs, r.tol_rel);
    g_free (ref);
  }
  printf ("ok: pipeline_ddim4_cfg_tiny (CFG 7.5, stored UNet outputs)\n");
  g_free (eps2);
  g_free (latents);
  g_free (scratch);
  ae_scheduler_free (s);
  ae_st_close (r.st);
  g_free (st_path);
  g_free (cfg_path);
  g_free (case_path);
  g_object_unref (parser);
}

/* ---- self-made cases: always run ---- */

static const char *sd15_ddim =
    "{\"_class_name\": \"DDIMScheduler\", \"beta_schedule\": \"scaled_linear\","
    " \"beta_start\": 0.00085, \"beta_end\": 0.012, \"num_train_timesteps\": 1000,"
    " \"steps_offset\": 1, \"set_alpha_to_one\": false, \"clip_sample\": false,"
    " \"prediction_type\": \"epsilon\", \"timestep_spacing\": \"leading\"}";

/* DDIM eta 0 in float64, written from the paper's update rule. */
static int
ddim_f64_eps (void *user, int step, float t, const float *x_in, int cfg,
    float *eps, AeError * err)
{
  size_t n = *(size_t *) user;
  for (size_t i = 0; i < n; i++)
    eps[i] = 0.1f * x_in[i] + (float) cos (t / 100.0);
  return 0;
}

/* DDIM (leading spacing, stride 1000 / steps) against float64; with
 * strength < 1 only the last int(steps x strength) timesteps run and the
 * stride stays 1000 / steps, as in diffusers' img2img. */
static void
ddim_float64_case (int steps, float strength, int keep)
{
  enum { N = 64 };
  AeScheduler *s;
  AeError err;
  float x[N], scratch[4 * N];
  double ref[N], alphas[1000], prod = 1.0;
  size_t n = N;
  int stride = 1000 / steps;

  REQUIRE (ae_scheduler_load_data (&s, "sd15-ddim", sd15_ddim, NULL,
          &err) == 0, "%s", err.msg);
  REQUIRE (ae_scheduler_set_timesteps (s, steps, &err) == 0, "%s", err.msg);
  REQUIRE (ae_scheduler_set_strength (s, strength, &err) == 0, "%s", err.msg);
  REQUIRE (ae_scheduler_num_steps (s) == keep, "strength %g of %d steps "
      "keeps %d, want %d", strength, steps, ae_scheduler_num_steps (s), keep);
  for (int i = 0; i < 1000; i++) {
    double b = sqrt (0.00085) + (sqrt (0.012) - sqrt (0.00085)) * i / 999.0;
    prod *= 1.0 - b * b;
    alphas[i] = prod;
  }
  ae_noise_fill (7, AE_NOISE_STREAM_INIT, 0, x, N);
  for (int i = 0; i < N; i++)
    ref[i] = x[i];
  AeSampleParams p = {.guidance_scale = 1.0f,.eps_fn = ddim_f64_eps,.user =
        &n
  };
  REQUIRE (ae_sample (s, &p, x, N, scratch, &err) == 0, "%s", err.msg);
  for (int k = 0; k < keep; k++) {
    int t = 1 + stride * (keep - 1 - k), t_prev = t - stride;
    CHECK ((int) ae_scheduler_timestep (s, k) == t, "steps %d strength %g: "
        "timestep %d is %g, want %d", steps, strength, k,
        ae_scheduler_timestep (s, k), t);
    double a = alphas[t], a_prev = t_prev >= 0 ? alphas[t_prev] : alphas[0];
    for (int i = 0; i < N; i++) {
      double eps = 0.1 * ref[i] + cos (t / 100.0);
      double x0 = (ref[i] - sqrt (1 - a) * eps) / sqrt (a);
      ref[i] = sqrt (a_prev) * x0 + sqrt (1 - a_prev) * eps;
    }
  }
  float reff[N];
  for (int i = 0; i < N; i++)
    reff[i] = ref[i];
  compare ("ddim vs float64", x, reff, N, 1e-4, 1e-5);
  ae_scheduler_free (s);
}

static void
test_ddim_float64 (void)
{
  ddim_float64_case (10, 1.0f, 10);
  ddim_float64_case (8, 0.5f, 4);       /* 376, 251, 126, 1 */
  ddim_float64_case (10, 0.75f, 7);     /* int(7.5) */
}

/* Euler with strength keeps the tail of its sigmas (and the final 0); the
 * initial sigma follows the first kept one. Errors name the strength. */
static void
test_strength (void)
{
  AeScheduler *full, *s;
  AeError err;

  REQUIRE (ae_scheduler_load_data (&full, "euler", sd15_ddim, "euler",
          &err) == 0 && ae_scheduler_set_timesteps (full, 8, &err) == 0,
      "%s", err.msg);
  REQUIRE (ae_scheduler_load_data (&s, "euler", sd15_ddim, "euler",
          &err) == 0 && ae_scheduler_set_timesteps (s, 8, &err) == 0 &&
      ae_scheduler_set_strength (s, 0.5f, &err) == 0, "%s", err.msg);
  REQUIRE (ae_scheduler_num_steps (s) == 4, "euler kept %d steps",
      ae_scheduler_num_steps (s));
  for (int i = 0; i <= 4; i++) {
    CHECK (ae_scheduler_sigma (s, i) == ae_scheduler_sigma (full, i + 4),
        "sigma %d: %g, want %g", i, ae_scheduler_sigma (s, i),
        ae_scheduler_sigma (full, i + 4));
    if (i < 4)
      CHECK (ae_scheduler_timestep (s, i) == ae_scheduler_timestep (full,
              i + 4), "timestep %d", i);
  }
  float s0 = ae_scheduler_sigma (s, 0);
  CHECK (fabsf (ae_scheduler_init_noise_sigma (s) - sqrtf (s0 * s0 + 1.0f))
      < 1e-6f, "init_noise_sigma %g for a first sigma %g",
      ae_scheduler_init_noise_sigma (s), s0);
  CHECK (ae_scheduler_init_noise_sigma (s) <
      ae_scheduler_init_noise_sigma (full), "init sigma did not drop");
  ae_scheduler_free (full);

  const float bad[] = { 0.0f, -0.5f, 1.5f, NAN, 0.1f };
  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++) {
    REQUIRE (ae_scheduler_set_timesteps (s, 4, &err) == 0, "%s", err.msg);
    err.msg[0] = 0;
    CHECK (ae_scheduler_set_strength (s, bad[i], &err) < 0
        && strstr (err.msg, "strength") && strstr (err.msg, "euler"),
        "strength %g: \"%s\"", bad[i], err.msg);
    CHECK (ae_scheduler_num_steps (s) == 4, "a refused strength changed "
        "the steps");
  }
  ae_scheduler_free (s);
}

typedef struct {
  int eps_calls, hook_calls;
} Calls;

static int
count_calls (void *user, int step, float t, const float *x_in, int cfg,
    float *eps, AeError * err)
{
  Calls *c = user;

  CHECK (cfg == 1, "guidance 3 must ask for both passes");
  for (int i = 0; i < 4; i++) {
    eps[i] = 1.0f;              /* uncond */
    eps[4 + i] = 2.0f;          /* cond */
  }
  c->eps_calls++;
  return 0;
}

/* The hook sees every step in order, and what it writes is what the next
 * step starts from: it zeroes the latents after step 0. */
static int
zero_after_first (void *user, int step, float *latents, size_t n,
    AeError * err)
{
  Calls *c = user;

  CHECK (step == c->hook_calls, "hook at step %d, expected %d", step,
      c->hook_calls);
  c->hook_calls++;
  if (step == 0)
    memset (latents, 0, sizeof (float) * n);
  return 0;
}

static void
test_sampler_cfg_and_hook (void)
{
  AeScheduler *s;
  AeError err;
  float x[4] = { 0 }, scratch[16];
  Calls calls = { 0 };

  REQUIRE (ae_scheduler_load_data (&s, "sd15-ddim", sd15_ddim, "euler",
          &err) == 0, "%s", err.msg);
  CHECK (ae_scheduler_type (s) == AE_SCHEDULER_EULER, "type override");
  REQUIRE (ae_scheduler_set_timesteps (s, 3, &err) == 0, "%s", err.msg);
  AeSampleParams p = {.guidance_scale = 3.0f,.eps_fn = count_calls,
    .step_hook = zero_after_first,.user = &calls
  };
  REQUIRE (ae_sample (s, &p, x, 4, scratch, &err) == 0, "%s", err.msg);
  CHECK (calls.eps_calls == 3 && calls.hook_calls == 3,
      "eps callback called %d times, hook %d, expected 3", calls.eps_calls,
      calls.hook_calls);
  /* eps = 1 + 3 (2 - 1) = 4 everywhere. Euler moves x by
   * (x - x0) / sigma * dt = eps * dt, so from the zeroed latents after
   * step 0 the result is 4 (sigma_3 - sigma_1) = -4 sigma_1. */
  float expect = -4.0f * ae_scheduler_sigma (s, 1);
  CHECK (fabsf (x[0] - expect) < 1e-3f * fabsf (expect),
      "cfg result %g, expected %g", x[0], expect);

  p.eps_fn = NULL;
  CHECK (ae_sample (s, &p, x, 4, scratch, &err) < 0, "NULL eps_fn accepted");
  ae_scheduler_free (s);
}

static void
expect_error (const char *json, const char *type, const char *needle)
{
  AeScheduler *s;
  AeError err = { "" };

  CHECK (ae_scheduler_load_data (&s, "my/scheduler_config.json", json, type,
          &err) < 0, "accepted: %s", json);
  CHECK (s == NULL, "scheduler returned on error");
  CHECK (strstr (err.msg, "my/scheduler_config.json") != NULL
      && strstr (err.msg, needle) != NULL, "message \"%s\" lacks \"%s\"",
      err.msg, needle);
}

static void
test_config_errors (void)
{
  AeScheduler *s;
  AeError err;

  expect_error ("{\"beta_schedule\": \"linear\"}", NULL, "_class_name");
  expect_error ("{\"_class_name\": \"PNDMScheduler\"}", NULL, "PNDMScheduler");
  expect_error ("{\"_class_name\": \"DDIMScheduler\", \"beta_schedule\": "
      "\"cosine\"}", NULL, "beta_schedule");
  expect_error ("{\"_class_name\": \"DDIMScheduler\", \"prediction_type\": "
      "\"flow\"}", NULL, "prediction_type");
  expect_error ("{\"_class_name\": \"DDIMScheduler\", \"timestep_spacing\": "
      "42}", NULL, "timestep_spacing");
  expect_error ("{\"_class_name\": \"EulerDiscreteScheduler\", "
      "\"use_karras_sigmas\": true}", NULL, "use_karras_sigmas");
  expect_error ("{\"_class_name\": \"DDIMScheduler\", \"thresholding\": true}",
      NULL, "thresholding");
  expect_error ("{\"_class_name\": \"DDIMScheduler\"", NULL, "");

  err.msg[0] = 0;
  CHECK (ae_scheduler_load (&s, "/nonexistent/scheduler_config.json", NULL,
          &err) < 0 && strstr (err.msg, "/nonexistent/scheduler_config.json"),
      "missing file: \"%s\"", err.msg);

  REQUIRE (ae_scheduler_load_data (&s, "lcm", sd15_ddim, "lcm", &err) == 0,
      "%s", err.msg);
  CHECK (ae_scheduler_set_timesteps (s, 51, &err) < 0
      && strstr (err.msg, "original_inference_steps"), "LCM 51 steps: %s",
      err.msg);
  CHECK (ae_scheduler_set_timesteps (s, 0, &err) < 0, "0 steps accepted");
  ae_scheduler_free (s);
}

static void
test_noise (void)
{
  enum { N = 20001 };
  float *a = g_new (float, N), *b = g_new (float, N), *c = g_new (float, N);
  double sum = 0, sum2 = 0;

  ae_noise_fill (42, AE_NOISE_STREAM_INIT, 5, a, N);
  ae_noise_fill (42, AE_NOISE_STREAM_INIT, 5, b, N);
  CHECK (memcmp (a, b, sizeof (float) * N) == 0, "same (seed, frame) differs");
  ae_noise_fill (42, AE_NOISE_STREAM_INIT, 6, c, N);
  CHECK (memcmp (a, c, sizeof (float) * N) != 0, "frames 5 and 6 equal");
  ae_noise_fill (43, AE_NOISE_STREAM_INIT, 5, c, N);
  CHECK (memcmp (a, c, sizeof (float) * N) != 0, "seeds 42 and 43 equal");
  ae_noise_fill (42, AE_NOISE_STREAM_STEP (0), 5, c, N);
  CHECK (memcmp (a, c, sizeof (float) * N) != 0, "streams equal");
  /* A prefix is the same noise: windows may ask for fewer floats. */
  ae_noise_fill (42, AE_NOISE_STREAM_INIT, 5, b, 101);
  CHECK (memcmp (a, b, sizeof (float) * 101) == 0, "prefix differs");
  for (int i = 0; i < N; i++) {
    CHECK (isfinite (a[i]), "noise not finite");
    sum += a[i];
    sum2 += (double) a[i] * a[i];
  }
  double mean = sum / N, var = sum2 / N - mean * mean;
  CHECK (fabs (mean) < 0.03 && fabs (var - 1.0) < 0.04,
      "noise mean %g var %g", mean, var);
  g_free (a);
  g_free (b);
  g_free (c);
}

/* No argument: the self-made cases, which always run. "golden": the
 * diffusers goldens in AVATAR_SHARED_DIR, skipped (77) without them. */
static int
run_goldens (void)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  const char *cases[] = { "ddim_4", "ddim_20", "euler_4", "euler_20",
    "lcm_4", "lcm_20"
  };

  if (shared == NULL || !g_file_test (shared, G_FILE_TEST_IS_DIR)) {
    printf ("SKIP: AVATAR_SHARED_DIR (%s) missing: no golden/schedulers or "
        "golden/pipeline_ddim4_cfg_tiny\n", shared ? shared : "unset");
    return AE_TEST_SKIP;
  }
  char *gold = g_build_filename (shared, "golden", NULL);
  char *sched = g_build_filename (gold, "schedulers", NULL);
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++) {
    char *dir = g_build_filename (sched, cases[i], NULL);
    run_golden_case (dir);
    g_free (dir);
  }
  char *cfg = g_build_filename (sched, "cfg_7.5", NULL);
  test_cfg_golden (cfg);
  test_pipeline_cfg_golden (gold);
  g_free (cfg);
  g_free (sched);
  g_free (gold);
  return test_finish ("scheduler goldens");
}

int
main (int argc, char **argv)
{
  if (argc > 1 && strcmp (argv[1], "golden") == 0)
    return run_goldens ();
  test_ddim_float64 ();
  test_strength ();
  test_sampler_cfg_and_hook ();
  test_config_errors ();
  test_noise ();
  return test_finish ("scheduler");
}
