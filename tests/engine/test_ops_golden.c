/* Raw ops against the torch/diffusers goldens in
 * ../shared/golden/components: each case is recomposed from the ops as
 * its case.json describes, checking the captured intermediate activations
 * (from the stored input of each step) and the final output. Tolerances
 * come from case.json. Skips (77) when the shared data is absent; the
 * self-made naive-vs-fast checks live in test_ops. */
#include <json-glib/json-glib.h>

#include "test_util.h"
#include "threads.h"

static AeArena arena;
static int cases_run = 0;

typedef struct {
  char *dir;
  AeSafetensors *w, *in, *out;
  JsonParser *json;
  JsonObject *root;
} Case;

static bool
case_open (Case * c, const char *name)
{
  char *path;
  GError *gerr = NULL;

  memset (c, 0, sizeof *c);
  c->dir = golden_component_dir (name);
  if (c->dir == NULL) {
    printf ("skip %s: golden data absent\n", name);
    return false;
  }
  path = g_build_filename (c->dir, "weights.safetensors", NULL);
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    c->w = golden_open (c->dir, "weights.safetensors");
  g_free (path);
  c->in = golden_open (c->dir, "inputs.safetensors");
  c->out = golden_open (c->dir, "outputs.safetensors");
  path = g_build_filename (c->dir, "case.json", NULL);
  c->json = json_parser_new ();
  REQUIRE (json_parser_load_from_file (c->json, path, &gerr), "%s: %s", path,
      gerr ? gerr->message : "?");
  c->root = json_node_get_object (json_parser_get_root (c->json));
  g_free (path);
  cases_run++;
  return true;
}

static void
case_close (Case * c)
{
  AeError err;

  ae_st_close (c->w);
  ae_st_close (c->in);
  ae_st_close (c->out);
  g_object_unref (c->json);
  g_free (c->dir);
  REQUIRE (ae_arena_reset (&arena, &err) == 0, "%s", err.msg);
}

/* case.json "tolerance": exact key, else a "prefix*" key, else "y"'s. */
static void
case_tol (Case * c, const char *name, double *max_abs, double *rel_l2)
{
  JsonObject *tol = json_object_get_object_member (c->root, "tolerance");
  JsonObject *hit = NULL;
  GList *keys, *l;

  *max_abs = 1e-4;
  *rel_l2 = 1e-5;
  if (tol == NULL)
    return;
  if (json_object_has_member (tol, name))
    hit = json_object_get_object_member (tol, name);
  keys = json_object_get_members (tol);
  for (l = keys; hit == NULL && l; l = l->next) {
    const char *k = l->data;
    size_t n = strlen (k);
    if (n && k[n - 1] == '*' && strncmp (k, name, n - 1) == 0)
      hit = json_object_get_object_member (tol, k);
  }
  g_list_free (keys);
  if (hit == NULL && json_object_has_member (tol, "y"))
    hit = json_object_get_object_member (tol, "y");
  if (hit) {
    *max_abs = json_object_get_double_member (hit, "max_abs");
    *rel_l2 = json_object_get_double_member (hit, "rel_l2");
  }
}

static void
case_check (Case * c, const char *case_name, const char *out_name,
    const AeTensor * got)
{
  AeTensor ref = golden_get (c->out, out_name);
  double ma, rl;
  char label[200];

  case_tol (c, out_name, &ma, &rl);
  snprintf (label, sizeof label, "%s %s", case_name, out_name);
  CHECK (ae_tensor_same_shape (got, &ref), "%s: shape differs", label);
  check_close (label, got, &ref, ma, rl);
}

static AeTensor
wget (Case * c, const char *prefix, const char *name)
{
  char key[256];

  snprintf (key, sizeof key, "%s%s", prefix, name);
  return golden_get (c->w, key);
}

static AeTensor
alloc_like (const AeTensor * t)
{
  AeTensor r;
  AeError err;

  REQUIRE (ae_arena_tensor (&arena, &r, t->ndim, t->shape, &err) == 0, "%s",
      err.msg);
  return r;
}

static AeTensor
alloc4 (int64_t a, int64_t b, int64_t h, int64_t w)
{
  int64_t s[4] = { a, b, h, w };
  AeTensor t = ae_tensor_nd (NULL, 4, s);
  return alloc_like (&t);
}

