/* Whole models on the Vulkan backend against the CPU backend, on seeded
 * random inputs of odd sizes; compared by max abs error and relative L2
 * (ae_compare, the CPU result is the reference) against the tolerances
 * below. Exit 77 (skip) with a message when no Vulkan device opens.
 *
 *   test_vk_models unet conv|linear|f16 -- a small random
 *       UNet2DConditionModel with every SD 1.5 block type (CrossAttnDown,
 *       Down, mid, Up, CrossAttnUp); 1x1-conv or linear projections, f32
 *       or f16-packed weights; one step on a (3, 4, 12, 20) latent: plain,
 *       conv_in residual, reference capture (bank compared) and inject
 *       with a batch mask, temporal all-frame attention alone and with the
 *       reference tokens; weights uploaded once and no new buffer on a
 *       second pass; errors.
 *   test_vk_models vae    -- the embedded model's AutoencoderKL
 *       (models/avatar-default/vae): decode of a (2, 4, 5, 7) latent,
 *       encode of a (2, 3, 24, 40) image.
 *   A last argument --staging keeps device buffers unmapped, so every
 *   weight takes the staging-copy path of a discrete GPU.
 *   test_vk_models tool AVATAR_ENGINE -- `avatar-engine run unet|vae-decode
 *       and sample --device vulkan|auto` against `--device cpu` (auto is
 *       the CPU on a software device), and the --device errors (unknown
 *       name, no driver, auto fallback). */
#include "../engine/test_util.h"

#include <glib/gstdio.h>

#include "unet.h"
#include "vae.h"
#include "vk-context.h"
#include "vk-unet.h"
#include "vk-vae.h"

/* Tolerances (float32 on both sides; different summation orders). The
 * outputs are O(1); measured errors on lavapipe are ~1e-6 rel L2. */
#define UNET_TOL_ABS 2e-4
#define UNET_TOL_REL 2e-5
#define VAE_TOL_ABS 2e-4
#define VAE_TOL_REL 2e-5

static AeVkContext vk;
static AeArena arena;

static void
skip_without_vulkan (unsigned flags)
{
  AeError err;

  if (ae_vk_context_init_flags (&vk, flags, &err) < 0) {
    printf ("SKIP: no Vulkan device: %s\n", err.msg);
    ae_vk_context_free (&vk);
    exit (AE_TEST_SKIP);
  }
  printf ("device: %s (%s)%s\n", ae_vk_device_name (&vk),
      ae_vk_device_type_name (&vk), flags & AE_VK_FLAG_STAGING ?
      ", weights through staging copies" : "");
}

/* With --staging every weight buffer must be unmapped (written by a
 * staging copy). */
static void
check_staging (void)
{
  int weights = 0, mapped = 0;

  if (!vk.force_staging)
    return;
  for (int i = 0; i < vk.pool_count; i++) {
    if (vk.pool[i]->key == NULL)
      continue;
    weights++;
    mapped += vk.pool[i]->buf.map != NULL;
  }
  CHECK (weights > 0 && mapped == 0, "staging: %d of %d weight buffers "
      "mapped", mapped, weights);
  printf ("ok   %d weight buffers uploaded through staging copies\n",
      weights);
}

/* ---- UNet ---------------------------------------------------------------- */

/* Every block type, odd channel / head / context sizes. */
static AeUNetConfig
tiny_config (bool linear_projection)
{
  AeUNetConfig c;

  memset (&c, 0, sizeof c);
  c.in_channels = 4;
  c.out_channels = 4;
  c.n_levels = 3;
  c.block_out_channels[0] = 24;
  c.block_out_channels[1] = 40;
  c.block_out_channels[2] = 48;
  c.down_types[0] = AE_BLOCK_CROSS_ATTN_DOWN;
  c.down_types[1] = AE_BLOCK_CROSS_ATTN_DOWN;
  c.down_types[2] = AE_BLOCK_DOWN;
  c.up_types[0] = AE_BLOCK_UP;
  c.up_types[1] = AE_BLOCK_CROSS_ATTN_UP;
  c.up_types[2] = AE_BLOCK_CROSS_ATTN_UP;
  c.heads[0] = 3;
  c.heads[1] = 5;
  c.heads[2] = 4;
  c.layers_per_block = 2;
  c.transformer_layers_per_block = 1;
  c.cross_attention_dim = 20;
  c.norm_num_groups = 8;
  c.norm_eps = 1e-5f;
  c.use_linear_projection = linear_projection;
  c.flip_sin_to_cos = true;
  c.freq_shift = 0.0f;
  c.downsample_padding = 1;
  c.mid_block_scale_factor = 1.0f;
  c.resnet_out_scale_factor = 1.0f;
  c.time_embed_dim = 4 * c.block_out_channels[0];
  return c;
}

