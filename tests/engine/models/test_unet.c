/* UNet2DConditionModel tests.
 *   test_unet golden TOOL : unet_sd15_tiny (t999, t1) through the
 *     avatar-engine tool: out.sample and every act.* stored; skips (77)
 *     without ../shared.
 *   test_unet pipeline TOOL : pipeline_ddim4_cfg_tiny through
 *     `avatar-engine sample`; skips (77) without ../shared.
 *   test_unet vae TOOL : `run vae-encode|vae-decode` on vae_kl_tiny_lpb1;
 *     skips (77) without ../shared or when the tool has no VAE.
 *   test_unet self TOOL : a tiny random config written here: load round
 *     trip, shapes, determinism, batch independence, error messages,
 *     and the hooks (reference attention, temporal attention, conv_in
 *     residual / PoseGuider) by exact identities. */
#include <glib.h>
#include <glib/gstdio.h>

#include "../test_util.h"
#include "avatar-engine.h"

static AeArena arena;
/* Heap tensors of the tests, freed at exit (keeps LeakSanitizer quiet). */
static GPtrArray *garbage;

static AeTensor
keep (AeTensor t)
{
  g_ptr_array_add (garbage, t.data);
  return t;
}

#define kept_tensor1(r, a) keep (test_tensor1 (r, a))
#define kept_tensor3(r, a, b, c) keep (test_tensor3 (r, a, b, c))
#define kept_tensor4(r, a, b, c, d) keep (test_tensor4 (r, a, b, c, d))

#define OK(call) \
  REQUIRE ((call) == 0, "%s", err.msg)

/* ---- helpers ------------------------------------------------------------ */

static int
run_tool (const char *tool, const char *const *args, char **out_err)
{
  const char *argv[32];
  int n = 0, status = 0;
  GError *gerr = NULL;

  argv[n++] = tool;
  for (int i = 0; args[i]; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  REQUIRE (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL,
          NULL, NULL, out_err, &status, &gerr), "spawn %s: %s", tool,
      gerr ? gerr->message : "?");
  return g_spawn_check_wait_status (status, NULL) ? 0 : 1;
}

/* Removes a temporary directory tree made by the test. */
static void
rm_tree (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  const char *name;

  if (d != NULL) {
    while ((name = g_dir_read_name (d)) != NULL) {
      char *p = g_build_filename (path, name, NULL);
      rm_tree (p);
      g_free (p);
    }
    g_dir_close (d);
  }
  g_remove (path);
}

static void
write_text (const char *path, const char *text)
{
  REQUIRE (g_file_set_contents (path, text, -1, NULL), "write %s", path);
}

/* ---- golden ------------------------------------------------------------- */

static void
golden_run (const char *tool, const char *gdir, const char *tmp,
    const char *run, bool per_batch_timestep)
{
  char *model = g_build_filename (gdir, "model", NULL);
  char *inp = g_build_filename (gdir, "inputs.safetensors", NULL);
  char *ref_path = g_strdup_printf ("%s/%s.safetensors", gdir, run);
  char *in_path = g_strdup_printf ("%s/in_%s.safetensors", tmp, run);
  char *out_path = g_strdup_printf ("%s/out_%s.safetensors", tmp, run);
  AeSafetensors *in, *ref, *out;
  AeStWriter *w = ae_st_writer_new ();
  AeTensor sample, ctx, t, got, want;
  AeError err;
  float tval;
  int64_t ts[2];
  char *msg = NULL;
  int checked = 0;

  in = golden_open (gdir, "inputs.safetensors");
  {
    char *f = g_strdup_printf ("%s.safetensors", run);
    ref = golden_open (gdir, f);
    g_free (f);
  }
  sample = golden_get (in, "sample");
  ctx = golden_get (in, "encoder_hidden_states");
  t = golden_get (ref, "timestep");
  tval = t.data[0];
  OK (ae_st_writer_add (w, "sample", &sample, &err));
  OK (ae_st_writer_add (w, "encoder_hidden_states", &ctx, &err));
  /* int64 timesteps: one scalar-like value, or one per batch element. */
  ts[0] = ts[1] = (int64_t) tval;
  {
    int64_t shape[1] = { per_batch_timestep ? sample.shape[0] : 1 };
    OK (ae_st_writer_add_raw (w, "timestep", AE_DTYPE_I64, 1, shape, ts,
            &err));
  }
  OK (ae_st_writer_save (w, in_path, &err));
  ae_st_writer_free (w);
  {
    const char *args[] = { "run", "unet", "--model", model, "--in", in_path,
      "--out", out_path, "--acts", NULL
    };
    int rc = run_tool (tool, args, &msg);
    REQUIRE (rc == 0, "avatar-engine run unet failed: %s", msg);
  }
  REQUIRE (ae_st_open (&out, out_path, &err) == 0, "%s", err.msg);
  got = golden_get (out, "sample");
  want = golden_get (ref, "out.sample");
  {
    char *what = g_strdup_printf ("%s out.sample", run);
    check_close (what, &got, &want, 1e-3, 1e-4);
    g_free (what);
  }
  for (int i = 0; i < ae_st_count (ref); i++) {
    const AeStTensorInfo *info = ae_st_info_at (ref, i);
    char *what;
    if (!g_str_has_prefix (info->name, "act."))
      continue;
    if (ae_st_find (out, info->name) == NULL) {
      CHECK (false, "%s: activation %s not produced", run, info->name);
      continue;
    }
    got = golden_get (out, info->name);
    want = golden_get (ref, info->name);
    what = g_strdup_printf ("%s %s", run, info->name);
    check_close (what, &got, &want, 1e-3, 1e-4);
    g_free (what);
    checked++;
  }
  printf ("%s: %d activations checked\n", run, checked);
  CHECK (checked >= 2, "%s: too few activations checked", run);
  ae_st_close (in);
  ae_st_close (ref);
  ae_st_close (out);
  g_free (msg);
  g_free (model);
  g_free (inp);
  g_free (ref_path);
  g_free (in_path);
  g_free (out_path);
}

