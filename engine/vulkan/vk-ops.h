/* Engine ops on the Vulkan backend: the same contracts as engine/ops.h
 * (float32, row-major, NCHW / NLC, shapes checked, -1 + AeError on a
 * mismatch), on tensors that live in AeVkBuffers. Each op records one
 * dispatch into the context's open batch (ae_vk_begin is implicit); call
 * ae_vk_submit before reading results on the host. Aliasing rules are the
 * CPU op's. */
#ifndef AE_VK_OPS_H
#define AE_VK_OPS_H

#include "ops.h"
#include "tensor.h"
#include "vk-context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  AeVkBuffer *buf;              /* not owned; data starts at offset 0 */
  int ndim;
  int64_t shape[AE_MAX_DIMS];
} AeVkTensor;

AeVkTensor ae_vk_tensor_nd (AeVkBuffer * buf, int ndim,
    const int64_t * shape);
/* Same shape as a host tensor (for uploads of its data). */
AeVkTensor ae_vk_tensor_like (AeVkBuffer * buf, const AeTensor * t);
int64_t ae_vk_tensor_numel (const AeVkTensor * t);

int ae_vk_add (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * a,
    const AeVkTensor * b, AeError * err);
int ae_vk_add_scaled (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * a, const AeVkTensor * b, float output_scale_factor,
    AeError * err);
int ae_vk_silu (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeError * err);
int ae_vk_gelu (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeGeluKind kind, AeError * err);
int ae_vk_scale (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    float s, AeError * err);
int ae_vk_clamp (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    float lo, float hi, AeError * err);
int ae_vk_geglu (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeError * err);

int ae_vk_group_norm (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * x, int groups, float eps, const AeVkTensor * gamma,
    const AeVkTensor * beta, bool silu, AeError * err);
int ae_vk_layer_norm (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * x, float eps, const AeVkTensor * gamma,
    const AeVkTensor * beta, AeError * err);

int ae_vk_linear (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    const AeVkTensor * w, const AeVkTensor * b, AeError * err);
int ae_vk_conv2d_pad (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * x, const AeVkTensor * w, const AeVkTensor * b,
    int stride, int pad_top, int pad_bottom, int pad_left, int pad_right,
    AeError * err);
int ae_vk_conv2d (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    const AeVkTensor * w, const AeVkTensor * b, int stride, int pad,
    AeError * err);

/* Head dim d <= 1024: d <= 160 (the UNet's heads, 40..160 in SD 1.5) runs
 * attention.comp (one query row per invocation), wider heads (the VAE mid
 * block's single head, 512 in SD 1.5) attention_wide.comp (one query row
 * per workgroup). */
int ae_vk_attention (AeVkContext * ctx, AeVkTensor * out,
    const AeVkTensor * q, const AeVkTensor * k, const AeVkTensor * v,
    const AeVkTensor * k_extra, const AeVkTensor * v_extra, int heads,
    float scale, AeError * err);

/* Reference attention under CFG: batch element i attends to the extra
 * tokens only when extra_mask[i] (B entries, B <= AE_VK_ATTN_MAX_MASK);
 * extra_mask NULL = every element, as ae_vk_attention. One dispatch. */
#define AE_VK_ATTN_MAX_MASK 128
int ae_vk_attention_masked (AeVkContext * ctx, AeVkTensor * out,
    const AeVkTensor * q, const AeVkTensor * k, const AeVkTensor * v,
    const AeVkTensor * k_extra, const AeVkTensor * v_extra,
    const bool *extra_mask, int heads, float scale, AeError * err);

int ae_vk_upsample_nearest2x (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * x, AeError * err);
/* timesteps (n) on the device; y (n, dim). */
int ae_vk_timestep_embedding (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * timesteps, bool flip_sin_to_cos, float freq_shift,
    float scale, float max_period, AeError * err);

/* Layout ops (shaders/layout.comp), as ae_copy, ae_nchw_to_nlc,
 * ae_nlc_to_nchw, ae_concat_channels, ae_add_channel. */
int ae_vk_copy (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    AeError * err);
int ae_vk_nchw_to_nlc (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * x, AeError * err);
int ae_vk_nlc_to_nchw (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * x, AeError * err);
int ae_vk_concat_channels (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * a, const AeVkTensor * b, AeError * err);
int ae_vk_add_channel (AeVkContext * ctx, AeVkTensor * x,
    const AeVkTensor * v, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_VK_OPS_H */