static void
no_act (void *user, const char *name, const AeTensor * t)
{
}

typedef struct {
  AeUNet *u;
  AeVkUNet *vu;
  AeTensor sample, ctx, out_cpu, out_vk, residual;
  float ts[3];
} UNetCase;

static void
run_both (UNetCase * c, const AeUNetHooks * hk_cpu, const AeUNetHooks * hk_vk,
    const char *what)
{
  AeError err;
  char name[128];

  REQUIRE (ae_unet_forward (c->u, &c->out_cpu, &c->sample, c->ts, 3,
          &c->ctx, hk_cpu, &arena, &err) == 0, "cpu %s: %s", what, err.msg);
  ae_arena_reset (&arena, NULL);
  REQUIRE (ae_vk_unet_forward (c->vu, &c->out_vk, &c->sample, c->ts, 3,
          &c->ctx, hk_vk, &err) == 0, "vulkan %s: %s", what, err.msg);
  snprintf (name, sizeof name, "unet step %s", what);
  check_close (name, &c->out_vk, &c->out_cpu, UNET_TOL_ABS, UNET_TOL_REL);
  CHECK (ae_vk_unet_last_submits (c->vu) == 1, "%s: %llu submits (one "
      "command buffer per forward expected)", what,
      (unsigned long long) ae_vk_unet_last_submits (c->vu));
}

/* Rounds to the nearest f16 value, tiny ones to 0 (so that every value is
 * exactly representable, as in an f16 checkpoint). */
static void
round_to_f16 (void *user, const char *key, const AeTensor * t)
{
  size_t *f32_bytes = user;

  for (int64_t i = 0; i < ae_tensor_numel (t); i++) {
    uint32_t x;
    float v = t->data[i];
    if (fabsf (v) < 6.2e-5f) {
      t->data[i] = 0.0f;
      continue;
    }
    memcpy (&x, &v, 4);
    x = (x + 0x1000u) & ~0x1fffu;
    memcpy (&t->data[i], &x, 4);
  }
  *f32_bytes += (size_t) ae_tensor_numel (t) * sizeof (float);
}