static int
test_golden (const char *tool)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  char *gdir, *tmp;

  if (shared == NULL || !g_file_test (shared, G_FILE_TEST_IS_DIR)) {
    printf ("skip: AVATAR_SHARED_DIR (../shared) absent: no golden data\n");
    return AE_TEST_SKIP;
  }
  gdir = g_build_filename (shared, "golden", "unet_sd15_tiny", NULL);
  if (!g_file_test (gdir, G_FILE_TEST_IS_DIR)) {
    printf ("skip: %s absent\n", gdir);
    return AE_TEST_SKIP;
  }
  tmp = g_dir_make_tmp ("test_unet_XXXXXX", NULL);
  golden_run (tool, gdir, tmp, "t999", false);
  golden_run (tool, gdir, tmp, "t1", true);
  g_free (gdir);
  rm_tree (tmp);
  g_free (tmp);
  return ae_test_failures ? 1 : 0;
}

/* ---- self-made tiny model ------------------------------------------------ */

static const char *tiny_config =
    "{\"_class_name\": \"UNet2DConditionModel\", \"in_channels\": 4,"
    " \"out_channels\": 4, \"block_out_channels\": [8, 16],"
    " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"],"
    " \"attention_head_dim\": [2, 4], \"layers_per_block\": 1,"
    " \"cross_attention_dim\": 12, \"norm_num_groups\": 4,"
    " \"norm_eps\": 1e-5, \"flip_sin_to_cos\": true, \"freq_shift\": 0,"
    " \"use_linear_projection\": %s}";

typedef struct {
  AeStWriter *w;
  const char *skip, *bad_shape;
} WriteCtx;

static void
write_weight (void *user, const char *key, const AeTensor * t)
{
  WriteCtx *c = user;
  AeError err;

  if (c->skip && strcmp (key, c->skip) == 0)
    return;
  if (c->bad_shape && strcmp (key, c->bad_shape) == 0) {
    AeTensor s = *t;
    s.shape[0] = 1;
    OK (ae_st_writer_add (c->w, key, &s, &err));
    return;
  }
  OK (ae_st_writer_add (c->w, key, t, &err));
}

/* Writes DIR/config.json + weights of u (minus skip, with bad_shape's
 * first dim set to 1). */
static void
write_model (const char *dir, const char *config, const AeUNet * u,
    const char *skip, const char *bad_shape)
{
  char *p = g_build_filename (dir, "config.json", NULL);
  WriteCtx c = { ae_st_writer_new (), skip, bad_shape };
  AeError err;

  g_mkdir_with_parents (dir, 0755);
  write_text (p, config);
  g_free (p);
  ae_unet_foreach_weight (u, write_weight, &c);
  p = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
  OK (ae_st_writer_save (c.w, p, &err));
  ae_st_writer_free (c.w);
  g_free (p);
}

typedef struct {
  AeTensor sample, ctx, out, out2;
  float t[2];
} Inputs;

static void
make_inputs (Inputs * in, TestRng * r, int64_t b, int64_t h, int64_t w)
{
  in->sample = kept_tensor4 (r, b, 4, h, w);
  in->ctx = kept_tensor3 (r, b, 5, 12);
  in->out = kept_tensor4 (NULL, b, 4, h, w);
  in->out2 = kept_tensor4 (NULL, b, 4, h, w);
  in->t[0] = 500.0f;
  in->t[1] = 500.0f;
}

