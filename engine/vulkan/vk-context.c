/* Vulkan device, pipelines, buffers and batched dispatch (see vk-context.h). */
#include "vk-context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

/* SPIR-V compiled from shaders/<op>.comp by glslc -mfmt=c at build time. */
static const uint32_t spv_add[] =
#include "add.spv.h"
    ;
static const uint32_t spv_unary[] =
#include "unary.spv.h"
    ;
static const uint32_t spv_geglu[] =
#include "geglu.spv.h"
    ;
static const uint32_t spv_group_norm[] =
#include "group_norm.spv.h"
    ;
static const uint32_t spv_layer_norm[] =
#include "layer_norm.spv.h"
    ;
static const uint32_t spv_group_norm_sg[] =
#include "group_norm_sg.spv.h"
    ;
static const uint32_t spv_layer_norm_sg[] =
#include "layer_norm_sg.spv.h"
    ;
static const uint32_t spv_matmul[] =
#include "matmul.spv.h"
    ;
static const uint32_t spv_conv2d[] =
#include "conv2d.spv.h"
    ;
static const uint32_t spv_attention[] =
#include "attention.spv.h"
    ;
static const uint32_t spv_upsample_nearest2x[] =
#include "upsample_nearest2x.spv.h"
    ;
static const uint32_t spv_timestep_embedding[] =
#include "timestep_embedding.spv.h"
    ;
static const uint32_t spv_layout[] =
#include "layout.spv.h"
    ;
static const uint32_t spv_matmul_f16w[] =
#include "matmul_f16w.spv.h"
    ;
static const uint32_t spv_conv2d_f16w[] =
#include "conv2d_f16w.spv.h"
    ;
static const uint32_t spv_attention_wide[] =
#include "attention_wide.spv.h"
    ;
static const uint32_t spv_attention_wide_sg[] =
#include "attention_wide_sg.spv.h"
    ;
static const uint32_t spv_peak[] =
#include "peak.spv.h"
    ;
static const uint32_t spv_matmul_direct[] =
#include "matmul_direct.spv.h"
    ;
static const uint32_t spv_matmul_direct_f16w[] =
#include "matmul_direct_f16w.spv.h"
    ;
static const uint32_t spv_conv2d_direct[] =
#include "conv2d_direct.spv.h"
    ;
static const uint32_t spv_conv2d_direct_f16w[] =
#include "conv2d_direct_f16w.spv.h"
    ;

/* Per op: SPIR-V, push-constant bytes, workgroup size (must match the
 * shader's local_size and Push block), and the subgroup-arithmetic
 * variant where one exists (NULL otherwise). */
static const struct {
  const char *name;
  const uint32_t *code;
  size_t code_size;
  uint32_t push_size;
  uint32_t local[3];
  const uint32_t *code_sg;
  size_t code_sg_size;
} op_table[AE_VK_N_OPS] = {
#define OP(id, n, push, lx, ly) \
  [id] = { #n, spv_##n, sizeof (spv_##n), push, { lx, ly, 1 }, NULL, 0 }
#define OP_SG(id, n, push, lx, ly) \
  [id] = { #n, spv_##n, sizeof (spv_##n), push, { lx, ly, 1 }, \
    spv_##n##_sg, sizeof (spv_##n##_sg) }
  OP (AE_VK_OP_ADD, add, 8, 256, 1),
  OP (AE_VK_OP_UNARY, unary, 16, 256, 1),
  OP (AE_VK_OP_GEGLU, geglu, 8, 256, 1),
  OP_SG (AE_VK_OP_GROUP_NORM, group_norm, 24, 256, 1),
  OP_SG (AE_VK_OP_LAYER_NORM, layer_norm, 16, 128, 1),
  OP (AE_VK_OP_MATMUL, matmul, 16, 16, 16),
  OP (AE_VK_OP_CONV2D, conv2d, 48, 16, 16),
  OP (AE_VK_OP_ATTENTION, attention, 48, 64, 1),
  OP (AE_VK_OP_UPSAMPLE_NEAREST2X, upsample_nearest2x, 12, 256, 1),
  OP (AE_VK_OP_TIMESTEP_EMBEDDING, timestep_embedding, 24, 64, 1),
  OP (AE_VK_OP_LAYOUT, layout, 24, 256, 1),
  OP (AE_VK_OP_MATMUL_F16W, matmul_f16w, 16, 16, 16),
  OP (AE_VK_OP_CONV2D_F16W, conv2d_f16w, 48, 16, 16),
  OP_SG (AE_VK_OP_ATTENTION_WIDE, attention_wide, 48, 64, 1),
  OP (AE_VK_OP_PEAK, peak, 16, 256, 1),
  OP (AE_VK_OP_MATMUL_DIRECT, matmul_direct, 16, 8, 8),
  OP (AE_VK_OP_MATMUL_DIRECT_F16W, matmul_direct_f16w, 16, 8, 8),
  OP (AE_VK_OP_CONV2D_DIRECT, conv2d_direct, 48, 8, 8),
  OP (AE_VK_OP_CONV2D_DIRECT_F16W, conv2d_direct_f16w, 48, 8, 8),
#undef OP
#undef OP_SG
};

/* Returns -1 with the failing call and VkResult in err. */
#define VK_CHECK(call, err) \
  do { \
    VkResult vk_check_r_ = (call); \
    if (vk_check_r_ != VK_SUCCESS) \
      return ae_error ((err), "vulkan: %s failed: %s (%d)", #call, \
          ae_vk_result_str (vk_check_r_), (int) vk_check_r_); \
  } while (0)

static const char *
ae_vk_result_str (VkResult r)
{
  switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY:
      return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
      return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED:
      return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST:
      return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
      return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
      return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT:
      return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_LAYER_NOT_PRESENT:
      return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_TIMEOUT:
      return "VK_TIMEOUT";
    default:
      return "VkResult";
  }
}

/* Discrete first, then integrated, virtual, CPU (lavapipe), other. */
static int
device_rank (VkPhysicalDeviceType t)
{
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return 1;
    default:
      return 0;
  }
}

