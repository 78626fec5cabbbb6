/* DDIM, Euler and LCM schedulers as diffusers v0.31 defines them. Scalars
 * follow diffusers' float32 arithmetic where it changes results (betas,
 * alphas_cumprod, sigmas); the per-element update runs in float32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>

#include "config.h"
#include "scheduler.h"

#define MAX_STEPS 1000
#define N_NAMES (sizeof scheduler_names / sizeof scheduler_names[0])

typedef enum { SPACING_LEADING, SPACING_TRAILING, SPACING_LINSPACE } Spacing;

struct AeScheduler {
  AeSchedulerType type;
  AePredictionType prediction;
  char name[256];               /* config path, for messages */
  int num_train_timesteps;
  int steps_offset;
  Spacing spacing;
  int set_alpha_to_one;
  int clip_sample;
  float clip_sample_range;
  int original_inference_steps; /* LCM */
  float timestep_scaling;       /* LCM */
  float *alphas_cumprod;        /* [num_train_timesteps] */
  float final_alpha_cumprod;

  int num_steps;                /* steps left to run */
  int stride_steps;             /* DDIM steps by T / stride_steps: the N of
                                 * set_timesteps, kept by set_strength */
  float timesteps[MAX_STEPS];
  float sigmas[MAX_STEPS + 1];  /* Euler: one per step plus the final 0 */
  float init_noise_sigma;
};

static const struct {
  const char *name, *class_name;
  AeSchedulerType type;
} scheduler_names[] = {
  {"ddim", "DDIMScheduler", AE_SCHEDULER_DDIM},
  {"euler", "EulerDiscreteScheduler", AE_SCHEDULER_EULER},
  {"lcm", "LCMScheduler", AE_SCHEDULER_LCM},
};

const char *
ae_scheduler_type_name (AeSchedulerType type)
{
  for (size_t i = 0; i < N_NAMES; i++)
    if (scheduler_names[i].type == type)
      return scheduler_names[i].name;
  return NULL;
}

int
ae_scheduler_type_from_name (const char *name)
{
  for (size_t i = 0; i < N_NAMES; i++)
    if (strcasecmp (name, scheduler_names[i].name) == 0
        || strcmp (name, scheduler_names[i].class_name) == 0)
      return scheduler_names[i].type;
  return -1;
}

/* betas as torch computes them in float32; alphas_cumprod is a sequential
 * float32 product like torch.cumprod. */
static int
make_alphas_cumprod (AeScheduler * s, const char *schedule, double beta_start,
    double beta_end, AeError * err)
{
  int n = s->num_train_timesteps;
  float *betas = malloc (sizeof (float) * n);

  s->alphas_cumprod = malloc (sizeof (float) * n);
  if (betas == NULL || s->alphas_cumprod == NULL) {
    free (betas);
    return ae_error (err, "%s: out of memory", s->name);
  }
  for (int i = 0; i < n; i++) {
    double frac = n > 1 ? (double) i / (n - 1) : 0.0;
    if (strcmp (schedule, "scaled_linear") == 0) {
      float lo = (float) sqrt (beta_start), hi = (float) sqrt (beta_end);
      float b = (float) (lo + (hi - lo) * frac);
      betas[i] = b * b;
    } else if (strcmp (schedule, "linear") == 0) {
      betas[i] = (float) (beta_start + (beta_end - beta_start) * frac);
    } else if (strcmp (schedule, "squaredcos_cap_v2") == 0) {
      double t1 = (double) i / n, t2 = (double) (i + 1) / n;
      double a1 = cos ((t1 + 0.008) / 1.008 * M_PI / 2);
      double a2 = cos ((t2 + 0.008) / 1.008 * M_PI / 2);
      betas[i] = (float) fmin (1.0 - (a2 * a2) / (a1 * a1), 0.999);
    } else {
      free (betas);
      return ae_error (err, "%s: field \"beta_schedule\": unsupported value "
          "\"%s\" (linear, scaled_linear, squaredcos_cap_v2)", s->name,
          schedule);
    }
  }
  float prod = 1.0f;
  for (int i = 0; i < n; i++) {
    prod *= 1.0f - betas[i];
    s->alphas_cumprod[i] = prod;
  }
  free (betas);
  s->final_alpha_cumprod = s->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
  return 0;
}

