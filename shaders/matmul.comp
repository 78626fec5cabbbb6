#version 450
/* torch Linear: y (M, N) = x (M, K) w (N, K)^T + b (N). Tiled in shared
 * memory: a 32x32 output tile per 16x16 workgroup, 2x2 outputs per
 * invocation, K walked in slices of TK. */
#include "common.glsl"
#define TS 32
#define TK 16
layout (local_size_x = 16, local_size_y = 16) in;
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

shared float xs[TS][TK + 1];    /* +1: avoid bank conflicts on GPUs */
shared float ws[TS][TK + 1];

void main ()
{
  uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
  uint row0 = gl_WorkGroupID.y * TS, col0 = gl_WorkGroupID.x * TS;
  uint tid = ty * 16u + tx;
  float acc[2][2] = { { 0.0, 0.0 }, { 0.0, 0.0 } };

  for (uint k0 = 0u; k0 < pc.k; k0 += TK) {
    /* 256 invocations load 2 x (32 x 16) values. */
    for (uint e = tid; e < TS * TK; e += 256u) {
      uint r = e / TK, kk = e % TK;
      uint gk = k0 + kk;
      uint gr = row0 + r, gc = col0 + r;
      xs[r][kk] = (gr < pc.m && gk < pc.k) ? x[gr * pc.k + gk] : 0.0;
      ws[r][kk] = (gc < pc.n && gk < pc.k) ? load_w (gc * pc.k + gk) : 0.0;
    }
    barrier ();
    for (uint kk = 0u; kk < TK; kk++) {
      float a0 = xs[ty][kk], a1 = xs[ty + 16u][kk];
      float b0 = ws[tx][kk], b1 = ws[tx + 16u][kk];
      acc[0][0] += a0 * b0;
      acc[0][1] += a0 * b1;
      acc[1][0] += a1 * b0;
      acc[1][1] += a1 * b1;
    }
    barrier ();
  }
  for (uint i = 0u; i < 2u; i++) {
    for (uint j = 0u; j < 2u; j++) {
      uint r = row0 + ty + 16u * i, c = col0 + tx + 16u * j;
      if (r < pc.m && c < pc.n)
        y[r * pc.n + c] = acc[i][j] + (pc.has_bias != 0u ? bias[c] : 0.0);
    }
  }
}