static int
find_compute_queue (VkPhysicalDevice pd, uint32_t * family)
{
  VkQueueFamilyProperties qf[16];
  uint32_t n = 16;

  vkGetPhysicalDeviceQueueFamilyProperties (pd, &n, qf);
  for (uint32_t i = 0; i < n; i++) {
    if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
      *family = i;
      return 0;
    }
  }
  return -1;
}

static int
create_instance (AeVkContext * ctx, AeError * err)
{
  VkApplicationInfo app = {
    .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
    .pApplicationName = "gst-avatar",
    .pEngineName = "avatar-engine",
    .apiVersion = VK_API_VERSION_1_1,
  };
  VkInstanceCreateInfo ici = {
    .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
    .pApplicationInfo = &app,
  };
  VkResult r = vkCreateInstance (&ici, NULL, &ctx->instance);

  if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
    return ae_error (err, "vulkan: no Vulkan driver (ICD) found: install a "
        "GPU driver or Mesa lavapipe (mesa-vulkan-drivers)");
  if (r != VK_SUCCESS)
    return ae_error (err, "vulkan: vkCreateInstance failed: %s (%d)",
        ae_vk_result_str (r), (int) r);
  return 0;
}

static int
pick_device (AeVkContext * ctx, AeError * err)
{
  VkPhysicalDevice devs[16];
  uint32_t n = 16;
  int best = -1, best_rank = -1;
  const char *want = g_getenv ("AE_VULKAN_DEVICE");

  VkResult r = vkEnumeratePhysicalDevices (ctx->instance, &n, devs);

  /* VK_INCOMPLETE: more than 16 devices; the first 16 are enough. */
  if (r != VK_SUCCESS && r != VK_INCOMPLETE)
    return ae_error (err, "vulkan: vkEnumeratePhysicalDevices failed: %s "
        "(%d)", ae_vk_result_str (r), (int) r);
  for (uint32_t i = 0; i < n; i++) {
    VkPhysicalDeviceProperties p;
    uint32_t fam;
    vkGetPhysicalDeviceProperties (devs[i], &p);
    if (find_compute_queue (devs[i], &fam) < 0)
      continue;
    if (device_rank (p.deviceType) > best_rank) {
      best_rank = device_rank (p.deviceType);
      best = (int) i;
    }
  }
  if (n == 0)
    return ae_error (err, "vulkan: no Vulkan device found: install a GPU "
        "driver or Mesa lavapipe (mesa-vulkan-drivers)");
  if (best < 0)
    return ae_error (err, "vulkan: no Vulkan device has a compute queue");
  if (want && *want) {
    /* AE_VULKAN_DEVICE: an index in the enumeration order or a part of
     * the device name (case-insensitive). */
    char list[512] = "";
    bool is_index = strspn (want, "0123456789") == strlen (want);
    best = -1;
    for (uint32_t i = 0; i < n && best < 0; i++) {
      VkPhysicalDeviceProperties p;
      uint32_t fam;
      char *name_l, *want_l;
      vkGetPhysicalDeviceProperties (devs[i], &p);
      name_l = g_ascii_strdown (p.deviceName, -1);
      want_l = g_ascii_strdown (want, -1);
      if ((is_index ? (uint32_t) atoi (want) == i :
              strstr (name_l, want_l) != NULL) &&
          find_compute_queue (devs[i], &fam) == 0)
        best = (int) i;
      g_free (name_l);
      g_free (want_l);
      snprintf (list + strlen (list), sizeof list - strlen (list),
          "%s%u '%s'", i ? ", " : "", i, p.deviceName);
    }
    if (best < 0)
      return ae_error (err, "vulkan: AE_VULKAN_DEVICE='%s' matches no "
          "device with a compute queue (devices: %s)", want, list);
  }
  ctx->physical = devs[best];
  vkGetPhysicalDeviceProperties (ctx->physical, &ctx->props);
  vkGetPhysicalDeviceMemoryProperties (ctx->physical, &ctx->mem_props);
  find_compute_queue (ctx->physical, &ctx->queue_family);
  return 0;
}

