/* TAESD ("tiny autoencoder" for Stable Diffusion, github.com/madebyollin/
 * taesd): a small, fast encoder/decoder that maps images to the latent
 * space of the full VAE. Used as the live decoder (model type "taesd").
 * Supports the TAESD layout (latent 4 for SD1.x) and the TAEF2 variant
 * (latent 32, GroupNorm "pool" branch in the latent-resolution blocks): the
 * latent channel count and the pool branches are read from the weights.
 *
 * Weight files keep the nn.Sequential key names of taesd_encoder.pth /
 * taesd_decoder.pth ("0.weight", "1.conv.0.weight", "11.pool.0.weight",
 * ...), converted to safetensors (any float dtype).
 *
 * encode: image (B, 3, H, W) in [0, 1] -> latent (B, L, h, w) with
 *   h = s(s(s(H))), s(n) = (n - 1) / 2 + 1 (three stride-2 convs).
 * decode: latent (B, L, h, w), used as is (no scaling factor) -> image
 *   (B, 3, 8h, 8w), nominally [0, 1] but NOT clamped.
 * Activations come from the caller's arena and are given back. */
#ifndef AE_TAESD_H
#define AE_TAESD_H

#include <stdint.h>

#include "ae-error.h"
#include "tensor.h"
#include "vae.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AeTaesd AeTaesd;

/* Either path may be NULL (e.g. a decoder-only model for live preview),
 * not both. Errors name the file and the key, with expected and found
 * shapes. */
int ae_taesd_load (AeTaesd ** out, const char *encoder_path,
    const char *decoder_path, AeError * err);
/* DIR/taesd_encoder.safetensors and DIR/taesd_decoder.safetensors (either
 * may be absent, not both). */
int ae_taesd_load_dir (AeTaesd ** out, const char *dir, AeError * err);
void ae_taesd_free (AeTaesd * t);

int ae_taesd_latent_channels (const AeTaesd * t);
bool ae_taesd_has_encoder (const AeTaesd * t);
bool ae_taesd_has_decoder (const AeTaesd * t);
/* Latent size for an image size (per dimension). */
int64_t ae_taesd_latent_size (int64_t image_size);

/* act_fn (may be NULL) receives "encoder.<i>" / "decoder.<i>", the output
 * of Sequential element i. */
int ae_taesd_encode (AeTaesd * t, const AeTensor * image, AeTensor * latent,
    AeVaeActFn act_fn, void *act_user, AeArena * arena, AeError * err);
int ae_taesd_decode (AeTaesd * t, const AeTensor * latent, AeTensor * image,
    AeVaeActFn act_fn, void *act_user, AeArena * arena, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_TAESD_H */