static int
read_string_choice (const AeConfig * cfg, const char *key, const char *def,
    const char *const *choices, int *out, AeError * err)
{
  const char *v;

  if (ae_config_get_string_or (cfg, key, def, &v, err) < 0)
    return -1;
  for (int i = 0; choices[i]; i++)
    if (strcmp (v, choices[i]) == 0) {
      *out = i;
      return 0;
    }
  return ae_error (err, "%s: field \"%s\": unsupported value \"%s\"",
      ae_config_path (cfg), key, v);
}

static int
reject_if_true (const AeConfig * cfg, const char *key, AeError * err)
{
  bool v;

  if (ae_config_get_bool_or (cfg, key, false, &v, err) < 0)
    return -1;
  if (v)
    return ae_error (err, "%s: field \"%s\": true is not supported",
        ae_config_path (cfg), key);
  return 0;
}

static int
configure (AeScheduler * s, const AeConfig * cfg, const char *type_name,
    AeError * err)
{
  static const char *const predictions[] =
      { "epsilon", "v_prediction", "sample", NULL };
  static const char *const spacings[] =
      { "leading", "trailing", "linspace", NULL };
  const char *cls, *schedule;
  int64_t v;
  double beta_start, beta_end, d;
  bool b;
  int choice;

  if (type_name == NULL) {
    if (ae_config_get_string (cfg, "_class_name", &cls, err) < 0)
      return -1;
    type_name = cls;
  }
  choice = ae_scheduler_type_from_name (type_name);
  if (choice < 0)
    return ae_error (err, "%s: scheduler \"%s\" is not supported (DDIMScheduler, "
        "EulerDiscreteScheduler, LCMScheduler)", s->name, type_name);
  s->type = choice;

  if (ae_config_get_int_or (cfg, "num_train_timesteps", 1000, &v, err) < 0)
    return -1;
  if (v < 2 || v > 100000)
    return ae_error (err, "%s: field \"num_train_timesteps\": %lld is out of "
        "range", s->name, (long long) v);
  s->num_train_timesteps = v;
  if (ae_config_get_int_or (cfg, "steps_offset", 0, &v, err) < 0)
    return -1;
  s->steps_offset = v;
  if (read_string_choice (cfg, "prediction_type", "epsilon", predictions,
          &choice, err) < 0)
    return -1;
  s->prediction = choice;
  if (s->type == AE_SCHEDULER_EULER && s->prediction == AE_PREDICTION_SAMPLE)
    return ae_error (err, "%s: field \"prediction_type\": \"sample\" is not "
        "supported by EulerDiscreteScheduler", s->name);
  if (read_string_choice (cfg, "timestep_spacing",
          s->type == AE_SCHEDULER_EULER ? "linspace" : "leading", spacings,
          &choice, err) < 0)
    return -1;
  s->spacing = choice;
  if (ae_config_get_bool_or (cfg, "set_alpha_to_one", true, &b, err) < 0)
    return -1;
  s->set_alpha_to_one = b;
  if (ae_config_get_bool_or (cfg, "clip_sample", s->type != AE_SCHEDULER_EULER,
          &b, err) < 0)
    return -1;
  s->clip_sample = b && s->type != AE_SCHEDULER_EULER;
  if (ae_config_get_float_or (cfg, "clip_sample_range", 1.0, &d, err) < 0)
    return -1;
  s->clip_sample_range = d;
  if (ae_config_get_int_or (cfg, "original_inference_steps", 50, &v, err) < 0)
    return -1;
  s->original_inference_steps = v;
  if (ae_config_get_float_or (cfg, "timestep_scaling", 10.0, &d, err) < 0)
    return -1;
  s->timestep_scaling = d;

  /* Knobs that change results and that we do not implement. */
  if (reject_if_true (cfg, "thresholding", err) < 0
      || reject_if_true (cfg, "rescale_betas_zero_snr", err) < 0
      || reject_if_true (cfg, "use_karras_sigmas", err) < 0
      || reject_if_true (cfg, "use_exponential_sigmas", err) < 0
      || reject_if_true (cfg, "use_beta_sigmas", err) < 0)
    return -1;
  if (ae_config_has (cfg, "trained_betas"))
    return ae_error (err, "%s: field \"trained_betas\" is not supported",
        s->name);
  if (s->type == AE_SCHEDULER_EULER) {
    const char *interp, *final_sigmas;
    if (ae_config_get_string_or (cfg, "interpolation_type", "linear", &interp,
            err) < 0 || ae_config_get_string_or (cfg, "final_sigmas_type",
            "zero", &final_sigmas, err) < 0)
      return -1;
    if (strcmp (interp, "linear") != 0)
      return ae_error (err, "%s: field \"interpolation_type\": only \"linear\" "
          "is supported", s->name);
    if (strcmp (final_sigmas, "zero") != 0)
      return ae_error (err, "%s: field \"final_sigmas_type\": only \"zero\" is "
          "supported", s->name);
  }

  if (ae_config_get_string_or (cfg, "beta_schedule", "linear", &schedule,
          err) < 0
      || ae_config_get_float_or (cfg, "beta_start", 0.0001, &beta_start,
          err) < 0
      || ae_config_get_float_or (cfg, "beta_end", 0.02, &beta_end, err) < 0)
    return -1;
  return make_alphas_cumprod (s, schedule, beta_start, beta_end, err);
}

