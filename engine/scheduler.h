/* Noise schedulers: DDIM (eta 0), Euler (discrete) and LCM, configured from a
 * diffusers scheduler_config.json and matching diffusers v0.31 step for step.
 *
 * Usage: ae_scheduler_load() → ae_scheduler_set_timesteps(steps) → for each
 * step i: x_in = scale_model_input(i, latents); eps = model(x_in, t_i);
 * step(i, eps, latents). Latents start as noise * init_noise_sigma. */
#ifndef AE_SCHEDULER_H
#define AE_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "ae-error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  AE_SCHEDULER_DDIM,
  AE_SCHEDULER_EULER,
  AE_SCHEDULER_LCM,
} AeSchedulerType;

typedef enum {
  AE_PREDICTION_EPSILON,
  AE_PREDICTION_V,
  AE_PREDICTION_SAMPLE,
} AePredictionType;

typedef struct AeScheduler AeScheduler;

/* Reads scheduler_config.json. `type_name` overrides its "_class_name"
 * ("ddim", "euler", "lcm" or a diffusers class name); NULL keeps it. */
int ae_scheduler_load (AeScheduler ** out, const char *config_path,
    const char *type_name, AeError * err);
/* Same from JSON text; `name` stands for the file in messages. */
int ae_scheduler_load_data (AeScheduler ** out, const char *name,
    const char *json, const char *type_name, AeError * err);
void ae_scheduler_free (AeScheduler * s);

AeSchedulerType ae_scheduler_type (const AeScheduler * s);
/* "ddim", "euler", "lcm" <-> type; -1 for an unknown name. */
const char *ae_scheduler_type_name (AeSchedulerType type);
int ae_scheduler_type_from_name (const char *name);

int ae_scheduler_num_train_timesteps (const AeScheduler * s);
/* alphas_cumprod[num_train_timesteps], as diffusers computes it (float32). */
const float *ae_scheduler_alphas_cumprod (const AeScheduler * s);

/* Chooses `steps` timesteps. Fails (naming the config) when the schedule
 * cannot give that many (e.g. LCM with more than original_inference_steps). */
int ae_scheduler_set_timesteps (AeScheduler * s, int steps, AeError * err);
/* img2img strength (diffusers' StableDiffusionImg2ImgPipeline): after
 * set_timesteps(N), keeps the last int(N * strength) timesteps, so that
 * sampling starts from a partly noised image instead of pure noise; DDIM
 * still steps by T / N. 1 changes nothing. Fails for a strength outside
 * (0, 1] or one that leaves no step. */
int ae_scheduler_set_strength (AeScheduler * s, float strength, AeError * err);
/* Steps to run (after set_strength: the kept ones). */
int ae_scheduler_num_steps (const AeScheduler * s);
/* The model's timestep input at step i: an integer for DDIM and LCM, a
 * fractional value for Euler. */
float ae_scheduler_timestep (const AeScheduler * s, int i);
/* Euler's sigma at step i (0 for the other types); i == num_steps gives the
 * final sigma. */
float ae_scheduler_sigma (const AeScheduler * s, int i);
float ae_scheduler_init_noise_sigma (const AeScheduler * s);

/* x_in = x scaled for the model at step i (x_in may be x). */
void ae_scheduler_scale_model_input (const AeScheduler * s, int i,
    const float *x, float *x_in, size_t n);

/* Whether step i consumes fresh Gaussian noise (LCM, every step but the
 * last). */
int ae_scheduler_step_needs_noise (const AeScheduler * s, int i);

/* One step: latents (n floats) become the previous sample. model_output is
 * the guided prediction. noise (n floats) is read only when
 * ae_scheduler_step_needs_noise(); pred_x0 (n floats) may be NULL. */
void ae_scheduler_step (const AeScheduler * s, int i,
    const float *model_output, float *latents, const float *noise,
    float *pred_x0, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* AE_SCHEDULER_H */
