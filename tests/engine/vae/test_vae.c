/* AutoencoderKL on self-made tiny random models (no ../shared needed):
 * shapes, determinism, batch independence, logvar clamping, old attention
 * key names, mid_block_add_attention false, and the error messages for
 * missing / mis-shaped weights, bad config fields and bad inputs. */
#include "test_util.h"
#include "vae.h"

#include <glib/gstdio.h>

static AeArena arena;
static char *tmpdir;

/* Tiny config: block_out_channels (8, 16), groups 4, latent 2. */
#define C0 8
#define C1 16
#define LAT 2

typedef struct {
  bool old_names;               /* query/key/value/proj_attn */
  bool no_attention;            /* mid_block_add_attention false */
  const char *skip_key;         /* leave this weight out */
  const char *bad_key;          /* store this one with a wrong shape */
  float logvar_bias;            /* added to quant_conv's logvar bias */
  const char *down_type;        /* down_block_types entry */
} Variant;

typedef struct {
  AeStWriter *w;
  TestRng rng;
  const Variant *v;
} Gen;

static void
put (Gen * g, const char *key, int ndim, int64_t d0, int64_t d1, int64_t d2,
    int64_t d3, float std)
{
  int64_t shape[4] = { d0, d1, d2, d3 };
  AeTensor t;
  AeError err;

  if (g->v->skip_key && strcmp (key, g->v->skip_key) == 0)
    return;
  if (g->v->bad_key && strcmp (key, g->v->bad_key) == 0)
    shape[ndim - 1] += 1;
  t = test_tensor (&g->rng, ndim, shape, 0.0f, std);
  if (ndim == 1 && strstr (key, "norm") && strstr (key, ".weight"))
    for (int64_t i = 0; i < d0; i++)
      t.data[i] += 1.0f;
  if (strcmp (key, "quant_conv.bias") == 0)
    for (int64_t i = LAT; i < 2 * LAT; i++)
      t.data[i] += g->v->logvar_bias;
  REQUIRE (ae_st_writer_add (g->w, key, &t, &err) == 0, "%s", err.msg);
  g_free (t.data);
}

static void
put_conv (Gen * g, const char *prefix, int cin, int cout, int k)
{
  char key[256];
  snprintf (key, sizeof (key), "%sweight", prefix);
  put (g, key, 4, cout, cin, k, k, 1.0f / sqrtf ((float) cin * k * k));
  snprintf (key, sizeof (key), "%sbias", prefix);
  put (g, key, 1, cout, 1, 1, 1, 0.05f);
}

static void
put_norm (Gen * g, const char *prefix, int c)
{
  char key[256];
  snprintf (key, sizeof (key), "%sweight", prefix);
  put (g, key, 1, c, 1, 1, 1, 0.1f);
  snprintf (key, sizeof (key), "%sbias", prefix);
  put (g, key, 1, c, 1, 1, 1, 0.1f);
}

static void
put_resnet (Gen * g, const char *prefix, int cin, int cout)
{
  char p[256];
  snprintf (p, sizeof (p), "%snorm1.", prefix);
  put_norm (g, p, cin);
  snprintf (p, sizeof (p), "%sconv1.", prefix);
  put_conv (g, p, cin, cout, 3);
  snprintf (p, sizeof (p), "%snorm2.", prefix);
  put_norm (g, p, cout);
  snprintf (p, sizeof (p), "%sconv2.", prefix);
  put_conv (g, p, cout, cout, 3);
  if (cin != cout) {
    snprintf (p, sizeof (p), "%sconv_shortcut.", prefix);
    put_conv (g, p, cin, cout, 1);
  }
}

static void
put_linear (Gen * g, const char *prefix, const char *name, int c)
{
  char key[256];
  snprintf (key, sizeof (key), "%s%s.weight", prefix, name);
  put (g, key, 2, c, c, 1, 1, 1.0f / sqrtf ((float) c));
  snprintf (key, sizeof (key), "%s%s.bias", prefix, name);
  put (g, key, 1, c, 1, 1, 1, 0.05f);
}

static void
put_mid (Gen * g, const char *coder, int c)
{
  char p[256];
  bool o = g->v->old_names;

  snprintf (p, sizeof (p), "%s.mid_block.resnets.0.", coder);
  put_resnet (g, p, c, c);
  snprintf (p, sizeof (p), "%s.mid_block.resnets.1.", coder);
  put_resnet (g, p, c, c);
  if (g->v->no_attention)
    return;
  snprintf (p, sizeof (p), "%s.mid_block.attentions.0.group_norm.", coder);
  put_norm (g, p, c);
  snprintf (p, sizeof (p), "%s.mid_block.attentions.0.", coder);
  put_linear (g, p, o ? "query" : "to_q", c);
  put_linear (g, p, o ? "key" : "to_k", c);
  put_linear (g, p, o ? "value" : "to_v", c);
  put_linear (g, p, o ? "proj_attn" : "to_out.0", c);
}