static void
forward (AeUNet * u, AeTensor * out, Inputs * in, const AeUNetHooks * hk)
{
  AeError err;

  OK (ae_unet_forward (u, out, &in->sample, in->t, 1, &in->ctx, hk,
          &arena, &err));
  OK (ae_arena_reset (&arena, &err));
}

static void
expect_close (const char *what, const AeTensor * a, const AeTensor * b,
    double tol)
{
  check_close (what, a, b, tol, tol);
}

static void
expect_differ (const char *what, const AeTensor * a, const AeTensor * b)
{
  double ma, rl;
  AeError err;

  OK (ae_compare (a, b, &ma, &rl, &err));
  CHECK (ma > 1e-4, "%s: outputs should differ (max_abs %.3g)", what, ma);
  if (ma > 1e-4)
    printf ("ok   %-58s differs (max_abs %.2e)\n", what, ma);
}

static void
expect_error (const char *what, int rc, const AeError * err,
    const char *need1, const char *need2)
{
  CHECK (rc < 0, "%s: expected an error", what);
  if (rc >= 0)
    return;
  CHECK (strstr (err->msg, need1) != NULL, "%s: message '%s' lacks '%s'",
      what, err->msg, need1);
  CHECK (need2 == NULL || strstr (err->msg, need2) != NULL,
      "%s: message '%s' lacks '%s'", what, err->msg, need2);
  printf ("ok   %-58s \"%s\"\n", what, err->msg);
}

static void
test_errors (const char *tmp, const AeUNet * u, const char *config)
{
  AeUNet *v = NULL;
  AeError err;
  char *dir = g_build_filename (tmp, "err", NULL);
  char *cfgp = g_build_filename (dir, "config.json", NULL);
  char *txt;
  int rc;

  write_model (dir, config, u, "conv_out.bias", NULL);
  rc = ae_unet_load (&v, dir, &err);
  expect_error ("missing key", rc, &err, "conv_out.bias",
      "diffusion_pytorch_model.safetensors");
  write_model (dir, config, u, NULL, "down_blocks.0.attentions.0.proj_in."
      "weight");
  rc = ae_unet_load (&v, dir, &err);
  expect_error ("wrong shape", rc, &err, "down_blocks.0.attentions.0."
      "proj_in.weight", "diffusion_pytorch_model.safetensors");
  CHECK (rc < 0 && strstr (err.msg, "(8,8,1,1)") != NULL,
      "wrong shape: message lacks the expected shape: %s", err.msg);
  txt = g_strdup (config);
  {
    char *p = strstr (txt, "\"norm_eps\"");
    memcpy (p, "\"norm_xxx\"", 10);
  }
  write_text (cfgp, txt);
  rc = ae_unet_load (&v, dir, &err);
  expect_error ("missing config field", rc, &err, "config.json", "norm_eps");
  g_free (txt);
  txt = g_strdup (config);
  {
    char *p = strstr (txt, "\"DownBlock2D\"");
    memcpy (p, "\"DownBlockXX\"", 13);
  }
  write_text (cfgp, txt);
  rc = ae_unet_load (&v, dir, &err);
  expect_error ("bad block type", rc, &err, "config.json",
      "down_block_types");
  CHECK (rc < 0 && strstr (err.msg, "DownBlockXX") != NULL, "bad block "
      "type: message lacks the type: %s", err.msg);
  g_free (txt);
  txt = g_strdup (config);
  {
    char *p = strstr (txt, "[2, 4]");
    memcpy (p, "[3, 4]", 6);
  }
  write_text (cfgp, txt);
  rc = ae_unet_load (&v, dir, &err);
  expect_error ("heads not dividing channels", rc, &err, "config.json",
      "attention_head_dim");
  g_free (txt);
  g_free (cfgp);
  g_free (dir);
}

