#version 450
/* Element-wise unary ops; mode: 0 SiLU, 1 GELU (erf), 2 GELU (tanh),
 * 3 scale by p0, 4 clamp to [p0, p1]. y may alias x (same binding). */
#include "common.glsl"
layout (local_size_x = 256) in;
AE_BUF (0, y);
AE_BUF (1, x);
layout (push_constant) uniform Push { uint n; uint mode; float p0; float p1; } pc;

void main ()
{
  uint i = ae_linear_index ();
  if (i >= pc.n)
    return;
  float v = x[i];
  if (pc.mode == 0u)
    v = ae_silu (v);
  else if (pc.mode == 1u)
    v = ae_gelu_erf (v);
  else if (pc.mode == 2u)
    v = ae_gelu_tanh (v);
  else if (pc.mode == 3u)
    v = v * pc.p0;
  else
    v = min (max (v, pc.p0), pc.p1);
  y[i] = v;
}