/* Writes DIR/config.json and DIR/diffusion_pytorch_model.safetensors; the
 * same seed gives the same numbers whatever the key names. */
static char *
make_model (const char *name, const Variant * v)
{
  char *dir = g_build_filename (tmpdir, name, NULL);
  char *path;
  char *json;
  Gen g = { ae_st_writer_new (), { 0x5eedULL }, v };
  AeError err;

  g_mkdir_with_parents (dir, 0755);
  json = g_strdup_printf ("{\"_class_name\": \"AutoencoderKL\", "
      "\"act_fn\": \"silu\", \"block_out_channels\": [%d, %d], "
      "\"down_block_types\": [\"%s\", \"DownEncoderBlock2D\"], "
      "\"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"], "
      "\"in_channels\": 3, \"out_channels\": 3, \"latent_channels\": %d, "
      "\"layers_per_block\": 1, \"norm_num_groups\": 4, "
      "\"scaling_factor\": 0.5, \"mid_block_add_attention\": %s}", C0, C1,
      v->down_type ? v->down_type : "DownEncoderBlock2D", LAT,
      v->no_attention ? "false" : "true");
  path = g_build_filename (dir, "config.json", NULL);
  REQUIRE (g_file_set_contents (path, json, -1, NULL), "write %s", path);
  g_free (path);
  g_free (json);

  put_conv (&g, "encoder.conv_in.", 3, C0, 3);
  put_resnet (&g, "encoder.down_blocks.0.resnets.0.", C0, C0);
  put_conv (&g, "encoder.down_blocks.0.downsamplers.0.conv.", C0, C0, 3);
  put_resnet (&g, "encoder.down_blocks.1.resnets.0.", C0, C1);
  put_mid (&g, "encoder", C1);
  put_norm (&g, "encoder.conv_norm_out.", C1);
  put_conv (&g, "encoder.conv_out.", C1, 2 * LAT, 3);
  put_conv (&g, "quant_conv.", 2 * LAT, 2 * LAT, 1);
  put_conv (&g, "post_quant_conv.", LAT, LAT, 1);
  put_conv (&g, "decoder.conv_in.", LAT, C1, 3);
  put_mid (&g, "decoder", C1);
  put_resnet (&g, "decoder.up_blocks.0.resnets.0.", C1, C1);
  put_resnet (&g, "decoder.up_blocks.0.resnets.1.", C1, C1);
  put_conv (&g, "decoder.up_blocks.0.upsamplers.0.conv.", C1, C1, 3);
  put_resnet (&g, "decoder.up_blocks.1.resnets.0.", C1, C0);
  put_resnet (&g, "decoder.up_blocks.1.resnets.1.", C0, C0);
  put_norm (&g, "decoder.conv_norm_out.", C0);
  put_conv (&g, "decoder.conv_out.", C0, 3, 3);
  path = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
  REQUIRE (ae_st_writer_save (g.w, path, &err) == 0, "%s", err.msg);
  g_free (path);
  ae_st_writer_free (g.w);
  return dir;
}

static AeVae *
load_ok (const char *name, const Variant * v)
{
  char *dir = make_model (name, v);
  AeVae *vae = NULL;
  AeError err;

  if (ae_vae_load (&vae, dir, &err) < 0) {
    ae_test_failures++;
    fprintf (stderr, "FAIL %s: load: %s\n", name, err.msg);
  }
  g_free (dir);
  return vae;
}

/* Loading must fail with a message containing each of the needles. */
static void
load_fails (const char *name, const Variant * v, const char *n1,
    const char *n2)
{
  char *dir = make_model (name, v);
  AeVae *vae = NULL;
  AeError err = { "" };

  CHECK (ae_vae_load (&vae, dir, &err) < 0 && vae == NULL,
      "%s: load succeeded", name);
  CHECK (strstr (err.msg, n1) != NULL, "%s: '%s' not in \"%s\"", name, n1,
      err.msg);
  CHECK (n2 == NULL || strstr (err.msg, n2) != NULL, "%s: '%s' not in "
      "\"%s\"", name, n2, err.msg);
  printf ("ok   %-20s error: %s\n", name, err.msg);
  g_free (dir);
}

static void
encode_decode (AeVae * vae, const AeTensor * x, AeTensor * mean,
    AeTensor * logvar, AeTensor * sample)
{
  AeError err;

  REQUIRE (ae_vae_encode (vae, x, mean, logvar, NULL, NULL, &arena,
          &err) == 0, "encode: %s", err.msg);
  REQUIRE (ae_vae_decode (vae, mean, sample, NULL, NULL, &arena, &err) == 0,
      "decode: %s", err.msg);
}

