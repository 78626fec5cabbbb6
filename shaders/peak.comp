#version 450
/* Peak float32 FMA throughput of the device (bench_vulkan): every
 * invocation runs 8 independent multiply-add chains of `iters` steps
 * (16 FLOP per step) and stores their sum so that nothing is optimised
 * away. */
#include "common.glsl"
layout (local_size_x = 256) in;
AE_BUF (0, y);
layout (push_constant) uniform Push { uint n; uint iters; float a; float b; } pc;

void main ()
{
  uint i = ae_linear_index ();
  float x = float (i & 255u) * 1e-3;
  vec4 s0 = vec4 (x, x + 1.0, x + 2.0, x + 3.0);
  vec4 s1 = s0 + 0.5;
  for (uint k = 0u; k < pc.iters; k++) {
    s0 = s0 * pc.a + pc.b;
    s1 = s1 * pc.a + pc.b;
  }
  if (i < pc.n)
    y[i] = dot (s0 + s1, vec4 (1.0));
}