static void
test_hooks (AeUNet * u, TestRng * r)
{
  Inputs in, one;
  AeRefBank bank = { 0 };
  AeUNetHooks hk = { 0 };
  AeTensor plain, res, other;
  bool mask[2] = { false, true };

  /* Reference attention with the frame's own tokens as the reference:
   * keys [n, n] give the same softmax average as [n]. */
  make_inputs (&one, r, 1, 8, 12);
  plain = kept_tensor4 (NULL, 1, 4, 8, 12);
  forward (u, &plain, &one, NULL);
  hk.bank = &bank;
  hk.ref_mode = AE_REF_CAPTURE;
  forward (u, &one.out, &one, &hk);
  expect_close ("ref capture leaves the output unchanged", &one.out, &plain,
      1e-6);
  CHECK (bank.n == u->n_transformer_blocks, "bank has %d entries, %d "
      "blocks", bank.n, u->n_transformer_blocks);
  hk.ref_mode = AE_REF_INJECT;
  forward (u, &one.out, &one, &hk);
  expect_close ("ref inject of own tokens == plain", &one.out, &plain, 2e-5);
  /* A different reference changes the output; a masked-out element
   * (CFG's unconditional half) stays plain. */
  make_inputs (&in, r, 2, 8, 12);
  memcpy (in.sample.data + 4 * 8 * 12, one.sample.data,
      4 * 8 * 12 * sizeof (float));
  memcpy (in.ctx.data + 5 * 12, one.ctx.data, 5 * 12 * sizeof (float));
  memcpy (in.sample.data, one.sample.data, 4 * 8 * 12 * sizeof (float));
  memcpy (in.ctx.data, one.ctx.data, 5 * 12 * sizeof (float));
  {
    Inputs refin;
    make_inputs (&refin, r, 1, 8, 12);
    hk.ref_mode = AE_REF_CAPTURE;
    forward (u, &refin.out, &refin, &hk);
  }
  hk.ref_mode = AE_REF_INJECT;
  hk.ref_batch_mask = mask;
  forward (u, &in.out, &in, &hk);
  other = ae_tensor_4d (in.out.data + 4 * 8 * 12, 1, 4, 8, 12);
  res = ae_tensor_4d (in.out.data, 1, 4, 8, 12);
  expect_close ("ref inject masked-out element == plain", &res, &plain,
      2e-5);
  expect_differ ("ref inject of another reference", &other, &plain);
  hk.ref_batch_mask = NULL;
  ae_ref_bank_clear (&bank);

  /* Temporal all-frame attention over two identical frames == per-frame
   * attention; over different frames it differs. */
  memset (&hk, 0, sizeof hk);
  hk.temporal = true;
  forward (u, &in.out, &in, &hk);
  expect_close ("temporal, identical frames == plain", &res, &plain, 2e-5);
  {
    Inputs diff;
    make_inputs (&diff, r, 2, 8, 12);
    memcpy (diff.ctx.data, diff.ctx.data + 5 * 12, 5 * 12 * sizeof (float));
    forward (u, &diff.out, &diff, NULL);
    forward (u, &diff.out2, &diff, &hk);
    expect_differ ("temporal, different frames", &diff.out2, &diff.out);
  }

  /* conv_in residual: a per-channel constant c equals conv_in.bias + c. */
  {
    AeTensor resid = kept_tensor4 (NULL, 1, 8, 8, 12);
    AeTensor *bias = &u->conv_in.bias;
    float saved[8];
    for (int c = 0; c < 8; c++)
      for (int i = 0; i < 8 * 12; i++)
        resid.data[c * 96 + i] = 0.05f * (c + 1);
    memset (&hk, 0, sizeof hk);
    hk.conv_in_residual = &resid;
    forward (u, &one.out, &one, &hk);
    memcpy (saved, bias->data, sizeof saved);
    for (int c = 0; c < 8; c++)
      bias->data[c] += 0.05f * (c + 1);
    forward (u, &one.out2, &one, NULL);
    memcpy (bias->data, saved, sizeof saved);
    expect_close ("conv_in residual == shifted conv_in bias", &one.out,
        &one.out2, 1e-5);
    expect_differ ("conv_in residual changes the output", &one.out, &plain);
  }
}

/* PoseGuider: with conv_out weight 0 its output is conv_out.bias at every
 * position; shapes follow the stride-2 convs. */
