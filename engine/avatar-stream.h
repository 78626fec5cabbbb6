/* Streaming pose-guided latent diffusion over overlapping windows
 * (docs/avatar-pipeline.md; the fusion contract is docs/design.md section
 * 3 and docs/temporal-fusion.md).
 *
 * AeAvatarStream turns pose-guidance frames (RGB as posemapper draws them,
 * plus the frame's 42 hand key points) into denoised latent windows:
 * window k holds frames [kS, kS + W) (S = W - O); `lookahead` windows are
 * denoised in lockstep, their noise predictions fused at every step
 * (cond and uncond separately, before CFG) and the first O frames of a
 * group blended with the kept latents of the group before it (carry).
 * The latents of a window are what latentfuse blends and decodes.
 *
 * AeLatentBlender is latentfuse's logic (and the render CLI's): windows
 * in, one fused latent per frame out, in frame order, each exactly once.
 *
 * Neither object is thread-safe on its own (one caller at a time); many
 * streams may share one AeAvatarModel and AeAvatarReference across
 * threads. The engine's thread count is process-wide (threads.h). */
#ifndef AE_AVATAR_STREAM_H
#define AE_AVATAR_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ae-error.h"
#include "avatar-model.h"
#include "fusion.h"
#include "scheduler.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called after every denoising step of a lookahead group: windows
 * first_window .. first_window + n_windows - 1 finished step `step`
 * (0-based) of `steps`. */
typedef void (*AeAvatarProgressFn) (void *user, int64_t first_window,
    int n_windows, int step, int steps);

typedef struct {
  int width, height;            /* frame size (0 = model native); multiples
                                 * of ae_avatar_model_size_multiple */
  int steps;                    /* denoising steps (20) */
  AeSchedulerType scheduler;    /* DDIM (default), Euler or LCM, on the
                                 * model's scheduler_config.json */
  float guidance_scale;         /* CFG scale (2.5); <= 1: cond pass only */
  float pose_scale;             /* multiplies the pose-guider features (1) */
  int window;                   /* W, frames per window (16) */
  int overlap;                  /* O, frames shared by neighbours (4) */
  AeFusionMode fusion;          /* progressive (default) or uniform */
  int lookahead;                /* windows denoised in lockstep (1);
                                 * <= 0: all (offline, holds every frame
                                 * until ae_avatar_stream_finish) */
  uint64_t seed;                /* initial (and LCM) noise (0) */
  int threads;                  /* > 0: ae_threads_init (threads) at
                                 * creation (process-wide); 0 keeps it */
  bool reference_attention;     /* cond pass attends to the reference (on) */
  bool hand_tokens;             /* cond pass gets the hand tokens (on);
                                 * off: zero tokens as in the uncond pass */
  bool temporal_attention;      /* attn1 over every frame of the window at
                                 * once (Make-Your-Anchor all-frame
                                 * attention); for models trained with it:
                                 * the embedded one was trained frame by
                                 * frame and loses with it (off) */
  bool reference_init;          /* initial latents carry the reference's
                                 * latent as much as a training sample at
                                 * the first timestep carries its own
                                 * (SD1.5's schedule leaks sqrt(abar_T) of
                                 * the signal); needs a reference (on) */
  bool reference_concat;        /* with a UNet of in_channels 2 x latent
                                 * channels (SVD-style image conditioning):
                                 * the cond pass gets [z_t, z_ref] on the
                                 * channel axis; off: [z_t, 0] as in the
                                 * uncond pass (ablation). Needs a
                                 * reference; ignored by a UNet of
                                 * in_channels = latent channels (on) */
  float strength;               /* img2img strength in (0, 1] with the
                                 * reference init: sampling runs the last
                                 * int(steps x strength) of the steps, from
                                 * the reference's latent noised to the
                                 * first of them (diffusers' img2img);
                                 * lower keeps more of the reference's
                                 * texture and background (1) */
  float noise_correlation;      /* rho in [0, 1]: frame f's initial noise
                                 * is sqrt(rho) shared + sqrt(1 - rho)
                                 * own_f, shared one field for every frame
                                 * (PYoCo's mixed noise prior): 1 = every
                                 * frame starts from the same noise
                                 * (steadiest), 0 = independent noise per
                                 * frame; LCM's per-step noise likewise (1) */
  AeDevice device;              /* where the Denoising UNet runs: cpu
                                 * (default), vulkan (an error naming what
                                 * is missing without a device) or auto
                                 * (Vulkan, else the CPU); the model's
                                 * shared AeAvatarDevice of that kind */
  AeAvatarProgressFn progress;  /* may be NULL */
  void *progress_user;
} AeAvatarParams;

/* The defaults above. */
void ae_avatar_params_init (AeAvatarParams * p);

/* Whether a stream of `model` with these parameters reads the reference:
 * reference attention, reference init, or the reference concat of a UNet
 * that takes it (ae_avatar_model_reference_concat). Callers that prepare
 * a reference only when it is used (the render CLI, avatardiffuse) ask
 * this; ae_avatar_stream_new refuses a NULL reference when attention or
 * concat needs one. */
bool ae_avatar_params_need_reference (const AeAvatarParams * p,
    const AeAvatarModel * model);

/* One denoised window. latents: n_frames x channels x height x width
 * floats, frame-major, scaled like the UNet sees them (decode with
 * ae_avatar_model_decode_rgb, which divides by the scaling factor). */
typedef struct {
  int64_t index;                /* k */
  int64_t first_frame;          /* k S */
  int n_frames;                 /* W, or fewer for the last window at EOS */
  int channels, height, width;  /* latent shape of one frame */
  bool last;                    /* the final window of the stream */
  const float *latents;         /* owned by the stream */
} AeAvatarWindow;