/* Records optional capabilities; the f16/subgroup shader variants are
 * chosen from these once they exist (f32 is the always-present path). */
static void
query_features (AeVkContext * ctx)
{
  VkPhysicalDeviceSubgroupProperties sub = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
  };
  VkPhysicalDeviceProperties2 p2 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
    .pNext = &sub,
  };
  VkPhysicalDeviceShaderFloat16Int8Features f16 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES,
  };
  VkPhysicalDeviceFeatures2 f2 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
    .pNext = &f16,
  };

  vkGetPhysicalDeviceProperties2 (ctx->physical, &p2);
  if (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) {
    ctx->subgroup_size = sub.subgroupSize;
    ctx->has_subgroup_arith = (sub.supportedOperations &
        VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) != 0;
  }
  vkGetPhysicalDeviceFeatures2 (ctx->physical, &f2);
  ctx->has_f16 = f16.shaderFloat16;
}

static int
create_device (AeVkContext * ctx, AeError * err)
{
  float prio = 1.0f;
  VkDeviceQueueCreateInfo qci = {
    .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
    .queueFamilyIndex = ctx->queue_family,
    .queueCount = 1,
    .pQueuePriorities = &prio,
  };
  VkDeviceCreateInfo dci = {
    .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
    .queueCreateInfoCount = 1,
    .pQueueCreateInfos = &qci,
  };

  VK_CHECK (vkCreateDevice (ctx->physical, &dci, NULL, &ctx->device), err);
  vkGetDeviceQueue (ctx->device, ctx->queue_family, 0, &ctx->queue);
  return 0;
}

static int
create_layouts (AeVkContext * ctx, AeError * err)
{
  VkDescriptorSetLayoutBinding b[AE_VK_BINDINGS];
  VkPushConstantRange push = {
    .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
    .offset = 0,
    .size = AE_VK_MAX_PUSH,
  };
  VkDescriptorPoolSize ps = {
    .type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
    .descriptorCount = AE_VK_MAX_SETS * AE_VK_BINDINGS,
  };

  for (int i = 0; i < AE_VK_BINDINGS; i++) {
    b[i] = (VkDescriptorSetLayoutBinding) {
      .binding = (uint32_t) i,
      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
      .descriptorCount = 1,
      .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
    };
  }
  VK_CHECK (vkCreateDescriptorSetLayout (ctx->device,
          &(VkDescriptorSetLayoutCreateInfo) {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
            .bindingCount = AE_VK_BINDINGS,
            .pBindings = b}, NULL, &ctx->set_layout), err);
  VK_CHECK (vkCreatePipelineLayout (ctx->device,
          &(VkPipelineLayoutCreateInfo) {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
            .setLayoutCount = 1,
            .pSetLayouts = &ctx->set_layout,
            .pushConstantRangeCount = 1,
            .pPushConstantRanges = &push}, NULL, &ctx->pipeline_layout), err);
  VK_CHECK (vkCreateDescriptorPool (ctx->device,
          &(VkDescriptorPoolCreateInfo) {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
            .maxSets = AE_VK_MAX_SETS,
            .poolSizeCount = 1,
            .pPoolSizes = &ps}, NULL, &ctx->descriptor_pool), err);
  return 0;
}

static int
create_commands (AeVkContext * ctx, AeError * err)
{
  VK_CHECK (vkCreateCommandPool (ctx->device,
          &(VkCommandPoolCreateInfo) {
            .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
            .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
            .queueFamilyIndex = ctx->queue_family}, NULL,
          &ctx->command_pool), err);
  VK_CHECK (vkAllocateCommandBuffers (ctx->device,
          &(VkCommandBufferAllocateInfo) {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
            .commandPool = ctx->command_pool,
            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
            .commandBufferCount = 1}, &ctx->cmd), err);
  VK_CHECK (vkCreateFence (ctx->device,
          &(VkFenceCreateInfo) {
            .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO}, NULL, &ctx->fence),
      err);
  VK_CHECK (vkAllocateCommandBuffers (ctx->device,
          &(VkCommandBufferAllocateInfo) {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
            .commandPool = ctx->command_pool,
            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
            .commandBufferCount = 1}, &ctx->upload_cmd), err);
  VK_CHECK (vkCreateFence (ctx->device,
          &(VkFenceCreateInfo) {
            .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO}, NULL,
          &ctx->upload_fence), err);
  return 0;
}

int
ae_vk_context_init (AeVkContext * ctx, AeError * err)
{
  return ae_vk_context_init_flags (ctx, 0, err);
}

