#version 450
#ifdef AE_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
/* Attention for wide heads (160 < d <= 1024: the VAE mid block's single
 * head of C channels, 512 in SD 1.5), same contract and push constants as
 * attention.comp. One workgroup per (query row, batch*head): the scaled
 * query row sits in shared memory; each tile of WG keys gives one score
 * per invocation, the tile's max and sum come from workgroup reductions
 * (subgroupMax / subgroupAdd where the device has them, a shared-memory
 * tree otherwise: reduce.glsl), and every invocation keeps the running output for the
 * dims d = t, t + WG, ... (DPT of them), so registers stay bounded
 * whatever d. Running (online) softmax over the tiles as in
 * attention.comp; no score matrix is ever stored. */
#include "common.glsl"
#define WG 64
#define MAX_DW 1024
#define DPT (MAX_DW / WG)
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
  uint use_mask; uvec4 mask;
} pc;

shared float qs[MAX_DW];
shared float ps[WG];
shared float partial[WG];

/* reduce_sum / reduce_max: shared-memory trees, or subgroup operations in
 * the _sg variant (-DAE_SUBGROUP). */
#include "reduce.glsl"

void main ()
{
  /* query rows beyond 65535 continue in grid z */
  uint qi = gl_WorkGroupID.x + gl_WorkGroupID.z * 65535u;
  uint bh = gl_WorkGroupID.y;
  uint b = bh / pc.heads, h = bh % pc.heads;
  uint hd = pc.heads * pc.d;
  uint t = gl_LocalInvocationID.x;
  if (qi >= pc.lq)
    return;                     /* whole workgroup leaves together */
  bool extra_on = pc.use_mask == 0u
      || ((pc.mask[b / 32u] >> (b % 32u)) & 1u) != 0u;
  uint total = pc.lk + (extra_on ? pc.le : 0u);
  uint be = pc.extra_shared != 0u ? 0u : b;
  float acc[DPT];
  float m = -3.0e38, l = 0.0;

  for (uint j = t; j < pc.d; j += WG)
    qs[j] = q[(b * pc.lq + qi) * hd + h * pc.d + j] * pc.scale;
  for (uint i = 0u; i < DPT; i++)
    acc[i] = 0.0;
  barrier ();
  for (uint k0 = 0u; k0 < total; k0 += WG) {
    uint nk = min (WG, total - k0);
    float s = -3.0e38;
    if (t < nk) {
      uint key = k0 + t;
      s = 0.0;
      if (key < pc.lk) {
        uint base = (b * pc.lk + key) * hd + h * pc.d;
        for (uint j = 0u; j < pc.d; j++)
          s += qs[j] * k[base + j];
      } else {
        uint base = (be * pc.le + key - pc.lk) * hd + h * pc.d;
        for (uint j = 0u; j < pc.d; j++)
          s += qs[j] * ke[base + j];
      }
    }
    float m_new = max (m, reduce_max (s));
    float corr = exp (m - m_new);
    float p = t < nk ? exp (s - m_new) : 0.0;
    ps[t] = p;
    l = l * corr + reduce_sum (p);      /* its barriers publish ps[] */
    for (uint i = 0u; i < DPT; i++) {
      uint j = t + i * WG;
      if (j >= pc.d)
        break;
      float a = acc[i] * corr;
      for (uint r = 0u; r < nk; r++) {
        uint key = k0 + r;
        float vv = key < pc.lk ? v[(b * pc.lk + key) * hd + h * pc.d + j]
            : ve[(be * pc.le + key - pc.lk) * hd + h * pc.d + j];
        a += ps[r] * vv;
      }
      acc[i] = a;
    }
    m = m_new;
    barrier ();                 /* ps[] is rewritten by the next tile */
  }
  float inv = 1.0 / l;
  for (uint i = 0u; i < DPT; i++) {
    uint j = t + i * WG;
    if (j < pc.d)
      o[(b * pc.lq + qi) * hd + h * pc.d + j] = acc[i] * inv;
  }
}
