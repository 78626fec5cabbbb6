/* CPU ops of the avatar engine: float32, row-major, batch dimension first.
 *
 * Images are NCHW (B, C, H, W); token sequences are NLC (B, L, C). Every op
 * writes into a caller-provided output tensor whose shape it checks; ops
 * that need temporaries take them from `scratch` (mark/release, so nothing
 * stays allocated) and return -1 with err only on a shape mismatch or when
 * the arena is out of memory. Unless stated otherwise y must not alias x.
 * Names follow torch / diffusers. */
#ifndef AE_OPS_H
#define AE_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "ae-error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- matrix products (OpenBLAS) -------------------------------------- */

/* C (M x N) = alpha * op(A) op(B) + beta * C, row-major, leading dims lda,
 * ldb, ldc; trans_a/trans_b select A^T / B^T. Thin sgemm wrapper. */
void ae_sgemm (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
    float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
    float beta, float *c, int64_t ldc);

/* torch.nn.Linear on the last dim: x (..., in), w (out, in), b (out) or
 * NULL, y (..., out) with the same leading dims as x. */
int ae_linear (AeTensor * y, const AeTensor * x, const AeTensor * w,
    const AeTensor * b, AeError * err);

/* ---- convolution ----------------------------------------------------- */

/* torch.nn.Conv2d (dilation 1, groups 1): x (B, Cin, H, W), w (Cout, Cin,
 * kh, kw), b (Cout) or NULL, y (B, Cout, Ho, Wo) with
 * Ho = (H + pad_top + pad_bottom - kh) / stride + 1 (same for W).
 * Zero padding may be asymmetric: diffusers' VAE downsampler is
 * F.pad(x, (0,1,0,1)) then stride 2 pad 0, i.e. pads (0, 1, 0, 1). */
int ae_conv2d_pad (AeTensor * y, const AeTensor * x, const AeTensor * w,
    const AeTensor * b, int stride, int pad_top, int pad_bottom,
    int pad_left, int pad_right, AeArena * scratch, AeError * err);

/* Symmetric padding. */
int ae_conv2d (AeTensor * y, const AeTensor * x, const AeTensor * w,
    const AeTensor * b, int stride, int pad, AeArena * scratch,
    AeError * err);

/* Output size helper: (in + pads - k) / stride + 1. */
int64_t ae_conv2d_out_size (int64_t in, int k, int stride, int pad_a,
    int pad_b);

/* ---- normalisation --------------------------------------------------- */

/* torch.nn.GroupNorm (affine; gamma/beta (C) or NULL for 1/0), biased
 * variance over (C/groups, H, W) computed around the mean. x (B, C, ...)
 * of any rank >= 2. If `silu`, y = silu(norm(x)) (fused). y may alias x. */
int ae_group_norm (AeTensor * y, const AeTensor * x, int groups, float eps,
    const AeTensor * gamma, const AeTensor * beta, bool silu, AeError * err);

/* torch.nn.LayerNorm over the last dim; gamma/beta (C) or NULL. y may
 * alias x. */
int ae_layer_norm (AeTensor * y, const AeTensor * x, float eps,
    const AeTensor * gamma, const AeTensor * beta, AeError * err);

/* ---- activations (y may alias x) -------------------------------------- */

typedef enum {
  AE_GELU_ERF,                  /* exact: x/2 (1 + erf(x/sqrt 2)); GEGLU */
  AE_GELU_TANH,                 /* approximate="tanh" */
} AeGeluKind;

int ae_silu (AeTensor * y, const AeTensor * x, AeError * err);
int ae_gelu (AeTensor * y, const AeTensor * x, AeGeluKind kind, AeError * err);

/* diffusers GEGLU after its projection: x (..., 2H) = [hidden, gate];
 * y (..., H) = hidden * gelu_erf(gate). */
int ae_geglu (AeTensor * y, const AeTensor * x, AeError * err);

/* ---- attention ------------------------------------------------------- */

