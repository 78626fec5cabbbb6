#version 450
/* Multi-head attention with a running (online) softmax, flash-style:
 * each invocation owns one query row of one head; the workgroup walks the
 * keys in tiles of KT that it stages in shared memory, so memory stays
 * O(KT x d) whatever the sequence lengths. Extra key/value tokens
 * (reference attention) follow the ordinary keys, for every batch element
 * or (use_mask) for those whose bit is set.
 * q (B, Lq, heads*d), k/v (B, Lk, heads*d), k_extra/v_extra (Be, Le, ...). */
#include "common.glsl"
#define WG 64
#define KT 16
#define MAX_D 160
layout (local_size_x = WG) in;
AE_BUF (0, o);
AE_BUF (1, q);
AE_BUF (2, k);
AE_BUF (3, v);
AE_BUF (4, ke);
AE_BUF (5, ve);
layout (push_constant) uniform Push {
  uint lq; uint lk; uint le; uint heads; uint d; uint extra_shared;
  float scale;
  uint use_mask; uvec4 mask;    /* bit b: batch b uses the extra tokens */
} pc;

shared float ks[KT * MAX_D];
shared float vs[KT * MAX_D];

void main ()
{
  uint qi = gl_GlobalInvocationID.x;
  uint bh = gl_WorkGroupID.y;
  uint b = bh / pc.heads, h = bh % pc.heads;
  uint hd = pc.heads * pc.d;
  uint t = gl_LocalInvocationID.x;
  bool in_range = qi < pc.lq;
  float qv[MAX_D];
  float acc[MAX_D];
  float m = -3.0e38, l = 0.0;

  for (uint j = 0u; j < pc.d; j++) {
    qv[j] = in_range ? q[(b * pc.lq + qi) * hd + h * pc.d + j] * pc.scale : 0.0;
    acc[j] = 0.0;
  }
  /* Reference attention with a per-batch mask (CFG: the unconditional
   * half attends to its own tokens only). b is uniform per workgroup. */
  bool extra_on = pc.use_mask == 0u
      || ((pc.mask[b / 32u] >> (b % 32u)) & 1u) != 0u;
  uint total = pc.lk + (extra_on ? pc.le : 0u);
  uint be = pc.extra_shared != 0u ? 0u : b;
  for (uint k0 = 0u; k0 < total; k0 += KT) {
    uint nk = min (KT, total - k0);
    for (uint e = t; e < nk * pc.d; e += WG) {
      uint r = e / pc.d, j = e % pc.d, key = k0 + r;
      if (key < pc.lk) {
        uint off = (b * pc.lk + key) * hd + h * pc.d + j;
        ks[r * pc.d + j] = k[off];
        vs[r * pc.d + j] = v[off];
      } else {
        uint off = (be * pc.le + key - pc.lk) * hd + h * pc.d + j;
        ks[r * pc.d + j] = ke[off];
        vs[r * pc.d + j] = ve[off];
      }
    }
    barrier ();
    if (in_range) {
      for (uint r = 0u; r < nk; r++) {
        float s = 0.0;
        for (uint j = 0u; j < pc.d; j++)
          s += qv[j] * ks[r * pc.d + j];
        float m_new = max (m, s);
        float corr = exp (m - m_new);
        float p = exp (s - m_new);
        l = l * corr + p;
        for (uint j = 0u; j < pc.d; j++)
          acc[j] = acc[j] * corr + p * vs[r * pc.d + j];
        m = m_new;
      }
    }
    barrier ();
  }
  if (!in_range)
    return;
  float inv = 1.0 / l;
  for (uint j = 0u; j < pc.d; j++)
    o[(b * pc.lq + qi) * hd + h * pc.d + j] = acc[j] * inv;
}