int
ae_vk_context_init_flags (AeVkContext * ctx, unsigned flags, AeError * err)
{
  memset (ctx, 0, sizeof (*ctx));
  for (int i = 0; i < AE_VK_N_OPS; i++) {
    ctx->pipelines[i].push_size = op_table[i].push_size;
    memcpy (ctx->pipelines[i].local_size, op_table[i].local,
        sizeof (op_table[i].local));
  }
  ctx->weights = g_hash_table_new (g_direct_hash, g_direct_equal);
  if (create_instance (ctx, err) < 0 || pick_device (ctx, err) < 0)
    return -1;
  query_features (ctx);
  ctx->use_subgroup = ctx->has_subgroup_arith
      && !(flags & AE_VK_FLAG_NO_SUBGROUP);
  ctx->use_f16_weights = !(flags & AE_VK_FLAG_NO_F16);
  ctx->force_staging = (flags & AE_VK_FLAG_STAGING) != 0;
  ctx->use_direct = ctx->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU
      && !(flags & AE_VK_FLAG_TILED);
  if (create_device (ctx, err) < 0 || create_layouts (ctx, err) < 0
      || create_commands (ctx, err) < 0)
    return -1;
  return ae_vk_buffer_create (ctx, &ctx->dummy, 256, err);
}

void
ae_vk_context_free (AeVkContext * ctx)
{
  if (ctx->device) {
    vkDeviceWaitIdle (ctx->device);
    for (int i = 0; i < ctx->pool_count; i++) {
      ae_vk_buffer_destroy (ctx, &ctx->pool[i]->buf);
      g_free (ctx->pool[i]);
    }
    ae_vk_buffer_destroy (ctx, &ctx->dummy);
    if (ctx->upload_fence)
      vkDestroyFence (ctx->device, ctx->upload_fence, NULL);
    for (int i = 0; i < AE_VK_N_OPS; i++)
      if (ctx->pipelines[i].pipeline)
        vkDestroyPipeline (ctx->device, ctx->pipelines[i].pipeline, NULL);
    if (ctx->fence)
      vkDestroyFence (ctx->device, ctx->fence, NULL);
    if (ctx->command_pool)
      vkDestroyCommandPool (ctx->device, ctx->command_pool, NULL);
    if (ctx->descriptor_pool)
      vkDestroyDescriptorPool (ctx->device, ctx->descriptor_pool, NULL);
    if (ctx->pipeline_layout)
      vkDestroyPipelineLayout (ctx->device, ctx->pipeline_layout, NULL);
    if (ctx->set_layout)
      vkDestroyDescriptorSetLayout (ctx->device, ctx->set_layout, NULL);
    vkDestroyDevice (ctx->device, NULL);
  }
  if (ctx->instance)
    vkDestroyInstance (ctx->instance, NULL);
  g_free (ctx->pool);
  if (ctx->weights)
    g_hash_table_destroy (ctx->weights);
  memset (ctx, 0, sizeof (*ctx));
}

const char *
ae_vk_device_name (const AeVkContext * ctx)
{
  return ctx->props.deviceName;
}

const char *
ae_vk_device_type_name (const AeVkContext * ctx)
{
  switch (ctx->props.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return "cpu";
    default:
      return "other";
  }
}

/* ---- buffers -------------------------------------------------------- */

/* Memory types for a buffer, best first. HOST: host-visible + coherent,
 * device-local ones first (lavapipe, integrated GPUs, resizable BAR).
 * DEVICE: device-local first (not necessarily mappable), then the HOST
 * order. Returns the number of candidates. */
static int
memory_candidates (AeVkContext * ctx, uint32_t bits, AeVkMem mem,
    uint32_t out[VK_MAX_MEMORY_TYPES])
{
  const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
      VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  const VkMemoryPropertyFlags dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  /* pass 0: device-local only, 1: device-local + host, 2: host only */
  int n = 0;

  for (int pass = mem == AE_VK_MEM_DEVICE ? 0 : 1; pass < 3; pass++) {
    for (uint32_t i = 0; i < ctx->mem_props.memoryTypeCount; i++) {
      VkMemoryPropertyFlags f = ctx->mem_props.memoryTypes[i].propertyFlags;
      bool is_dl = (f & dl) != 0, is_hv = (f & hv) == hv;
      bool take = pass == 0 ? is_dl && !is_hv :
          pass == 1 ? is_dl && is_hv : !is_dl && is_hv;
      if ((bits & (1u << i)) && take)
        out[n++] = i;
    }
  }
  return n;
}

