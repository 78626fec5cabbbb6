/* Every element of the avatar plugin, alone, through
 * NULL -> READY -> PAUSED -> PLAYING -> PAUSED -> READY -> NULL, twice, and
 * straight from PLAYING to NULL. */
#include <gst/check/gstcheck.h>

static GList *
plugin_factories (void)
{
  GList *features = gst_registry_get_feature_list_by_plugin
      (gst_registry_get (), "avatar"), *out = NULL;

  for (GList * l = features; l; l = l->next)
    if (GST_IS_ELEMENT_FACTORY (l->data))
      out = g_list_prepend (out, gst_object_ref (l->data));
  gst_plugin_feature_list_free (features);
  return out;
}

static void
go (GstElement * e, GstState state)
{
  GstStateChangeReturn ret = gst_element_set_state (e, state);

  fail_if (ret == GST_STATE_CHANGE_FAILURE, "%s: change to %s failed",
      GST_OBJECT_NAME (e), gst_element_state_get_name (state));
  if (ret == GST_STATE_CHANGE_ASYNC)
    gst_element_get_state (e, NULL, NULL, 5 * GST_SECOND);
}

GST_START_TEST (test_state_cycles)
{
  const GstState up[] = { GST_STATE_READY, GST_STATE_PAUSED,
    GST_STATE_PLAYING, GST_STATE_PAUSED, GST_STATE_READY, GST_STATE_NULL
  };
  GList *factories = plugin_factories ();

  fail_unless (factories != NULL, "the avatar plugin has no elements");
  for (GList * l = factories; l; l = l->next) {
    GstElement *e = gst_element_factory_create (l->data, NULL);
    fail_unless (e != NULL, "cannot create %s",
        GST_OBJECT_NAME (l->data));
    GST_INFO ("cycling %s", GST_OBJECT_NAME (e));
    for (int round = 0; round < 2; round++)
      for (guint i = 0; i < G_N_ELEMENTS (up); i++)
        go (e, up[i]);
    go (e, GST_STATE_PLAYING);
    go (e, GST_STATE_NULL);
    gst_object_unref (e);
  }
  g_list_free_full (factories, gst_object_unref);
}

GST_END_TEST;

static Suite *
states_suite (void)
{
  Suite *s = suite_create ("states");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_state_cycles);
  return s;
}

GST_CHECK_MAIN (states);
