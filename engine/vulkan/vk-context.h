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
/* Dispatches per batch before ae_vk_dispatch flushes on its own (a whole
 * UNet forward of the embedded model or of SD 1.5 fits in one). */
#define AE_VK_MAX_SETS 4096

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
  AE_VK_OP_MATMUL_F16W,         /* matmul.comp with packed f16 weights */
  AE_VK_OP_CONV2D_F16W,         /* conv2d.comp with packed f16 weights */
  AE_VK_OP_ATTENTION_WIDE,      /* head dims 161..1024 */
  AE_VK_OP_PEAK,                /* FMA throughput probe (benchmarks) */
  AE_VK_OP_MATMUL_DIRECT,       /* matmul without shared memory (CPU
                                 * devices: lavapipe) */
  AE_VK_OP_MATMUL_DIRECT_F16W,
  AE_VK_OP_CONV2D_DIRECT,       /* conv2d without shared memory (CPU) */
  AE_VK_OP_CONV2D_DIRECT_F16W,
  AE_VK_N_OPS
} AeVkOp;

/* A device buffer, host-visible and persistently mapped (the first stage
 * keeps transfers simple: on lavapipe and on resizable-BAR GPUs this is
 * device memory too). */
typedef struct {
  VkBuffer buffer;
  VkDeviceMemory memory;
  void *map;                    /* NULL: device-local, not host-visible */
  size_t size;                  /* bytes */
  bool half;                    /* packed f16 elements (weights only) */
} AeVkBuffer;

/* Where a buffer lives. HOST: host-visible and persistently mapped
 * (inputs, outputs: upload/download are memcpy). DEVICE: device-local
 * memory when the device has it (activations, weights on a discrete
 * GPU); written through a staging copy (ae_vk_write), never mapped. On
 * lavapipe and integrated GPUs both kinds are the same memory. */
typedef enum {
  AE_VK_MEM_HOST,
  AE_VK_MEM_DEVICE,
} AeVkMem;

typedef struct {
  VkPipeline pipeline;          /* VK_NULL_HANDLE until first use */
  uint32_t push_size;           /* bytes of push constants */
  uint32_t local_size[3];       /* workgroup size, as in the shader */
} AeVkPipeline;

/* One pooled buffer (see ae_vk_pool_*). */
typedef struct {
  const void *key;              /* weight host pointer, NULL = activation */
  AeVkBuffer buf;
  AeVkMem mem;
  bool in_use;
} AeVkPoolEntry;

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
  bool use_f16_weights;         /* store f16-exact matrix weights as f16 */
  bool force_staging;           /* AE_VK_FLAG_STAGING */
  bool use_direct;              /* matmul_direct / conv2d_direct.comp: a
                                 * CPU device, unless AE_VK_FLAG_TILED */

  VkDescriptorSetLayout set_layout;
  VkPipelineLayout pipeline_layout;
  VkDescriptorPool descriptor_pool;
  VkCommandPool command_pool;
  VkCommandBuffer cmd;
  VkFence fence;
  bool recording;
  uint32_t sets_used;
  uint64_t dispatches;          /* since creation, for benchmarks */
  uint64_t submits;             /* batches submitted since creation */

  AeVkPipeline pipelines[AE_VK_N_OPS];
  AeVkBuffer dummy;             /* bound to unused bindings */

  /* Buffer pool: weights are uploaded once (keyed by host pointer, found
   * through `weights`); activation buffers return to the free list and
   * are reused. Entries are allocated one by one, so AeVkBuffer pointers
   * stay valid while the pool grows. */
  AeVkPoolEntry **pool;
  int pool_count, pool_alloc;
  struct _GHashTable *weights;  /* host pointer -> AeVkPoolEntry */
  size_t weight_bytes;          /* uploaded weights, for reports */

  /* Staging copies into device-local buffers (ae_vk_write): their own
   * command buffer and fence, so they may run while a batch is open. */
  VkCommandBuffer upload_cmd;
  VkFence upload_fence;
} AeVkContext;

