/* The avatar model: every part of a model folder loaded once, and a
 * reference identity prepared once (docs/avatar-pipeline.md,
 * docs/model-format.md).
 *
 * AeAvatarModel is a loaded model folder (MODEL/vae, MODEL/unet,
 * MODEL/reference_unet, MODEL/pose_guider, MODEL/hand_encoder,
 * MODEL/scheduler_config.json). It is immutable after loading and
 * reference-counted, so one loaded model is shared by every element of a
 * pipeline and every thread: all mutable scratch (arenas, latents, the
 * scheduler state) lives in the per-user objects (AeAvatarReference,
 * AeAvatarStream, the caller's AeArena). The only shared mutable state,
 * the hand encoder's scratch, is behind a mutex inside the model.
 *
 * AeAvatarReference is one reference identity: an RGB image and its hand
 * key points, encoded by the VAE and run through the Reference UNet once
 * (t = 0, hand tokens as context); it holds the captured reference
 * attention bank that every denoising pass reads. Immutable after
 * creation and reference-counted as well.
 *
 * Pure C, no GStreamer, no pose/ library: callers turn an OpenPose JSON
 * into the 42 x 3 hand key points with ae_hand_keypoints_fill
 * (hand-encoder.h). Every fallible call returns 0 or -1 with an AeError
 * naming the folder or file. */
#ifndef AE_AVATAR_MODEL_H
#define AE_AVATAR_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ae-error.h"
#include "backend.h"
#include "hand-encoder.h"
#include "pose-guider.h"
#include "tensor.h"
#include "unet.h"
#include "vae.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 42 key points x (x, y, c): left hand 0-20, right hand 21-41. */
#define AE_AVATAR_HAND_KP (2 * AE_HAND_POINTS)
#define AE_AVATAR_HAND_FLOATS (AE_AVATAR_HAND_KP * 3)

typedef struct AeAvatarModel AeAvatarModel;

/* Loads every part of the model folder `dir` and checks that they fit
 * together. Errors name the folder or file: a missing folder or
 * scheduler_config.json, a truncated or malformed weights file (with the
 * key), and mismatched parts, e.g. "DIR/pose_guider/config.json:
 * conditioning_embedding_channels 64 != DIR/unet/config.json
 * block_out_channels[0] 32", hand encoder cross_attention_dim != the
 * UNet's, reference UNet block layout != the denoising UNet's, VAE
 * latent_channels != UNet out_channels or the reference UNet's
 * in_channels, the denoising UNet's in_channels neither latent_channels
 * nor twice that (reference concat), pose guider downscale != VAE
 * downscale. On error *out is NULL. The returned model has one
 * reference. */
int ae_avatar_model_load (AeAvatarModel ** out, const char *dir,
    AeError * err);

/* Adds a reference (thread-safe); returns m. */
AeAvatarModel *ae_avatar_model_ref (AeAvatarModel * m);
/* Drops a reference (thread-safe); the last one frees the model. NULL is
 * accepted. */
void ae_avatar_model_unref (AeAvatarModel * m);

/* The folder given to ae_avatar_model_load. */
const char *ae_avatar_model_path (const AeAvatarModel * m);

/* Native frame size: the VAE's sample_size (square; 256 for
 * avatar-default). */
int ae_avatar_model_native_size (const AeAvatarModel * m);

/* Frame widths and heights must be multiples of this: the VAE downscale
 * times 2^(UNet levels - 1) (8 x 4 = 32 for avatar-default), so that the
 * latent divides through every UNet level. */
int ae_avatar_model_size_multiple (const AeAvatarModel * m);

/* Latent channels (4), VAE downscale factor (8), scaling factor (latents
 * the UNet sees = VAE mean * scaling factor). */
int ae_avatar_model_latent_channels (const AeAvatarModel * m);
int ae_avatar_model_downscale (const AeAvatarModel * m);
float ae_avatar_model_scaling_factor (const AeAvatarModel * m);

/* True when the Denoising UNet takes the reference latent concatenated
 * to its input (SVD / MimicMotion image conditioning): unet in_channels =
 * 2 x latent channels, the input of a frame being [z_t, c] on the channel
 * axis with c = z_ref in the conditional pass and zeros in the
 * unconditional one (docs/model-format.md). False: in_channels = latent
 * channels, the UNet sees z_t alone. */
bool ae_avatar_model_reference_concat (const AeAvatarModel * m);

/* The parts, for callers that run them directly. They are shared: only
 * their const forward functions (which take the caller's arena) may be
 * used; never free them. The hand encoder is not exposed (its scratch is
 * shared): use ae_avatar_model_hand_tokens. */
