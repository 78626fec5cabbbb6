/* diffusers UNet2DConditionModel (SD1.5 block types) on the CPU ops.
 *
 * Config: config.json of a diffusers `save_pretrained` folder. Weights:
 * diffusion_pytorch_model.safetensors (diffusers key names). One struct per
 * diffusers module; each field's comment gives its key below the module's
 * prefix. Every activation comes from the caller's AeArena: a forward pass
 * never calls malloc once the arena has reached its peak.
 *
 * Hooks (AeUNetHooks) add the avatar pipeline's changes without touching
 * the weights: a residual added after conv_in (PoseGuider), reference
 * attention (capture / inject the tokens entering every attn1) and
 * temporal all-frame attention (attn1 over the tokens of every frame). */
#ifndef AE_UNET_H
#define AE_UNET_H

#include <stdbool.h>
#include <stdint.h>

#include "ae-error.h"
#include "safetensors.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AE_UNET_MAX_LEVELS 8

typedef enum {
  AE_BLOCK_DOWN,                /* DownBlock2D */
  AE_BLOCK_CROSS_ATTN_DOWN,     /* CrossAttnDownBlock2D */
  AE_BLOCK_UP,                  /* UpBlock2D */
  AE_BLOCK_CROSS_ATTN_UP,       /* CrossAttnUpBlock2D */
  AE_BLOCK_MID_CROSS_ATTN,      /* UNetMidBlock2DCrossAttn */
} AeBlockType;

typedef struct {
  int in_channels, out_channels;
  int n_levels;
  int block_out_channels[AE_UNET_MAX_LEVELS];
  AeBlockType down_types[AE_UNET_MAX_LEVELS];
  AeBlockType up_types[AE_UNET_MAX_LEVELS];
  /* Heads of the transformers of down block i (num_attention_heads, or
   * the legacy attention_head_dim which means heads); the mid block uses
   * the last entry, up block i the reversed list. */
  int heads[AE_UNET_MAX_LEVELS];
  int layers_per_block;
  int transformer_layers_per_block;
  int cross_attention_dim;
  int norm_num_groups;
  float norm_eps;
  bool use_linear_projection;
  bool flip_sin_to_cos;
  float freq_shift;
  int downsample_padding;
  float mid_block_scale_factor; /* output_scale_factor of mid resnets */
  float resnet_out_scale_factor;        /* ... of down/up resnets */
  int time_embed_dim;           /* 4 * block_out_channels[0] */
} AeUNetConfig;

struct AeConfig;
/* Fills cfg from parsed config.json text; errors name the file + field. */
int ae_unet_config_parse (AeUNetConfig * cfg, const struct AeConfig * c,
    AeError * err);
/* Parses config.json; errors name the file and the field. */
int ae_unet_config_load (AeUNetConfig * cfg, const char *path, AeError * err);

/* A weight and its bias (bias.data NULL when the module has none). */
typedef struct {
  AeTensor weight;              /* <module>.weight */
  AeTensor bias;                /* <module>.bias */
} AeUNetParam;

typedef struct {
  int in_channels, out_channels;
  float output_scale_factor;    /* (shortcut + h) / this */
  AeUNetParam norm1;                /* norm1 (GroupNorm) */
  AeUNetParam conv1;                /* conv1 (3x3) */
  AeUNetParam time_emb_proj;        /* time_emb_proj (Linear temb -> out) */
  AeUNetParam norm2;                /* norm2 */
  AeUNetParam conv2;                /* conv2 (3x3) */
  AeUNetParam conv_shortcut;        /* conv_shortcut (1x1, only if in != out) */
} AeResnetBlock2D;

typedef struct {
  AeTensor to_q, to_k, to_v;    /* attnN.to_q/to_k/to_v.weight (no bias) */
  AeUNetParam to_out;               /* attnN.to_out.0 */
} AeUNetAttention;

typedef struct {
  int dim, heads;
  AeUNetParam norm1;                /* norm1 (LayerNorm) */
  AeUNetAttention attn1;            /* attn1 (self) */
  AeUNetParam norm2;                /* norm2 */
  AeUNetAttention attn2;            /* attn2 (cross, k/v from context) */
  AeUNetParam norm3;                /* norm3 */
  AeUNetParam ff_proj;              /* ff.net.0.proj (Linear dim -> 8 dim, GEGLU) */
  AeUNetParam ff_out;               /* ff.net.2 (Linear 4 dim -> dim) */
} AeBasicTransformerBlock;

typedef struct {
  int channels, heads, n_layers;
  bool linear_projection;
  AeUNetParam norm;                 /* norm (GroupNorm, eps 1e-6) */
  AeUNetParam proj_in;              /* proj_in (1x1 conv, or Linear) */
  AeBasicTransformerBlock *blocks;      /* transformer_blocks.N */
  AeUNetParam proj_out;             /* proj_out */
} AeTransformer2D;

