/* TAESD on self-made random weights (no ../shared needed): output shapes
 * for odd image sizes, pool branch detection (TAEF2) changes the result,
 * decoder-only loading, determinism, and error messages. */
#include "test_util.h"
#include "taesd.h"

#include <glib/gstdio.h>

static char *tmpdir;

static void
put (AeStWriter * w, TestRng * r, const char *key, int ndim, int64_t d0,
    int64_t d1, int64_t k, float std)
{
  int64_t shape[4] = { d0, d1, k, k };
  AeTensor t = test_tensor (r, ndim, shape, 0.0f, std);
  AeError err;

  REQUIRE (ae_st_writer_add (w, key, &t, &err) == 0, "%s", err.msg);
  g_free (t.data);
}

static void
put_conv (AeStWriter * w, TestRng * r, const char *prefix, int cin,
    int cout, bool bias)
{
  char k[96];
  snprintf (k, sizeof (k), "%sweight", prefix);
  put (w, r, k, 4, cout, cin, 3, 0.5f / sqrtf ((float) cin * 9));
  if (bias) {
    snprintf (k, sizeof (k), "%sbias", prefix);
    put (w, r, k, 1, cout, 1, 1, 0.02f);
  }
}

static void
put_block (AeStWriter * w, TestRng * r, int i, bool pool)
{
  char k[64];
  for (int j = 0; j < 5; j += 2) {
    snprintf (k, sizeof (k), "%d.conv.%d.", i, j);
    put_conv (w, r, k, 64, 64, true);
  }
  if (!pool)
    return;
  snprintf (k, sizeof (k), "%d.pool.0.weight", i);
  put (w, r, k, 4, 256, 64, 1, 0.1f);
  snprintf (k, sizeof (k), "%d.pool.1.weight", i);
  put (w, r, k, 1, 256, 1, 1, 1.0f);
  snprintf (k, sizeof (k), "%d.pool.1.bias", i);
  put (w, r, k, 1, 256, 1, 1, 0.1f);
  snprintf (k, sizeof (k), "%d.pool.3.weight", i);
  put (w, r, k, 4, 64, 256, 1, 0.05f);
}

/* Decoder with latent width lat; pool branches in blocks 3-5 if asked;
 * skip_key leaves out one tensor. */
static char *
make_decoder (const char *name, int lat, bool pool, const char *skip)
{
  AeStWriter *w = ae_st_writer_new ();
  TestRng r = { 99 };
  char *path = g_build_filename (tmpdir, name, NULL);
  AeError err;

  put_conv (w, &r, "1.", lat, 64, true);
  for (int i = 3; i <= 5; i++)
    put_block (w, &r, i, pool);
  put_conv (w, &r, "7.", 64, 64, false);
  for (int i = 8; i <= 10; i++)
    put_block (w, &r, i, false);
  put_conv (w, &r, "12.", 64, 64, false);
  for (int i = 13; i <= 15; i++)
    put_block (w, &r, i, false);
  if (skip == NULL || strcmp (skip, "17.weight") != 0)
    put_conv (w, &r, "17.", 64, 64, false);
  put_block (w, &r, 18, false);
  put_conv (w, &r, "19.", 64, 3, true);
  REQUIRE (ae_st_writer_save (w, path, &err) == 0, "%s", err.msg);
  ae_st_writer_free (w);
  return path;
}

static char *
make_encoder (const char *name, int lat)
{
  AeStWriter *w = ae_st_writer_new ();
  TestRng r = { 77 };
  char *path = g_build_filename (tmpdir, name, NULL);
  AeError err;

  put_conv (w, &r, "0.", 3, 64, true);
  put_block (w, &r, 1, false);
  for (int s = 2; s <= 10; s += 4) {
    char k[16];
    snprintf (k, sizeof (k), "%d.", s);
    put_conv (w, &r, k, 64, 64, false);
    for (int i = s + 1; i <= s + 3; i++)
      put_block (w, &r, i, false);
  }
  put_conv (w, &r, "14.", 64, lat, true);
  REQUIRE (ae_st_writer_save (w, path, &err) == 0, "%s", err.msg);
  ae_st_writer_free (w);
  return path;
}