typedef struct AeAvatarStream AeAvatarStream;

/* Checks the parameters against the model (sizes, window/overlap, LCM step
 * count, reference prepared with this model) and sizes every buffer once
 * (for lookahead <= 0 the group buffers are sized at finish). Holds
 * references on model and reference. reference may be NULL only with
 * reference_attention false and, for a reference-concat UNet,
 * reference_concat false. */
int ae_avatar_stream_new (AeAvatarStream ** out, AeAvatarModel * model,
    AeAvatarReference * reference, const AeAvatarParams * params,
    AeError * err);
void ae_avatar_stream_free (AeAvatarStream * s);

/* Latent shape of one frame and its size in floats. */
void ae_avatar_stream_latent_shape (const AeAvatarStream * s, int *channels,
    int *height, int *width);
size_t ae_avatar_stream_frame_floats (const AeAvatarStream * s);
const AeFusionLayout *ae_avatar_stream_layout (const AeAvatarStream * s);
const AeAvatarParams *ae_avatar_stream_params (const AeAvatarStream * s);
/* The device the Denoising UNet runs on (owned by the model; for `auto`
 * what it resolved to). */
AeAvatarDevice *ae_avatar_stream_device (const AeAvatarStream * s);

/* Frames from a pose frame's arrival until it can leave latentfuse:
 * ae_fusion_latency_frames (L S + O - 1; -1 for lookahead all). */
int64_t ae_avatar_stream_latency_frames (const AeAvatarStream * s);

/* Frame f's initial noise as the stream draws it (fs floats into out):
 * sqrt(rho) ae_noise_fill (seed, AE_NOISE_STREAM_INIT, -1) + sqrt(1 - rho)
 * ae_noise_fill (seed, AE_NOISE_STREAM_INIT, f), rho = noise_correlation,
 * in float; before the reference init and init_noise_sigma. A function of
 * (seed, rho, f) only, whatever the window layout (what the render CLI
 * saves as noise_init). */
void ae_avatar_stream_initial_noise (const AeAvatarStream * s, int64_t frame,
    float *out);

/* Runtime changes (guidance-scale, pose-scale are controllable): they
 * apply from the next lookahead group on. */
void ae_avatar_stream_set_guidance_scale (AeAvatarStream * s, float g);
void ae_avatar_stream_set_pose_scale (AeAvatarStream * s, float scale);

/* Appends pose frame number ae_avatar_stream_frames_pushed (s):
 * pose_rgb is width x height RGB8 (stride bytes a row), hand_kp its 42 x 3
 * hand key points (x, y normalised to the canvas; NULL = both hands
 * missing). The pose guider and hand encoder run here; when the frame
 * completes a lookahead group, the group is denoised before returning
 * (the call then takes the time of L windows x steps). Error, with the
 * frame not taken, if windows of an earlier group were not popped yet. */
int ae_avatar_stream_push_frame (AeAvatarStream * s, const uint8_t * pose_rgb,
    int stride, const float *hand_kp, AeError * err);

/* End of stream: denoises what is left (the last group, its last window
 * shortened to end at the last frame). After it, push_frame fails until
 * ae_avatar_stream_reset. */
int ae_avatar_stream_finish (AeAvatarStream * s, AeError * err);

/* Takes the next denoised window in order: returns 1 and fills *out, or 0
 * when none is ready. out->latents stays valid until the next push_frame,
 * finish, reset or free. */
int ae_avatar_stream_pop_window (AeAvatarStream * s, AeAvatarWindow * out);

/* Forgets every frame, window and carried latent (flush, or a new
 * stream): the next pushed frame is frame 0. Buffers are kept. */
void ae_avatar_stream_reset (AeAvatarStream * s);

int64_t ae_avatar_stream_frames_pushed (const AeAvatarStream * s);
/* Windows denoised so far (popped or not). */
int64_t ae_avatar_stream_windows_done (const AeAvatarStream * s);

/* ---- final blend (latentfuse, render CLI) ------------------------------ */

typedef struct AeLatentBlender AeLatentBlender;

/* For windows of this layout and frames of frame_floats floats. Memory for
 * the windows that may still hold an unfinished frame is allocated here,
 * once. */
AeLatentBlender *ae_latent_blender_new (const AeFusionLayout * layout,
    size_t frame_floats, AeError * err);
void ae_latent_blender_free (AeLatentBlender * b);

/* Window k (its first frame kS, n_frames frames, frame-major latents):
 * windows must come in order 0, 1, 2, ..., full length W except a last
 * one; the data is copied. A window shorter than W ends the stream. */
int ae_latent_blender_push (AeLatentBlender * b, int64_t index,
    int64_t first_frame, int n_frames, const float *latents, AeError * err);

/* End of stream: the frames still held become ready (N = the end of the
 * last window pushed). */
void ae_latent_blender_finish (AeLatentBlender * b);

/* Next frame in order whose windows have all arrived: returns 1, writes
 * its index and its fused latent (ae_fusion_blend_frame over every window
 * holding it) to out (frame_floats floats); 0 when none is ready. */
int ae_latent_blender_pop (AeLatentBlender * b, int64_t * frame,
    float *out);

/* Frames popped so far; forget everything (new stream). */
int64_t ae_latent_blender_frames_out (const AeLatentBlender * b);
void ae_latent_blender_reset (AeLatentBlender * b);

#ifdef __cplusplus
}
#endif
#endif /* AE_AVATAR_STREAM_H */
