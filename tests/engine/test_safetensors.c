/* Safetensors reader/writer: round trips, dtype conversion, sharded
 * checkpoints, and one bad file per failure mode, each of which must give
 * an error naming the file (and the key where there is one). */
#include <glib/gstdio.h>

#include "test_util.h"

static char *tmpdir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

/* u64 LE header length + header text + `data_len` bytes of a ramp. */
static char *
write_raw (const char *name, const char *header, size_t data_len)
{
  char *path = tmp_path (name);
  size_t hl = strlen (header);
  FILE *f = fopen (path, "wb");

  REQUIRE (f != NULL, "cannot create %s", path);
  for (int i = 0; i < 8; i++)
    fputc ((int) ((hl >> (8 * i)) & 0xff), f);
  fwrite (header, 1, hl, f);
  for (size_t i = 0; i < data_len; i++)
    fputc ((int) (i & 0x7f), f);
  fclose (f);
  return path;
}

static void
expect_open_error (const char *label, const char *path, const char *needle)
{
  AeSafetensors *st = NULL;
  AeError err = { "" };
  int ret = ae_st_open (&st, path, &err);

  CHECK (ret < 0 && st == NULL, "%s: opened a bad file", label);
  CHECK (strstr (err.msg, path) != NULL, "%s: error does not name the file: "
      "%s", label, err.msg);
  CHECK (strstr (err.msg, needle) != NULL, "%s: error lacks '%s': %s", label,
      needle, err.msg);
  if (ret < 0)
    printf ("ok   %-20s -> %s\n", label, err.msg);
  ae_st_close (st);
}

static void
test_bad_files (void)
{
  char *p;
  FILE *f;

  p = tmp_path ("truncated.safetensors");
  f = fopen (p, "wb");
  fwrite ("\x10\x00\x00", 1, 3, f);
  fclose (f);
  expect_open_error ("truncated", p, "truncated");
  g_free (p);

  p = tmp_path ("empty.safetensors");
  f = fopen (p, "wb");
  fclose (f);
  expect_open_error ("empty file", p, "truncated");
  g_free (p);

  p = tmp_path ("hlen.safetensors");
  f = fopen (p, "wb");
  fwrite ("\xe8\x03\x00\x00\x00\x00\x00\x00{}", 1, 10, f);      /* 1000 */
  fclose (f);
  expect_open_error ("header past end", p, "past the end");
  g_free (p);

  p = tmp_path ("hhuge.safetensors");
  f = fopen (p, "wb");
  fwrite ("\xff\xff\xff\xff\xff\xff\xff\xff{}", 1, 10, f);
  fclose (f);
  expect_open_error ("header length huge", p, "implausible");
  g_free (p);

  p = write_raw ("badjson.safetensors", "{\"w\": {\"dtype\": \"F32\", ", 16);
  expect_open_error ("malformed json", p, "malformed header JSON");
  g_free (p);

  p = write_raw ("array.safetensors", "[1, 2]", 0);
  expect_open_error ("header not object", p, "not an object");
  g_free (p);

  p = write_raw ("range.safetensors", "{\"w\": {\"dtype\": \"F32\", "
      "\"shape\": [100], \"data_offsets\": [0, 400]}}", 16);
  expect_open_error ("offsets out of range", p, "'w': data_offsets");
  g_free (p);

  p = write_raw ("order.safetensors", "{\"w\": {\"dtype\": \"F32\", "
      "\"shape\": [0], \"data_offsets\": [8, 4]}}", 16);
  expect_open_error ("offsets reversed", p, "out of range");
  g_free (p);

  p = write_raw ("neg.safetensors", "{\"w\": {\"dtype\": \"F32\", "
      "\"shape\": [1], \"data_offsets\": [-4, 0]}}", 16);
  expect_open_error ("negative offset", p, "'w'");
  g_free (p);

  p = write_raw ("overlap.safetensors", "{\"a\": {\"dtype\": \"F32\", "
      "\"shape\": [4], \"data_offsets\": [0, 16]}, \"b\": {\"dtype\": "
      "\"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", 24);
  expect_open_error ("overlapping", p, "overlap");
  g_free (p);

  p = write_raw ("size.safetensors", "{\"w\": {\"dtype\": \"F32\", "
      "\"shape\": [2, 2], \"data_offsets\": [0, 12]}}", 16);
  expect_open_error ("size mismatch", p, "does not match shape x dtype");
  g_free (p);

  p = write_raw ("dtype.safetensors", "{\"w\": {\"dtype\": \"F8_E9\", "
      "\"shape\": [4], \"data_offsets\": [0, 4]}}", 16);
  expect_open_error ("unknown dtype", p, "unknown dtype 'F8_E9'");
  g_free (p);

  p = write_raw ("shape.safetensors", "{\"w\": {\"dtype\": \"F32\", "
      "\"shape\": [\"4\"], \"data_offsets\": [0, 16]}}", 16);
  expect_open_error ("bad shape entry", p, "'w': bad shape");
  g_free (p);

  p = write_raw ("nooff.safetensors", "{\"w\": {\"dtype\": \"F32\", "
      "\"shape\": [4]}}", 16);
  expect_open_error ("missing offsets", p, "data_offsets");
  g_free (p);

  p = tmp_path ("does-not-exist.safetensors");
  expect_open_error ("missing file", p, "cannot open");
  g_free (p);
}