static void
test_pose_guider (const char *tool, const char *tmp, TestRng * r)
{
  char *dir = g_build_filename (tmp, "pg", NULL);
  char *cfgp = g_build_filename (dir, "config.json", NULL);
  char *wp = g_build_filename (dir, "diffusion_pytorch_model.safetensors",
      NULL);
  AeStWriter *w = ae_st_writer_new ();
  AePoseGuider *g = NULL;
  AeTensor t, pose, out;
  AeError err;
  int ch[3] = { 4, 6, 8 };
  bool ok = true;

  g_mkdir_with_parents (dir, 0755);
  write_text (cfgp, "{\"conditioning_channels\": 3, \"block_out_channels\":"
      " [4, 6, 8], \"conditioning_embedding_channels\": 8}");
  t = kept_tensor4 (r, 4, 3, 3, 3);
  OK (ae_st_writer_add (w, "conv_in.weight", &t, &err));
  t = kept_tensor1 (r, 4);
  OK (ae_st_writer_add (w, "conv_in.bias", &t, &err));
  for (int i = 0; i < 2; i++) {
    char k[64];
    snprintf (k, sizeof k, "blocks.%d.weight", 2 * i);
    t = kept_tensor4 (r, ch[i], ch[i], 3, 3);
    OK (ae_st_writer_add (w, k, &t, &err));
    snprintf (k, sizeof k, "blocks.%d.bias", 2 * i);
    t = kept_tensor1 (r, ch[i]);
    OK (ae_st_writer_add (w, k, &t, &err));
    snprintf (k, sizeof k, "blocks.%d.weight", 2 * i + 1);
    t = kept_tensor4 (r, ch[i + 1], ch[i], 3, 3);
    OK (ae_st_writer_add (w, k, &t, &err));
    snprintf (k, sizeof k, "blocks.%d.bias", 2 * i + 1);
    t = kept_tensor1 (r, ch[i + 1]);
    OK (ae_st_writer_add (w, k, &t, &err));
  }
  t = kept_tensor4 (NULL, 8, 8, 3, 3);
  OK (ae_st_writer_add (w, "conv_out.weight", &t, &err));
  t = kept_tensor1 (r, 8);
  OK (ae_st_writer_add (w, "conv_out.bias", &t, &err));
  OK (ae_st_writer_save (w, wp, &err));
  ae_st_writer_free (w);
  OK (ae_pose_guider_load (&g, dir, &err));
  pose = kept_tensor4 (r, 1, 3, 32, 48);
  out = kept_tensor4 (NULL, 1, 8, 8, 12);
  OK (ae_pose_guider_forward (g, &out, &pose, &arena, &err));
  for (int c = 0; c < 8; c++)
    for (int i = 0; i < 96; i++)
      ok = ok && out.data[c * 96 + i] == t.data[c];
  CHECK (ok, "pose guider: zero conv_out must give its bias everywhere");
  if (ok)
    printf ("ok   %-58s\n", "pose guider output shape and conv_out");
  /* The tool's `run pose-guider` gives the same tensor. */
  {
    char *in_path = g_build_filename (tmp, "pose.safetensors", NULL);
    char *out_path = g_build_filename (tmp, "pose_out.safetensors", NULL);
    const char *args[] = { "run", "pose-guider", "--model", dir, "--in",
      in_path, "--out", out_path, NULL
    };
    AeStWriter *pw = ae_st_writer_new ();
    AeSafetensors *st;
    AeTensor got;
    char *msg = NULL;
    OK (ae_st_writer_add (pw, "pose", &pose, &err));
    OK (ae_st_writer_save (pw, in_path, &err));
    ae_st_writer_free (pw);
    REQUIRE (run_tool (tool, args, &msg) == 0, "run pose-guider: %s", msg);
    REQUIRE (ae_st_open (&st, out_path, &err) == 0, "%s", err.msg);
    got = golden_get (st, "sample");
    expect_close ("tool run pose-guider == library", &got, &out, 0.0);
    ae_st_close (st);
    g_free (msg);
    g_free (in_path);
    g_free (out_path);
  }
  {
    AeTensor bad = kept_tensor4 (NULL, 1, 8, 9, 12);
    int rc = ae_pose_guider_forward (g, &bad, &pose, &arena, &err);
    expect_error ("pose guider wrong output shape", rc, &err, "pose guider",
        "expected");
  }
  ae_pose_guider_free (g);
  g_free (cfgp);
  g_free (wp);
  g_free (dir);
}