static bool
same (const AeTensor * a, const AeTensor * b)
{
  return ae_tensor_same_shape (a, b) && memcmp (a->data, b->data,
      ae_tensor_numel (a) * sizeof (float)) == 0;
}

static bool
all_finite (const AeTensor * t)
{
  for (int64_t i = 0; i < ae_tensor_numel (t); i++)
    if (!isfinite (t->data[i]))
      return false;
  return true;
}

static void
test_forward (void)
{
  Variant base = { 0 }, old = { .old_names = true },
      clamp = { .logvar_bias = 100.0f };
  AeVae *vae = load_ok ("base", &base);
  AeVae *vold = load_ok ("old_names", &old);
  AeVae *vclamp = load_ok ("clamp", &clamp);
  TestRng rng = { 42 };
  AeTensor x = test_tensor4 (&rng, 2, 3, 16, 10);
  AeTensor m = test_tensor4 (NULL, 2, LAT, 8, 5), lv = m, s =
      test_tensor4 (NULL, 2, 3, 16, 10);
  AeTensor m2 = test_tensor4 (NULL, 2, LAT, 8, 5), lv2 = m2, s2 = s;
  AeTensor x1 = x, m1 = test_tensor4 (NULL, 1, LAT, 8, 5), lv1 = m1, s1 =
      test_tensor4 (NULL, 1, 3, 16, 10);
  unsigned grows;
  AeError err;

  if (vae == NULL || vold == NULL || vclamp == NULL)
    return;
  lv = test_tensor4 (NULL, 2, LAT, 8, 5);
  lv2 = test_tensor4 (NULL, 2, LAT, 8, 5);
  lv1 = test_tensor4 (NULL, 1, LAT, 8, 5);
  s2 = test_tensor4 (NULL, 2, 3, 16, 10);
  CHECK (ae_vae_downscale (vae) == 2, "downscale %d",
      ae_vae_downscale (vae));
  CHECK (ae_vae_scaling_factor (vae) == 0.5f, "scaling_factor");
  CHECK (ae_vae_config (vae)->mid_block_add_attention, "attention default");

  encode_decode (vae, &x, &m, &lv, &s);
  CHECK (all_finite (&m) && all_finite (&lv) && all_finite (&s),
      "non-finite output");
  REQUIRE (ae_arena_reset (&arena, &err) == 0, "%s", err.msg);
  grows = arena.grow_count;
  encode_decode (vae, &x, &m2, &lv2, &s2);
  CHECK (same (&m, &m2) && same (&lv, &lv2) && same (&s, &s2),
      "second pass differs");
  CHECK (arena.grow_count == grows, "arena grew on the second pass");
  CHECK (arena.used == 0, "arena not released (%zu bytes)", arena.used);

  /* Batch element 1 alone gives the same numbers as inside the batch. */
  x1.shape[0] = 1;
  x1.data = x.data + ae_tensor_numel (&x) / 2;
  encode_decode (vae, &x1, &m1, &lv1, &s1);
  {
    AeTensor mb = m1, sb = s1;
    mb.data = m.data + ae_tensor_numel (&m) / 2;
    sb.data = s.data + ae_tensor_numel (&s) / 2;
    check_close ("batch independence mean", &m1, &mb, 1e-5, 1e-5);
    check_close ("batch independence sample", &s1, &sb, 1e-5, 1e-5);
  }

  /* Old attention names load to the very same model. */
  encode_decode (vold, &x, &m2, &lv2, &s2);
  CHECK (same (&m, &m2) && same (&s, &s2), "old attention names differ");

  /* Huge logvar bias: clamped to 20 exactly, mean unchanged. */
  encode_decode (vclamp, &x, &m2, &lv2, &s2);
  CHECK (same (&m, &m2), "clamp model: mean changed");
  for (int64_t i = 0; i < ae_tensor_numel (&lv2); i++)
    if (lv2.data[i] != 20.0f) {
      CHECK (false, "logvar[%lld] = %g, expected clamp at 20",
          (long long) i, lv2.data[i]);
      break;
    }
  /* Unclamped model really has logvar below 20 (the check above bites). */
  CHECK (lv.data[0] < 19.0f, "base logvar %g", lv.data[0]);

  /* Bad inputs: error naming the input and the expected shape. */
  {
    AeTensor bad = x;
    bad.shape[2] = 15;
    err.msg[0] = 0;
    CHECK (ae_vae_encode (vae, &bad, &m, &lv, NULL, NULL, &arena, &err) < 0
        && strstr (err.msg, "encode input") && strstr (err.msg, "(2,3,15,10)"),
        "bad input: \"%s\"", err.msg);
    CHECK (ae_vae_decode (vae, &m, &m2, NULL, NULL, &arena, &err) < 0 &&
        strstr (err.msg, "decode sample"), "bad output: \"%s\"", err.msg);
  }
  printf ("ok   forward: shapes, determinism, batch, old names, clamp\n");
  ae_vae_free (vae);
  ae_vae_free (vold);
  ae_vae_free (vclamp);
  g_free (x.data);
  g_free (m.data);
  g_free (lv.data);
  g_free (s.data);
  g_free (m2.data);
  g_free (lv2.data);
  g_free (s2.data);
  g_free (m1.data);
  g_free (lv1.data);
  g_free (s1.data);
}

