#version 450
#ifdef AE_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
/* torch GroupNorm (+ optional fused SiLU). One workgroup per (batch,
 * group): the group's C/groups * HW values are contiguous. Mean first,
 * then the biased variance around the mean (two passes, as the CPU op),
 * each reduced in shared memory. */
#include "common.glsl"
#define WG 256
layout (local_size_x = WG) in;
AE_BUF (0, y);
AE_BUF (1, x);
AE_BUF (2, gamma);
AE_BUF (3, beta);
layout (push_constant) uniform Push {
  uint channels; uint hw; uint groups; float eps; uint silu; uint affine;
} pc;

shared float partial[WG];

#include "reduce.glsl"

void main ()
{
  uint bg = gl_WorkGroupID.x;
  uint g = bg % pc.groups;
  uint cpg = pc.channels / pc.groups;
  uint count = cpg * pc.hw;
  uint base = bg * count;
  uint t = gl_LocalInvocationID.x;

  float s = 0.0;
  for (uint i = t; i < count; i += WG)
    s += x[base + i];
  float mean = reduce_sum (s) / float (count);

  float q = 0.0;
  for (uint i = t; i < count; i += WG) {
    float d = x[base + i] - mean;
    q += d * d;
  }
  float rstd = inversesqrt (reduce_sum (q) / float (count) + pc.eps);

  for (uint i = t; i < count; i += WG) {
    uint c = g * cpg + i / pc.hw;
    float v = (x[base + i] - mean) * rstd;
    if (pc.affine != 0u)
      v = v * gamma[c] + beta[c];
    if (pc.silu != 0u)
      v = ae_silu (v);
    y[base + i] = v;
  }
}