static int
load_from_config (AeScheduler ** out, AeConfig * cfg, const char *type_name,
    AeError * err)
{
  AeScheduler *s = calloc (1, sizeof *s);

  *out = NULL;
  if (s == NULL) {
    ae_config_free (cfg);
    return ae_error (err, "out of memory");
  }
  snprintf (s->name, sizeof s->name, "%s", ae_config_path (cfg));
  if (configure (s, cfg, type_name, err) < 0) {
    ae_config_free (cfg);
    ae_scheduler_free (s);
    return -1;
  }
  ae_config_free (cfg);
  *out = s;
  return 0;
}

int
ae_scheduler_load (AeScheduler ** out, const char *config_path,
    const char *type_name, AeError * err)
{
  AeConfig *cfg;

  *out = NULL;
  if (ae_config_load (&cfg, config_path, err) < 0)
    return -1;
  return load_from_config (out, cfg, type_name, err);
}

int
ae_scheduler_load_data (AeScheduler ** out, const char *name,
    const char *json, const char *type_name, AeError * err)
{
  AeConfig *cfg;

  *out = NULL;
  if (ae_config_load_data (&cfg, name, json, err) < 0)
    return -1;
  return load_from_config (out, cfg, type_name, err);
}

void
ae_scheduler_free (AeScheduler * s)
{
  if (s == NULL)
    return;
  free (s->alphas_cumprod);
  free (s);
}

AeSchedulerType
ae_scheduler_type (const AeScheduler * s)
{
  return s->type;
}

int
ae_scheduler_num_train_timesteps (const AeScheduler * s)
{
  return s->num_train_timesteps;
}

const float *
ae_scheduler_alphas_cumprod (const AeScheduler * s)
{
  return s->alphas_cumprod;
}

/* DDIM and Euler: diffusers' three spacings. Values are whole numbers except
 * for Euler's linspace. */
static void
spaced_timesteps (const AeScheduler * s, int steps, double *t)
{
  int n_train = s->num_train_timesteps;

  for (int i = 0; i < steps; i++) {
    int j = steps - 1 - i;      /* diffusers builds ascending, then reverses */
    switch (s->spacing) {
      case SPACING_LEADING:
        t[i] = (double) j * (n_train / steps) + s->steps_offset;
        break;
      case SPACING_TRAILING:
        t[i] = round (n_train - (double) i * n_train / steps) - 1;
        break;
      case SPACING_LINSPACE:{
        double v = steps > 1 ? (double) j * (n_train - 1) / (steps - 1) : 0.0;
        /* DDIM rounds; Euler keeps the float32 value. */
        t[i] = s->type == AE_SCHEDULER_EULER ? (float) v : rint (v);
        break;
      }
    }
  }
}

static int
lcm_timesteps (const AeScheduler * s, int steps, double *t, AeError * err)
{
  int orig = s->original_inference_steps;
  int k = s->num_train_timesteps / orig;

  if (orig < 1 || k < 1)
    return ae_error (err, "%s: field \"original_inference_steps\": %d does not "
        "fit num_train_timesteps %d", s->name, orig, s->num_train_timesteps);
  if (steps > orig)
    return ae_error (err, "%s: LCM can take at most original_inference_steps "
        "(%d) steps, asked for %d", s->name, orig, steps);
  /* The origin schedule is k*i - 1 for i = orig..1 (descending); the steps
   * pick floor(linspace(0, orig, steps, endpoint=False)) of it. */
  for (int i = 0; i < steps; i++) {
    int idx = (int) floor ((double) i * orig / steps);
    t[i] = (double) (orig - idx) * k - 1;
  }
  return 0;
}

/* sigma(t) by linear interpolation of sqrt((1 - ac) / ac) over the integer
 * timesteps (np.interp, float64 over float32 sigmas). */