int
main (void)
{
  AeArena arena;
  AeError err;
  TestRng rng = { 5 };
  AeTaesd *t = NULL, *tp = NULL, *td = NULL;
  char *enc, *dec, *decp, *dec_missing, *dec8;
  AeTensor img, lat, out, out2, outp;

  tmpdir = g_dir_make_tmp ("test_taesd_XXXXXX", NULL);
  REQUIRE (tmpdir != NULL, "no temp dir");
  REQUIRE (ae_arena_init (&arena, 0, &err) == 0, "%s", err.msg);
  enc = make_encoder ("enc.safetensors", 4);
  dec = make_decoder ("dec.safetensors", 4, false, NULL);
  decp = make_decoder ("decp.safetensors", 4, true, NULL);
  dec_missing = make_decoder ("dec_missing.safetensors", 4, false,
      "17.weight");
  dec8 = make_decoder ("dec8.safetensors", 8, false, NULL);

  REQUIRE (ae_taesd_load (&t, enc, dec, &err) == 0, "%s", err.msg);
  CHECK (ae_taesd_latent_channels (t) == 4, "latent %d",
      ae_taesd_latent_channels (t));
  CHECK (ae_taesd_latent_size (13) == 2 && ae_taesd_latent_size (16) == 2
      && ae_taesd_latent_size (17) == 3, "latent_size");

  /* 13 x 10 image -> 2 x 2 latent (stride-2 convs round up). */
  img = test_tensor4 (&rng, 2, 3, 13, 10);
  for (int64_t i = 0; i < ae_tensor_numel (&img); i++)
    img.data[i] = 0.5f + 0.25f * img.data[i];
  lat = test_tensor4 (NULL, 2, 4, 2, 2);
  out = test_tensor4 (NULL, 2, 3, 16, 16);
  out2 = test_tensor4 (NULL, 2, 3, 16, 16);
  outp = test_tensor4 (NULL, 2, 3, 16, 16);
  REQUIRE (ae_taesd_encode (t, &img, &lat, NULL, NULL, &arena, &err) == 0,
      "%s", err.msg);
  REQUIRE (ae_taesd_decode (t, &lat, &out, NULL, NULL, &arena, &err) == 0,
      "%s", err.msg);
  REQUIRE (ae_taesd_decode (t, &lat, &out2, NULL, NULL, &arena, &err) == 0,
      "%s", err.msg);
  CHECK (memcmp (out.data, out2.data, ae_tensor_numel (&out) *
          sizeof (float)) == 0, "decode not deterministic");
  CHECK (arena.used == 0, "arena not released");
  for (int64_t i = 0; i < ae_tensor_numel (&out); i++)
    if (!isfinite (out.data[i])) {
      CHECK (false, "non-finite output");
      break;
    }

  /* Decoder-only model with the pool branch: loads, and the branch is used
   * (same weights otherwise, different output). */
  REQUIRE (ae_taesd_load (&tp, NULL, decp, &err) == 0, "%s", err.msg);
  CHECK (!ae_taesd_has_encoder (tp) && ae_taesd_has_decoder (tp), "has_*");
  REQUIRE (ae_taesd_decode (tp, &lat, &outp, NULL, NULL, &arena, &err) == 0,
      "%s", err.msg);
  CHECK (memcmp (out.data, outp.data, ae_tensor_numel (&out) *
          sizeof (float)) != 0, "pool branch had no effect");
  CHECK (ae_taesd_encode (tp, &img, &lat, NULL, NULL, &arena, &err) < 0 &&
      strstr (err.msg, "no encoder"), "encode without encoder: \"%s\"",
      err.msg);

  /* Errors: missing key, encoder/decoder latent mismatch, bad shapes. */
  CHECK (ae_taesd_load (&td, NULL, dec_missing, &err) < 0 && td == NULL &&
      strstr (err.msg, "dec_missing.safetensors") &&
      strstr (err.msg, "'17.weight'"), "missing: \"%s\"", err.msg);
  printf ("ok   missing: %s\n", err.msg);
  CHECK (ae_taesd_load (&td, enc, dec8, &err) < 0 && td == NULL &&
      strstr (err.msg, "dec8.safetensors") && strstr (err.msg, "1.weight"),
      "mismatch: \"%s\"", err.msg);
  printf ("ok   mismatch: %s\n", err.msg);
  {
    AeTensor bad = out;
    bad.shape[2] = 8;
    CHECK (ae_taesd_decode (t, &lat, &bad, NULL, NULL, &arena, &err) < 0 &&
        strstr (err.msg, "(2,3,16,16)"), "bad output: \"%s\"", err.msg);
  }
  CHECK (ae_taesd_load (&td, NULL, NULL, &err) < 0, "no paths accepted");

  ae_taesd_free (t);
  ae_taesd_free (tp);
  ae_arena_clear (&arena);
  g_free (img.data);
  g_free (lat.data);
  g_free (out.data);
  g_free (out2.data);
  g_free (outp.data);
  {
    const char *files[] = { enc, dec, decp, dec_missing, dec8 };
    for (int i = 0; i < 5; i++) {
      g_remove (files[i]);
      g_free ((char *) files[i]);
    }
  }
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return test_finish ("test_taesd");
}
