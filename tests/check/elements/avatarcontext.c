/* The shared engine (GstContext "gst-avatar.engine"): elements naming the
 * same model share one loaded copy (same engine object, resident memory
 * grows once), another folder loads another; avatardiffuse and latentfuse
 * share through the pads' context query; an application keeps a model
 * loaded across pipelines by handing the context on (set_context or the
 * NEED_CONTEXT message); the model is freed with its last user. */
#include "avatar-check.h"

#define MB (1024 * 1024)

/* The engine an element uses, by asking its pad for the context (what its
 * neighbours do); NULL if it has none. Not a reference. */
static gpointer
engine_of (GstElement * e, const char *pad_name)
{
  GstPad *pad = gst_element_get_static_pad (e, pad_name);
  GstQuery *q = gst_query_new_context ("gst-avatar.engine");
  GstContext *context = NULL;
  gpointer engine = NULL;

  if (gst_pad_query (pad, q)) {
    const GstStructure *s;
    gst_query_parse_context (q, &context);
    fail_unless (context != NULL);
    fail_unless_equals_string (gst_context_get_context_type (context),
        "gst-avatar.engine");
    s = gst_context_get_structure (context);
    fail_unless (gst_structure_has_field (s, "path"));
    engine = g_value_get_object (gst_structure_get_value (s, "engine"));
  }
  gst_query_unref (q);
  gst_object_unref (pad);
  return engine;
}

static void
go (GstElement * e, GstState state)
{
  fail_if (gst_element_set_state (e, state) == GST_STATE_CHANGE_FAILURE,
      "%s: cannot go to %s", GST_OBJECT_NAME (e),
      gst_element_state_get_name (state));
}

