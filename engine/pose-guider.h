/* PoseGuider (AnimateAnyone-style; train/models.py, docs/model-format.md):
 * x = silu(conv_in(p)); per level i: x = silu(blocks.2i(x)) (3x3, c_i ->
 * c_i), x = silu(blocks.2i+1(x)) (3x3 stride 2, c_i -> c_i+1);
 * out = conv_out(x) (3x3, no activation). Its output is added to the
 * UNet's conv_in output (AeUNetHooks.conv_in_residual). */
#ifndef AE_POSE_GUIDER_H
#define AE_POSE_GUIDER_H

#include "ae-error.h"
#include "safetensors.h"
#include "tensor.h"
#include "unet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AE_POSE_GUIDER_MAX_LEVELS 8

typedef struct {
  int conditioning_channels;
  int n_levels;
  int block_out_channels[AE_POSE_GUIDER_MAX_LEVELS];
  int conditioning_embedding_channels;
} AePoseGuiderConfig;

typedef struct {
  AePoseGuiderConfig cfg;
  AeSafetensors *st;
  AeUNetParam conv_in;              /* conv_in */
  AeUNetParam blocks[2 * AE_POSE_GUIDER_MAX_LEVELS];        /* blocks.N */
  AeUNetParam conv_out;             /* conv_out */
} AePoseGuider;

int ae_pose_guider_config_load (AePoseGuiderConfig * cfg, const char *path,
    AeError * err);
/* DIR/config.json + DIR/diffusion_pytorch_model.safetensors. */
int ae_pose_guider_load (AePoseGuider ** out, const char *dir, AeError * err);
int ae_pose_guider_load_files (AePoseGuider ** out, const char *config_path,
    const char *weights_path, AeError * err);
void ae_pose_guider_free (AePoseGuider * g);

/* Output size for an input of h x w (each stride-2 conv: (h-1)/2+1). */
void ae_pose_guider_out_size (const AePoseGuider * g, int64_t h, int64_t w,
    int64_t * ho, int64_t * wo);

/* pose (B, conditioning_channels, H, W) -> out (B, embedding, Ho, Wo). */
int ae_pose_guider_forward (AePoseGuider * g, AeTensor * out,
    const AeTensor * pose, AeArena * arena, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_POSE_GUIDER_H */
