/* Helpers shared by the ops-*.c files; not part of the public API. */
#ifndef AE_OPS_INTERNAL_H
#define AE_OPS_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops.h"
#include "threads.h"

/* max_threads for ae_parallel_for: every engine thread when the loop has
 * more than min_work units of work, else inline on the caller (waking
 * workers costs more than small loops gain). */
static inline int
ae_par_if (int64_t work, int64_t min_work)
{
  return work > min_work ? 0 : 1;
}

/* exp(x) for float32 without a libm call, so loops over it vectorize:
 * x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 Taylor/Horner
 * polynomial (relative error below 2e-7, on par with expf's rounding),
 * 2^n put into the exponent bits. Inputs are clamped to [-87.3, 88.3]
 * (results ~1e-38 and ~2e38), harmless for softmax and SiLU. */
static inline float
ae_exp_fast (float x)
{
  const float log2e = 1.44269504088896341f;
  const float ln2_hi = 0.693359375f;    /* exact in 9 bits */
  const float ln2_lo = -2.12194440e-4f;
  const float shifter = 12582912.0f;   /* 1.5 * 2^23 */
  float nf, n, r, p, two_n;
  int32_t ni;

  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  /* Round x log2(e) to the nearest integer by adding 1.5 * 2^23: the
   * integer lands in the low mantissa bits. No float->int conversion, so
   * the loop vectorizes without -fno-trapping-math. */
  nf = x * log2e + shifter;
  memcpy (&ni, &nf, sizeof ni);
  ni -= 0x4B400000;
  n = nf - shifter;
  r = x - n * ln2_hi;
  r = r - n * ln2_lo;
  p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  /* 2^n through the exponent bits (memcpy, not a union, keeps it in
   * registers). */
  ni = (ni + 127) << 23;
  memcpy (&two_n, &ni, sizeof two_n);
  return p * two_n;
}

static inline float
ae_silu1 (float x)
{
  return x / (1.0f + ae_exp_fast (-x));
}

/* erf(x) by Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7, evaluated
 * in float about 5e-7), branch-free so GELU/GEGLU loops vectorize; erff()
 * is a libm call. */
static inline float
ae_erf_fast (float x)
{
  float ax = x < 0.0f ? -x : x;
  float t = 1.0f / (1.0f + 0.3275911f * ax);
  float poly = 1.061405429f;
  float y;

  poly = poly * t - 1.453152027f;
  poly = poly * t + 1.421413741f;
  poly = poly * t - 0.284496736f;
  poly = poly * t + 0.254829592f;
  poly = poly * t;
  y = 1.0f - poly * ae_exp_fast (-ax * ax);
  return x < 0.0f ? -y : y;
}

/* Shape mismatch message helper: "op: a (..) vs b (..)". */
int ae_ops_shape_error (AeError * err, const char *op, const char *what,
    const AeTensor * t);

#endif /* AE_OPS_INTERNAL_H */
