#include <math.h>
#include <string.h>

#include "sampler.h"

size_t
ae_sample_scratch_floats (size_t n)
{
  return 4 * n;                 /* x_in, eps (2n with CFG), noise */
}

void
ae_guidance_combine (float *eps2, float guidance_scale, size_t n)
{
  const float *cond = eps2 + n;

  for (size_t i = 0; i < n; i++)
    eps2[i] = eps2[i] + guidance_scale * (cond[i] - eps2[i]);
}

int
ae_sample (const AeScheduler * s, const AeSampleParams * p, float *latents,
    size_t n, float *scratch, AeError * err)
{
  float *x_in = scratch, *eps = scratch + n, *noise = scratch + 3 * n;
  int cfg = p->guidance_scale > 1.0f;
  float sigma0 = ae_scheduler_init_noise_sigma (s);
  int steps = ae_scheduler_num_steps (s);

  if (steps < 1)
    return ae_error (err, "sampler: the scheduler has no timesteps set");
  if (p->eps_fn == NULL)
    return ae_error (err, "sampler: no eps_fn given");
  for (size_t i = 0; i < n; i++)
    latents[i] *= sigma0;
  for (int step = 0; step < steps; step++) {
    float t = ae_scheduler_timestep (s, step);
    ae_scheduler_scale_model_input (s, step, latents, x_in, n);
    if (p->eps_fn (p->user, step, t, x_in, cfg, eps, err) < 0)
      return -1;
    if (cfg)
      ae_guidance_combine (eps, p->guidance_scale, n);
    if (ae_scheduler_step_needs_noise (s, step)) {
      if (p->noise_fn)
        p->noise_fn (p->user, step, noise, n);
      else
        ae_noise_fill (p->seed, AE_NOISE_STREAM_STEP (step), 0, noise, n);
    }
    ae_scheduler_step (s, step, eps, latents, noise, NULL, n);
    if (p->step_hook && p->step_hook (p->user, step, latents, n, err) < 0)
      return -1;
  }
  return 0;
}

static inline uint64_t
splitmix64 (uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Uniform in (0, 1]: 53 random bits, never 0 (log below). */
static inline double
to_unit (uint64_t bits)
{
  return ((bits >> 11) + 1) * (1.0 / 9007199254740992.0);
}

void
ae_noise_fill (uint64_t seed, uint64_t stream, int64_t index, float *out,
    size_t n)
{
  uint64_t key = splitmix64 (splitmix64 (splitmix64 (seed) ^ stream) ^
      (uint64_t) index);

  for (size_t i = 0; i < n; i += 2) {
    uint64_t pair = i / 2;
    double u1 = to_unit (splitmix64 (key + 2 * pair));
    double u2 = to_unit (splitmix64 (key + 2 * pair + 1));
    double r = sqrt (-2.0 * log (u1)), theta = 2.0 * M_PI * u2;
    out[i] = (float) (r * cos (theta));
    if (i + 1 < n)
      out[i + 1] = (float) (r * sin (theta));
  }
}