static AeTensor
alloc3 (int64_t a, int64_t b, int64_t d)
{
  int64_t s[3] = { a, b, d };
  AeTensor t = ae_tensor_nd (NULL, 3, s);
  return alloc_like (&t);
}

#define OK(call) \
  do { \
    AeError e_; \
    if ((call) < 0) { \
      ae_test_failures++; \
      fprintf (stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, e_.msg); \
    } \
  } while (0)
/* The ops take &e_ as their error argument inside OK(). */
#define E (&e_)

/* ---- cases ---------------------------------------------------------- */

static void
case_groupnorm (void)
{
  Case c;
  JsonObject *args;
  GList *tags, *l;

  if (!case_open (&c, "groupnorm"))
    return;
  args = json_object_get_object_member (c.root, "args");
  tags = json_object_get_members (args);
  for (l = tags; l; l = l->next) {
    const char *tag = l->data;
    JsonObject *a = json_object_get_object_member (args, tag);
    char key[128];
    AeTensor x, y, g, b;

    snprintf (key, sizeof key, "%s.x", tag);
    x = golden_get (c.in, key);
    g = wget (&c, tag, ".weight");
    b = wget (&c, tag, ".bias");
    y = alloc_like (&x);
    OK (ae_group_norm (&y, &x, (int) json_object_get_int_member (a,
                "num_groups"), (float) json_object_get_double_member (a,
                "eps"), &g, &b, false, E));
    snprintf (key, sizeof key, "%s.y", tag);
    case_check (&c, "groupnorm", key, &y);
  }
  g_list_free (tags);
  case_close (&c);
}

static void
case_timestep (void)
{
  Case c;
  AeTensor t, e320, e32;

  if (!case_open (&c, "timestep_embedding"))
    return;
  t = golden_get (c.in, "timesteps");
  e320 = alloc3 (1, t.shape[0], 320);
  e32 = alloc3 (1, t.shape[0], 32);
  e320.ndim = e32.ndim = 2;
  e320.shape[0] = e32.shape[0] = t.shape[0];
  e320.shape[1] = 320;
  e32.shape[1] = 32;
  OK (ae_timestep_embedding (&e320, t.data, t.shape[0], true, 0.0f, 1.0f,
          10000.0f, E));
  OK (ae_timestep_embedding (&e32, t.data, t.shape[0], true, 0.0f, 1.0f,
          10000.0f, E));
  case_check (&c, "timestep_embedding", "emb320", &e320);
  case_check (&c, "timestep_embedding", "emb32", &e32);
  case_close (&c);
}

static void
case_resample (void)
{
  Case c;
  AeTensor x, up, y, w, b;

  if (case_open (&c, "upsample_nearest_conv")) {
    x = golden_get (c.in, "x");
    w = wget (&c, "up_blocks.0.upsamplers.0.", "conv.weight");
    b = wget (&c, "up_blocks.0.upsamplers.0.", "conv.bias");
    up = alloc4 (x.shape[0], x.shape[1], 2 * x.shape[2], 2 * x.shape[3]);
    y = alloc_like (&up);
    OK (ae_upsample_nearest2x (&up, &x, E));
    OK (ae_conv2d (&y, &up, &w, &b, 1, 1, &arena, E));
    case_check (&c, "upsample", "act.nearest2x", &up);
    case_check (&c, "upsample", "y", &y);
    case_close (&c);
  }
  if (case_open (&c, "downsample_conv_pad1")) {
    x = golden_get (c.in, "x");
    w = wget (&c, "down_blocks.0.downsamplers.0.", "conv.weight");
    b = wget (&c, "down_blocks.0.downsamplers.0.", "conv.bias");
    y = alloc4 (x.shape[0], w.shape[0], 8, 8);
    OK (ae_conv2d (&y, &x, &w, &b, 2, 1, &arena, E));
    case_check (&c, "downsample pad1", "y", &y);
    case_close (&c);
  }
  if (case_open (&c, "downsample_conv_pad0_vae")) {
    x = golden_get (c.in, "x");
    w = wget (&c, "encoder.down_blocks.0.downsamplers.0.", "conv.weight");
    b = wget (&c, "encoder.down_blocks.0.downsamplers.0.", "conv.bias");
    y = alloc4 (x.shape[0], w.shape[0], 8, 8);
    /* F.pad(x, (0, 1, 0, 1)) then stride 2, no padding. */
    OK (ae_conv2d_pad (&y, &x, &w, &b, 2, 0, 1, 0, 1, &arena, E));
    case_check (&c, "downsample pad0 vae", "y", &y);
    case_close (&c);
  }
}

