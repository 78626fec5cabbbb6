/* Backend choice of the avatar engine: run the models on the CPU or on a
 * Vulkan device, chosen by name ("cpu", "vulkan", "auto") through one API
 * that the tools and the elements share.
 *
 * AeBackend opens the device once (for Vulkan: instance, device, queue,
 * pipelines on first use); AeBackendUNet / AeBackendVae bind a loaded
 * model to it (on Vulkan its weights are uploaded once) and run passes
 * with the CPU functions' contracts. "auto" opens Vulkan when the build
 * has it and a GPU opens -- a software device (Mesa lavapipe) only when
 * AE_VULKAN_DEVICE names it, being slower than the CPU backend -- else
 * falls back to the CPU and records why (ae_backend_note). "vulkan" fails with an error naming what is missing:
 * the build (no Vulkan loader / glslc at configure time), the driver
 * (no ICD: install mesa-vulkan-drivers or a GPU driver), a device or a
 * compute queue.
 *
 * Threads: an AeBackend and everything bound to it belong to one thread
 * at a time (the Vulkan context records into one command buffer). This
 * header compiles whether or not the Vulkan backend was built. */
#ifndef AE_BACKEND_H
#define AE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "ae-error.h"
#include "tensor.h"
#include "unet.h"
#include "vae.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  AE_DEVICE_CPU,
  AE_DEVICE_VULKAN,
  AE_DEVICE_AUTO,               /* Vulkan when a device opens, else CPU */
} AeDevice;

/* "cpu", "vulkan" or "auto" (case-sensitive); anything else is an error
 * that lists the accepted names. Used by avatar-engine's --device. */
int ae_device_parse (const char *name, AeDevice * out, AeError * err);
const char *ae_device_name (AeDevice d);
/* Whether this build contains the Vulkan backend. */
bool ae_vulkan_built (void);

typedef struct AeBackend AeBackend;

int ae_backend_open (AeBackend ** out, AeDevice want, AeError * err);
void ae_backend_free (AeBackend * b);
/* AE_DEVICE_CPU or AE_DEVICE_VULKAN: what `auto` resolved to. */
AeDevice ae_backend_device (const AeBackend * b);
/* "cpu" or "vulkan: <device name> (<type>)". */
const char *ae_backend_describe (const AeBackend * b);
/* Why `auto` fell back to the CPU (the Vulkan error, or that the only
 * device is a software one), else "". */
const char *ae_backend_note (const AeBackend * b);
/* Whether `auto` takes this backend: a Vulkan GPU, or a software (CPU
 * type) Vulkan device when AE_VULKAN_DEVICE names it; false on the CPU.
 * When false and why is not NULL, why says why (for a software device). */
bool ae_backend_auto_accepts (const AeBackend * b, char *why,
    size_t why_size);
/* The Vulkan context (struct AeVkContext *) or NULL on the CPU. */
void *ae_backend_vk_context (AeBackend * b);

/* ---- UNet ----------------------------------------------------------- */

typedef struct AeBackendUNet AeBackendUNet;

/* u must outlive the binding; on Vulkan its weights are uploaded now. */
int ae_backend_unet_new (AeBackendUNet ** out, AeBackend * b, AeUNet * u,
    AeError * err);
void ae_backend_unet_free (AeBackendUNet * bu);
/* ae_unet_forward's contract; arena is used on the CPU only (may be NULL
 * on Vulkan). On Vulkan hooks->act_fn is refused. */
int ae_backend_unet_forward (AeBackendUNet * bu, AeTensor * out,
    const AeTensor * sample, const float *timesteps, int n_timesteps,
    const AeTensor * encoder_hidden_states, const AeUNetHooks * hooks,
    AeArena * arena, AeError * err);

/* ---- VAE ------------------------------------------------------------ */

typedef struct AeBackendVae AeBackendVae;

int ae_backend_vae_new (AeBackendVae ** out, AeBackend * b, AeVae * vae,
    AeError * err);
void ae_backend_vae_free (AeBackendVae * bv);
/* ae_vae_decode / ae_vae_encode contracts; act_fn must be NULL on
 * Vulkan. */
int ae_backend_vae_decode (AeBackendVae * bv, const AeTensor * latent,
    AeTensor * sample, AeVaeActFn act_fn, void *act_user, AeArena * arena,
    AeError * err);
int ae_backend_vae_encode (AeBackendVae * bv, const AeTensor * x,
    AeTensor * mean, AeTensor * logvar, AeVaeActFn act_fn, void *act_user,
    AeArena * arena, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_BACKEND_H */
