#version 450
/* y = (a + b) / output_scale_factor (ae_add, ae_add_scaled). */
#include "common.glsl"
layout (local_size_x = 256) in;
AE_BUF (0, y);
AE_BUF (1, a);
AE_BUF (2, b);
layout (push_constant) uniform Push { uint n; float output_scale_factor; } pc;

void main ()
{
  uint i = ae_linear_index ();
  if (i >= pc.n)
    return;
  y[i] = (a[i] + b[i]) / pc.output_scale_factor;
}
