#version 450
/* Nearest-neighbour 2x: x (P, H, W) -> y (P, 2H, 2W), P = B*C. */
#include "common.glsl"
layout (local_size_x = 256) in;
AE_BUF (0, y);
AE_BUF (1, x);
layout (push_constant) uniform Push { uint planes; uint h; uint w; } pc;

void main ()
{
  uint i = ae_linear_index ();
  uint w2 = 2u * pc.w, h2 = 2u * pc.h;
  if (i >= pc.planes * h2 * w2)
    return;
  uint p = i / (h2 * w2), r = i % (h2 * w2);
  uint oy = r / w2, ox = r % w2;
  y[i] = x[(p * pc.h + oy / 2u) * pc.w + ox / 2u];
}