/* Multi-head scaled dot-product attention, softmax(q k^T * scale) v per
 * head, with a running (online) softmax over key tiles: memory is
 * O(query tile x key tile) whatever the sequence lengths.
 *   q (B, Lq, heads*d); k, v (B, Lk, heads*d) -- self- or cross-attention;
 *   k_extra, v_extra (Be, Le, heads*d) or NULL: extra key/value tokens
 *   appended after k/v (reference attention); Be is B or 1 (shared);
 *   scale <= 0 means 1/sqrt(d).
 * out (B, Lq, heads*d): heads concatenated as diffusers' head_to_batch_dim
 * inverse, ready for to_out.
 * Temporal all-frame attention: pass q/k/v viewed as (1, B*L, heads*d)
 * (same data, ae_tensor_reshape), so every frame attends to all frames. */
int ae_attention (AeTensor * out, const AeTensor * q, const AeTensor * k,
    const AeTensor * v, const AeTensor * k_extra, const AeTensor * v_extra,
    int heads, float scale, AeArena * scratch, AeError * err);

/* ---- resampling, embeddings ------------------------------------------ */

/* Nearest-neighbour 2x: x (B, C, H, W) -> y (B, C, 2H, 2W). */
int ae_upsample_nearest2x (AeTensor * y, const AeTensor * x, AeError * err);

/* diffusers get_timestep_embedding: timesteps (n values), y (n, dim).
 * half = dim/2, freq_i = exp(-ln(max_period) * i / (half - freq_shift)),
 * arg = scale * t * freq; [sin, cos] or [cos, sin] if flip_sin_to_cos;
 * odd dim zero-pads the last column. Computed in float32 like torch. */
int ae_timestep_embedding (AeTensor * y, const float *timesteps, int64_t n,
    bool flip_sin_to_cos, float freq_shift, float scale, float max_period,
    AeError * err);

/* ---- element-wise and layout ----------------------------------------- */

/* y = a + b (same shape); y may alias a or b. */
int ae_add (AeTensor * y, const AeTensor * a, const AeTensor * b,
    AeError * err);
/* y = a * s; y may alias a. */
int ae_scale (AeTensor * y, const AeTensor * a, float s, AeError * err);
/* y = (a + b) / output_scale_factor, as diffusers' resnets and
 * transformers divide (not multiply by the inverse). Aliasing allowed. */
int ae_add_scaled (AeTensor * y, const AeTensor * a, const AeTensor * b,
    float output_scale_factor, AeError * err);
/* x (B, C, ...) += v broadcast over the trailing dims; v is (B, C) (resnet
 * time embedding) or (C) (a per-channel bias). In place. */
int ae_add_channel (AeTensor * x, const AeTensor * v, AeError * err);
/* y = clamp(x, lo, hi); aliasing allowed. */
int ae_clamp (AeTensor * y, const AeTensor * x, float lo, float hi,
    AeError * err);
/* torch.cat([a, b], dim=1): a (B, Ca, ...), b (B, Cb, ...) ->
 * y (B, Ca+Cb, ...). */
int ae_concat_channels (AeTensor * y, const AeTensor * a, const AeTensor * b,
    AeError * err);
/* Copies data between tensors of equal numel (shapes may differ). */
int ae_copy (AeTensor * y, const AeTensor * x, AeError * err);
/* (B, C, H, W) -> (B, H*W, C) and back (the second takes H and W from y). */
int ae_nchw_to_nlc (AeTensor * y, const AeTensor * x, AeError * err);
int ae_nlc_to_nchw (AeTensor * y, const AeTensor * x, AeError * err);

/* ---- comparison (tests, tools) --------------------------------------- */

/* max |a - b| and ||a - b||_2 / ||b||_2 over equal-numel tensors (b is the
 * reference; rel_l2 = ||a - b|| when ||b|| == 0). Computed in double. */
int ae_compare (const AeTensor * a, const AeTensor * b, double *max_abs,
    double *rel_l2, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_OPS_H */
