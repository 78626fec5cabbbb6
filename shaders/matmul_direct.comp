#version 450
/* torch Linear: y (M, N) = x (M, K) w (N, K)^T + b (N), for CPU Vulkan
 * devices (Mesa lavapipe): the same 32x32 output tile per workgroup as
 * matmul.comp, but 8x8 invocations with 4x4 outputs each, reading x and w
 * straight from the buffers -- no shared memory, no barrier. On llvmpipe
 * every barrier switches all the workgroup's coroutines and shared memory
 * is ordinary memory, so this is ~8x faster there; on a GPU the tiled
 * matmul.comp is the right one (vk-ops.c picks by device type). */
#include "common.glsl"
#define TS 32
layout (local_size_x = 8, local_size_y = 8) in;
AE_BUF (0, y);
AE_BUF (1, x);
#ifdef AE_F16W
/* Weights stored as packed f16 pairs (element 2k in the low half of word
 * k): half the memory traffic; unpackHalf2x16 needs no device feature. */
layout (std430, set = 0, binding = 2) buffer Buf2 { uint w_packed[]; };
float load_w (uint i)
{
  vec2 p = unpackHalf2x16 (w_packed[i >> 1u]);
  return (i & 1u) != 0u ? p.y : p.x;
}
#else
AE_BUF (2, w);
float load_w (uint i)
{
  return w[i];
}
#endif
AE_BUF (3, bias);
layout (push_constant) uniform Push { uint m; uint n; uint k; uint has_bias; } pc;

void main ()
{
  uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
  uint row0 = gl_WorkGroupID.y * TS, col0 = gl_WorkGroupID.x * TS;
  float acc[4][4];
  uint r[4], c[4];
  for (uint i = 0u; i < 4u; i++) {
    r[i] = min (row0 + ty + 8u * i, pc.m - 1u);
    c[i] = min (col0 + tx + 8u * i, pc.n - 1u);
    for (uint j = 0u; j < 4u; j++)
      acc[i][j] = 0.0;
  }
  for (uint k = 0u; k < pc.k; k++) {
    float a[4], b[4];
    for (uint i = 0u; i < 4u; i++) {
      a[i] = x[r[i] * pc.k + k];
      b[i] = load_w (c[i] * pc.k + k);
    }
    for (uint i = 0u; i < 4u; i++)
      for (uint j = 0u; j < 4u; j++)
        acc[i][j] += a[i] * b[j];
  }
  for (uint i = 0u; i < 4u; i++) {
    for (uint j = 0u; j < 4u; j++) {
      uint rr = row0 + ty + 8u * i, cc = col0 + tx + 8u * j;
      if (rr < pc.m && cc < pc.n)
        y[rr * pc.n + cc] = acc[i][j] + (pc.has_bias != 0u ? bias[cc] : 0.0);
    }
  }
}
