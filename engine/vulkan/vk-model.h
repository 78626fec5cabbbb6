/* Helpers shared by the Vulkan model forwards (vk-unet.c, vk-vae.c):
 * host weights -> their device copies, and a stack of pooled activation
 * buffers with marks, the device twin of AeArena's mark / release. */
#ifndef AE_VK_MODEL_H
#define AE_VK_MODEL_H

#include "vk-ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Activation buffers taken from the context's pool, given back in stack
 * order. The array grows only when a pass needs more than ever before. */
typedef struct {
  AeVkContext *ctx;
  AeVkBuffer **bufs;
  int n, alloc;
} AeVkStack;

void ae_vk_stack_init (AeVkStack * s, AeVkContext * ctx);
void ae_vk_stack_clear (AeVkStack * s);
/* A device tensor of this shape (device-local memory). */
int ae_vk_stack_tensor (AeVkStack * s, AeVkTensor * t, int ndim,
    const int64_t * shape, AeError * err);
int ae_vk_stack_tensor4 (AeVkStack * s, AeVkTensor * t, int64_t n,
    int64_t c, int64_t h, int64_t w, AeError * err);
int ae_vk_stack_tensor3 (AeVkStack * s, AeVkTensor * t, int64_t n,
    int64_t l, int64_t c, AeError * err);
int ae_vk_stack_tensor2 (AeVkStack * s, AeVkTensor * t, int64_t n,
    int64_t c, AeError * err);
int ae_vk_stack_mark (const AeVkStack * s);
void ae_vk_stack_release (AeVkStack * s, int mark);

/* The device copy of a host weight (uploaded on first use), with the
 * host tensor's shape; matrices / conv kernels (ndim >= 2) go through
 * ae_vk_pool_matrix (f16 when exact). */
int ae_vk_weight (AeVkContext * ctx, const AeTensor * host, AeVkTensor * out,
    AeError * err);

/* Ops whose weights are host tensors (bias / gamma / beta: data NULL
 * means none). */
int ae_vk_conv2d_w (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    const AeTensor * w, const AeTensor * b, int stride, int pad_top,
    int pad_bottom, int pad_left, int pad_right, AeError * err);
int ae_vk_linear_w (AeVkContext * ctx, AeVkTensor * y, const AeVkTensor * x,
    const AeTensor * w, const AeTensor * b, AeError * err);
int ae_vk_group_norm_w (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * x, int groups, float eps, const AeTensor * gamma,
    const AeTensor * beta, bool silu, AeError * err);
int ae_vk_layer_norm_w (AeVkContext * ctx, AeVkTensor * y,
    const AeVkTensor * x, float eps, const AeTensor * gamma,
    const AeTensor * beta, AeError * err);

/* A host-visible buffer holding a copy of host tensor t (inputs of a
 * pass); *buf must be given back with ae_vk_pool_release. */
int ae_vk_input (AeVkContext * ctx, const AeTensor * t, AeVkBuffer ** buf,
    AeVkTensor * out, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_VK_MODEL_H */