GST_START_TEST (test_shared_by_path)
{
  GstElement *pipe = gst_pipeline_new (NULL);
  GstElement *d1 = make_element ("avatardiffuse", NULL);
  GstElement *d2 = make_element ("avatardiffuse", NULL);
  GstElement *d3 = make_element ("avatardiffuse", NULL);
  GstElement *d4 = make_element ("avatardiffuse", NULL);
  gchar *dir = avatar_model_dir (), *alias, *copy = model_copy (NULL, 0);
  gsize rss0, rss1, rss2, rss3, rss4, rss5;

  /* d2 names the bundled model through a different spelling of the path;
   * d3 a copy of the folder elsewhere (a different model); d4 the
   * default (unset). */
  alias = g_build_filename (dir, "..", "avatar-default", NULL);
  g_object_set (d1, "model", dir, NULL);
  g_object_set (d2, "model", alias, NULL);
  g_object_set (d3, "model", copy, NULL);
  gst_bin_add_many (GST_BIN (pipe), d1, d2, d3, d4, NULL);

  rss0 = rss_bytes ();
  go (d1, GST_STATE_PAUSED);
  rss1 = rss_bytes ();
  go (d2, GST_STATE_PAUSED);
  go (d4, GST_STATE_PAUSED);
  rss2 = rss_bytes ();
  go (d3, GST_STATE_PAUSED);
  rss3 = rss_bytes ();
  GST_INFO ("RSS: %zu MB, first load +%zd MB, two more users +%zd kB, "
      "another folder +%zd MB", rss0 / MB, (gssize) (rss1 - rss0) / MB,
      (gssize) (rss2 - rss1) / 1024, (gssize) (rss3 - rss2) / MB);

  fail_unless (engine_of (d1, "src") != NULL);
  fail_unless (engine_of (d1, "src") == engine_of (d2, "src"));
  fail_unless (engine_of (d1, "sink") == engine_of (d4, "sink"));
  fail_unless (engine_of (d3, "src") != NULL);
  fail_unless (engine_of (d3, "src") != engine_of (d1, "src"));
  /* The weights (F16 converted to F32: ~80 MB) are resident once per
   * model, not once per element. */
  fail_unless (rss1 - rss0 > 30 * MB, "first load: %zd", rss1 - rss0);
  fail_unless ((gssize) (rss2 - rss1) < 6 * MB, "shared: %zd",
      (gssize) (rss2 - rss1));
  fail_unless (rss3 - rss2 > 30 * MB, "other folder: %zd", rss3 - rss2);

  /* Back to NULL: the pipeline still holds the first context (as GL's
   * display stays with its pipeline); once the pipeline goes, both
   * models are freed. */
  go (pipe, GST_STATE_NULL);
  rss4 = rss_bytes ();
  gst_object_unref (pipe);
  rss5 = rss_bytes ();
  GST_INFO ("RSS after NULL: %zu MB, after the pipeline: %zu MB",
      rss4 / MB, rss5 / MB);
  fail_unless (rss5 + 50 * MB < rss3, "not freed: %zu -> %zu", rss3, rss5);

  rm_tree (copy);
  g_free (copy);
  g_free (alias);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_diffuse_and_fuse_share)
{
  GstHarness *h = gst_harness_new_parse ("avatardiffuse name=d steps=1 "
      "window=2 overlap=0 progress-interval=-1 ! latentfuse name=f");
  GstElement *d = gst_bin_get_by_name (GST_BIN (h->element), "d");
  GstElement *f = gst_bin_get_by_name (GST_BIN (h->element), "f");
  gchar *caps = rgb_caps_str (64, 64);

  gst_harness_use_testclock (h);
  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  fail_unless_equals_int (gst_harness_push (h, pose_frame_new (64, 64, 0,
              TRUE)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, pose_frame_new (64, 64, 1,
              TRUE)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  /* latentfuse took the model named in the caps: the same engine. */
  fail_unless (engine_of (f, "src") != NULL);
  fail_unless (engine_of (f, "src") == engine_of (d, "src"));
  gst_object_unref (d);
  gst_object_unref (f);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Bus sync handler: keeps the first engine context posted. */
static GstBusSyncReply
keep_context (GstBus * bus, GstMessage * msg, gpointer user)
{
  GstContext **slot = user;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_HAVE_CONTEXT && *slot == NULL) {
    GstContext *c;
    gst_message_parse_have_context (msg, &c);
    if (g_strcmp0 (gst_context_get_context_type (c),
            "gst-avatar.engine") == 0)
      *slot = c;
    else
      gst_context_unref (c);
  }
  return GST_BUS_PASS;
}

/* Bus sync handler: answers NEED_CONTEXT with the context in user. */
static GstBusSyncReply
give_context (GstBus * bus, GstMessage * msg, gpointer user)
{
  const gchar *type;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_NEED_CONTEXT
      && gst_message_parse_context_type (msg, &type)
      && g_strcmp0 (type, "gst-avatar.engine") == 0) {
    gst_element_set_context (GST_ELEMENT (GST_MESSAGE_SRC (msg)), user);
    return GST_BUS_DROP;
  }
  return GST_BUS_PASS;
}

static gpointer
context_engine (GstContext * c)
{
  return g_value_get_object (gst_structure_get_value
      (gst_context_get_structure (c), "engine"));
}

GST_START_TEST (test_context_across_pipelines)
{
  GstElement *pa = gst_pipeline_new (NULL), *pb, *pc, *e;
  GstContext *context = NULL;
  GstBus *bus;
  gsize rss0, rss1;
  gchar *copy;

  /* Pipeline A loads the model and announces it. */
  bus = gst_pipeline_get_bus (GST_PIPELINE (pa));
  gst_bus_set_sync_handler (bus, keep_context, &context, NULL);
  gst_object_unref (bus);
  gst_bin_add (GST_BIN (pa), make_element ("avatardiffuse", NULL));
  go (pa, GST_STATE_PAUSED);
  fail_unless (context != NULL, "no HAVE_CONTEXT message");
  go (pa, GST_STATE_NULL);
  gst_object_unref (pa);

  /* The application kept the context: the model stays loaded, and
   * pipeline B given the context uses it without loading again. */
  rss0 = rss_bytes ();
  pb = gst_pipeline_new (NULL);
  e = make_element ("avatardiffuse", NULL);
  gst_bin_add (GST_BIN (pb), e);
  gst_element_set_context (pb, context);
  go (pb, GST_STATE_PAUSED);
  rss1 = rss_bytes ();
  fail_unless (engine_of (e, "src") == context_engine (context));
  fail_unless ((gssize) (rss1 - rss0) < 6 * MB, "loaded again: %zd",
      (gssize) (rss1 - rss0));
  /* Restarting keeps it too (the element remembers the context). */
  go (pb, GST_STATE_NULL);
  go (pb, GST_STATE_PAUSED);
  fail_unless (engine_of (e, "src") == context_engine (context));
  go (pb, GST_STATE_NULL);
  gst_object_unref (pb);

  /* Pipeline C answers NEED_CONTEXT from its bus; an element naming
   * another folder does not take it. */
  pc = gst_pipeline_new (NULL);
  bus = gst_pipeline_get_bus (GST_PIPELINE (pc));
  gst_bus_set_sync_handler (bus, give_context, context, NULL);
  gst_object_unref (bus);
  e = make_element ("avatardiffuse", NULL);
  gst_bin_add (GST_BIN (pc), e);
  copy = model_copy (NULL, 0);
  {
    GstElement *other = make_element ("avatardiffuse", NULL);
    g_object_set (other, "model", copy, NULL);
    gst_bin_add (GST_BIN (pc), other);
    go (pc, GST_STATE_PAUSED);
    fail_unless (engine_of (e, "src") == context_engine (context));
    fail_unless (engine_of (other, "src") != NULL);
    fail_unless (engine_of (other, "src") != context_engine (context));
  }
  go (pc, GST_STATE_NULL);
  gst_object_unref (pc);
  rm_tree (copy);
  g_free (copy);
  gst_context_unref (context);
}

GST_END_TEST;

static Suite *
avatarcontext_suite (void)
{
  Suite *s = suite_create ("avatarcontext");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_shared_by_path);
  tcase_add_test (tc, test_diffuse_and_fuse_share);
  tcase_add_test (tc, test_context_across_pipelines);
  return s;
}

GST_CHECK_MAIN (avatarcontext);
