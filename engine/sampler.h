/* The sampling loop with classifier-free guidance, and the engine's
 * reproducible Gaussian noise. The loop knows nothing of models: the caller
 * predicts noise through a callback, and may change the latents after every
 * step (the streaming element fuses overlapping windows there). */
#ifndef AE_SAMPLER_H
#define AE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "ae-error.h"
#include "scheduler.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Predicts noise for x_in (n floats) at model timestep t. With cfg set it
 * writes 2n floats to eps: the unconditional prediction first, then the
 * conditional one (diffusers' batch order); otherwise n floats. */
typedef int (*AeEpsFn) (void *user, int step, float t, const float *x_in,
    int cfg, float *eps, AeError * err);

/* Called after step `step` with the new latents (n floats); may edit them. */
typedef int (*AeStepHook) (void *user, int step, float *latents, size_t n,
    AeError * err);

/* Fills n floats of fresh noise for step `step` (LCM); NULL uses
 * ae_noise_fill (seed, AE_NOISE_STREAM_STEP (step), 0, ...). */
typedef void (*AeNoiseFn) (void *user, int step, float *noise, size_t n);

typedef struct {
  float guidance_scale;         /* <= 1: one conditional pass, no CFG */
  uint64_t seed;                /* for LCM's per-step noise */
  AeEpsFn eps_fn;
  AeStepHook step_hook;         /* may be NULL */
  AeNoiseFn noise_fn;           /* may be NULL */
  void *user;
} AeSampleParams;

/* Floats of scratch memory ae_sample needs for n latent floats. */
size_t ae_sample_scratch_floats (size_t n);

/* Runs every step of s (after ae_scheduler_set_timesteps). latents holds
 * the initial noise on entry (it is multiplied by init_noise_sigma here)
 * and the final latents on return. scratch: ae_sample_scratch_floats(n). */
int ae_sample (const AeScheduler * s, const AeSampleParams * p,
    float *latents, size_t n, float *scratch, AeError * err);

/* eps = uncond + g * (cond - uncond), in place over the first n floats of
 * eps2 (2n floats: uncond then cond). */
void ae_guidance_combine (float *eps2, float guidance_scale, size_t n);

/* Reproducible standard-normal noise, a pure function of (seed, stream,
 * index, position): a splitmix64 counter hash feeding Box-Muller. Frame f's
 * own initial noise is stream AE_NOISE_STREAM_INIT, index f; index -1
 * (never a frame) is the field all frames share, which the avatar stream
 * mixes in (noise correlation, avatar-stream.h). Neither depends on the
 * window, so the frames two overlapping windows share start from the same
 * noise in both. AE_NOISE_STREAM_STEP (step) uses the same indices. */
#define AE_NOISE_STREAM_INIT 0
#define AE_NOISE_STREAM_STEP(step) (1 + (uint64_t) (step))
void ae_noise_fill (uint64_t seed, uint64_t stream, int64_t index,
    float *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* AE_SAMPLER_H */