int
ae_vk_buffer_create_mem (AeVkContext * ctx, AeVkBuffer * buf, size_t bytes,
    AeVkMem mem, AeError * err)
{
  VkMemoryRequirements req;
  uint32_t types[3 * VK_MAX_MEMORY_TYPES];
  VkResult r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
  int n;

  memset (buf, 0, sizeof (*buf));
  if (bytes == 0)
    bytes = 4;
  VK_CHECK (vkCreateBuffer (ctx->device,
          &(VkBufferCreateInfo) {
            .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
            .size = bytes,
            .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                VK_BUFFER_USAGE_TRANSFER_DST_BIT,
            .sharingMode = VK_SHARING_MODE_EXCLUSIVE}, NULL, &buf->buffer),
      err);
  vkGetBufferMemoryRequirements (ctx->device, buf->buffer, &req);
  n = memory_candidates (ctx, req.memoryTypeBits, mem, types);
  if (n == 0) {
    ae_vk_buffer_destroy (ctx, buf);
    return ae_error (err, "vulkan: no usable memory type for a %zu-byte "
        "buffer on %s", bytes, ctx->props.deviceName);
  }
  /* A full heap (a 256 MiB BAR window, say) moves on to the next type. */
  for (int i = 0; i < n; i++) {
    r = vkAllocateMemory (ctx->device, &(VkMemoryAllocateInfo) {
          .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
          .allocationSize = req.size,
          .memoryTypeIndex = types[i]}, NULL, &buf->memory);
    if (r == VK_SUCCESS) {
      VkMemoryPropertyFlags f =
          ctx->mem_props.memoryTypes[types[i]].propertyFlags;
      VK_CHECK (vkBindBufferMemory (ctx->device, buf->buffer, buf->memory,
              0), err);
      if ((f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
          !(mem == AE_VK_MEM_DEVICE && ctx->force_staging))
        VK_CHECK (vkMapMemory (ctx->device, buf->memory, 0, VK_WHOLE_SIZE,
                0, &buf->map), err);
      buf->size = bytes;
      return 0;
    }
    if (r != VK_ERROR_OUT_OF_DEVICE_MEMORY && r != VK_ERROR_OUT_OF_HOST_MEMORY)
      break;
  }
  ae_vk_buffer_destroy (ctx, buf);
  return ae_error (err, "vulkan: allocating a %zu-byte buffer on %s: %s (%d)",
      bytes, ctx->props.deviceName, ae_vk_result_str (r), (int) r);
}

int
ae_vk_buffer_create (AeVkContext * ctx, AeVkBuffer * buf, size_t bytes,
    AeError * err)
{
  return ae_vk_buffer_create_mem (ctx, buf, bytes, AE_VK_MEM_HOST, err);
}

void
ae_vk_buffer_destroy (AeVkContext * ctx, AeVkBuffer * buf)
{
  if (buf->buffer)
    vkDestroyBuffer (ctx->device, buf->buffer, NULL);
  if (buf->memory)
    vkFreeMemory (ctx->device, buf->memory, NULL);    /* unmaps too */
  memset (buf, 0, sizeof (*buf));
}

size_t
ae_vk_max_binding (const AeVkContext * ctx)
{
  return ctx->props.limits.maxStorageBufferRange;
}

static AeVkPoolEntry *
pool_add (AeVkContext * ctx, const void *key, size_t bytes, AeVkMem mem,
    AeError * err)
{
  AeVkPoolEntry *e;

  if (ctx->pool_count == ctx->pool_alloc) {
    ctx->pool_alloc = ctx->pool_alloc ? 2 * ctx->pool_alloc : 64;
    ctx->pool = g_renew (AeVkPoolEntry *, ctx->pool, ctx->pool_alloc);
  }
  e = g_new0 (AeVkPoolEntry, 1);
  if (ae_vk_buffer_create_mem (ctx, &e->buf, bytes, mem, err) < 0) {
    g_free (e);
    return NULL;
  }
  e->key = key;
  e->mem = mem;
  e->in_use = true;
  ctx->pool[ctx->pool_count++] = e;
  return e;
}

AeVkBuffer *
ae_vk_pool_acquire_mem (AeVkContext * ctx, size_t bytes, AeVkMem mem,
    AeError * err)
{
  AeVkPoolEntry *best = NULL, *e;

  /* Smallest free activation buffer of this kind that fits. */
  for (int i = 0; i < ctx->pool_count; i++) {
    e = ctx->pool[i];
    if (e->key || e->in_use || e->mem != mem || e->buf.size < bytes)
      continue;
    if (best == NULL || e->buf.size < best->buf.size)
      best = e;
  }
  if (best) {
    best->in_use = true;
    return &best->buf;
  }
  e = pool_add (ctx, NULL, bytes, mem, err);
  return e ? &e->buf : NULL;
}

AeVkBuffer *
ae_vk_pool_acquire (AeVkContext * ctx, size_t bytes, AeError * err)
{
  return ae_vk_pool_acquire_mem (ctx, bytes, AE_VK_MEM_HOST, err);
}

void
ae_vk_pool_release (AeVkContext * ctx, AeVkBuffer * buf)
{
  for (int i = 0; i < ctx->pool_count; i++)
    if (&ctx->pool[i]->buf == buf && !ctx->pool[i]->key)
      ctx->pool[i]->in_use = false;
}

AeVkBuffer *
ae_vk_pool_weight (AeVkContext * ctx, const float *data, size_t count,
    AeError * err)
{
  AeVkPoolEntry *e = g_hash_table_lookup (ctx->weights, data);

  if (e)
    return &e->buf;
  e = pool_add (ctx, data, count * sizeof (float), AE_VK_MEM_DEVICE, err);
  if (e == NULL)
    return NULL;
  if (ae_vk_write (ctx, &e->buf, data, count * sizeof (float), err) < 0) {
    /* Keep the entry (the pool owns it) but do not map the key to a
     * buffer holding garbage. */
    e->key = NULL;
    e->in_use = false;
    return NULL;
  }
  g_hash_table_insert (ctx->weights, (gpointer) data, e);
  ctx->weight_bytes += count * sizeof (float);
  return &e->buf;
}

/* The IEEE half bits of f when f is exactly representable (zero, normal,
 * subnormal half, infinity); false otherwise (NaN, out of range, bits
 * below the half precision). */
static bool
f32_to_f16_exact (float f, uint16_t * out)
{
  uint32_t x, sign, exp, man, full;
  int e, shift;

  memcpy (&x, &f, sizeof x);
  sign = (x >> 16) & 0x8000u;
  exp = (x >> 23) & 0xffu;
  man = x & 0x7fffffu;
  if (exp == 0xffu) {
    if (man != 0)
      return false;
    *out = (uint16_t) (sign | 0x7c00u);
    return true;
  }
  if (exp == 0) {
    if (man != 0)
      return false;             /* f32 subnormal: far below f16 range */
    *out = (uint16_t) sign;
    return true;
  }
  e = (int) exp - 127;
  if (e > 15 || e < -24)
    return false;
  if (e >= -14) {
    if (man & 0x1fffu)
      return false;
    *out = (uint16_t) (sign | ((uint32_t) (e + 15) << 10) | (man >> 13));
    return true;
  }
  /* half subnormal m * 2^-24 with m = (1.man) * 2^(e + 24) */
  full = man | 0x800000u;
  shift = -(e + 1);
  if (full & ((1u << shift) - 1u))
    return false;
  *out = (uint16_t) (sign | (full >> shift));
  return true;
}

AeVkBuffer *
ae_vk_pool_matrix (AeVkContext * ctx, const float *data, size_t count,
    AeError * err)
{
  AeVkPoolEntry *e;
  uint16_t *half;
  size_t bytes;
  int rc;

  if (!ctx->use_f16_weights || count == 0 ||
      g_hash_table_lookup (ctx->weights, data))
    return ae_vk_pool_weight (ctx, data, count, err);
  /* Packed pairs: pad to a whole number of 32-bit words. */
  bytes = (count + 1) / 2 * 4;
  half = g_new0 (uint16_t, bytes / 2);
  for (size_t i = 0; i < count; i++) {
    if (!f32_to_f16_exact (data[i], &half[i])) {
      g_free (half);
      return ae_vk_pool_weight (ctx, data, count, err);
    }
  }
  e = pool_add (ctx, data, bytes, AE_VK_MEM_DEVICE, err);
  rc = e ? ae_vk_write (ctx, &e->buf, half, bytes, err) : -1;
  g_free (half);
  if (rc < 0) {
    if (e) {
      e->key = NULL;
      e->in_use = false;
    }
    return NULL;
  }
  e->buf.half = true;
  g_hash_table_insert (ctx->weights, (gpointer) data, e);
  ctx->weight_bytes += bytes;
  return &e->buf;
}

void
ae_vk_pool_forget (AeVkContext * ctx, const float *data)
{
  AeVkPoolEntry *e = data ? g_hash_table_lookup (ctx->weights, data) : NULL;

  if (e == NULL)
    return;
  g_hash_table_remove (ctx->weights, data);
  ctx->weight_bytes -= e->buf.size;
  for (int i = 0; i < ctx->pool_count; i++) {
    if (ctx->pool[i] == e) {
      ctx->pool[i] = ctx->pool[--ctx->pool_count];
      break;
    }
  }
  ae_vk_buffer_destroy (ctx, &e->buf);
  g_free (e);
}

int
ae_vk_write (AeVkContext * ctx, AeVkBuffer * buf, const void *src,
    size_t bytes, AeError * err)
{
  AeVkBuffer staging;
  VkResult r;

  if (bytes > buf->size)
    return ae_error (err, "vulkan: write of %zu bytes into a %zu-byte "
        "buffer", bytes, buf->size);
  if (buf->map) {
    memcpy (buf->map, src, bytes);
    return 0;
  }
  if (ae_vk_buffer_create_mem (ctx, &staging, bytes, AE_VK_MEM_HOST,
          err) < 0)
    return -1;
  if (staging.map == NULL) {
    ae_vk_buffer_destroy (ctx, &staging);
    return ae_error (err, "vulkan: no host-visible memory for staging");
  }
  memcpy (staging.map, src, bytes);
  r = vkResetCommandBuffer (ctx->upload_cmd, 0);
  if (r == VK_SUCCESS)
    r = vkBeginCommandBuffer (ctx->upload_cmd, &(VkCommandBufferBeginInfo) {
          .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
          .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT});
  if (r == VK_SUCCESS) {
    vkCmdCopyBuffer (ctx->upload_cmd, staging.buffer, buf->buffer, 1,
        &(VkBufferCopy) {.srcOffset = 0,.dstOffset = 0,.size = bytes});
    r = vkEndCommandBuffer (ctx->upload_cmd);
  }
  if (r == VK_SUCCESS)
    r = vkQueueSubmit (ctx->queue, 1, &(VkSubmitInfo) {
          .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
          .commandBufferCount = 1,
          .pCommandBuffers = &ctx->upload_cmd}, ctx->upload_fence);
  if (r == VK_SUCCESS)
    r = vkWaitForFences (ctx->device, 1, &ctx->upload_fence, VK_TRUE,
        UINT64_MAX);
  if (r == VK_SUCCESS)
    r = vkResetFences (ctx->device, 1, &ctx->upload_fence);
  ae_vk_buffer_destroy (ctx, &staging);
  if (r != VK_SUCCESS)
    return ae_error (err, "vulkan: staging copy of %zu bytes failed: %s "
        "(%d)", bytes, ae_vk_result_str (r), (int) r);
  return 0;
}

int
ae_vk_upload (AeVkBuffer * buf, const float *src, size_t count,
    AeError * err)
{
  if (count * sizeof (float) > buf->size)
    return ae_error (err, "vulkan: upload of %zu floats into a %zu-byte "
        "buffer", count, buf->size);
  if (buf->map == NULL)
    return ae_error (err, "vulkan: upload into a device-local buffer (use "
        "ae_vk_write)");
  memcpy (buf->map, src, count * sizeof (float));
  return 0;
}

int
ae_vk_download (const AeVkBuffer * buf, float *dst, size_t count,
    AeError * err)
{
  if (count * sizeof (float) > buf->size)
    return ae_error (err, "vulkan: download of %zu floats from a %zu-byte "
        "buffer", count, buf->size);
  if (buf->map == NULL)
    return ae_error (err, "vulkan: download from a device-local buffer");
  memcpy (dst, buf->map, count * sizeof (float));
  return 0;
}

/* ---- pipelines and dispatch ----------------------------------------- */

static int
ensure_pipeline (AeVkContext * ctx, AeVkOp op, AeError * err)
{
  bool sg = ctx->use_subgroup && op_table[op].code_sg;
  VkShaderModule module;
  VkResult r;

  if (ctx->pipelines[op].pipeline)
    return 0;
  VK_CHECK (vkCreateShaderModule (ctx->device,
          &(VkShaderModuleCreateInfo) {
            .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
            .codeSize = sg ? op_table[op].code_sg_size
                : op_table[op].code_size,
            .pCode = sg ? op_table[op].code_sg : op_table[op].code}, NULL,
          &module), err);
  r = vkCreateComputePipelines (ctx->device, VK_NULL_HANDLE, 1,
      &(VkComputePipelineCreateInfo) {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
          .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
          .stage = VK_SHADER_STAGE_COMPUTE_BIT,
          .module = module,
          .pName = "main"},
        .layout = ctx->pipeline_layout}, NULL, &ctx->pipelines[op].pipeline);
  vkDestroyShaderModule (ctx->device, module, NULL);
  if (r != VK_SUCCESS)
    return ae_error (err, "vulkan: pipeline for shader %s.comp%s: %s (%d)",
        op_table[op].name, sg ? " (subgroup variant)" : "",
        ae_vk_result_str (r), (int) r);
  return 0;
}