static void
test_roundtrip (void)
{
  float wdata[64 * 32];
  int64_t shape[4] = { 64, 32, 1, 1 };
  int64_t expect[4] = { 64, 32, 3, 3 };
  int64_t ts[3] = { 999, 500, -1 };
  int64_t ts_shape[1] = { 3 }, back[3];
  uint16_t f16[6] = { 0x3C00, 0xC000, 0x3800, 0x0001, 0x7C00, 0x7BFF };
  float f16_ref[6] = { 1.0f, -2.0f, 0.5f, 5.9604645e-8f, INFINITY, 65504.0f };
  uint16_t bf16[2] = { 0x3F80, 0xC040 };
  int64_t s6[1] = { 6 }, s2[1] = { 2 };
  AeTensor w = ae_tensor_nd (wdata, 4, shape), t;
  AeStWriter *wr = ae_st_writer_new ();
  AeSafetensors *st = NULL;
  AeError err = { "" };
  char *path = tmp_path ("roundtrip.safetensors");
  float conv[6];

  for (int i = 0; i < 64 * 32; i++)
    wdata[i] = (float) i * 0.25f - 7.0f;
  CHECK (ae_st_writer_add (wr, "conv.weight", &w, &err) == 0, "%s", err.msg);
  CHECK (ae_st_writer_add_raw (wr, "timesteps", AE_DTYPE_I64, 1, ts_shape,
          ts, &err) == 0, "%s", err.msg);
  CHECK (ae_st_writer_add_raw (wr, "half", AE_DTYPE_F16, 1, s6, f16,
          &err) == 0, "%s", err.msg);
  CHECK (ae_st_writer_add_raw (wr, "brain", AE_DTYPE_BF16, 1, s2, bf16,
          &err) == 0, "%s", err.msg);
  CHECK (ae_st_writer_add (wr, "conv.weight", &w, &err) < 0,
      "duplicate name accepted");
  CHECK (ae_st_writer_add_metadata (wr, "format", "pt", &err) == 0, "%s",
      err.msg);
  CHECK (ae_st_writer_save (wr, path, &err) == 0, "%s", err.msg);
  ae_st_writer_free (wr);

  REQUIRE (ae_st_open (&st, path, &err) == 0, "%s", err.msg);
  CHECK (ae_st_count (st) == 4, "count %d", ae_st_count (st));
  CHECK (strcmp (ae_st_info_at (st, 0)->name, "brain") == 0, "not sorted");
  CHECK (ae_st_get (st, "conv.weight", 4, shape, &t, &err) == 0, "%s",
      err.msg);
  CHECK (t.ndim == 4 && memcmp (t.data, wdata, sizeof wdata) == 0,
      "F32 round trip differs");
  /* The exact message callers (and users) see for a wrong shape. */
  CHECK (ae_st_get (st, "conv.weight", 4, expect, &t, &err) < 0,
      "wrong shape accepted");
  CHECK (strstr (err.msg, "tensor 'conv.weight': expected (64,32,3,3), "
          "found (64,32,1,1)") != NULL && strstr (err.msg, path) != NULL,
      "shape message: %s", err.msg);
  printf ("ok   %-20s -> %s\n", "wrong shape", err.msg);
  CHECK (ae_st_getf (st, &t, 0, NULL, &err, "down_blocks.%d.missing", 3) < 0,
      "missing key accepted");
  CHECK (strstr (err.msg, "missing tensor 'down_blocks.3.missing'") != NULL
      && strstr (err.msg, path) != NULL, "missing message: %s", err.msg);
  printf ("ok   %-20s -> %s\n", "missing key", err.msg);

  CHECK (ae_st_read_i64 (st, "timesteps", back, 3, &err) == 0
      && back[0] == 999 && back[2] == -1, "I64 read: %s", err.msg);
  CHECK (ae_st_read_i64 (st, "timesteps", back, 2, &err) < 0,
      "element count mismatch accepted");
  CHECK (ae_st_get (st, "timesteps", 1, NULL, &t, &err) == 0
      && t.data[1] == 500.0f, "I64 as float");
  CHECK (ae_st_read_f32 (st, "half", conv, 6, &err) == 0, "%s", err.msg);
  for (int i = 0; i < 6; i++)
    CHECK (conv[i] == f16_ref[i], "F16 %d: %g != %g", i, conv[i],
        f16_ref[i]);
  CHECK (ae_st_get (st, "brain", 1, s2, &t, &err) == 0
      && t.data[0] == 1.0f && t.data[1] == -3.0f, "BF16 conversion");
  ae_st_close (st);
  g_free (path);
}

