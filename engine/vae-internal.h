/* AutoencoderKL weight structs (engine/vae.c), shared with the other
 * backends that walk the same weights (engine/vulkan/vk-vae.c). Not part
 * of the public API: layouts may change with vae.c. */
#ifndef AE_VAE_INTERNAL_H
#define AE_VAE_INTERNAL_H

#include <stdbool.h>

#include "safetensors.h"
#include "tensor.h"
#include "vae.h"

/* DownEncoderBlock2D has layers_per_block resnets, UpDecoderBlock2D one
 * more: bound both. */
#define AE_VAE_MAX_LAYERS 8

typedef struct {
  int cin, cout;
  AeTensor norm1_w, norm1_b, conv1_w, conv1_b;
  AeTensor norm2_w, norm2_b, conv2_w, conv2_b;
  bool has_shortcut;
  AeTensor shortcut_w, shortcut_b;
} VaeResnet;

/* diffusers Attention as used by the VAE mid block: one head of size C,
 * GroupNorm first, biased q/k/v, residual added, rescale factor 1. */
typedef struct {
  int channels;
  AeTensor norm_w, norm_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b;
} VaeAttention;

typedef struct {
  VaeResnet resnets[2];
  bool has_attention;
  VaeAttention attention;
} VaeMidBlock;

typedef struct {
  int n_resnets;
  VaeResnet resnets[AE_VAE_MAX_LAYERS];
  bool has_sampler;             /* downsampler (encoder) or upsampler */
  AeTensor sampler_w, sampler_b;
} VaeLevel;

typedef struct {
  AeTensor conv_in_w, conv_in_b;
  VaeLevel levels[AE_VAE_MAX_LEVELS];
  VaeMidBlock mid;
  AeTensor norm_out_w, norm_out_b, conv_out_w, conv_out_b;
} VaeCoder;

struct AeVae {
  AeVaeConfig cfg;
  AeSafetensors *st;
  VaeCoder encoder, decoder;
  AeTensor quant_w, quant_b, post_quant_w, post_quant_b;
};

#endif /* AE_VAE_INTERNAL_H */