static int
test_self (const char *tool)
{
  char *tmp = g_dir_make_tmp ("test_unet_XXXXXX", NULL);
  char *dir = g_build_filename (tmp, "tiny", NULL);
  char *config = g_strdup_printf (tiny_config, "false");
  char *config_lin = g_strdup_printf (tiny_config, "true");
  AeConfig *c;
  AeUNetConfig cfg;
  AeUNet *u, *v;
  AeError err;
  TestRng r = { 42 };
  Inputs in, one;

  OK (ae_config_load_data (&c, "tiny.json", config, &err));
  OK (ae_unet_config_parse (&cfg, c, &err));
  ae_config_free (c);
  CHECK (cfg.heads[0] == 2 && cfg.heads[1] == 4, "legacy heads");
  OK (ae_unet_new_random (&u, &cfg, 7, &err));
  write_model (dir, config, u, NULL, NULL);
  OK (ae_unet_load (&v, dir, &err));

  /* Non-square latent, batch 2. Loaded == in-memory, deterministic. */
  make_inputs (&in, &r, 2, 8, 12);
  forward (u, &in.out, &in, NULL);
  forward (v, &in.out2, &in, NULL);
  expect_close ("loaded checkpoint == in-memory weights", &in.out2,
      &in.out, 0.0);
  {
    unsigned grown = arena.grow_count;
    forward (v, &in.out2, &in, NULL);
    expect_close ("deterministic (second call, arena reused)", &in.out2,
        &in.out, 0.0);
    CHECK (arena.grow_count == grown, "arena grew again on an identical "
        "call: %u -> %u", grown, arena.grow_count);
  }
  /* Batch element 1 alone gives the same result as inside the batch. */
  one.sample = ae_tensor_4d (in.sample.data + 4 * 8 * 12, 1, 4, 8, 12);
  one.ctx = ae_tensor_3d (in.ctx.data + 5 * 12, 1, 5, 12);
  one.out = kept_tensor4 (NULL, 1, 4, 8, 12);
  one.t[0] = 500.0f;
  forward (v, &one.out, &one, NULL);
  {
    AeTensor b1 = ae_tensor_4d (in.out.data + 4 * 8 * 12, 1, 4, 8, 12);
    expect_close ("batch element alone == inside the batch", &one.out, &b1,
        1e-5);
  }
  /* Per-element timesteps: a different t for element 0 only. */
  in.t[0] = 10.0f;
  OK (ae_unet_forward (v, &in.out2, &in.sample, in.t, 2, &in.ctx, NULL,
          &arena, &err));
  {
    AeTensor b0 = ae_tensor_4d (in.out.data, 1, 4, 8, 12);
    AeTensor c0 = ae_tensor_4d (in.out2.data, 1, 4, 8, 12);
    AeTensor b1 = ae_tensor_4d (in.out.data + 4 * 8 * 12, 1, 4, 8, 12);
    AeTensor c1 = ae_tensor_4d (in.out2.data + 4 * 8 * 12, 1, 4, 8, 12);
    expect_differ ("per-element timestep changes element 0", &c0, &b0);
    expect_close ("per-element timestep keeps element 1", &c1, &b1, 1e-6);
  }
  /* Bad input shape: odd latent size. */
  {
    Inputs bad;
    int rc;
    make_inputs (&bad, &r, 1, 7, 12);
    rc = ae_unet_forward (v, &bad.out, &bad.sample, bad.t, 1, &bad.ctx, NULL,
        &arena, &err);
    expect_error ("latent size not divisible", rc, &err, "sample",
        "multiples of 2");
  }
  test_hooks (v, &r);
  test_errors (tmp, u, config);
  ae_unet_free (u);
  ae_unet_free (v);

  /* use_linear_projection: proj_in/proj_out are Linear. */
  OK (ae_config_load_data (&c, "tiny_lin.json", config_lin, &err));
  OK (ae_unet_config_parse (&cfg, c, &err));
  ae_config_free (c);
  OK (ae_unet_new_random (&u, &cfg, 8, &err));
  g_free (dir);
  dir = g_build_filename (tmp, "tiny_lin", NULL);
  write_model (dir, config_lin, u, NULL, NULL);
  OK (ae_unet_load (&v, dir, &err));
  forward (u, &in.out, &in, NULL);
  forward (v, &in.out2, &in, NULL);
  expect_close ("linear projection: loaded == in-memory", &in.out2, &in.out,
      0.0);
  ae_unet_free (u);
  ae_unet_free (v);

  test_pose_guider (tool, tmp, &r);

  /* The tool on the tiny model: unknown device, missing input (the
   * vulkan device itself is tested in tests/vulkan). */
  {
    char *msg = NULL;
    char *model = g_build_filename (tmp, "tiny", NULL);
    const char *a1[] = { "run", "unet", "--model", model, "--in", "x",
      "--out", "y", "--device", "tpu", NULL
    };
    const char *a2[] = { "run", "unet", "--model", model, "--in",
      "/nonexistent.safetensors", "--out", "y", NULL
    };
    CHECK (run_tool (tool, a1, &msg) != 0 && strstr (msg, "unknown device"),
        "--device tpu: %s", msg);
    g_free (msg);
    CHECK (run_tool (tool, a2, &msg) != 0 && strstr (msg,
            "/nonexistent.safetensors"), "missing input file: %s", msg);
    printf ("ok   %-58s\n", "tool errors (unknown device, missing input)");
    g_free (msg);
    g_free (model);
  }
  g_free (dir);
  rm_tree (tmp);
  g_free (tmp);
  g_free (config);
  g_free (config_lin);
  return ae_test_failures ? 1 : 0;
}

/* ---- pipeline ------------------------------------------------------------ */