int
ae_vk_begin (AeVkContext * ctx, AeError * err)
{
  if (ctx->recording)
    return 0;
  VK_CHECK (vkResetDescriptorPool (ctx->device, ctx->descriptor_pool, 0),
      err);
  ctx->sets_used = 0;
  VK_CHECK (vkResetCommandBuffer (ctx->cmd, 0), err);
  VK_CHECK (vkBeginCommandBuffer (ctx->cmd,
          &(VkCommandBufferBeginInfo) {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
            .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT}), err);
  /* Staging copies (ae_vk_write) ran in earlier submissions: make their
   * transfer writes visible to this batch's shaders. */
  vkCmdPipelineBarrier (ctx->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
      &(VkMemoryBarrier) {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT}, 0, NULL, 0, NULL);
  ctx->recording = true;
  return 0;
}

int
ae_vk_submit (AeVkContext * ctx, AeError * err)
{
  if (!ctx->recording)
    return 0;
  ctx->recording = false;
  VK_CHECK (vkEndCommandBuffer (ctx->cmd), err);
  VK_CHECK (vkQueueSubmit (ctx->queue, 1, &(VkSubmitInfo) {
            .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
            .commandBufferCount = 1,
            .pCommandBuffers = &ctx->cmd}, ctx->fence), err);
  VK_CHECK (vkWaitForFences (ctx->device, 1, &ctx->fence, VK_TRUE,
          UINT64_MAX), err);
  VK_CHECK (vkResetFences (ctx->device, 1, &ctx->fence), err);
  ctx->submits++;
  return 0;
}

