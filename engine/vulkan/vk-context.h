/* Vulkan compute layer of the avatar engine: device, queue, pipelines,
 * buffers and batched command recording.
 *
 * One AeVkContext owns an instance, a physical device (discrete GPU first,
 * then integrated, virtual, CPU -- lavapipe is the fallback), one compute
 * queue, one descriptor-set layout of AE_VK_BINDINGS storage buffers that
 * every pipeline shares, and pipeline records created on first use from the
 * SPIR-V embedded at build time. Work is recorded between ae_vk_begin and
 * ae_vk_submit: every dispatch is followed by a compute->compute barrier,
 * and the whole batch goes to the queue in one submit.
 *
 * Every call returns 0 or -1 with an AeError naming what failed (the
 * Vulkan call and its VkResult); nothing aborts. */
#ifndef AE_VK_CONTEXT_H
#define AE_VK_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vulkan/vulkan.h>

#include "ae-error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AE_VK_BINDINGS 6
#define AE_VK_MAX_PUSH 64
/* Dispatches per batch before ae_vk_dispatch flushes on its own. */
#define AE_VK_MAX_SETS 512

typedef enum {
  AE_VK_OP_ADD,
  AE_VK_OP_UNARY,
  AE_VK_OP_GEGLU,
  AE_VK_OP_GROUP_NORM,
  AE_VK_OP_LAYER_NORM,
  AE_VK_OP_MATMUL,
  AE_VK_OP_CONV2D,
  AE_VK_OP_ATTENTION,
  AE_VK_OP_UPSAMPLE_NEAREST2X,
  AE_VK_OP_TIMESTEP_EMBEDDING,
  AE_VK_OP_LAYOUT,
  AE_VK_N_OPS
} AeVkOp;

/* A device buffer, host-visible and persistently mapped (the first stage
 * keeps transfers simple: on lavapipe and on resizable-BAR GPUs this is
 * device memory too). */
typedef struct {
  VkBuffer buffer;
  VkDeviceMemory memory;
  void *map;
  size_t size;                  /* bytes */
} AeVkBuffer;

typedef struct {
  VkPipeline pipeline;          /* VK_NULL_HANDLE until first use */
  uint32_t push_size;           /* bytes of push constants */
  uint32_t local_size[3];       /* workgroup size, as in the shader */
} AeVkPipeline;

#define AE_VK_POOL_MAX 256

typedef struct AeVkContext {
  VkInstance instance;
  VkPhysicalDevice physical;
  VkDevice device;
  VkQueue queue;
  uint32_t queue_family;
  VkPhysicalDeviceProperties props;
  VkPhysicalDeviceMemoryProperties mem_props;
  bool has_f16;                 /* shaderFloat16 (not used yet) */
  uint32_t subgroup_size;       /* 0 when unknown */
  bool has_subgroup_arith;      /* subgroup arithmetic in compute */
  bool use_subgroup;            /* _sg shader variants in use */

  VkDescriptorSetLayout set_layout;
  VkPipelineLayout pipeline_layout;
  VkDescriptorPool descriptor_pool;
  VkCommandPool command_pool;
  VkCommandBuffer cmd;
  VkFence fence;
  bool recording;
  uint32_t sets_used;
  uint64_t dispatches;          /* since creation, for benchmarks */

  AeVkPipeline pipelines[AE_VK_N_OPS];
  AeVkBuffer dummy;             /* bound to unused bindings */

  /* Buffer pool: weights are uploaded once (keyed by host pointer);
   * activation buffers return to the free list and are reused. */
  struct {
    const void *key;            /* weight host pointer, NULL = activation */
    AeVkBuffer buf;
    bool in_use;
  } pool[AE_VK_POOL_MAX];
  int pool_count;
} AeVkContext;

/* Opens the best device. Errors say what is missing (no loader / no ICD /
 * no compute queue) and how to get it. Call ae_vk_context_free even after
 * a failure. */
int ae_vk_context_init (AeVkContext * ctx, AeError * err);

/* AE_VK_FLAG_NO_SUBGROUP: use the portable shader variants even where the
 * device has subgroup arithmetic (tests run both paths). */
enum { AE_VK_FLAG_NO_SUBGROUP = 1u << 0 };
int ae_vk_context_init_flags (AeVkContext * ctx, unsigned flags,
    AeError * err);
void ae_vk_context_free (AeVkContext * ctx);

/* "llvmpipe (LLVM 15.0.6, 256 bits) [cpu]" */
const char *ae_vk_device_name (const AeVkContext * ctx);
const char *ae_vk_device_type_name (const AeVkContext * ctx);

/* Raw buffers. */
int ae_vk_buffer_create (AeVkContext * ctx, AeVkBuffer * buf, size_t bytes,
    AeError * err);
void ae_vk_buffer_destroy (AeVkContext * ctx, AeVkBuffer * buf);

/* Pool: an activation buffer of at least `bytes` (reused when a free one
 * fits); give it back with ae_vk_pool_release. */
AeVkBuffer *ae_vk_pool_acquire (AeVkContext * ctx, size_t bytes,
    AeError * err);
void ae_vk_pool_release (AeVkContext * ctx, AeVkBuffer * buf);
/* The device copy of a weight: uploaded on the first call for this host
 * pointer, returned as is afterwards (weights must not change). */
AeVkBuffer *ae_vk_pool_weight (AeVkContext * ctx, const float *data,
    size_t count, AeError * err);

/* Host <-> device copies (mapped memory; call outside a running batch or
 * after ae_vk_submit for results). */
int ae_vk_upload (AeVkBuffer * buf, const float *src, size_t count,
    AeError * err);
int ae_vk_download (const AeVkBuffer * buf, float *dst, size_t count,
    AeError * err);

/* Batched recording. ae_vk_dispatch binds up to AE_VK_BINDINGS buffers
 * (NULL entries get a dummy), pushes `push` (the op's push size) and
 * dispatches groups; it begins a batch when none is open and flushes
 * (submits and waits) when the descriptor pool is full. */
int ae_vk_begin (AeVkContext * ctx, AeError * err);
int ae_vk_dispatch (AeVkContext * ctx, AeVkOp op,
    AeVkBuffer * const bindings[AE_VK_BINDINGS], const void *push,
    uint32_t gx, uint32_t gy, uint32_t gz, AeError * err);
/* Submits the open batch (if any) and waits for it. */
int ae_vk_submit (AeVkContext * ctx, AeError * err);

/* Splits `invocations` of a 1-D op with workgroup size `local` into a 2-D
 * grid with gx <= 65535 (shaders use ae_linear_index). */
void ae_vk_grid_1d (uint64_t invocations, uint32_t local, uint32_t * gx,
    uint32_t * gy);

const AeVkPipeline *ae_vk_pipeline_info (const AeVkContext * ctx, AeVkOp op);

#ifdef __cplusplus
}
#endif
#endif /* AE_VK_CONTEXT_H */
