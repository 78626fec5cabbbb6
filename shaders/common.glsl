/* Shared by every compute shader of the Vulkan backend.
 *
 * All pipelines use one descriptor-set layout: six storage buffers at
 * bindings 0..5 (see engine/vulkan/vk-context.c); a shader declares only
 * the bindings it reads or writes. Push constants carry sizes and flags. */
#ifndef AE_COMMON_GLSL
#define AE_COMMON_GLSL

#define AE_BUF(b, name) \
  layout (std430, set = 0, binding = b) buffer Buf##b { float name[]; }

/* Linear invocation index for 1-D work dispatched as a 2-D grid (the
 * host splits large counts so that groups.x stays <= 65535). */
uint ae_linear_index ()
{
  return gl_GlobalInvocationID.x
      + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
}

float ae_silu (float x)
{
  return x / (1.0 + exp (-x));
}

/* GLSL has no erf. Abramowitz & Stegun 7.1.26 is too coarse (1.5e-7
 * absolute, relative error grows near 0), so use the series for small |x|
 * and the A&S 7.1.26 tail otherwise; both stay within ~2e-7 of libm. */
float ae_erf (float x)
{
  float ax = abs (x);
  if (ax < 0.5) {
    float x2 = x * x;
    /* 2/sqrt(pi) (x - x^3/3 + x^5/10 - x^7/42 + x^9/216) */
    return 1.1283791671 * x * (1.0 + x2 * (-0.3333333333 + x2 * (0.1
                    + x2 * (-0.0238095238 + x2 * 0.0046296296))));
  }
  float t = 1.0 / (1.0 + 0.3275911 * ax);
  float y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741)
              * t - 0.284496736) * t + 0.254829592) * t * exp (-ax * ax);
  return sign (x) * y;
}

float ae_gelu_erf (float x)
{
  return 0.5 * x * (1.0 + ae_erf (x * 0.7071067811865476));
}

float ae_gelu_tanh (float x)
{
  /* tanh of a clamped argument: some drivers build tanh from exp and
   * overflow to NaN for large |x|; tanh(15) is 1 in float anyway. */
  float u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + tanh (clamp (u, -15.0, 15.0)));
}

#endif
