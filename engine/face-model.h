/* The face recapture model (docs/face-model.md; PyTorch reference
 * train/face_models.py): a pixel-space inpainting UNet on an aligned face
 * crop, conditioned on the crop's landmark heatmap, on texture tokens of
 * the reference face (its VAE latent, through cross-attention) and on an
 * identity vector (FaceIdentityEncoder, or any encoder of the same
 * output size).
 *
 * Folder MODEL/face/:
 *   face_config.json      crop_size, texture_size and the alignment
 *                         parameters (face-align.h)
 *   unet/                 UNet2DConditionModel, in_channels 10
 *                         [x_t, masked crop, hard mask, heatmap (3)],
 *                         out_channels 3, x0 ("sample") prediction
 *   conditioner/          FaceConditioner: texture_proj, texture_pos,
 *                         id_proj, norm_out
 *   identity_encoder/     FaceIdentityEncoder: conv_in, down.N.conv,
 *                         down.N.norm, proj_out
 *   scheduler_config.json DDIM, prediction_type sample, trailing spacing
 *
 * AeFaceModel is immutable after loading and may be shared by threads
 * (every forward takes the caller's arena). AeFaceReference (one
 * reference face, prepared once) is immutable too. AeFaceSession holds
 * one user's buffers and scheduler: one thread at a time. */
#ifndef AE_FACE_MODEL_H
#define AE_FACE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "ae-error.h"
#include "face-align.h"
#include "tensor.h"
#include "unet.h"
#include "vae.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AE_FACE_UNET_IN_CHANNELS 10
#define AE_FACE_MAX_LEVELS 8

typedef struct {
  int crop_size;                /* the size the model was trained at */
  int texture_size;             /* reference crop size for the VAE */
  int latent_channels;          /* conditioner: VAE latent channels */
  int texture_tokens;           /* (texture_size / VAE downscale)^2 */
  int identity_dim;             /* E */
  int identity_tokens;          /* n */
  int cross_attention_dim;      /* D = the UNet's */
  int id_image_size;            /* identity encoder input size */
  int id_levels;
  int id_channels[AE_FACE_MAX_LEVELS];
  int id_groups;
  AeFaceAlignParams align;
} AeFaceModelInfo;

typedef struct AeFaceModel AeFaceModel;

/* Loads DIR (MODEL/face) and checks that the parts fit: errors name the
 * file and field or key ("DIR/unet/config.json: in_channels 4, the face
 * model needs 10", "DIR/conditioner/config.json: cross_attention_dim 32
 * != DIR/unet/config.json cross_attention_dim 64"). */
int ae_face_model_load (AeFaceModel ** out, const char *dir, AeError * err);
void ae_face_model_free (AeFaceModel * m);

const AeFaceModelInfo *ae_face_model_info (const AeFaceModel * m);
const char *ae_face_model_path (const AeFaceModel * m);
AeUNet *ae_face_model_unet (const AeFaceModel * m);
/* Bytes of the weights files (mapped) and of float32 copies made. */
size_t ae_face_model_weight_bytes (const AeFaceModel * m);

/* Identity vectors: x (B, 3, S, S) in [-1, 1] (S = id_image_size; the
 * aligned crop times the hard face mask) -> e (B, E), unit length. */
int ae_face_identity_encode (AeFaceModel * m, const float *x, int B,
    float *e, AeArena * arena, AeError * err);

/* Cross-attention tokens: texture (C, h, w) with h * w = texture_tokens,
 * identity (E) -> ctx (texture_tokens + identity_tokens, D). */
int ae_face_condition (AeFaceModel * m, const float *texture,
    const float *identity, float *ctx, AeArena * arena, AeError * err);

/* ---- reference face ---------------------------------------------------- */

typedef struct AeFaceReference AeFaceReference;

/* Prepares a reference face from an RGB8 image and its face key points
 * (image pixels): -1 with "reference has no confident face ..." when
 * ae_face_confident fails, else the face aligned at texture_size and
 * encoded by `vae` (latent mean * its scaling factor), aligned at
 * id_image_size, masked and run through the identity encoder, and both
 * turned into the cross-attention tokens. */
int ae_face_reference_new (AeFaceReference ** out, AeFaceModel * m,
    AeVae * vae, const uint8_t * rgb, int width, int height, int stride,
    const float *face, int n_face, AeArena * arena, AeError * err);
/* From a texture latent (C, h, w) and an identity vector (E) given
 * directly (tests, other identity encoders). */
int ae_face_reference_new_from_parts (AeFaceReference ** out,
    AeFaceModel * m, const float *texture, const float *identity,
    AeArena * arena, AeError * err);
void ae_face_reference_free (AeFaceReference * r);
const float *ae_face_reference_identity (const AeFaceReference * r);
const float *ae_face_reference_texture (const AeFaceReference * r);
/* (tokens, D) */
const float *ae_face_reference_context (const AeFaceReference * r,
    int *tokens);

/* ---- one user's face restoration ------------------------------------- */

typedef struct AeFaceSession AeFaceSession;

/* crop_size 0 = the model's; else a multiple of the UNet's size multiple
 * (4 for 3 levels). Buffers are sized here: nothing is allocated per frame
 * once the arena has reached its peak. */
int ae_face_session_new (AeFaceSession ** out, AeFaceModel * m,
    int crop_size, AeError * err);
void ae_face_session_free (AeFaceSession * s);
int ae_face_session_crop_size (const AeFaceSession * s);

/* Crop, hard and soft masks and heatmap of a frame's face under transform
 * t (at the session's crop size). The face must be confident (the caller
 * checked ae_face_confident). */
void ae_face_session_prepare (AeFaceSession * s, const uint8_t * rgb,
    int width, int height, int stride, const float *face, int n_face,
    const AeFaceTransform * t);
/* Runs `steps` DDIM steps (trailing spacing: 1 step = one prediction from
 * t = 999) from the noise ae_noise_fill (seed, AE_NOISE_STREAM_INIT, 0):
 * the same noise every frame, so that a still face stays still. */
int ae_face_session_generate (AeFaceSession * s, const AeFaceReference * r,
    int steps, uint64_t seed, AeError * err);
/* Blends the generated crop into the frame (ae_face_blend with the soft
 * mask). */
void ae_face_session_blend (AeFaceSession * s, uint8_t * rgb, int width,
    int height, int stride, const AeFaceTransform * t, float strength);

/* The session's planes (3 or 1 x S x S), valid until the next prepare or
 * generate: "crop", "masked", "hard", "soft", "heat", "generated". NULL
 * for another name. */
const float *ae_face_session_plane (const AeFaceSession * s,
    const char *name);

#ifdef __cplusplus
}
#endif
#endif /* AE_FACE_MODEL_H */
