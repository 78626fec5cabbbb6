#version 450
#ifdef AE_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
/* torch LayerNorm over the last dim: one workgroup per row. */
#include "common.glsl"
#define WG 128
layout (local_size_x = WG) in;
AE_BUF (0, y);
AE_BUF (1, x);
AE_BUF (2, gamma);
AE_BUF (3, beta);
layout (push_constant) uniform Push { uint rows; uint c; float eps; uint affine; } pc;

shared float partial[WG];

#include "reduce.glsl"

void main ()
{
  uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (row >= pc.rows)
    return;                     /* whole workgroup leaves together */
  uint base = row * pc.c;
  uint t = gl_LocalInvocationID.x;

  float s = 0.0;
  for (uint i = t; i < pc.c; i += WG)
    s += x[base + i];
  float mean = reduce_sum (s) / float (pc.c);
  float q = 0.0;
  for (uint i = t; i < pc.c; i += WG) {
    float d = x[base + i] - mean;
    q += d * d;
  }
  float rstd = inversesqrt (reduce_sum (q) / float (pc.c) + pc.eps);
  for (uint i = t; i < pc.c; i += WG) {
    float v = (x[base + i] - mean) * rstd;
    if (pc.affine != 0u)
      v = v * gamma[i] + beta[i];
    y[base + i] = v;
  }
}