AeVae *ae_avatar_model_vae (const AeAvatarModel * m);
AeUNet *ae_avatar_model_unet (const AeAvatarModel * m);
AeUNet *ae_avatar_model_reference_unet (const AeAvatarModel * m);
AePoseGuider *ae_avatar_model_pose_guider (const AeAvatarModel * m);
const AeHandEncoderConfig *ae_avatar_model_hand_config (const
    AeAvatarModel * m);

/* scheduler_config.json: its path and its text (for ae_scheduler_load_data,
 * which gives every user its own scheduler). */
const char *ae_avatar_model_scheduler_path (const AeAvatarModel * m);
const char *ae_avatar_model_scheduler_json (const AeAvatarModel * m);

/* Weight memory, for RSS reporting: mapped = bytes of the weights files
 * mapped read-only (shared with the page cache), converted = bytes of
 * float32 copies made at load (F16/BF16 weights). */
void ae_avatar_model_weight_bytes (const AeAvatarModel * m, size_t * mapped,
    size_t * converted);

/* Hand tokens: keypoints (B, 42, 3), x and y in [0, 1] of the canvas and
 * confidence (ae_hand_keypoints_fill) -> tokens (B, 42, D), D the UNet's
 * cross_attention_dim. Serialised by the model's mutex (the encoder's
 * scratch is shared); cheap (B x 42 small MLPs). */
int ae_avatar_model_hand_tokens (AeAvatarModel * m, const float *keypoints,
    int B, float *tokens, AeError * err);

/* Decodes (on the CPU; ae_avatar_device_decode_rgb on a device) n latent
 * frames (frame-major (n, C, h, w), scaled as the UNet
 * sees them) to RGB8: rgb = clamp ((vae.decode (z / scaling_factor) + 1)
 * / 2, 0, 1) * 255, rounded. Frame i goes to rgb + i * frame_bytes, rows
 * `stride` bytes apart, (h * downscale) x (w * downscale) pixels.
 * Temporaries come from the caller's arena (one frame at a time, so the
 * arena's peak does not grow with n). */
int ae_avatar_model_decode_rgb (AeAvatarModel * m, const float *latents,
    int n, int h, int w, uint8_t * rgb, int stride, size_t frame_bytes,
    AeArena * arena, AeError * err);

/* Encodes (on the CPU; ae_avatar_device_encode_rgb on a device) an RGB8
 * image of exactly (h * downscale) x (w * downscale)
 * pixels to its latent mean times the scaling factor: latent (C, h, w).
 * x = 2 * rgb / 255 - 1. */
int ae_avatar_model_encode_rgb (AeAvatarModel * m, const uint8_t * rgb,
    int width, int height, int stride, float *latent, AeArena * arena,
    AeError * err);

/* ---- the model on a device ----------------------------------------------- */

/* The model's networks on one compute device (engine/vulkan/backend.h):
 * its AeBackend and the Denoising UNet, Reference UNet and VAE bound to it.
 * The model owns at most one per device kind -- a CPU one and a Vulkan one
 * -- created on first request and freed with the model, so every stream,
 * reference and decoder of one model on one device shares one upload of
 * the weights (and, through the shared model, every element of a
 * pipeline). On Vulkan a part's weights are uploaded the first time it is
 * prepared or used, and the device runs one pass at a time: each pass (and
 * each upload) holds the device's mutex, so any number of threads may use
 * it. CPU passes run concurrently (the parts are read-only; scratch comes
 * from the caller's arena). The pose guider and the hand encoder run on
 * the CPU in both cases. */
typedef struct AeAvatarDevice AeAvatarDevice;

typedef enum {
  AE_AVATAR_PART_UNET = 1 << 0,           /* unet/ (denoising) */
  AE_AVATAR_PART_REFERENCE_UNET = 1 << 1, /* reference_unet/ */
  AE_AVATAR_PART_VAE = 1 << 2,            /* vae/ */
} AeAvatarPart;

/* The model on `want`: cpu, vulkan (an error naming what is missing -- the
 * build, the driver, a device, a compute queue -- when no Vulkan device
 * opens) or auto (Vulkan when it opens, else the CPU device, whose
 * ae_avatar_device_note says why). The device belongs to the model: valid
 * as long as the model is; never freed by the caller. Thread-safe. */
int ae_avatar_model_device (AeAvatarModel * m, AeDevice want,
    AeAvatarDevice ** out, AeError * err);

/* AE_DEVICE_CPU or AE_DEVICE_VULKAN. */
AeDevice ae_avatar_device_kind (const AeAvatarDevice * d);
/* "cpu" or "vulkan: <device name> (<type>)". */
const char *ae_avatar_device_describe (const AeAvatarDevice * d);
/* On the CPU device: why the last attempt to open Vulkan for this model
 * failed ("" when none failed); "" on the Vulkan device. */