/* pipeline_ddim4_cfg_tiny through `avatar-engine sample`: every step's UNet
 * output and latents, the final latent, and the image when the tool has
 * the VAE. */
static int
test_pipeline (const char *tool)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  char *g, *pipe, *unet, *vae, *sched, *tmp, *out_path, *msg = NULL;
  AeSafetensors *ref, *out;
  AeError err;
  int n = 0;

  if (shared == NULL || !g_file_test (shared, G_FILE_TEST_IS_DIR)) {
    printf ("skip: AVATAR_SHARED_DIR (../shared) absent: no golden data\n");
    return AE_TEST_SKIP;
  }
  g = g_build_filename (shared, "golden", NULL);
  pipe = g_build_filename (g, "pipeline_ddim4_cfg_tiny",
      "pipeline.safetensors", NULL);
  unet = g_build_filename (g, "unet_sd15_tiny", "model", NULL);
  vae = g_build_filename (g, "vae_kl_tiny_lpb1", "model", NULL);
  sched = g_build_filename (g, "schedulers", "ddim_4",
      "scheduler_config.json", NULL);
  if (!g_file_test (pipe, G_FILE_TEST_EXISTS) ||
      !g_file_test (sched, G_FILE_TEST_EXISTS)) {
    printf ("skip: %s or %s absent\n", pipe, sched);
    return AE_TEST_SKIP;
  }
  tmp = g_dir_make_tmp ("test_unet_XXXXXX", NULL);
  out_path = g_build_filename (tmp, "pipe.safetensors", NULL);
  {
    const char *args[] = { "sample", "--unet", unet, "--vae", vae,
      "--scheduler-config", sched, "--steps", "4", "--guidance", "7.5",
      "--in", pipe, "--out", out_path, NULL
    };
    REQUIRE (run_tool (tool, args, &msg) == 0, "avatar-engine sample "
        "failed: %s", msg);
  }
  {
    /* the embedded model's UNet is a reference-concat one (8 inputs) */
    const char *src = g_getenv ("AVATAR_SOURCE_DIR");
    char *concat = g_build_filename (src ? src : ".", "models",
        "avatar-default", "unet", NULL);
    const char *args[] = { "sample", "--unet", concat, "--scheduler-config",
      sched, "--steps", "4", "--in", pipe, "--out", out_path, NULL
    };
    g_free (msg);
    msg = NULL;
    CHECK (run_tool (tool, args, &msg) != 0 && msg != NULL &&
        strstr (msg, "'noise_init': 4 channels") &&
        strstr (msg, "in_channels 8 (a reference-concat UNet"),
        "sample with a concat UNet: %s", msg ? msg : "(no message)");
    g_free (concat);
  }
  REQUIRE (ae_st_open (&ref, pipe, &err) == 0, "%s", err.msg);
  REQUIRE (ae_st_open (&out, out_path, &err) == 0, "%s", err.msg);
  for (int i = 0; i < ae_st_count (ref); i++) {
    const AeStTensorInfo *info = ae_st_info_at (ref, i);
    AeTensor got, want;
    bool step = g_str_has_prefix (info->name, "step") &&
        (g_str_has_suffix (info->name, ".unet_out") ||
        g_str_has_suffix (info->name, ".latents"));
    bool image = strcmp (info->name, "image") == 0;
    if (!step && !image)
      continue;
    if (image && ae_st_find (out, "image") == NULL) {
      printf ("note: tool built without the VAE: image not compared\n");
      continue;
    }
    CHECK (ae_st_find (out, info->name) != NULL, "%s not written",
        info->name);
    if (ae_st_find (out, info->name) == NULL)
      continue;
    got = golden_get (out, info->name);
    want = golden_get (ref, info->name);
    check_close (info->name, &got, &want, 2e-3, 2e-4);
    n++;
  }
  {
    AeTensor got = golden_get (out, "latent");
    AeTensor want = golden_get (ref, "step03.latents");
    check_close ("latent (final)", &got, &want, 2e-3, 2e-4);
  }
  CHECK (n >= 8, "only %d tensors compared", n);
  ae_st_close (ref);
  ae_st_close (out);
  g_free (msg);
  g_free (g);
  g_free (pipe);
  g_free (unet);
  g_free (vae);
  g_free (sched);
  rm_tree (tmp);
  g_free (tmp);
  g_free (out_path);
  return ae_test_failures ? 1 : 0;
}

/* ---- vae through the tool ------------------------------------------------ */

/* Writes IN's tensor `from` as `to` into a new file (the golden inputs
 * call the image `image`, the tool's input is `sample`). */
