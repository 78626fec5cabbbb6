/* Workgroup sum and max (norm shaders, attention_wide). The including
 * shader defines WG (workgroup size) and declares
 * `shared float partial[WG]`.
 * With AE_SUBGROUP (the _sg pipeline variants, used when the device
 * reports subgroup arithmetic for compute): subgroupAdd inside each
 * subgroup, then one partial per subgroup through shared memory -- two
 * barriers instead of log2(WG). Without it: a shared-memory tree. */
#ifdef AE_SUBGROUP
float reduce_sum (float v)
{
  float s = subgroupAdd (v);
  if (subgroupElect ())
    partial[gl_SubgroupID] = s;
  barrier ();
  float r = 0.0;
  for (uint i = 0u; i < gl_NumSubgroups; i++)
    r += partial[i];
  barrier ();
  return r;
}

float reduce_max (float v)
{
  float s = subgroupMax (v);
  if (subgroupElect ())
    partial[gl_SubgroupID] = s;
  barrier ();
  float r = partial[0];
  for (uint i = 1u; i < gl_NumSubgroups; i++)
    r = max (r, partial[i]);
  barrier ();
  return r;
}
#else
float reduce_sum (float v)
{
  uint t = gl_LocalInvocationID.x;
  partial[t] = v;
  barrier ();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s)
      partial[t] += partial[t + s];
    barrier ();
  }
  float r = partial[0];
  barrier ();
  return r;
}

float reduce_max (float v)
{
  uint t = gl_LocalInvocationID.x;
  partial[t] = v;
  barrier ();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s)
      partial[t] = max (partial[t], partial[t + s]);
    barrier ();
  }
  float r = partial[0];
  barrier ();
  return r;
}
#endif
