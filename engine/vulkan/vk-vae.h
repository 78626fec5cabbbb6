/* AutoencoderKL encode / decode on the Vulkan backend.
 *
 * Walks the same weight structs as engine/vae.c (engine/vae-internal.h):
 * ae_vk_vae_new uploads every weight once; a pass records the whole
 * decoder (post_quant_conv, conv_in, mid block with its attention, every
 * up block, conv_norm_out + SiLU, conv_out) or encoder into one command
 * buffer and submits it once. Activations use two pooled device buffers
 * per stage (read one, write the next) plus the stage's temporaries, the
 * same plan as the CPU pass; a second pass at the same shape allocates
 * nothing. The mid-block attention runs as one head of C channels
 * (attention_wide.comp above 160: SD 1.5's 512, up to 1024). */
#ifndef AE_VK_VAE_H
#define AE_VK_VAE_H

#include "vae.h"
#include "vk-context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AeVkVae AeVkVae;

/* vae must outlive the AeVkVae. */
int ae_vk_vae_new (AeVkVae ** out, AeVkContext * ctx, const AeVae * vae,
    AeError * err);
void ae_vk_vae_free (AeVkVae * vv);

/* Contracts of ae_vae_decode / ae_vae_encode (no activation callback). */
int ae_vk_vae_decode (AeVkVae * vv, const AeTensor * latent,
    AeTensor * sample, AeError * err);
int ae_vk_vae_encode (AeVkVae * vv, const AeTensor * x, AeTensor * mean,
    AeTensor * logvar, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_VK_VAE_H */