static void
rename_input (AeSafetensors * in, const char *from, const char *to,
    const char *path)
{
  AeStWriter *w = ae_st_writer_new ();
  AeTensor t = golden_get (in, from);
  AeError err;

  OK (ae_st_writer_add (w, to, &t, &err));
  OK (ae_st_writer_save (w, path, &err));
  ae_st_writer_free (w);
}

static void
vae_case (const char *tool, const char *g, const char *tmp, bool encode)
{
  char *model = g_build_filename (g, "model", NULL);
  char *in_path = g_build_filename (tmp, encode ? "enc_in.safetensors" :
      "dec_in.safetensors", NULL);
  char *out_path = g_build_filename (tmp, encode ? "enc_out.safetensors" :
      "dec_out.safetensors", NULL);
  const char *outs[] = { encode ? "mean" : "sample", encode ? "logvar" :
        NULL, NULL
  };
  AeSafetensors *in = golden_open (g, "inputs.safetensors");
  AeSafetensors *ref = golden_open (g, encode ? "encode.safetensors" :
      "decode.safetensors");
  AeSafetensors *out;
  AeError err;
  char *msg = NULL;

  rename_input (in, encode ? "image" : "latent", encode ? "sample" :
      "latent", in_path);
  {
    /* Decoding also runs with a warm-up and repeats: the outputs must not
     * change with the arena reused between calls. */
    const char *args[] = { "run", encode ? "vae-encode" : "vae-decode",
      "--model", model, "--in", in_path, "--out", out_path,
      encode ? NULL : "--warmup", "1", "--repeat", "2", NULL
    };
    REQUIRE (run_tool (tool, args, &msg) == 0, "avatar-engine run vae "
        "failed: %s", msg);
  }
  REQUIRE (ae_st_open (&out, out_path, &err) == 0, "%s", err.msg);
  for (int i = 0; outs[i]; i++) {
    AeTensor got = golden_get (out, outs[i]);
    AeTensor want = golden_get (ref, outs[i]);
    char *what = g_strdup_printf ("%s %s", encode ? "vae-encode" :
        "vae-decode", outs[i]);
    check_close (what, &got, &want, 1e-3, 1e-4);
    g_free (what);
  }
  ae_st_close (in);
  ae_st_close (ref);
  ae_st_close (out);
  g_free (msg);
  g_free (model);
  g_free (in_path);
  g_free (out_path);
}

static int
test_vae (const char *tool)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  char *g, *tmp, *msg = NULL;

  {
    const char *args[] = { "run", "vae-decode", "--model", "/nonexistent",
      "--in", "x", "--out", "y", NULL
    };
    run_tool (tool, args, &msg);
    if (strstr (msg, "not built") != NULL) {
      printf ("skip: avatar-engine built without the VAE (engine/vae.c)\n");
      return AE_TEST_SKIP;
    }
    g_free (msg);
  }
  if (shared == NULL || !g_file_test (shared, G_FILE_TEST_IS_DIR)) {
    printf ("skip: AVATAR_SHARED_DIR (../shared) absent: no golden data\n");
    return AE_TEST_SKIP;
  }
  g = g_build_filename (shared, "golden", "vae_kl_tiny_lpb1", NULL);
  if (!g_file_test (g, G_FILE_TEST_IS_DIR)) {
    printf ("skip: %s absent\n", g);
    return AE_TEST_SKIP;
  }
  tmp = g_dir_make_tmp ("test_unet_XXXXXX", NULL);
  vae_case (tool, g, tmp, true);
  vae_case (tool, g, tmp, false);
  g_free (g);
  rm_tree (tmp);
  g_free (tmp);
  return ae_test_failures ? 1 : 0;
}

int
main (int argc, char **argv)
{
  AeError err;
  int rc;

  if (argc != 3) {
    fprintf (stderr, "usage: test_unet golden|pipeline|vae|self AVATAR_ENGINE\n");
    return 2;
  }
  ae_threads_init (0);
  garbage = g_ptr_array_new_with_free_func (g_free);
  REQUIRE (ae_arena_init (&arena, 0, &err) == 0, "%s", err.msg);
  if (strcmp (argv[1], "golden") == 0)
    rc = test_golden (argv[2]);
  else if (strcmp (argv[1], "pipeline") == 0)
    rc = test_pipeline (argv[2]);
  else if (strcmp (argv[1], "vae") == 0)
    rc = test_vae (argv[2]);
  else
    rc = test_self (argv[2]);
  ae_arena_clear (&arena);
  g_ptr_array_free (garbage, TRUE);
  if (rc == 0 && ae_test_failures == 0)
    printf ("all passed\n");
  return rc == AE_TEST_SKIP ? rc : (ae_test_failures ? 1 : rc);
}