static void
test_unet_variant (bool linear_projection, bool f16_weights)
{
  AeUNetConfig cfg = tiny_config (linear_projection);
  TestRng rng = { 0x1234567ull + linear_projection };
  UNetCase c;
  size_t f32_bytes = 0;
  AeError err;
  AeUNetHooks hk;
  AeRefBank bank_cpu = { 0 }, bank_vk = { 0 };
  AeTensor ref_sample, ref_ctx, ref_out;
  float t0 = 0.0f;
  bool mask[3] = { true, false, true };
  int pool_before;
  const char *tag = f16_weights ? "(f16 weights)" : linear_projection ?
      "(linear proj)" : "(conv proj)";
  char name[128];

  memset (&c, 0, sizeof c);
  REQUIRE (ae_unet_new_random (&c.u, &cfg, 77 + linear_projection,
          &err) == 0, "%s", err.msg);
  if (f16_weights)
    ae_unet_foreach_weight (c.u, round_to_f16, &f32_bytes);
  REQUIRE (ae_vk_unet_new (&c.vu, &vk, c.u, &err) == 0, "%s", err.msg);
  check_staging ();
  if (f16_weights) {
    /* Matrices and kernels packed as f16, norms and biases f32. */
    CHECK (vk.weight_bytes < 0.6 * f32_bytes, "f16 weights: %zu bytes on "
        "the device for %zu bytes of f32", vk.weight_bytes, f32_bytes);
    printf ("ok   f16-exact weights stored packed: %zu device bytes for "
        "%zu f32 bytes\n", vk.weight_bytes, f32_bytes);
  }
  c.sample = test_tensor4 (&rng, 3, 4, 12, 20);
  c.ctx = test_tensor3 (&rng, 3, 7, cfg.cross_attention_dim);
  c.out_cpu = test_tensor4 (NULL, 3, 4, 12, 20);
  c.out_vk = test_tensor4 (NULL, 3, 4, 12, 20);
  c.residual = test_tensor4 (&rng, 3, cfg.block_out_channels[0], 12, 20);
  c.ts[0] = 999.0f;
  c.ts[1] = 500.5f;
  c.ts[2] = 3.0f;

  snprintf (name, sizeof name, "plain %s", tag);
  run_both (&c, NULL, NULL, name);

  /* A second pass at the same shape: same result, no new buffer. */
  {
    AeTensor again = test_tensor4 (NULL, 3, 4, 12, 20);
    double ma, rl;
    pool_before = vk.pool_count;
    REQUIRE (ae_vk_unet_forward (c.vu, &again, &c.sample, c.ts, 3, &c.ctx,
            NULL, &err) == 0, "%s", err.msg);
    ae_compare (&again, &c.out_vk, &ma, &rl, &err);
    CHECK (ma == 0.0, "second pass differs (max abs %g)", ma);
    CHECK (vk.pool_count == pool_before, "second pass created %d buffers",
        vk.pool_count - pool_before);
    printf ("ok   second pass: identical, %d pooled buffers, %llu "
        "dispatches in one submit\n", vk.pool_count,
        (unsigned long long) ae_vk_unet_last_dispatches (c.vu));
    g_free (again.data);
  }

  memset (&hk, 0, sizeof hk);
  hk.conv_in_residual = &c.residual;
  snprintf (name, sizeof name, "conv_in residual %s", tag);
  run_both (&c, &hk, &hk, name);

  /* Reference capture: the same model as reference UNet, batch 1, t = 0. */
  ref_sample = test_tensor4 (&rng, 1, 4, 12, 20);
  ref_ctx = test_tensor3 (&rng, 1, 5, cfg.cross_attention_dim);
  ref_out = test_tensor4 (NULL, 1, 4, 12, 20);
  memset (&hk, 0, sizeof hk);
  hk.ref_mode = AE_REF_CAPTURE;
  hk.bank = &bank_cpu;
  REQUIRE (ae_unet_forward (c.u, &ref_out, &ref_sample, &t0, 1, &ref_ctx,
          &hk, &arena, &err) == 0, "%s", err.msg);
  ae_arena_reset (&arena, NULL);
  hk.bank = &bank_vk;
  REQUIRE (ae_vk_unet_forward (c.vu, &ref_out, &ref_sample, &t0, 1,
          &ref_ctx, &hk, &err) == 0, "%s", err.msg);
  CHECK (bank_vk.n == bank_cpu.n && bank_cpu.n == c.u->n_transformer_blocks,
      "bank entries: vulkan %d cpu %d model %d", bank_vk.n, bank_cpu.n,
      c.u->n_transformer_blocks);
  for (int i = 0; i < bank_cpu.n && i < bank_vk.n; i++) {
    snprintf (name, sizeof name, "reference capture, bank entry %d %s", i,
        tag);
    check_close (name, &bank_vk.tokens[i], &bank_cpu.tokens[i],
        UNET_TOL_ABS, UNET_TOL_REL);
  }

  /* Inject (each backend its own bank), per-element mask as under CFG. */
  memset (&hk, 0, sizeof hk);
  hk.ref_mode = AE_REF_INJECT;
  hk.ref_batch_mask = mask;
  hk.conv_in_residual = &c.residual;
  {
    AeUNetHooks hv = hk;
    hk.bank = &bank_cpu;
    hv.bank = &bank_vk;
    snprintf (name, sizeof name, "reference inject, mask 1,0,1 %s", tag);
    run_both (&c, &hk, &hv, name);
    hk.ref_batch_mask = hv.ref_batch_mask = NULL;
    snprintf (name, sizeof name, "reference inject, all %s", tag);
    run_both (&c, &hk, &hv, name);
  }

  memset (&hk, 0, sizeof hk);
  hk.temporal = true;
  snprintf (name, sizeof name, "temporal all-frame attention %s", tag);
  run_both (&c, &hk, &hk, name);

  /* Temporal + reference (Make-Your-Anchor): one sequence of all frames'
   * tokens plus the reference tokens; a uniform mask (all on, all off). */
  {
    bool on[3] = { true, true, true }, off[3] = { false, false, false };
    AeUNetHooks hv;
    hk.ref_mode = AE_REF_INJECT;
    hk.bank = &bank_cpu;
    hv = hk;
    hv.bank = &bank_vk;
    snprintf (name, sizeof name, "temporal + reference inject %s", tag);
    run_both (&c, &hk, &hv, name);
    hk.ref_batch_mask = hv.ref_batch_mask = on;
    snprintf (name, sizeof name, "temporal + inject, mask 1,1,1 %s", tag);
    run_both (&c, &hk, &hv, name);
    hk.ref_batch_mask = hv.ref_batch_mask = off;
    snprintf (name, sizeof name, "temporal + inject, mask 0,0,0 %s", tag);
    run_both (&c, &hk, &hv, name);
  }

  /* Errors: named, nothing aborts, the context stays usable. */
  {
    AeTensor bad = test_tensor4 (NULL, 3, 4, 12, 18);
    hk.ref_mode = AE_REF_INJECT;
    hk.bank = &bank_vk;
    hk.ref_batch_mask = mask;
    CHECK (ae_vk_unet_forward (c.vu, &c.out_vk, &c.sample, c.ts, 3, &c.ctx,
            &hk, &err) < 0 && strstr (err.msg, "same ref_batch_mask"),
        "temporal + mixed mask: '%s'", err.msg);
    memset (&hk, 0, sizeof hk);
    hk.act_fn = no_act;
    CHECK (ae_vk_unet_forward (c.vu, &c.out_vk, &c.sample, c.ts, 3, &c.ctx,
            &hk, &err) < 0 && strstr (err.msg, "act_fn"),
        "act_fn: '%s'", err.msg);
    CHECK (ae_vk_unet_forward (c.vu, &bad, &c.sample, c.ts, 3, &c.ctx, NULL,
            &err) < 0 && strstr (err.msg, "unet output 'sample'"),
        "bad output shape: '%s'", err.msg);
    CHECK (ae_vk_unet_forward (c.vu, &bad, &bad, c.ts, 3, &c.ctx, NULL,
            &err) < 0 && strstr (err.msg, "multiples of 4"),
        "bad input size: '%s'", err.msg);
    CHECK (ae_vk_unet_forward (c.vu, &c.out_vk, &c.sample, c.ts, 2, &c.ctx,
            NULL, &err) < 0 && strstr (err.msg, "timesteps"),
        "bad timesteps: '%s'", err.msg);
    printf ("ok   errors name the cause %s\n", tag);
    g_free (bad.data);
    run_both (&c, NULL, NULL, "after errors");
  }

  ae_ref_bank_clear (&bank_cpu);
  ae_ref_bank_clear (&bank_vk);
  g_free (ref_sample.data);
  g_free (ref_ctx.data);
  g_free (ref_out.data);
  g_free (c.sample.data);
  g_free (c.ctx.data);
  g_free (c.out_cpu.data);
  g_free (c.out_vk.data);
  g_free (c.residual.data);
  {
    size_t before = vk.weight_bytes;
    ae_vk_unet_free (c.vu);
    CHECK (vk.weight_bytes < before, "freeing the model kept its weights");
  }
  ae_unet_free (c.u);
}