/* Every 7th half-precision bit pattern (normals, subnormals, inf, NaN)
 * through the converter, vector path included, against ldexp. */
static void
test_f16_all (void)
{
  enum { N = 65536 / 7 };
  static uint16_t h[N];
  static float got[N];
  int64_t shape[1] = { N };
  AeStWriter *wr = ae_st_writer_new ();
  AeSafetensors *st = NULL;
  AeError err;
  char *path = tmp_path ("f16.safetensors");
  int bad = 0;

  for (int i = 0; i < N; i++)
    h[i] = (uint16_t) (i * 7);
  CHECK (ae_st_writer_add_raw (wr, "h", AE_DTYPE_F16, 1, shape, h, &err) == 0,
      "%s", err.msg);
  CHECK (ae_st_writer_save (wr, path, &err) == 0, "%s", err.msg);
  ae_st_writer_free (wr);
  REQUIRE (ae_st_open (&st, path, &err) == 0, "%s", err.msg);
  CHECK (ae_st_read_f32 (st, "h", got, N, &err) == 0, "%s", err.msg);
  for (int i = 0; i < N; i++) {
    int e = (h[i] >> 10) & 0x1f, m = h[i] & 0x3ff;
    double ref = e == 0 ? ldexp (m, -24) : ldexp (1024 + m, e - 25);
    if (h[i] & 0x8000)
      ref = -ref;
    if (e == 31) {
      if (m ? !isnan (got[i]) : !(isinf (got[i]) && (got[i] < 0) ==
              ((h[i] & 0x8000) != 0)))
        bad++;
    } else if (got[i] != (float) ref) {
      bad++;
    }
  }
  CHECK (bad == 0, "%d F16 patterns converted wrongly", bad);
  ae_st_close (st);
  g_free (path);
}

static void
write_shard (const char *name, const char *key, float value)
{
  float data[3] = { value, value + 1, value + 2 };
  AeTensor t = ae_tensor_1d (data, 3);
  AeStWriter *wr = ae_st_writer_new ();
  char *path = tmp_path (name);
  AeError err;

  CHECK (ae_st_writer_add (wr, key, &t, &err) == 0, "%s", err.msg);
  CHECK (ae_st_writer_save (wr, path, &err) == 0, "%s", err.msg);
  ae_st_writer_free (wr);
  g_free (path);
}

