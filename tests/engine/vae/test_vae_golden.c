/* AutoencoderKL against diffusers (golden vae_kl_tiny_lpb1 / lpb2): mean,
 * logvar and decoded sample, plus every stored act.* intermediate. Skips
 * (77) when ../shared is absent. */
#include "test_util.h"
#include "vae.h"

static AeArena arena;

typedef struct {
  AeSafetensors *ref;
  const char *case_name;
  int checked;
} ActCheck;

/* Compares a captured activation with act.<name> when the case stores it. */
static void
on_act (void *user, const char *name, const AeTensor * t)
{
  ActCheck *c = user;
  char key[200], what[260];
  AeTensor ref;

  snprintf (key, sizeof (key), "act.%s", name);
  if (ae_st_find (c->ref, key) == NULL)
    return;
  ref = golden_get (c->ref, key);
  CHECK (ae_tensor_same_shape (t, &ref), "%s %s: shape differs", c->case_name,
      key);
  snprintf (what, sizeof (what), "%s %s", c->case_name, key);
  check_close (what, t, &ref, 1e-3, 1e-4);
  c->checked++;
}

static AeTensor
alloc_like (const AeTensor * ref)
{
  AeTensor t = *ref;
  t.data = g_malloc0 (ae_tensor_numel (ref) * sizeof (float));
  return t;
}

static void
run_case (const char *shared, const char *name, int min_acts)
{
  char *dir = g_build_filename (shared, "golden", name, NULL);
  char *model = g_build_filename (dir, "model", NULL);
  AeSafetensors *in = golden_open (dir, "inputs.safetensors");
  AeSafetensors *enc = golden_open (dir, "encode.safetensors");
  AeSafetensors *dec = golden_open (dir, "decode.safetensors");
  AeVae *vae = NULL;
  AeError err;
  AeTensor image, latent, mean_ref, logvar_ref, sample_ref, mean, logvar,
      sample;
  ActCheck ac = { NULL, name, 0 };
  char what[200];
  unsigned grows;

  if (ae_vae_load (&vae, model, &err) < 0) {
    fprintf (stderr, "FAIL %s: %s\n", name, err.msg);
    ae_test_failures++;
    goto out;
  }
  CHECK (ae_vae_downscale (vae) == 2, "%s: downscale %d", name,
      ae_vae_downscale (vae));
  CHECK (fabsf (ae_vae_scaling_factor (vae) - 0.18215f) < 1e-7f,
      "%s: scaling_factor %g", name, ae_vae_scaling_factor (vae));
  image = golden_get (in, "image");
  latent = golden_get (in, "latent");
  mean_ref = golden_get (enc, "mean");
  logvar_ref = golden_get (enc, "logvar");
  sample_ref = golden_get (dec, "sample");
  mean = alloc_like (&mean_ref);
  logvar = alloc_like (&logvar_ref);
  sample = alloc_like (&sample_ref);

  ac.ref = enc;
  if (ae_vae_encode (vae, &image, &mean, &logvar, on_act, &ac, &arena,
          &err) < 0) {
    fprintf (stderr, "FAIL %s encode: %s\n", name, err.msg);
    ae_test_failures++;
  } else {
    snprintf (what, sizeof (what), "%s mean", name);
    check_close (what, &mean, &mean_ref, 1e-3, 1e-4);
    snprintf (what, sizeof (what), "%s logvar", name);
    check_close (what, &logvar, &logvar_ref, 1e-3, 1e-4);
  }
  ac.ref = dec;
  if (ae_vae_decode (vae, &latent, &sample, on_act, &ac, &arena, &err) < 0) {
    fprintf (stderr, "FAIL %s decode: %s\n", name, err.msg);
    ae_test_failures++;
  } else {
    snprintf (what, sizeof (what), "%s sample", name);
    check_close (what, &sample, &sample_ref, 1e-3, 1e-4);
  }
  CHECK (ac.checked >= min_acts, "%s: only %d act.* compared (want %d)",
      name, ac.checked, min_acts);

  /* Second pass at the same shapes: no arena growth, identical output. */
  REQUIRE (ae_arena_reset (&arena, &err) == 0, "%s", err.msg);
  grows = arena.grow_count;
  {
    AeTensor s2 = alloc_like (&sample_ref);
    REQUIRE (ae_vae_encode (vae, &image, &mean, NULL, NULL, NULL, &arena,
            &err) == 0, "%s", err.msg);
    REQUIRE (ae_vae_decode (vae, &latent, &s2, NULL, NULL, &arena,
            &err) == 0, "%s", err.msg);
    CHECK (memcmp (s2.data, sample.data, ae_tensor_numel (&s2) *
            sizeof (float)) == 0, "%s: decode not deterministic", name);
    CHECK (arena.grow_count == grows, "%s: arena grew on the second pass",
        name);
    g_free (s2.data);
  }
  g_free (mean.data);
  g_free (logvar.data);
  g_free (sample.data);
out:
  ae_vae_free (vae);
  ae_st_close (in);
  ae_st_close (enc);
  ae_st_close (dec);
  g_free (model);
  g_free (dir);
}

int
main (void)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  AeError err;

  if (shared == NULL || !g_file_test (shared, G_FILE_TEST_IS_DIR)) {
    printf ("SKIP: AVATAR_SHARED_DIR (../shared with golden/vae_kl_tiny_*) "
        "not found\n");
    return AE_TEST_SKIP;
  }
  REQUIRE (ae_arena_init (&arena, 0, &err) == 0, "%s", err.msg);
  /* lpb1 stores 11 encoder and 13 decoder intermediates. */
  run_case (shared, "vae_kl_tiny_lpb1", 24);
  run_case (shared, "vae_kl_tiny_lpb2", 0);
  ae_arena_clear (&arena);
  return test_finish ("test_vae_golden");
}