/* variant: "conv" (1x1-conv projections), "linear" (use_linear_projection),
 * "f16" (conv projections, f16-exact weights). */
static int
test_unet (const char *variant)
{
  if (strcmp (variant, "conv") == 0)
    test_unet_variant (false, false);
  else if (strcmp (variant, "linear") == 0)
    test_unet_variant (true, false);
  else if (strcmp (variant, "f16") == 0)
    test_unet_variant (false, true);
  else
    REQUIRE (0, "unknown unet variant '%s'", variant);
  CHECK (vk.weight_bytes == 0, "%zu weight bytes left after freeing the "
      "model", vk.weight_bytes);
  return 0;
}

/* ---- VAE ------------------------------------------------------------------ */

static char *
model_dir (const char *part)
{
  const char *src = g_getenv ("AVATAR_SOURCE_DIR");
  return g_build_filename (src ? src : ".", "models", "avatar-default", part,
      NULL);
}

static int
test_vae (void)
{
  char *dir = model_dir ("vae");
  AeVae *vae = NULL;
  AeVkVae *vv = NULL;
  AeError err;
  TestRng rng = { 0xfeedull };
  AeTensor lat, img_cpu, img_vk, x, m_cpu, lv_cpu, m_vk, lv_vk;
  int f;

  if (ae_vae_load (&vae, dir, &err) < 0) {
    printf ("SKIP: embedded VAE not loadable: %s\n", err.msg);
    g_free (dir);
    return AE_TEST_SKIP;
  }
  REQUIRE (ae_vk_vae_new (&vv, &vk, vae, &err) == 0, "%s", err.msg);
  check_staging ();
  f = ae_vae_downscale (vae);
  lat = test_tensor4 (&rng, 2, 4, 5, 7);
  img_cpu = test_tensor4 (NULL, 2, 3, 5 * f, 7 * f);
  img_vk = test_tensor4 (NULL, 2, 3, 5 * f, 7 * f);
  REQUIRE (ae_vae_decode (vae, &lat, &img_cpu, NULL, NULL, &arena,
          &err) == 0, "%s", err.msg);
  ae_arena_reset (&arena, NULL);
  REQUIRE (ae_vk_vae_decode (vv, &lat, &img_vk, &err) == 0, "%s", err.msg);
  check_close ("vae decode (2,4,5,7) -> (2,3,40,56)", &img_vk, &img_cpu,
      VAE_TOL_ABS, VAE_TOL_REL);
  {
    int before = vk.pool_count;
    REQUIRE (ae_vk_vae_decode (vv, &lat, &img_vk, &err) == 0, "%s",
        err.msg);
    CHECK (vk.pool_count == before, "second decode created %d buffers",
        vk.pool_count - before);
  }

  x = test_tensor4 (&rng, 2, 3, 3 * f, 5 * f);
  for (int64_t i = 0; i < ae_tensor_numel (&x); i++)
    x.data[i] = tanhf (x.data[i]);
  m_cpu = test_tensor4 (NULL, 2, 4, 3, 5);
  lv_cpu = test_tensor4 (NULL, 2, 4, 3, 5);
  m_vk = test_tensor4 (NULL, 2, 4, 3, 5);
  lv_vk = test_tensor4 (NULL, 2, 4, 3, 5);
  REQUIRE (ae_vae_encode (vae, &x, &m_cpu, &lv_cpu, NULL, NULL, &arena,
          &err) == 0, "%s", err.msg);
  ae_arena_reset (&arena, NULL);
  REQUIRE (ae_vk_vae_encode (vv, &x, &m_vk, &lv_vk, &err) == 0, "%s",
      err.msg);
  check_close ("vae encode mean (2,3,24,40)", &m_vk, &m_cpu, VAE_TOL_ABS,
      VAE_TOL_REL);
  check_close ("vae encode logvar (2,3,24,40)", &lv_vk, &lv_cpu,
      VAE_TOL_ABS, VAE_TOL_REL);

  /* Errors name the file and the tensor. */
  CHECK (ae_vk_vae_decode (vv, &x, &img_vk, &err) < 0 &&
      strstr (err.msg, "decode latent") && strstr (err.msg, ".safetensors"),
      "bad latent: '%s'", err.msg);
  CHECK (ae_vk_vae_decode (vv, &lat, &m_vk, &err) < 0 &&
      strstr (err.msg, "decode sample"), "bad sample: '%s'", err.msg);
  CHECK (ae_vk_vae_encode (vv, &lat, &m_vk, &lv_vk, &err) < 0 &&
      strstr (err.msg, "encode input"), "bad image: '%s'", err.msg);
  printf ("ok   vae errors name the cause\n");

  g_free (lat.data);
  g_free (img_cpu.data);
  g_free (img_vk.data);
  g_free (x.data);
  g_free (m_cpu.data);
  g_free (lv_cpu.data);
  g_free (m_vk.data);
  g_free (lv_vk.data);
  ae_vk_vae_free (vv);
  ae_vae_free (vae);
  g_free (dir);
  return 0;
}