/* ResnetBlock2D from raw ops: every step from its stored input, then the
 * chain end to end. */
static void
case_resnet (const char *name, const char *prefix)
{
  Case c;
  JsonObject *args;
  AeTensor x, temb, n1, h, tp, n2, h2, sc, y, st, ref;
  int groups;
  float eps;
  bool has_temb, has_sc;

  if (!case_open (&c, name))
    return;
  args = json_object_get_object_member (c.root, "args");
  groups = (int) json_object_get_int_member (args, "groups");
  eps = (float) json_object_get_double_member (args, "eps");
  has_temb = !json_object_get_null_member (args, "temb_channels");
  has_sc = ae_st_find (c.out, "act.conv_shortcut") != NULL;
  x = golden_get (c.in, "x");
  n1 = alloc_like (&x);
  {
    AeTensor g = wget (&c, prefix, "norm1.weight");
    AeTensor b = wget (&c, prefix, "norm1.bias");
    OK (ae_group_norm (&n1, &x, groups, eps, &g, &b, false, E));
  }
  case_check (&c, name, "act.norm1", &n1);
  {
    AeTensor w = wget (&c, prefix, "conv1.weight");
    AeTensor b = wget (&c, prefix, "conv1.bias");
    h = alloc4 (x.shape[0], w.shape[0], x.shape[2], x.shape[3]);
    OK (ae_silu (&n1, &n1, E));
    OK (ae_conv2d (&h, &n1, &w, &b, 1, 1, &arena, E));
  }
  case_check (&c, name, "act.conv1", &h);
  if (has_temb) {
    AeTensor w = wget (&c, prefix, "time_emb_proj.weight");
    AeTensor b = wget (&c, prefix, "time_emb_proj.bias");
    AeTensor ts;
    temb = golden_get (c.in, "temb");
    ts = alloc_like (&temb);
    tp = alloc3 (1, temb.shape[0], w.shape[0]);
    tp.ndim = 2;
    tp.shape[0] = temb.shape[0];
    tp.shape[1] = w.shape[0];
    OK (ae_silu (&ts, &temb, E));
    OK (ae_linear (&tp, &ts, &w, &b, E));
    case_check (&c, name, "act.time_emb_proj", &tp);
    OK (ae_add_channel (&h, &tp, E));
  }
  {
    AeTensor g = wget (&c, prefix, "norm2.weight");
    AeTensor b = wget (&c, prefix, "norm2.bias");
    n2 = alloc_like (&h);
    OK (ae_group_norm (&n2, &h, groups, eps, &g, &b, false, E));
  }
  case_check (&c, name, "act.norm2", &n2);
  {
    AeTensor w = wget (&c, prefix, "conv2.weight");
    AeTensor b = wget (&c, prefix, "conv2.bias");
    h2 = alloc_like (&n2);
    OK (ae_silu (&n2, &n2, E));
    OK (ae_conv2d (&h2, &n2, &w, &b, 1, 1, &arena, E));
    /* And from the stored norm2, so conv2 is checked on its own too. */
    ref = golden_get (c.out, "act.norm2");
    st = alloc_like (&ref);
    OK (ae_silu (&st, &ref, E));
    OK (ae_conv2d (&n2, &st, &w, &b, 1, 1, &arena, E));
    case_check (&c, name, "act.conv2", &n2);
  }
  if (has_sc) {
    AeTensor w = wget (&c, prefix, "conv_shortcut.weight");
    AeTensor b = wget (&c, prefix, "conv_shortcut.bias");
    sc = alloc_like (&h2);
    OK (ae_conv2d (&sc, &x, &w, &b, 1, 0, &arena, E));
    case_check (&c, name, "act.conv_shortcut", &sc);
  } else {
    sc = x;
  }
  y = alloc_like (&h2);
  OK (ae_add_scaled (&y, &sc, &h2, 1.0f, E));
  case_check (&c, name, "y", &y);
  case_close (&c);
}

/* diffusers Attention: to_q / to_k / to_v (no bias), attention, to_out.0
 * (with bias). ctx may be x (self-attention). */