typedef struct {
  AeBlockType type;
  int n_layers;
  AeResnetBlock2D *resnets;     /* resnets.N */
  AeTransformer2D *attentions;  /* attentions.N (cross-attn blocks) */
  bool has_sampler;
  AeUNetParam sampler;              /* downsamplers.0.conv / upsamplers.0.conv */
} AeUNetBlock;

typedef struct AeUNet {
  AeUNetConfig cfg;
  AeSafetensors *st;            /* owns the weight memory */
  char *config_path;
  AeUNetParam conv_in;              /* conv_in */
  AeUNetParam time_linear_1;        /* time_embedding.linear_1 */
  AeUNetParam time_linear_2;        /* time_embedding.linear_2 */
  AeUNetBlock down[AE_UNET_MAX_LEVELS]; /* down_blocks.N */
  AeUNetBlock mid;              /* mid_block */
  AeUNetBlock up[AE_UNET_MAX_LEVELS];   /* up_blocks.N */
  AeUNetParam conv_norm_out;        /* conv_norm_out */
  AeUNetParam conv_out;             /* conv_out */
  int n_transformer_blocks;     /* BasicTransformerBlocks, forward order */
  struct _GPtrArray *owned;     /* random weights (ae_unet_new_random) */
} AeUNet;

/* Loads DIR/config.json and DIR/diffusion_pytorch_model.safetensors (or
 * its sharded index). Wrong or missing keys name the file and the key. */
int ae_unet_load (AeUNet ** out, const char *dir, AeError * err);
/* Same from an explicit config path and weights path. */
int ae_unet_load_files (AeUNet ** out, const char *config_path,
    const char *weights_path, AeError * err);
void ae_unet_free (AeUNet * u);

/* A UNet of this config with seeded random weights held in memory (tests,
 * benchmarks); ae_unet_foreach_weight lists them with their diffusers keys
 * in load order (to write a checkpoint). */
int ae_unet_new_random (AeUNet ** out, const AeUNetConfig * cfg,
    uint64_t seed, AeError * err);
typedef void (*AeWeightFn) (void *user, const char *key, const AeTensor * t);
void ae_unet_foreach_weight (const AeUNet * u, AeWeightFn fn, void *user);

/* ---- hooks ------------------------------------------------------------ */

/* Reference attention bank: the tokens entering attn1 of every
 * BasicTransformerBlock, in forward order. Owned memory (malloc'd when
 * captured for the first time or at a new shape). */
typedef struct {
  int n;
  AeTensor *tokens;             /* (B_ref, L_b, C_b) */
  size_t *capacity;             /* floats allocated per entry */
} AeRefBank;

void ae_ref_bank_clear (AeRefBank * bank);

typedef enum {
  AE_REF_OFF,
  AE_REF_CAPTURE,               /* save norm1 outputs into bank */
  AE_REF_INJECT,                /* attn1 keys/values += saved tokens */
} AeRefMode;

/* Called with every captured activation ("time_proj", "conv_in",
 * "down_blocks.0.resnets.0.norm1", "down_blocks.1.res.0", ...). */
typedef void (*AeActFn) (void *user, const char *name, const AeTensor * t);

typedef struct {
  AeRefMode ref_mode;
  AeRefBank *bank;
  /* INJECT: per batch element, true = attend to the reference tokens;
   * NULL = every element (CFG passes false for the unconditional half). */
  const bool *ref_batch_mask;
  /* attn1 over the tokens of all batch elements (frames) at once; with
   * AE_REF_INJECT the reference tokens follow them (mask uniform). */
  bool temporal;
  /* (B, block_out_channels[0], H, W) added to conv_in's output, or NULL. */
  const AeTensor *conv_in_residual;
  AeActFn act_fn;
  void *act_user;
} AeUNetHooks;

/* eps / sample prediction. sample (B, in, H, W) with H and W divisible by
 * 2^(levels-1); timesteps: 1 value (broadcast) or B values;
 * encoder_hidden_states (B, L, cross_attention_dim); out (B, out, H, W)
 * allocated by the caller. hooks may be NULL. All temporaries come from
 * arena and are given back before returning. */
int ae_unet_forward (AeUNet * u, AeTensor * out, const AeTensor * sample,
    const float *timesteps, int n_timesteps,
    const AeTensor * encoder_hidden_states, const AeUNetHooks * hooks,
    AeArena * arena, AeError * err);

/* Multiply-adds of one forward pass at this input shape (for GFLOP/s). */
double ae_unet_macs (const AeUNet * u, int64_t batch, int64_t height,
    int64_t width, int64_t context_len);

#ifdef __cplusplus
}
#endif
#endif /* AE_UNET_H */
