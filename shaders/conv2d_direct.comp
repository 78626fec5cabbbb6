#version 450
/* torch Conv2d (groups 1, dilation 1) for CPU Vulkan devices (Mesa
 * lavapipe): the same 32 channels x 32 pixels per workgroup (batch item in
 * gl_WorkGroupID.z) as conv2d.comp, but 8x8 invocations with 4 x 4 outputs
 * each, reading the weights and the input straight from the buffers (zero
 * padding by bounds) -- no shared memory, no barrier, which llvmpipe runs
 * as coroutine switches. vk-ops.c picks it on CPU devices. */
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
layout (push_constant) uniform Push {
  uint cin; uint h; uint w; uint cout; uint ho; uint wo;
  uint kh; uint kw; uint stride; uint pad_top; uint pad_left; uint has_bias;
} pc;

void main ()
{
  uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
  uint co0 = gl_WorkGroupID.y * TS, p0 = gl_WorkGroupID.x * TS;
  uint b = gl_WorkGroupID.z;
  uint ksz = pc.kh * pc.kw;
  uint kdim = pc.cin * ksz;
  uint npix = pc.ho * pc.wo;
  uint xbase = b * pc.cin * pc.h * pc.w;
  uint co[4];
  int iy0[4], ix0[4];
  float acc[4][4];

  for (uint i = 0u; i < 4u; i++) {
    uint p = min (p0 + tx + 8u * i, npix - 1u);
    co[i] = min (co0 + ty + 8u * i, pc.cout - 1u);
    iy0[i] = int ((p / pc.wo) * pc.stride) - int (pc.pad_top);
    ix0[i] = int ((p % pc.wo) * pc.stride) - int (pc.pad_left);
    for (uint j = 0u; j < 4u; j++)
      acc[i][j] = 0.0;
  }
  for (uint ci = 0u; ci < pc.cin; ci++) {
    uint xc = xbase + ci * pc.h * pc.w;
    for (uint ky = 0u; ky < pc.kh; ky++) {
      for (uint kx = 0u; kx < pc.kw; kx++) {
        uint kidx = (ci * pc.kh + ky) * pc.kw + kx;
        float a[4], v[4];
        for (uint i = 0u; i < 4u; i++) {
          int iy = iy0[i] + int (ky), ix = ix0[i] + int (kx);
          a[i] = load_w (co[i] * kdim + kidx);
          v[i] = (iy >= 0 && iy < int (pc.h) && ix >= 0 && ix < int (pc.w))
              ? x[xc + uint (iy) * pc.w + uint (ix)] : 0.0;
        }
        for (uint i = 0u; i < 4u; i++)
          for (uint j = 0u; j < 4u; j++)
            acc[i][j] += a[i] * v[j];
      }
    }
  }
  for (uint i = 0u; i < 4u; i++) {
    for (uint j = 0u; j < 4u; j++) {
      uint c = co0 + ty + 8u * i, p = p0 + tx + 8u * j;
      if (c < pc.cout && p < npix)
        y[(b * pc.cout + c) * npix + p] =
            acc[i][j] + (pc.has_bias != 0u ? bias[c] : 0.0);
    }
  }
}
