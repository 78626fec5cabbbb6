/* HandEncoder: ShowMaker-style key-point hand tokens, the
 * encoder_hidden_states of both UNets (docs/model-format.md, section
 * HandEncoder; PyTorch reference `HandEncoder` in train/models.py).
 *
 * For key point k with (x, y, c), x and y normalised to the canvas:
 *   pe_k  = [x, y, sin(w_f x).., cos(w_f x).., sin(w_f y).., cos(w_f y)..],
 *           w_f = 2^f pi, f < F
 *   h_k   = linear_2(silu(linear_1(pe_k)))
 *   c'    = clamp(c, 0, 1); g_k = c' if c' >= confidence_threshold else 0
 *   tok_k = norm_out(g_k h_k + (1 - g_k) missing_embedding
 *                    + keypoint_embedding.weight[k])     (LayerNorm 1e-5)
 *
 * Folder: DIR/config.json + DIR/diffusion_pytorch_model.safetensors
 * (F32 or F16; F16 is converted once at load). */
#ifndef AE_HAND_ENCODER_H
#define AE_HAND_ENCODER_H

#include "ae-error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* OpenPose hand: 21 points per hand; left then right = 42. */
#define AE_HAND_POINTS 21

typedef struct {
  int num_keypoints;            /* K (42 in the shipped models) */
  int num_frequencies;          /* F: linear_1 takes 2 + 4F inputs */
  int hidden_dim;               /* H */
  int cross_attention_dim;      /* D = the UNet's cross_attention_dim */
  float confidence_threshold;   /* below it a point uses missing_embedding */
} AeHandEncoderConfig;

typedef struct AeHandEncoder AeHandEncoder;

/* Parses and validates config.json (every field required, all > 0,
 * threshold in [0, 1]); errors name the file and the field. */
int ae_hand_encoder_config_load (AeHandEncoderConfig * cfg, const char *path,
    AeError * err);

/* DIR/config.json + DIR/diffusion_pytorch_model.safetensors. Every key is
 * checked for presence and shape ("FILE: tensor 'linear_1.weight':
 * expected (64,34), found (64,30)"). Scratch is sized for a batch of 1. */
int ae_hand_encoder_load (AeHandEncoder ** out, const char *dir,
    AeError * err);
int ae_hand_encoder_load_files (AeHandEncoder ** out, const char *config_path,
    const char *weights_path, AeError * err);
void ae_hand_encoder_free (AeHandEncoder * enc);

const AeHandEncoderConfig *ae_hand_encoder_get_config (const AeHandEncoder *
    enc);

/* Sizes the scratch for batches up to max_batch, so that forward never
 * allocates for B <= max_batch. */
int ae_hand_encoder_reserve (AeHandEncoder * enc, int max_batch,
    AeError * err);

/* keypoints (B, K, 3) = x, y in [0, 1] of the canvas and confidence c;
 * tokens (B, K, D). A larger B than reserved grows the scratch once.
 * Non-finite x/y of a point whose gate is 0 are ignored (it is missing);
 * non-finite input of a present point is an error. */
int ae_hand_encoder_forward (AeHandEncoder * enc, const float *keypoints,
    int B, float *tokens, AeError * err);

/* Builds the (42, 3) model input from two OpenPose hands in canvas pixels
 * (21 (x, y, c) triples each, e.g. `(const float *) person->hand[AP_LEFT]`
 * of pose/avatar-pose.h; NULL = hand missing): x / canvas_width,
 * y / canvas_height, c unchanged (the encoder clamps it). Points with
 * c <= 0 or non-finite values become (0, 0, 0). Returns -1 with err on a
 * canvas size <= 0. */
int ae_hand_keypoints_fill (float *keypoints, const float *left,
    const float *right, int canvas_width, int canvas_height, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_HAND_ENCODER_H */
