#version 450
/* Layout ops, one invocation per output element; mode:
 * 0 copy, 1 (B,C,S) -> (B,S,C), 2 (B,S,C) -> (B,C,S),
 * 3 concat channels [a (B,Ca,S), b (B,Cb,S)] -> (B,Ca+Cb,S),
 * 4 y (B,C,S) += v (B,C) or (C) broadcast over S (in place). */
#include "common.glsl"
layout (local_size_x = 256) in;
AE_BUF (0, y);
AE_BUF (1, x);
AE_BUF (2, x2);
layout (push_constant) uniform Push {
  uint n; uint mode; uint c; uint s; uint c2; uint per_batch;
} pc;

void main ()
{
  uint i = ae_linear_index ();
  if (i >= pc.n)
    return;
  if (pc.mode == 0u) {
    y[i] = x[i];
  } else if (pc.mode == 1u) {
    uint b = i / (pc.s * pc.c), r = i % (pc.s * pc.c);
    y[i] = x[(b * pc.c + r % pc.c) * pc.s + r / pc.c];
  } else if (pc.mode == 2u) {
    uint b = i / (pc.c * pc.s), r = i % (pc.c * pc.s);
    y[i] = x[(b * pc.s + r % pc.s) * pc.c + r / pc.s];
  } else if (pc.mode == 3u) {
    uint ct = pc.c + pc.c2;
    uint b = i / (ct * pc.s), ch = (i / pc.s) % ct, sp = i % pc.s;
    y[i] = ch < pc.c ? x[(b * pc.c + ch) * pc.s + sp]
        : x2[(b * pc.c2 + ch - pc.c) * pc.s + sp];
  } else {
    uint b = i / (pc.c * pc.s), ch = (i / pc.s) % pc.c;
    y[i] += x[pc.per_batch != 0u ? b * pc.c + ch : ch];
  }
}
