/* AutoencoderKL (diffusers): the image <-> latent autoencoder of Stable
 * Diffusion.
 *
 * encode: x (B, in_channels, H, W) in [-1, 1] -> encoder -> quant_conv ->
 *   moments (B, 2L, H/f, W/f) split into mean and logvar (clamped to
 *   [-30, 20] as diffusers' DiagonalGaussianDistribution does);
 *   f = 2^(levels-1), L = latent_channels.
 * decode: latent (B, L, h, w), ALREADY divided by the scaling factor (and
 *   shift_factor added back if the config has one) -> post_quant_conv ->
 *   decoder -> sample (B, out_channels, h*f, w*f), nominally [-1, 1], not
 *   clamped.
 *
 * Weights stay in the mapped safetensors file; every activation comes from
 * the caller's arena and is given back before returning, so a forward pass
 * at a shape already seen allocates nothing. Errors name the file and the
 * field or key. */
#ifndef AE_VAE_H
#define AE_VAE_H

#include <stdbool.h>
#include <stdint.h>

#include "ae-error.h"
#include "config.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AE_VAE_MAX_LEVELS 8

typedef struct {
  int in_channels;              /* 3 */
  int out_channels;             /* 3 */
  int latent_channels;          /* 4 for SD1.x */
  int n_levels;                 /* len(block_out_channels) */
  int block_out_channels[AE_VAE_MAX_LEVELS];
  int layers_per_block;
  int norm_num_groups;
  float norm_eps;               /* 1e-6: fixed in diffusers' VAE */
  float scaling_factor;         /* 0.18215 for SD1.x */
  float shift_factor;           /* 0 when null */
  bool mid_block_add_attention;
  bool use_quant_conv;
  bool use_post_quant_conv;
} AeVaeConfig;

typedef struct AeVae AeVae;

/* Parses an AutoencoderKL config.json (already loaded). Checks the block
 * types (DownEncoderBlock2D / UpDecoderBlock2D), act_fn "silu", and that
 * channel counts divide into norm_num_groups. */
int ae_vae_config_parse (AeVaeConfig * cfg, const AeConfig * c,
    AeError * err);

/* DIR/config.json + DIR/diffusion_pytorch_model.safetensors (or sharded
 * index). Every weight is checked for presence and shape. Old checkpoints'
 * attention names (query/key/value/proj_attn) are accepted as well as
 * to_q/to_k/to_v/to_out.0. */
int ae_vae_load (AeVae ** out, const char *dir, AeError * err);
int ae_vae_load_files (AeVae ** out, const char *config_path,
    const char *weights_path, AeError * err);
void ae_vae_free (AeVae * vae);

const AeVaeConfig *ae_vae_config (const AeVae * vae);
float ae_vae_scaling_factor (const AeVae * vae);
/* 2^(levels-1): 8 for SD. */
int ae_vae_downscale (const AeVae * vae);

/* Called with captured activations named as diffusers' module paths
 * ("encoder.conv_in", "encoder.down_blocks.0.resnets.0", "quant_conv",
 * "decoder.up_blocks.1", ...). May be NULL. */
typedef void (*AeVaeActFn) (void *user, const char *name,
    const AeTensor * t);

/* x (B, in, H, W) with H and W divisible by the downscale factor; mean and
 * logvar (B, L, H/f, W/f) allocated by the caller. logvar may be NULL when
 * only the mean is wanted (latent_dist.mode()). */
int ae_vae_encode (AeVae * vae, const AeTensor * x, AeTensor * mean,
    AeTensor * logvar, AeVaeActFn act_fn, void *act_user, AeArena * arena,
    AeError * err);

/* latent (B, L, h, w) already / scaling_factor; sample (B, out, h*f, w*f)
 * allocated by the caller. */
int ae_vae_decode (AeVae * vae, const AeTensor * latent, AeTensor * sample,
    AeVaeActFn act_fn, void *act_user, AeArena * arena, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_VAE_H */
