#version 450
/* diffusers GEGLU: x (rows, 2H) = [hidden, gate] -> y = hidden * gelu(gate). */
#include "common.glsl"
layout (local_size_x = 256) in;
AE_BUF (0, y);
AE_BUF (1, x);
layout (push_constant) uniform Push { uint rows; uint hidden; } pc;

void main ()
{
  uint i = ae_linear_index ();
  if (i >= pc.rows * pc.hidden)
    return;
  uint r = i / pc.hidden, j = i % pc.hidden;
  uint base = r * 2u * pc.hidden;
  y[i] = x[base + j] * ae_gelu_erf (x[base + pc.hidden + j]);
}