const char *ae_avatar_device_note (const AeAvatarDevice * d);
AeAvatarModel *ae_avatar_device_model (const AeAvatarDevice * d);
/* Its backend (ae_backend_vk_context gives the Vulkan context: tests,
 * benchmarks). Use it only through this device's functions. */
AeBackend *ae_avatar_device_backend (const AeAvatarDevice * d);

/* Binds the parts (AeAvatarPart bits) now: on Vulkan their weights are
 * uploaded (once per model and device), so that the first pass does not
 * pay for it. Passes prepare what they use anyway. */
int ae_avatar_device_prepare (AeAvatarDevice * d, unsigned parts,
    AeError * err);

/* ae_unet_forward's contract on the device, for `which` =
 * AE_AVATAR_PART_UNET or AE_AVATAR_PART_REFERENCE_UNET. The arena is used
 * on the CPU (and must be given); hooks->act_fn is refused on Vulkan. */
int ae_avatar_device_unet_forward (AeAvatarDevice * d, AeAvatarPart which,
    AeTensor * out, const AeTensor * sample, const float *timesteps,
    int n_timesteps, const AeTensor * encoder_hidden_states,
    const AeUNetHooks * hooks, AeArena * arena, AeError * err);

/* ae_vae_encode / ae_vae_decode contracts on the device (no activation
 * capture). */
int ae_avatar_device_vae_encode (AeAvatarDevice * d, const AeTensor * x,
    AeTensor * mean, AeTensor * logvar, AeArena * arena, AeError * err);
int ae_avatar_device_vae_decode (AeAvatarDevice * d, const AeTensor * latent,
    AeTensor * sample, AeArena * arena, AeError * err);

/* ae_avatar_model_decode_rgb / _encode_rgb on the device. */
int ae_avatar_device_decode_rgb (AeAvatarDevice * d, const float *latents,
    int n, int h, int w, uint8_t * rgb, int stride, size_t frame_bytes,
    AeArena * arena, AeError * err);
int ae_avatar_device_encode_rgb (AeAvatarDevice * d, const uint8_t * rgb,
    int width, int height, int stride, float *latent, AeArena * arena,
    AeError * err);

/* ---- reference identity ------------------------------------------------ */

typedef struct AeAvatarReference AeAvatarReference;

/* Prepares a reference identity for frames of width x height (0, 0 = the
 * model's native size; else multiples of ae_avatar_model_size_multiple):
 *  1. rgb (any size, 3 bytes a pixel, stride bytes a row) is resized to
 *     width x height by ae_image_resize (engine/image.h: PIL-style
 *     bilinear, the filter widened by the scale when shrinking; stretched,
 *     not cropped: what training's dataset.load_rgb does);
 *  2. z_ref = VAE mean of it * scaling_factor (1, C, h, w);
 *  3. hand tokens of hand_kp (42 x 3 as ae_hand_keypoints_fill gives;
 *     NULL = both hands missing, c = 0);
 *  4. the Reference UNet runs once at t = 0 on z_ref with those tokens,
 *     capturing the tokens entering every attn1 (the reference bank).
 * Runs on the CPU (ae_avatar_reference_new_on: on a device). Holds a
 * reference on the model. */
int ae_avatar_reference_new (AeAvatarReference ** out, AeAvatarModel * m,
    const uint8_t * rgb, int rgb_width, int rgb_height, int stride,
    const float *hand_kp, int width, int height, AeError * err);

/* The same, the VAE encode and the Reference UNet running on `dev` (the
 * model is the device's). The captured bank is host memory: a reference
 * prepared on one device is used by streams on any. */
int ae_avatar_reference_new_on (AeAvatarReference ** out,
    AeAvatarDevice * dev, const uint8_t * rgb, int rgb_width,
    int rgb_height, int stride, const float *hand_kp, int width, int height,
    AeError * err);

AeAvatarReference *ae_avatar_reference_ref (AeAvatarReference * r);
void ae_avatar_reference_unref (AeAvatarReference * r);

/* The frame size it was prepared for. */
int ae_avatar_reference_width (const AeAvatarReference * r);
int ae_avatar_reference_height (const AeAvatarReference * r);
/* The model it was prepared with. */
AeAvatarModel *ae_avatar_reference_model (const AeAvatarReference * r);
/* The captured bank (read-only: AE_REF_INJECT reads it). */
const AeRefBank *ae_avatar_reference_bank (const AeAvatarReference * r);
/* Its latent (1, C, h, w), scaled like the UNet's input. */
const AeTensor *ae_avatar_reference_latent (const AeAvatarReference * r);

#ifdef __cplusplus
}
#endif
#endif /* AE_AVATAR_MODEL_H */