static double
interp_sigma (const AeScheduler * s, double t)
{
  int n = s->num_train_timesteps;
  int lo = (int) floor (t);
  double frac = t - lo;

  if (lo < 0)
    return sqrtf ((1.0f - s->alphas_cumprod[0]) / s->alphas_cumprod[0]);
  if (lo >= n - 1) {
    float ac = s->alphas_cumprod[n - 1];
    return sqrtf ((1.0f - ac) / ac);
  }
  float a0 = s->alphas_cumprod[lo], a1 = s->alphas_cumprod[lo + 1];
  double s0 = sqrtf ((1.0f - a0) / a0), s1 = sqrtf ((1.0f - a1) / a1);
  return s0 + (s1 - s0) * frac;
}

/* Euler's latents start at the largest sigma (leading spacing: diffusers
 * takes sqrt(sigma^2 + 1) there); the others at unit variance. */
static void
set_init_noise_sigma (AeScheduler * s)
{
  float max_sigma = 0.0f;

  s->init_noise_sigma = 1.0f;
  if (s->type != AE_SCHEDULER_EULER)
    return;
  for (int i = 0; i < s->num_steps; i++)
    max_sigma = fmaxf (max_sigma, s->sigmas[i]);
  s->init_noise_sigma = s->spacing == SPACING_LEADING ?
      sqrtf (max_sigma * max_sigma + 1.0f) : max_sigma;
}

int
ae_scheduler_set_timesteps (AeScheduler * s, int steps, AeError * err)
{
  double t[MAX_STEPS];

  if (steps < 1 || steps > MAX_STEPS || steps > s->num_train_timesteps)
    return ae_error (err, "%s: %d steps asked, must be 1..%d", s->name, steps,
        s->num_train_timesteps < MAX_STEPS ? s->num_train_timesteps :
        MAX_STEPS);
  if (s->type == AE_SCHEDULER_LCM) {
    if (lcm_timesteps (s, steps, t, err) < 0)
      return -1;
  } else {
    spaced_timesteps (s, steps, t);
  }
  for (int i = 0; i < steps; i++) {
    if (t[i] < 0 || t[i] > s->num_train_timesteps - 1)
      return ae_error (err, "%s: timestep %g at step %d falls outside the "
          "training schedule (check steps_offset)", s->name, t[i], i);
    s->timesteps[i] = (float) t[i];
  }
  s->num_steps = steps;
  s->stride_steps = steps;
  if (s->type == AE_SCHEDULER_EULER) {
    for (int i = 0; i < steps; i++)
      s->sigmas[i] = (float) interp_sigma (s, s->timesteps[i]);
    s->sigmas[steps] = 0.0f;
  }
  set_init_noise_sigma (s);
  return 0;
}

int
ae_scheduler_set_strength (AeScheduler * s, float strength, AeError * err)
{
  int n = s->num_steps;
  /* diffusers' img2img: int(num_inference_steps * strength) steps are run */
  int keep = (int) ((double) n * strength);

  if (!(strength > 0.0f && strength <= 1.0f))
    return ae_error (err, "%s: strength %g must be in (0, 1]", s->name,
        strength);
  if (keep > n)
    keep = n;
  if (keep < 1)
    return ae_error (err, "%s: strength %g leaves none of the %d steps "
        "(int(%d x %g) = 0); raise the steps or the strength", s->name,
        strength, n, n, strength);
  int start = n - keep;
  memmove (s->timesteps, s->timesteps + start, keep * sizeof (float));
  memmove (s->sigmas, s->sigmas + start, (keep + 1) * sizeof (float));
  s->num_steps = keep;
  set_init_noise_sigma (s);
  return 0;
}

int
ae_scheduler_num_steps (const AeScheduler * s)
{
  return s->num_steps;
}

float
ae_scheduler_timestep (const AeScheduler * s, int i)
{
  return s->timesteps[i];
}

float
ae_scheduler_sigma (const AeScheduler * s, int i)
{
  return s->type == AE_SCHEDULER_EULER ? s->sigmas[i] : 0.0f;
}

float
ae_scheduler_init_noise_sigma (const AeScheduler * s)
{
  return s->init_noise_sigma;
}

void
ae_scheduler_scale_model_input (const AeScheduler * s, int i, const float *x,
    float *x_in, size_t n)
{
  /* Only Euler scales: its latents carry variance sigma^2 + 1. */
  if (s->type != AE_SCHEDULER_EULER) {
    if (x_in != x)
      memcpy (x_in, x, sizeof (float) * n);
    return;
  }
  float scale = sqrtf (s->sigmas[i] * s->sigmas[i] + 1.0f);
  for (size_t j = 0; j < n; j++)
    x_in[j] = x[j] / scale;
}

