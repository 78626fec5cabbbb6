#version 450
/* torch Conv2d (groups 1, dilation 1) as an implicit GEMM without an
 * im2col buffer: rows are output channels, columns output pixels, and K
 * runs over (ci, ky, kx). Each 16x16 workgroup computes 32 channels x 32
 * pixels of one batch item (gl_WorkGroupID.z); the input slice is gathered
 * straight into shared memory with zero padding (asymmetric pads allowed). */
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
layout (push_constant) uniform Push {
  uint cin; uint h; uint w; uint cout; uint ho; uint wo;
  uint kh; uint kw; uint stride; uint pad_top; uint pad_left; uint has_bias;
} pc;

shared float ws[TS][TK + 1];
shared float xs[TK][TS + 1];

void main ()
{
  uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
  uint co0 = gl_WorkGroupID.y * TS, p0 = gl_WorkGroupID.x * TS;
  uint b = gl_WorkGroupID.z;
  uint tid = ty * 16u + tx;
  uint ksz = pc.kh * pc.kw;
  uint kdim = pc.cin * ksz;
  uint npix = pc.ho * pc.wo;
  uint xbase = b * pc.cin * pc.h * pc.w;
  float acc[2][2] = { { 0.0, 0.0 }, { 0.0, 0.0 } };

  for (uint k0 = 0u; k0 < kdim; k0 += TK) {
    for (uint e = tid; e < TS * TK; e += 256u) {
      uint r = e / TK, kk = e % TK;
      uint gk = k0 + kk, co = co0 + r;
      ws[r][kk] = (co < pc.cout && gk < kdim) ? load_w (co * kdim + gk) : 0.0;

      /* same e reinterpreted as (kk2, pixel) for the input gather */
      uint kk2 = e / TS, pc2 = e % TS;
      uint gk2 = k0 + kk2, p = p0 + pc2;
      float v = 0.0;
      if (gk2 < kdim && p < npix) {
        uint ci = gk2 / ksz, kr = gk2 % ksz;
        uint ky = kr / pc.kw, kx = kr % pc.kw;
        int iy = int ((p / pc.wo) * pc.stride + ky) - int (pc.pad_top);
        int ix = int ((p % pc.wo) * pc.stride + kx) - int (pc.pad_left);
        if (iy >= 0 && iy < int (pc.h) && ix >= 0 && ix < int (pc.w))
          v = x[xbase + (ci * pc.h + uint (iy)) * pc.w + uint (ix)];
      }
      xs[kk2][pc2] = v;
    }
    barrier ();
    for (uint kk = 0u; kk < TK; kk++) {
      float a0 = ws[ty][kk], a1 = ws[ty + 16u][kk];
      float b0 = xs[kk][tx], b1 = xs[kk][tx + 16u];
      acc[0][0] += a0 * b0;
      acc[0][1] += a0 * b1;
      acc[1][0] += a1 * b0;
      acc[1][1] += a1 * b1;
    }
    barrier ();
  }
  for (uint i = 0u; i < 2u; i++) {
    for (uint j = 0u; j < 2u; j++) {
      uint co = co0 + ty + 16u * i, p = p0 + tx + 16u * j;
      if (co < pc.cout && p < npix)
        y[(b * pc.cout + co) * npix + p] =
            acc[i][j] + (pc.has_bias != 0u ? bias[co] : 0.0);
    }
  }
}
