/* TAESD (TAEF2 variant, real pretrained weights) against taesd.py (golden
 * taef2_real): latent, decoded image, roundtrip and the stored act.<i>.
 * Skips (77) when ../shared is absent. */
#include "test_util.h"
#include "taesd.h"

typedef struct {
  AeSafetensors *ref;
  const char *prefix;           /* "encoder." or "decoder." */
  int checked;
} ActCheck;

static void
on_act (void *user, const char *name, const AeTensor * t)
{
  ActCheck *c = user;
  char key[64], what[96];
  AeTensor ref;

  if (!g_str_has_prefix (name, c->prefix))
    return;
  snprintf (key, sizeof (key), "act.%s", name + strlen (c->prefix));
  if (ae_st_find (c->ref, key) == NULL)
    return;
  ref = golden_get (c->ref, key);
  snprintf (what, sizeof (what), "taef2_real %s%s", c->prefix, key);
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

int
main (void)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  char *dir, *enc_path, *dec_path;
  AeSafetensors *in, *enc, *dec;
  AeTaesd *t = NULL;
  AeArena arena;
  AeError err;
  AeTensor image, latent_in, latent_ref, image_ref, rt_ref, latent, out, rt;
  ActCheck ac;
  unsigned grows;

  if (shared == NULL || !g_file_test (shared, G_FILE_TEST_IS_DIR)) {
    printf ("SKIP: AVATAR_SHARED_DIR (../shared with golden/taef2_real) "
        "not found\n");
    return AE_TEST_SKIP;
  }
  dir = g_build_filename (shared, "golden", "taef2_real", NULL);
  enc_path = g_build_filename (dir, "encoder.safetensors", NULL);
  dec_path = g_build_filename (dir, "decoder.safetensors", NULL);
  REQUIRE (ae_arena_init (&arena, 0, &err) == 0, "%s", err.msg);
  REQUIRE (ae_taesd_load (&t, enc_path, dec_path, &err) == 0, "%s", err.msg);
  CHECK (ae_taesd_latent_channels (t) == 32, "latent channels %d",
      ae_taesd_latent_channels (t));
  in = golden_open (dir, "inputs.safetensors");
  enc = golden_open (dir, "encode.safetensors");
  dec = golden_open (dir, "decode.safetensors");
  image = golden_get (in, "image");
  latent_in = golden_get (in, "latent");
  latent_ref = golden_get (enc, "latent");
  image_ref = golden_get (dec, "image");
  rt_ref = golden_get (dec, "roundtrip_image");
  latent = alloc_like (&latent_ref);
  out = alloc_like (&image_ref);
  rt = alloc_like (&rt_ref);

  ac = (ActCheck) { enc, "encoder.", 0 };
  REQUIRE (ae_taesd_encode (t, &image, &latent, on_act, &ac, &arena,
          &err) == 0, "%s", err.msg);
  check_close ("taef2_real latent", &latent, &latent_ref, 1e-3, 1e-4);
  CHECK (ac.checked == 5, "encoder: %d act.* compared", ac.checked);
  ac = (ActCheck) { dec, "decoder.", 0 };
  REQUIRE (ae_taesd_decode (t, &latent_in, &out, on_act, &ac, &arena,
          &err) == 0, "%s", err.msg);
  check_close ("taef2_real image", &out, &image_ref, 1e-3, 1e-4);
  CHECK (ac.checked == 6, "decoder: %d act.* compared", ac.checked);
  REQUIRE (ae_taesd_decode (t, &latent, &rt, NULL, NULL, &arena, &err) == 0,
      "%s", err.msg);
  check_close ("taef2_real roundtrip_image", &rt, &rt_ref, 2e-3, 2e-4);

  /* Steady state: a second decode allocates nothing. */
  REQUIRE (ae_arena_reset (&arena, &err) == 0, "%s", err.msg);
  grows = arena.grow_count;
  REQUIRE (ae_taesd_decode (t, &latent_in, &rt, NULL, NULL, &arena,
          &err) == 0, "%s", err.msg);
  CHECK (memcmp (rt.data, out.data, ae_tensor_numel (&rt) * sizeof (float))
      == 0, "decode not deterministic");
  CHECK (arena.grow_count == grows, "arena grew on the second decode");

  /* Wrong latent width: an error, not a crash. */
  {
    AeTensor bad = latent_in;
    bad.shape[1] = 4;
    CHECK (ae_taesd_decode (t, &bad, &rt, NULL, NULL, &arena, &err) < 0 &&
        strstr (err.msg, "decoder.safetensors") != NULL, "bad latent: "
        "\"%s\"", err.msg);
  }
  g_free (latent.data);
  g_free (out.data);
  g_free (rt.data);
  ae_st_close (in);
  ae_st_close (enc);
  ae_st_close (dec);
  ae_taesd_free (t);
  ae_arena_clear (&arena);
  g_free (enc_path);
  g_free (dec_path);
  g_free (dir);
  return test_finish ("test_taesd_golden");
}