/* Opens the best device (discrete, integrated, virtual, CPU), or the one
 * named by the environment variable AE_VULKAN_DEVICE (an index in the
 * driver's enumeration order, or a case-insensitive part of the device
 * name: "llvmpipe", "nvidia"); a name that matches nothing is an error
 * listing the devices. Errors say what is missing (no loader / no ICD /
 * no compute queue) and how to get it. Call ae_vk_context_free even after
 * a failure. */
int ae_vk_context_init (AeVkContext * ctx, AeError * err);

/* AE_VK_FLAG_NO_SUBGROUP: use the portable shader variants even where the
 * device has subgroup arithmetic (tests run both paths). */
enum {
  AE_VK_FLAG_NO_SUBGROUP = 1u << 0,
  /* AE_VK_FLAG_NO_F16: keep every weight in f32 on the device. */
  AE_VK_FLAG_NO_F16 = 1u << 1,
  /* AE_VK_FLAG_STAGING: never map AE_VK_MEM_DEVICE buffers, so that every
   * weight goes through the staging copy as on a discrete GPU (tests). */
  AE_VK_FLAG_STAGING = 1u << 2,
  /* AE_VK_FLAG_TILED: the shared-memory tiled matmul / conv2d even on a
   * CPU device (where the _direct shaders are used otherwise; tests run
   * both). */
  AE_VK_FLAG_TILED = 1u << 3,
};
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

/* Raw buffer in the given kind of memory (falls back to any host-visible
 * memory when the preferred heap is full). */
int ae_vk_buffer_create_mem (AeVkContext * ctx, AeVkBuffer * buf,
    size_t bytes, AeVkMem mem, AeError * err);

/* Pool: a host-visible activation buffer of at least `bytes` (reused when
 * a free one fits); give it back with ae_vk_pool_release. */
AeVkBuffer *ae_vk_pool_acquire (AeVkContext * ctx, size_t bytes,
    AeError * err);
/* Same in device memory (intermediate activations of a forward pass). */
AeVkBuffer *ae_vk_pool_acquire_mem (AeVkContext * ctx, size_t bytes,
    AeVkMem mem, AeError * err);
void ae_vk_pool_release (AeVkContext * ctx, AeVkBuffer * buf);
/* The device copy of a weight: uploaded on the first call for this host
 * pointer, returned as is afterwards (weights must not change). */
AeVkBuffer *ae_vk_pool_weight (AeVkContext * ctx, const float *data,
    size_t count, AeError * err);
/* Same, for a matrix or conv kernel (the weight of ae_vk_linear /
 * ae_vk_conv2d): when the context uses f16 weights and every value is
 * exactly representable in f16 (f16 / bf16-free checkpoints converted on
 * load), the device copy is packed f16 (buf->half): half the memory and
 * bandwidth, the same results as f32. Otherwise as ae_vk_pool_weight. */
AeVkBuffer *ae_vk_pool_matrix (AeVkContext * ctx, const float *data,
    size_t count, AeError * err);
/* Frees the device copy of the weight at this host pointer (call before
 * the host memory is freed: a later allocation at the same address must
 * not find the old copy). No-op when there is none. */
void ae_vk_pool_forget (AeVkContext * ctx, const float *data);

/* Copies `bytes` from host memory into buf: memcpy when buf is mapped,
 * else through a temporary staging buffer and a one-off copy command
 * (waited for; may be called while a batch is being recorded). */
int ae_vk_write (AeVkContext * ctx, AeVkBuffer * buf, const void *src,
    size_t bytes, AeError * err);

/* The largest range one binding may cover on this device
 * (maxStorageBufferRange: 128 MiB on lavapipe, 4 GiB on most GPUs). */
size_t ae_vk_max_binding (const AeVkContext * ctx);

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
/* Drops the open batch without running it (after an error while
 * recording). */
void ae_vk_abort (AeVkContext * ctx);

/* Splits `invocations` of a 1-D op with workgroup size `local` into a 2-D
 * grid with gx <= 65535 (shaders use ae_linear_index). */
void ae_vk_grid_1d (uint64_t invocations, uint32_t local, uint32_t * gx,
    uint32_t * gy);

const AeVkPipeline *ae_vk_pipeline_info (const AeVkContext * ctx, AeVkOp op);

#ifdef __cplusplus
}
#endif
#endif /* AE_VK_CONTEXT_H */