static AeTensor
attention_block (Case * c, const char *prefix, const AeTensor * x,
    const AeTensor * ctx, int heads)
{
  AeTensor wq = wget (c, prefix, "to_q.weight");
  AeTensor wk = wget (c, prefix, "to_k.weight");
  AeTensor wv = wget (c, prefix, "to_v.weight");
  AeTensor wo = wget (c, prefix, "to_out.0.weight");
  AeTensor bo = wget (c, prefix, "to_out.0.bias");
  int64_t inner = wq.shape[0];
  AeTensor q = alloc3 (x->shape[0], x->shape[1], inner);
  AeTensor k = alloc3 (ctx->shape[0], ctx->shape[1], inner);
  AeTensor v = alloc_like (&k);
  AeTensor a = alloc_like (&q);
  AeTensor y = alloc3 (x->shape[0], x->shape[1], wo.shape[0]);

  OK (ae_linear (&q, x, &wq, NULL, E));
  OK (ae_linear (&k, ctx, &wk, NULL, E));
  OK (ae_linear (&v, ctx, &wv, NULL, E));
  OK (ae_attention (&a, &q, &k, &v, NULL, NULL, heads, 0.0f, &arena, E));
  OK (ae_linear (&y, &a, &wo, &bo, E));
  return y;
}

static void
case_attention (const char *name, const char *prefix)
{
  Case c;
  JsonObject *args;
  AeTensor x, ctx, y;

  if (!case_open (&c, name))
    return;
  args = json_object_get_object_member (c.root, "args");
  x = golden_get (c.in, "x");
  ctx = ae_st_find (c.in, "encoder_hidden_states") ?
      golden_get (c.in, "encoder_hidden_states") : x;
  y = attention_block (&c, prefix, &x, &ctx,
      (int) json_object_get_int_member (args, "heads"));
  case_check (&c, name, "y", &y);
  CHECK (arena.peak < 8u << 20, "%s: attention used %zu bytes of scratch",
      name, arena.peak);
  case_close (&c);
}