void
ae_vk_abort (AeVkContext * ctx)
{
  if (!ctx->recording)
    return;
  ctx->recording = false;
  vkResetCommandBuffer (ctx->cmd, 0);
}

int
ae_vk_dispatch (AeVkContext * ctx, AeVkOp op,
    AeVkBuffer * const bindings[AE_VK_BINDINGS], const void *push,
    uint32_t gx, uint32_t gy, uint32_t gz, AeError * err)
{
  VkDescriptorSet set;
  VkDescriptorBufferInfo info[AE_VK_BINDINGS];
  VkWriteDescriptorSet writes[AE_VK_BINDINGS];
  const uint32_t *max = ctx->props.limits.maxComputeWorkGroupCount;

  if ((unsigned) op >= AE_VK_N_OPS)
    return ae_error (err, "vulkan: unknown op %d", (int) op);
  if (gx > max[0] || gy > max[1] || gz > max[2])
    return ae_error (err, "vulkan: %s: grid %ux%ux%u exceeds the device "
        "limit %ux%ux%u", op_table[op].name, gx, gy, gz, max[0], max[1],
        max[2]);
  if (gx == 0 || gy == 0 || gz == 0)
    return 0;                   /* empty tensor: nothing to do */
  if (ensure_pipeline (ctx, op, err) < 0)
    return -1;
  if (ctx->recording && ctx->sets_used >= AE_VK_MAX_SETS
      && ae_vk_submit (ctx, err) < 0)
    return -1;
  if (ae_vk_begin (ctx, err) < 0)
    return -1;

  VK_CHECK (vkAllocateDescriptorSets (ctx->device,
          &(VkDescriptorSetAllocateInfo) {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
            .descriptorPool = ctx->descriptor_pool,
            .descriptorSetCount = 1,
            .pSetLayouts = &ctx->set_layout}, &set), err);
  ctx->sets_used++;
  for (int i = 0; i < AE_VK_BINDINGS; i++) {
    const AeVkBuffer *b = bindings[i] ? bindings[i] : &ctx->dummy;
    size_t range = b->size < ae_vk_max_binding (ctx) ? b->size :
        ae_vk_max_binding (ctx);
    info[i] = (VkDescriptorBufferInfo) {
      .buffer = b->buffer, .offset = 0, .range = range};
    writes[i] = (VkWriteDescriptorSet) {
      .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
      .dstSet = set,
      .dstBinding = (uint32_t) i,
      .descriptorCount = 1,
      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
      .pBufferInfo = &info[i]};
  }
  vkUpdateDescriptorSets (ctx->device, AE_VK_BINDINGS, writes, 0, NULL);

  vkCmdBindPipeline (ctx->cmd, VK_PIPELINE_BIND_POINT_COMPUTE,
      ctx->pipelines[op].pipeline);
  vkCmdBindDescriptorSets (ctx->cmd, VK_PIPELINE_BIND_POINT_COMPUTE,
      ctx->pipeline_layout, 0, 1, &set, 0, NULL);
  vkCmdPushConstants (ctx->cmd, ctx->pipeline_layout,
      VK_SHADER_STAGE_COMPUTE_BIT, 0, ctx->pipelines[op].push_size, push);
  vkCmdDispatch (ctx->cmd, gx, gy, gz);
  /* The next dispatch may read what this one wrote; the host reads after
   * the fence (host-coherent memory), so a compute->compute+host barrier
   * is enough. */
  vkCmdPipelineBarrier (ctx->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
      &(VkMemoryBarrier) {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT
            | VK_ACCESS_HOST_READ_BIT}, 0, NULL, 0, NULL);
  ctx->dispatches++;
  return 0;
}

void
ae_vk_grid_1d (uint64_t invocations, uint32_t local, uint32_t * gx,
    uint32_t * gy)
{
  uint64_t groups = (invocations + local - 1) / local;

  if (groups <= 65535) {
    *gx = (uint32_t) groups;
    *gy = groups ? 1 : 0;
    return;
  }
  *gx = 65535;
  *gy = (uint32_t) ((groups + 65534) / 65535);
}

const AeVkPipeline *
ae_vk_pipeline_info (const AeVkContext * ctx, AeVkOp op)
{
  return &ctx->pipelines[op];
}