static void
test_no_attention (void)
{
  Variant v = { .no_attention = true };
  AeVae *vae = load_ok ("no_attention", &v);
  TestRng rng = { 7 };
  AeTensor x = test_tensor4 (&rng, 1, 3, 8, 8);
  AeTensor m = test_tensor4 (NULL, 1, LAT, 4, 4), lv =
      test_tensor4 (NULL, 1, LAT, 4, 4), s = test_tensor4 (NULL, 1, 3, 8, 8);

  if (vae != NULL) {
    CHECK (!ae_vae_config (vae)->mid_block_add_attention, "flag");
    encode_decode (vae, &x, &m, &lv, &s);
    CHECK (all_finite (&s), "no_attention: non-finite");
    printf ("ok   mid_block_add_attention false\n");
  }
  ae_vae_free (vae);
  g_free (x.data);
  g_free (m.data);
  g_free (lv.data);
  g_free (s.data);
}

static void
test_errors (void)
{
  Variant missing = { .skip_key = "decoder.mid_block.attentions.0.to_k.weight" };
  Variant shape = { .bad_key = "encoder.down_blocks.1.resnets.0.conv_shortcut.weight" };
  Variant btype = { .down_type = "CrossAttnDownBlock2D" };
  AeConfig *c = NULL;
  AeVaeConfig cfg;
  AeError err;

  load_fails ("missing", &missing, "decoder.mid_block.attentions.0.to_k.weight",
      "diffusion_pytorch_model.safetensors");
  load_fails ("shape", &shape, "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
      "(16,8,1,1)");
  load_fails ("block_type", &btype, "down_block_types", "config.json");

  REQUIRE (ae_config_load_data (&c, "x/config.json",
          "{\"block_out_channels\": [8, 12], \"norm_num_groups\": 8}",
          &err) == 0, "%s", err.msg);
  CHECK (ae_vae_config_parse (&cfg, c, &err) < 0 &&
      strstr (err.msg, "x/config.json") && strstr (err.msg,
          "block_out_channels"), "groups: \"%s\"", err.msg);
  ae_config_free (c);
  REQUIRE (ae_config_load_data (&c, "y/config.json", "{\"latent_channels\": 4}",
          &err) == 0, "%s", err.msg);
  CHECK (ae_vae_config_parse (&cfg, c, &err) < 0 &&
      strstr (err.msg, "y/config.json") && strstr (err.msg,
          "block_out_channels"), "missing: \"%s\"", err.msg);
  ae_config_free (c);
  REQUIRE (ae_config_load_data (&c, "z/config.json",
          "{\"block_out_channels\": [32], \"act_fn\": \"gelu\"}", &err) == 0,
      "%s", err.msg);
  CHECK (ae_vae_config_parse (&cfg, c, &err) < 0 &&
      strstr (err.msg, "act_fn"), "act_fn: \"%s\"", err.msg);
  ae_config_free (c);
  printf ("ok   config errors\n");
}

static void
remove_tree (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  const char *n;

  if (d != NULL) {
    while ((n = g_dir_read_name (d)) != NULL) {
      char *p = g_build_filename (path, n, NULL);
      if (g_file_test (p, G_FILE_TEST_IS_DIR))
        remove_tree (p);
      else
        g_remove (p);
      g_free (p);
    }
    g_dir_close (d);
  }
  g_rmdir (path);
}

int
main (void)
{
  AeError err;

  tmpdir = g_dir_make_tmp ("test_vae_XXXXXX", NULL);
  REQUIRE (tmpdir != NULL, "no temp dir");
  REQUIRE (ae_arena_init (&arena, 0, &err) == 0, "%s", err.msg);
  test_forward ();
  test_no_attention ();
  test_errors ();
  ae_arena_clear (&arena);
  remove_tree (tmpdir);
  g_free (tmpdir);
  return test_finish ("test_vae");
}