int
ae_scheduler_step_needs_noise (const AeScheduler * s, int i)
{
  return s->type == AE_SCHEDULER_LCM && i < s->num_steps - 1;
}

/* x0 and eps from the model output at cumulative alpha a (DDIM and LCM). */
static inline void
predict_x0_eps (const AeScheduler * s, float a, float x, float out,
    float *x0, float *eps)
{
  float sa = sqrtf (a), sb = sqrtf (1.0f - a);

  switch (s->prediction) {
    default:
    case AE_PREDICTION_EPSILON:
      *x0 = (x - sb * out) / sa;
      *eps = out;
      break;
    case AE_PREDICTION_V:
      *x0 = sa * x - sb * out;
      *eps = sa * out + sb * x;
      break;
    case AE_PREDICTION_SAMPLE:
      *x0 = out;
      *eps = (x - sa * out) / sb;
      break;
  }
  if (s->clip_sample)
    *x0 = fminf (fmaxf (*x0, -s->clip_sample_range), s->clip_sample_range);
}

static float
alpha_at (const AeScheduler * s, int t)
{
  return t >= 0 ? s->alphas_cumprod[t] : s->final_alpha_cumprod;
}

static void
step_ddim (const AeScheduler * s, int i, const float *out, float *x,
    float *pred_x0, size_t n)
{
  int t = (int) s->timesteps[i];
  int t_prev = t - s->num_train_timesteps / s->stride_steps;
  float a = alpha_at (s, t), a_prev = alpha_at (s, t_prev);
  float sa_prev = sqrtf (a_prev), s_dir = sqrtf (1.0f - a_prev);

  for (size_t j = 0; j < n; j++) {
    float x0, eps;
    predict_x0_eps (s, a, x[j], out[j], &x0, &eps);
    if (pred_x0)
      pred_x0[j] = x0;
    x[j] = sa_prev * x0 + s_dir * eps;
  }
}

static void
step_euler (const AeScheduler * s, int i, const float *out, float *x,
    float *pred_x0, size_t n)
{
  float sigma = s->sigmas[i];
  float dt = s->sigmas[i + 1] - sigma;
  float c = sigma * sigma + 1.0f;

  for (size_t j = 0; j < n; j++) {
    float x0 = s->prediction == AE_PREDICTION_V ?
        out[j] * (-sigma / sqrtf (c)) + x[j] / c : x[j] - sigma * out[j];
    float derivative = (x[j] - x0) / sigma;
    if (pred_x0)
      pred_x0[j] = x0;
    x[j] = x[j] + derivative * dt;
  }
}

static void
step_lcm (const AeScheduler * s, int i, const float *out, float *x,
    const float *noise, float *pred_x0, size_t n)
{
  int last = i == s->num_steps - 1;
  int t = (int) s->timesteps[i];
  int t_prev = last ? t : (int) s->timesteps[i + 1];
  float a = alpha_at (s, t), a_prev = alpha_at (s, t_prev);
  /* Boundary-condition scalings (consistency models), sigma_data 0.5. */
  double scaled_t = (double) t * s->timestep_scaling;
  float c_skip = (float) (0.25 / (scaled_t * scaled_t + 0.25));
  float c_out = (float) (scaled_t / sqrt (scaled_t * scaled_t + 0.25));
  float sa_prev = sqrtf (a_prev), sb_prev = sqrtf (1.0f - a_prev);

  for (size_t j = 0; j < n; j++) {
    float x0, eps;
    predict_x0_eps (s, a, x[j], out[j], &x0, &eps);
    if (pred_x0)
      pred_x0[j] = x0;
    float denoised = c_out * x0 + c_skip * x[j];
    x[j] = last ? denoised : sa_prev * denoised + sb_prev * noise[j];
  }
}

void
ae_scheduler_step (const AeScheduler * s, int i, const float *model_output,
    float *latents, const float *noise, float *pred_x0, size_t n)
{
  switch (s->type) {
    case AE_SCHEDULER_DDIM:
      step_ddim (s, i, model_output, latents, pred_x0, n);
      break;
    case AE_SCHEDULER_EULER:
      step_euler (s, i, model_output, latents, pred_x0, n);
      break;
    case AE_SCHEDULER_LCM:
      step_lcm (s, i, model_output, latents, noise, pred_x0, n);
      break;
  }
}