/* ---- the tool ------------------------------------------------------------- */

static int
run_cmd (const char *cmd, char **out)
{
  gint status = -1;
  gchar *o = NULL, *e = NULL;
  GError *gerr = NULL;

  if (!g_spawn_command_line_sync (cmd, &o, &e, &status, &gerr)) {
    fprintf (stderr, "spawn %s: %s\n", cmd, gerr->message);
    g_error_free (gerr);
    return -1;
  }
  if (out)
    *out = g_strconcat (o ? o : "", e ? e : "", NULL);
  g_free (o);
  g_free (e);
  return g_spawn_check_wait_status (status, NULL) ? 0 :
      WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

static void
compare_files (const char *a, const char *b, const char *key,
    const char *what, double tol_abs, double tol_rel)
{
  AeSafetensors *sa = NULL, *sb = NULL;
  AeTensor ta, tb;
  AeError err;

  REQUIRE (ae_st_open (&sa, a, &err) == 0 && ae_st_open (&sb, b, &err) == 0,
      "%s", err.msg);
  ta = golden_get (sa, key);
  tb = golden_get (sb, key);
  check_close (what, &ta, &tb, tol_abs, tol_rel);
  ae_st_close (sa);
  ae_st_close (sb);
}

static int
test_tool (const char *exe)
{
  char *tmp = g_dir_make_tmp ("vk-tool-XXXXXX", NULL);
  /* the Reference UNet: the same architecture as unet/, whose input here
   * is z_t alone (unet/ may take the reference concat, in_channels 8) */
  char *unet = model_dir ("reference_unet"), *vae = model_dir ("vae");
  char *in = g_build_filename (tmp, "in.safetensors", NULL);
  char *lat = g_build_filename (tmp, "lat.safetensors", NULL);
  char *junk = g_build_filename (tmp, "junk.safetensors", NULL);
  const char *devs[3] = { "cpu", "vulkan", "auto" };
  char *outs[3], *vouts[3], *cmd, *msg = NULL;
  AeStWriter *w = ae_st_writer_new ();
  TestRng rng = { 0xabcdefull };
  AeTensor s = test_tensor4 (&rng, 2, 4, 8, 12);
  AeTensor t = test_tensor1 (NULL, 1);
  AeTensor e = test_tensor3 (&rng, 2, 3, 128);
  AeTensor l = test_tensor4 (&rng, 1, 4, 3, 5);
  AeError err;
  int rc;
  bool software = strcmp (ae_vk_device_type_name (&vk), "cpu") == 0 &&
      g_getenv ("AE_VULKAN_DEVICE") == NULL;

  t.data[0] = 421.0f;
  REQUIRE (ae_st_writer_add (w, "sample", &s, &err) == 0 &&
      ae_st_writer_add (w, "timestep", &t, &err) == 0 &&
      ae_st_writer_add (w, "encoder_hidden_states", &e, &err) == 0 &&
      ae_st_writer_save (w, in, &err) == 0, "%s", err.msg);
  ae_st_writer_free (w);
  w = ae_st_writer_new ();
  REQUIRE (ae_st_writer_add (w, "latent", &l, &err) == 0 &&
      ae_st_writer_save (w, lat, &err) == 0, "%s", err.msg);
  ae_st_writer_free (w);
  for (int i = 0; i < 3; i++) {
    outs[i] = g_strdup_printf ("%s/unet-%s.safetensors", tmp, devs[i]);
    vouts[i] = g_strdup_printf ("%s/vae-%s.safetensors", tmp, devs[i]);
    cmd = g_strdup_printf ("%s run unet --model %s --in %s --out %s "
        "--device %s", exe, unet, in, outs[i], devs[i]);
    rc = run_cmd (cmd, &msg);
    CHECK (rc == 0, "%s: exit %d: %s", cmd, rc, msg);
    g_free (cmd);
    g_free (msg);
    cmd = g_strdup_printf ("%s run vae-decode --model %s --in %s --out %s "
        "--device %s", exe, vae, lat, vouts[i], devs[i]);
    rc = run_cmd (cmd, &msg);
    CHECK (rc == 0, "%s: exit %d: %s", cmd, rc, msg);
    /* auto takes a software device (lavapipe) only when
     * AE_VULKAN_DEVICE names it, else it says why it runs on the CPU */
    if (i == 1 || (i == 2 && !software))
      CHECK (strstr (msg, "device vulkan:") != NULL, "--device %s did not "
          "report the Vulkan device: '%s'", devs[i], msg);
    else if (i == 2)
      CHECK (strstr (msg, "device cpu -- vulkan: the only device") != NULL,
          "--device auto on a software device: '%s'", msg);
    g_free (cmd);
    g_free (msg);
  }
  compare_files (outs[1], outs[0], "sample",
      "avatar-engine run unet --device vulkan vs cpu", UNET_TOL_ABS,
      UNET_TOL_REL);
  compare_files (outs[2], outs[0], "sample",
      "avatar-engine run unet --device auto vs cpu", UNET_TOL_ABS,
      UNET_TOL_REL);
  compare_files (vouts[1], vouts[0], "sample",
      "avatar-engine run vae-decode --device vulkan vs cpu", VAE_TOL_ABS,
      VAE_TOL_REL);

  /* sample: 2 DDIM steps with CFG, then the VAE decode, on each device. */
  {
    char *sin = g_build_filename (tmp, "sample-in.safetensors", NULL);
    char *sched = model_dir ("scheduler_config.json");
    char *souts[2];
    AeTensor noise = test_tensor4 (&rng, 1, 4, 4, 4);
    AeTensor ctx2 = test_tensor3 (&rng, 2, 3, 128);
    w = ae_st_writer_new ();
    REQUIRE (ae_st_writer_add (w, "noise_init", &noise, &err) == 0 &&
        ae_st_writer_add (w, "encoder_hidden_states", &ctx2, &err) == 0 &&
        ae_st_writer_save (w, sin, &err) == 0, "%s", err.msg);
    ae_st_writer_free (w);
    for (int i = 0; i < 2; i++) {
      souts[i] = g_strdup_printf ("%s/sample-%s.safetensors", tmp, devs[i]);
      cmd = g_strdup_printf ("%s sample --unet %s --vae %s "
          "--scheduler-config %s --steps 2 --guidance 2.5 --in %s --out %s "
          "--device %s", exe, unet, vae, sched, sin, souts[i], devs[i]);
      rc = run_cmd (cmd, &msg);
      CHECK (rc == 0, "%s: exit %d: %s", cmd, rc, msg);
      g_free (cmd);
      g_free (msg);
    }
    compare_files (souts[1], souts[0], "latent",
        "avatar-engine sample (2 steps, CFG) --device vulkan: latent",
        UNET_TOL_ABS, UNET_TOL_REL);
    compare_files (souts[1], souts[0], "image",
        "avatar-engine sample --device vulkan: decoded image", VAE_TOL_ABS,
        VAE_TOL_REL);
    for (int i = 0; i < 2; i++) {
      g_unlink (souts[i]);
      g_free (souts[i]);
    }
    g_unlink (sin);
    g_free (sin);
    g_free (sched);
    g_free (noise.data);
    g_free (ctx2.data);
  }

  cmd = g_strdup_printf ("%s run unet --model %s --in %s --out %s "
      "--device gpu", exe, unet, in, junk);
  rc = run_cmd (cmd, &msg);
  CHECK (rc == 2 && strstr (msg, "unknown device 'gpu' (cpu, vulkan or "
          "auto)"), "--device gpu: exit %d '%s'", rc, msg);
  g_free (cmd);
  g_free (msg);
  cmd = g_strdup_printf ("%s run unet --model %s --in %s --out %s "
      "--device vulkan --acts", exe, unet, in, junk);
  rc = run_cmd (cmd, &msg);
  CHECK (rc == 1 && strstr (msg, "CPU backend"), "--acts on vulkan: exit "
      "%d '%s'", rc, msg);
  g_free (cmd);
  g_free (msg);
  /* Device selection by name: a name that matches nothing lists them. */
  cmd = g_strdup_printf ("env AE_VULKAN_DEVICE=no-such-gpu %s run unet "
      "--model %s --in %s --out %s --device vulkan", exe, unet, in, junk);
  rc = run_cmd (cmd, &msg);
  CHECK (rc == 1 && strstr (msg, "AE_VULKAN_DEVICE='no-such-gpu' matches "
          "no device") && strstr (msg, ae_vk_device_name (&vk)),
      "AE_VULKAN_DEVICE: exit %d '%s'", rc, msg);
  g_free (cmd);
  g_free (msg);
  /* No driver at all: the loader finds no ICD. */
  cmd = g_strdup_printf ("env VK_ICD_FILENAMES=/nonexistent.json "
      "VK_DRIVER_FILES=/nonexistent.json %s run unet --model %s --in %s "
      "--out %s --device vulkan", exe, unet, in, junk);
  rc = run_cmd (cmd, &msg);
  CHECK (rc == 1 && strstr (msg, "--device vulkan: vulkan: no Vulkan"),
      "no ICD: exit %d '%s'", rc, msg);
  g_free (cmd);
  g_free (msg);
  cmd = g_strdup_printf ("env VK_ICD_FILENAMES=/nonexistent.json "
      "VK_DRIVER_FILES=/nonexistent.json %s run unet --model %s --in %s "
      "--out %s --device auto", exe, unet, in, outs[2]);
  rc = run_cmd (cmd, &msg);
  CHECK (rc == 0 && strstr (msg, "device cpu -- vulkan: no Vulkan"),
      "auto without ICD: exit %d '%s'", rc, msg);
  g_free (cmd);
  g_free (msg);
  compare_files (outs[2], outs[0], "sample",
      "avatar-engine --device auto without a driver = cpu", 1e-6, 1e-6);
  printf ("ok   --device errors and auto fallback\n");

  for (int i = 0; i < 3; i++) {
    g_unlink (outs[i]);
    g_unlink (vouts[i]);
    g_free (outs[i]);
    g_free (vouts[i]);
  }
  g_unlink (junk);
  g_free (junk);
  g_unlink (in);
  g_unlink (lat);
  g_rmdir (tmp);
  g_free (in);
  g_free (lat);
  g_free (tmp);
  g_free (unet);
  g_free (vae);
  g_free (s.data);
  g_free (t.data);
  g_free (e.data);
  g_free (l.data);
  return 0;
}

int
main (int argc, char **argv)
{
  int rc = 0;

  if (argc < 2 || (strcmp (argv[1], "tool") == 0 && argc < 3) ||
      (strcmp (argv[1], "unet") == 0 && argc < 3)) {
    fprintf (stderr, "usage: test_vk_models unet conv|linear|f16 | vae | "
        "tool AVATAR_ENGINE\n");
    return 2;
  }
  skip_without_vulkan (strcmp (argv[argc - 1], "--staging") == 0 ?
      AE_VK_FLAG_STAGING : 0);
  ae_arena_init (&arena, 0, NULL);
  if (strcmp (argv[1], "unet") == 0)
    rc = test_unet (argv[2]);
  else if (strcmp (argv[1], "vae") == 0)
    rc = test_vae ();
  else if (strcmp (argv[1], "tool") == 0)
    rc = test_tool (argv[2]);
  ae_arena_clear (&arena);
  ae_vk_context_free (&vk);
  if (rc == AE_TEST_SKIP)
    return rc;
  if (ae_test_failures) {
    printf ("%d failure(s)\n", ae_test_failures);
    return 1;
  }
  printf ("all passed\n");
  return 0;
}
