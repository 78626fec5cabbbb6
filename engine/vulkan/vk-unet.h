/* UNet2DConditionModel forward on the Vulkan backend.
 *
 * Walks the same weight structs as engine/unet.c (AeUNet): every weight
 * is uploaded once by ae_vk_unet_new (device-local memory where the
 * device has it) and reused by every forward pass. A forward records the
 * whole network -- time embedding, conv_in (+ pose residual), every
 * down / mid / up block, conv_out -- into one command buffer and submits
 * it once: no host round trip between ops. Activation buffers come from
 * the context's pool in the same order on every pass, so a second pass at
 * the same shape allocates nothing.
 *
 * Hooks (AeUNetHooks) as on the CPU: conv_in_residual, reference
 * attention CAPTURE (the norm1 outputs are copied into the caller's host
 * AeRefBank after the pass, so a bank captured on either backend can be
 * injected on either) and INJECT with ref_batch_mask (one masked attention
 * dispatch; at most AE_VK_ATTN_MAX_MASK batch elements), temporal
 * all-frame attention, alone or with the reference tokens appended (one
 * bank entry per block, a mask uniform over the frames). act_fn is not
 * supported (an error says so): use the CPU backend to dump activations. */
#ifndef AE_VK_UNET_H
#define AE_VK_UNET_H

#include "unet.h"
#include "vk-context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AeVkUNet AeVkUNet;

/* Uploads every weight of u (which must outlive the AeVkUNet). */
int ae_vk_unet_new (AeVkUNet ** out, AeVkContext * ctx, const AeUNet * u,
    AeError * err);
/* Frees the device copies of the weights. */
void ae_vk_unet_free (AeVkUNet * vu);

/* Same contract as ae_unet_forward (host tensors in and out; shapes and
 * errors as there), computed on the device. */
int ae_vk_unet_forward (AeVkUNet * vu, AeTensor * out,
    const AeTensor * sample, const float *timesteps, int n_timesteps,
    const AeTensor * encoder_hidden_states, const AeUNetHooks * hooks,
    AeError * err);

/* Dispatches recorded by the last forward (benchmarks, tests). */
uint64_t ae_vk_unet_last_dispatches (const AeVkUNet * vu);
/* Submits of the last forward: 1 unless it exceeded AE_VK_MAX_SETS. */
uint64_t ae_vk_unet_last_submits (const AeVkUNet * vu);

#ifdef __cplusplus
}
#endif
#endif /* AE_VK_UNET_H */