/* Transformer2DModel (1 BasicTransformerBlock, GEGLU) from raw ops. */
static void
case_transformer (const char *name, bool linear_proj)
{
  const char *p = "down_blocks.0.attentions.0.";
  const char *tb = "down_blocks.0.attentions.0.transformer_blocks.0.";
  Case c;
  JsonObject *args;
  AeTensor x, ehs, n, pin, h, t1, a, ffh, ffg, ff, pout, y, sref;
  char key[200];
  int heads;
  int64_t B, C, L;

  if (!case_open (&c, name))
    return;
  args = json_object_get_object_member (c.root, "args");
  heads = (int) json_object_get_int_member (args, "num_attention_heads");
  x = golden_get (c.in, "x");
  ehs = golden_get (c.in, "encoder_hidden_states");
  B = x.shape[0];
  C = x.shape[1];
  L = x.shape[2] * x.shape[3];
  {
    AeTensor g = wget (&c, p, "norm.weight"), b = wget (&c, p, "norm.bias");
    n = alloc_like (&x);
    OK (ae_group_norm (&n, &x, (int) json_object_get_int_member (args,
                "norm_num_groups"), 1e-6f, &g, &b, false, E));
    case_check (&c, name, "act.norm", &n);
  }
  h = alloc3 (B, L, C);
  {
    AeTensor w = wget (&c, p, "proj_in.weight"), b = wget (&c, p,
        "proj_in.bias");
    if (linear_proj) {
      AeTensor nl = alloc3 (B, L, C);
      OK (ae_nchw_to_nlc (&nl, &n, E));
      OK (ae_linear (&h, &nl, &w, &b, E));
      case_check (&c, name, "act.proj_in", &h);
    } else {
      pin = alloc_like (&x);
      OK (ae_conv2d (&pin, &n, &w, &b, 1, 0, &arena, E));
      case_check (&c, name, "act.proj_in", &pin);
      OK (ae_nchw_to_nlc (&h, &pin, E));
    }
  }
  /* BasicTransformerBlock: three pre-norm residual branches. */
  t1 = alloc_like (&h);
  {
    AeTensor g = wget (&c, tb, "norm1.weight"), b = wget (&c, tb,
        "norm1.bias");
    OK (ae_layer_norm (&t1, &h, 1e-5f, &g, &b, E));
    snprintf (key, sizeof key, "act.transformer_blocks.0.norm1");
    case_check (&c, name, key, &t1);
    snprintf (key, sizeof key, "%sattn1.", tb);
    a = attention_block (&c, key, &t1, &t1, heads);
    case_check (&c, name, "act.transformer_blocks.0.attn1", &a);
    OK (ae_add (&h, &h, &a, E));
  }
  {
    AeTensor g = wget (&c, tb, "norm2.weight"), b = wget (&c, tb,
        "norm2.bias");
    OK (ae_layer_norm (&t1, &h, 1e-5f, &g, &b, E));
    case_check (&c, name, "act.transformer_blocks.0.norm2", &t1);
    snprintf (key, sizeof key, "%sattn2.", tb);
    a = attention_block (&c, key, &t1, &ehs, heads);
    case_check (&c, name, "act.transformer_blocks.0.attn2", &a);
    /* attn2 from the stored norm2 output too. */
    sref = golden_get (c.out, "act.transformer_blocks.0.norm2");
    a = attention_block (&c, key, &sref, &ehs, heads);
    case_check (&c, name, "act.transformer_blocks.0.attn2", &a);
    OK (ae_add (&h, &h, &a, E));
  }
  {
    AeTensor g = wget (&c, tb, "norm3.weight"), b = wget (&c, tb,
        "norm3.bias");
    AeTensor w0 = wget (&c, tb, "ff.net.0.proj.weight");
    AeTensor b0 = wget (&c, tb, "ff.net.0.proj.bias");
    AeTensor w2 = wget (&c, tb, "ff.net.2.weight");
    AeTensor b2 = wget (&c, tb, "ff.net.2.bias");
    OK (ae_layer_norm (&t1, &h, 1e-5f, &g, &b, E));
    case_check (&c, name, "act.transformer_blocks.0.norm3", &t1);
    ffh = alloc3 (B, L, w0.shape[0]);
    ffg = alloc3 (B, L, w0.shape[0] / 2);
    ff = alloc_like (&h);
    OK (ae_linear (&ffh, &t1, &w0, &b0, E));
    OK (ae_geglu (&ffg, &ffh, E));
    OK (ae_linear (&ff, &ffg, &w2, &b2, E));
    case_check (&c, name, "act.transformer_blocks.0.ff", &ff);
    OK (ae_add (&h, &h, &ff, E));
    case_check (&c, name, "act.transformer_blocks.0", &h);
  }
  y = alloc_like (&x);
  {
    AeTensor w = wget (&c, p, "proj_out.weight"), b = wget (&c, p,
        "proj_out.bias");
    if (linear_proj) {
      pout = alloc_like (&h);
      OK (ae_linear (&pout, &h, &w, &b, E));
      case_check (&c, name, "act.proj_out", &pout);
      OK (ae_nlc_to_nchw (&y, &pout, E));
    } else {
      AeTensor hn = alloc_like (&x);
      pout = alloc_like (&x);
      OK (ae_nlc_to_nchw (&hn, &h, E));
      OK (ae_conv2d (&pout, &hn, &w, &b, 1, 0, &arena, E));
      case_check (&c, name, "act.proj_out", &pout);
      ae_copy (&y, &pout, NULL);
    }
  }
  OK (ae_add (&y, &y, &x, E));
  case_check (&c, name, "y", &y);
  case_close (&c);
}

int
main (void)
{
  AeError err;
  char *probe = golden_component_dir ("groupnorm");

  if (probe == NULL) {
    printf ("SKIP: AVATAR_SHARED_DIR/golden/components not found (set "
        "AVATAR_SHARED_DIR to the shared data folder)\n");
    return AE_TEST_SKIP;
  }
  g_free (probe);
  ae_threads_init (0);
  REQUIRE (ae_arena_init (&arena, 0, &err) == 0, "%s", err.msg);
  case_groupnorm ();
  case_timestep ();
  case_resample ();
  case_resnet ("resnet_temb_32to64", "down_blocks.1.resnets.0.");
  case_resnet ("resnet_temb_64to64", "down_blocks.1.resnets.1.");
  case_resnet ("resnet_notemb_32to64_eps1e-6",
      "decoder.up_blocks.1.resnets.0.");
  case_attention ("attention_cross_2048q_77kv_8heads", "attn2.");
  case_attention ("attention_long_4096x64_1head", "attn1.");
  case_transformer ("transformer2d_conv_proj", false);
  case_transformer ("transformer2d_linear_proj", true);
  ae_arena_clear (&arena);
  printf ("%d golden cases run\n", cases_run);
  fflush (stdout);
  CHECK (cases_run == 12, "expected 12 golden component cases, ran %d",
      cases_run);
  return test_finish ("test_ops_golden");
}