static void
test_sharded (void)
{
  const char *index = "{\"metadata\": {\"total_size\": 24}, \"weight_map\": "
      "{\"a.weight\": \"diffusion_pytorch_model-00001-of-00002.safetensors\","
      " \"b.weight\": \"diffusion_pytorch_model-00002-of-00002.safetensors\"}}";
  const char *bad = "{\"weight_map\": {\"a.weight\": \"diffusion_pytorch_"
      "model-00001-of-00002.safetensors\", \"c.weight\": \"diffusion_pytorch"
      "_model-00001-of-00002.safetensors\"}}";
  char *path = tmp_path ("diffusion_pytorch_model.safetensors.index.json");
  char *bad_path = tmp_path ("bad.safetensors.index.json");
  AeSafetensors *st = NULL;
  AeTensor t;
  AeError err = { "" };

  write_shard ("diffusion_pytorch_model-00001-of-00002.safetensors",
      "a.weight", 1.0f);
  write_shard ("diffusion_pytorch_model-00002-of-00002.safetensors",
      "b.weight", 10.0f);
  REQUIRE (g_file_set_contents (path, index, -1, NULL), "write index");
  REQUIRE (g_file_set_contents (bad_path, bad, -1, NULL), "write index");

  CHECK (ae_st_open (&st, path, &err) == 0, "%s", err.msg);
  if (st) {
    CHECK (ae_st_count (st) == 2, "sharded count %d", ae_st_count (st));
    CHECK (ae_st_get (st, "b.weight", 0, NULL, &t, &err) == 0
        && t.data[2] == 12.0f, "sharded value");
    ae_st_close (st);
  }
  /* A directory without the single-file checkpoint opens the index. */
  CHECK (ae_st_open (&st, tmpdir, &err) == 0, "dir: %s", err.msg);
  if (st) {
    CHECK (ae_st_find (st, "a.weight") != NULL, "dir open: a.weight");
    ae_st_close (st);
  }
  expect_open_error ("index key missing", bad_path, "'c.weight'");
  REQUIRE (g_file_set_contents (bad_path, "{\"metadata\": {}}", -1, NULL),
      "write index");
  expect_open_error ("index no weight_map", bad_path, "'weight_map'");
  REQUIRE (g_file_set_contents (bad_path, "{\"weight_map\": {\"a\": "
          "\"../x.safetensors\"}}", -1, NULL), "write index");
  expect_open_error ("index shard path", bad_path, "beside the index");
  REQUIRE (g_file_set_contents (bad_path, "{\"weight_map\": ", -1, NULL),
      "write index");
  expect_open_error ("index bad json", bad_path, "cannot parse index");
  {
    char *empty = tmp_path ("emptydir");
    REQUIRE (g_mkdir (empty, 0700) == 0, "mkdir");
    expect_open_error ("folder without model", empty,
        "no diffusion_pytorch_model.safetensors");
    g_rmdir (empty);
    g_free (empty);
  }
  g_free (path);
  g_free (bad_path);
}

/* The diffusers save_pretrained folders of the goldens open as they are
 * and every tensor reads as float32. */
static void
test_golden_model (void)
{
  static const struct {
    const char *dir;
    int count;
  } models[] = {
    {"unet_sd15_tiny", 494}, {"vae_kl_tiny_lpb1", 124},
    {"vae_kl_tiny_lpb2", 156},
  };
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  int64_t expect[4] = { 32, 4, 3, 3 };

  if (shared == NULL)
    return;
  for (size_t i = 0; i < G_N_ELEMENTS (models); i++) {
    char *dir = g_build_filename (shared, "golden", models[i].dir, "model",
        NULL);
    AeSafetensors *st = NULL;
    AeTensor t;
    AeError err;
    int bad = 0;

    if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
      printf ("skip golden model %s: absent\n", dir);
      g_free (dir);
      continue;
    }
    CHECK (ae_st_open (&st, dir, &err) == 0, "%s", err.msg);
    if (st) {
      CHECK (ae_st_count (st) == models[i].count, "%s has %d tensors, want "
          "%d", models[i].dir, ae_st_count (st), models[i].count);
      for (int j = 0; j < ae_st_count (st); j++)
        if (ae_st_get (st, ae_st_info_at (st, j)->name, 0, NULL, &t,
                &err) < 0)
          bad++;
      CHECK (bad == 0, "%s: %d tensors failed to load", models[i].dir, bad);
      if (i == 0)
        CHECK (ae_st_get (st, "conv_in.weight", 4, expect, &t, &err) == 0,
            "%s", err.msg);
      printf ("ok   diffusers folder %s: %d tensors\n", models[i].dir,
          ae_st_count (st));
      ae_st_close (st);
    }
    g_free (dir);
  }
}

int
main (void)
{
  GError *gerr = NULL;

  tmpdir = g_dir_make_tmp ("ae-st-XXXXXX", &gerr);
  REQUIRE (tmpdir != NULL, "tmpdir: %s", gerr ? gerr->message : "?");
  test_bad_files ();
  test_roundtrip ();
  test_f16_all ();
  test_sharded ();
  test_golden_model ();
  {
    GDir *d = g_dir_open (tmpdir, 0, NULL);
    const char *n;
    while (d && (n = g_dir_read_name (d))) {
      char *p = tmp_path (n);
      g_unlink (p);
      g_free (p);
    }
    if (d)
      g_dir_close (d);
    g_rmdir (tmpdir);
  }
  return test_finish ("test_safetensors");
}
