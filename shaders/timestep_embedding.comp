#version 450
/* diffusers get_timestep_embedding, same float32 steps as the CPU op:
 * exponent = -ln(max_period) * i / (half - shift); arg = scale * t * exp. */
#include "common.glsl"
layout (local_size_x = 64) in;
AE_BUF (0, y);
AE_BUF (1, timesteps);
layout (push_constant) uniform Push {
  uint n; uint dim; uint flip; float freq_shift; float scale; float log_max_period;
} pc;

void main ()
{
  uint i = ae_linear_index ();
  if (i >= pc.n * pc.dim)
    return;
  uint r = i / pc.dim, c = i % pc.dim;
  uint half_dim = pc.dim / 2u;
  if (c >= 2u * half_dim) {
    y[i] = 0.0;                 /* odd dim: zero last column */
    return;
  }
  /* column c holds sin or cos of frequency f */
  bool second = c >= half_dim;
  uint f = second ? c - half_dim : c;
  bool is_cos = (pc.flip != 0u) ? !second : second;
  float exponent = -pc.log_max_period * float (f);
  exponent = exponent / (float (half_dim) - pc.freq_shift);
  float arg = pc.scale * (timesteps[r] * exp (exponent));
  y[i] = is_cos ? cos (arg) : sin (arg);
}
