/* posetestsrc: determinism, timestamps, caps, JSON that parses, num-buffers,
 * live mode and seeking. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <string.h>

#include "avatar-pose.h"

static GstHarness *
make_harness (const char *props)
{
  char *desc = g_strdup_printf ("posetestsrc %s", props);
  GstHarness *h = gst_harness_new_parse (desc);
  g_free (desc);
  gst_harness_play (h);
  return h;
}

static char *
buffer_text (GstBuffer * buf)
{
  GstMapInfo map;
  char *s;
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  s = g_strndup ((const char *) map.data, map.size);
  gst_buffer_unmap (buf, &map);
  return s;
}

static GPtrArray *
pull_texts (const char *props, int n)
{
  GstHarness *h = make_harness (props);
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  for (int i = 0; i < n; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    fail_unless (buf != NULL);
    g_ptr_array_add (out, buffer_text (buf));
    gst_buffer_unref (buf);
  }
  gst_harness_teardown (h);
  return out;
}

GST_START_TEST (test_deterministic)
{
  GPtrArray *a = pull_texts ("seed=5 identity=9", 30);
  GPtrArray *b = pull_texts ("seed=5 identity=9", 30);
  GPtrArray *c = pull_texts ("seed=6 identity=9", 30);
  int differ = 0;

  for (guint i = 0; i < a->len; i++) {
    fail_unless_equals_string (g_ptr_array_index (a, i),
        g_ptr_array_index (b, i));
    differ += strcmp (g_ptr_array_index (a, i), g_ptr_array_index (c, i)) != 0;
  }
  fail_unless (differ > 25);
  /* the motion moves: frame 0 and frame 29 differ */
  fail_if (strcmp (g_ptr_array_index (a, 0), g_ptr_array_index (a, 29)) == 0);
  g_ptr_array_unref (a);
  g_ptr_array_unref (b);
  g_ptr_array_unref (c);
}

GST_END_TEST;

GST_START_TEST (test_timestamps_and_caps)
{
  GstHarness *h = make_harness ("framerate=30000/1001");
  GstClockTime next = 0;
  GstCaps *caps;
  GstStructure *s;
  gint n, d;

  for (guint64 i = 0; i < 100; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    GstClockTime want = gst_util_uint64_scale (i, 1001 * GST_SECOND, 30000);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), want);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), next);
    fail_unless (GST_BUFFER_DURATION_IS_VALID (buf));
    next = GST_BUFFER_PTS (buf) + GST_BUFFER_DURATION (buf);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (buf), i);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET_END (buf), i + 1);
    gst_buffer_unref (buf);
  }
  caps = gst_pad_get_current_caps (h->sinkpad);
  fail_unless (caps != NULL);
  s = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_has_name (s, "application/x-openpose-json"));
  fail_unless (gst_structure_get_fraction (s, "framerate", &n, &d));
  fail_unless_equals_int (n, 30000);
  fail_unless_equals_int (d, 1001);
  gst_caps_unref (caps);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_json_parses)
{
  GstHarness *h = make_harness ("width=320 height=240 seed=3");
  int hands_seen = 0, hands_missing = 0;

  for (int i = 0; i < 200; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    char *text = buffer_text (buf);
    size_t len = strlen (text);
    ApFrame f;
    ApIssues is;

    /* one JSON line per buffer */
    fail_unless (len > 2 && text[len - 1] == '\n');
    fail_unless (memchr (text, '\n', len - 1) == NULL);
    ap_issues_clear (&is);
    fail_unless_equals_int (ap_frame_from_json (text, len - 1, i + 1, &f,
            &is), AP_FRAME);
    fail_unless_equals_int (is.n_total, 0);
    fail_unless_equals_int (f.canvas_width, 320);
    fail_unless_equals_int (f.canvas_height, 240);
    fail_unless_equals_int (f.n_people, 1);
    fail_unless_equals_int (f.people[0].n_face, 70);
    fail_unless (f.people[0].body[AP_NECK].c > 0.3f);
    fail_unless (f.people[0].face[30].c > 0.3f);
    for (int side = 0; side < 2; side++) {
      if (f.people[0].hand[side][9].c > 0.0f)
        hands_seen++;
      else
        hands_missing++;
    }
    g_free (text);
    gst_buffer_unref (buf);
  }
  /* 8 s of motion: hands both in view and out of it */
  fail_unless (hands_seen > 0);
  fail_unless (hands_missing > 0);
  gst_harness_teardown (h);
}

GST_END_TEST;

static int
run_counting (const char *desc, gint64 * elapsed_us)
{
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *sink;
  GstBus *bus;
  GstMessage *msg;
  guint64 count = 0;
  gint64 t0;

  fail_unless (pipe != NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  bus = gst_element_get_bus (pipe);
  t0 = g_get_monotonic_time ();
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  fail_unless_equals_int (GST_MESSAGE_TYPE (msg), GST_MESSAGE_EOS);
  gst_message_unref (msg);
  if (elapsed_us)
    *elapsed_us = g_get_monotonic_time () - t0;
  {
    GstStructure *stats = NULL;
    g_object_get (sink, "stats", &stats, NULL);
    fail_unless (gst_structure_get_uint64 (stats, "rendered", &count));
    gst_structure_free (stats);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  return (int) count;
}

GST_START_TEST (test_num_buffers)
{
  fail_unless_equals_int (run_counting ("posetestsrc num-buffers=7 ! "
          "fakesink name=sink sync=false", NULL), 7);
  fail_unless_equals_int (run_counting ("posetestsrc num-buffers=1 ! "
          "fakesink name=sink sync=false", NULL), 1);
}

GST_END_TEST;

GST_START_TEST (test_live)
{
  GstElement *src = gst_element_factory_make ("posetestsrc", NULL);
  GstQuery *q;
  gboolean live;
  GstClockTime min, max;
  gint64 us;
  GstElement *sink;
  GstPad *pad;

  /* live: 10 frames at 50 fps take about 0.2 s of wall-clock time */
  fail_unless_equals_int (run_counting ("posetestsrc is-live=true "
          "framerate=50/1 num-buffers=10 ! fakesink name=sink sync=true",
          &us), 10);
  fail_unless (us >= 150000);
  /* not live: as fast as it can */
  fail_unless_equals_int (run_counting ("posetestsrc framerate=50/1 "
          "num-buffers=10 ! fakesink name=sink sync=false", &us), 10);

  /* one frame of latency, reported as live */
  g_object_set (src, "is-live", TRUE, "framerate", 50, 1, NULL);
  sink = gst_element_factory_make ("fakesink", NULL);
  {
    GstElement *pipe = gst_pipeline_new (NULL);
    gst_bin_add_many (GST_BIN (pipe), src, sink, NULL);
    fail_unless (gst_element_link (src, sink));
    gst_element_set_state (pipe, GST_STATE_PAUSED);
    gst_element_get_state (pipe, NULL, NULL, GST_CLOCK_TIME_NONE);
    pad = gst_element_get_static_pad (src, "src");
    q = gst_query_new_latency ();
    fail_unless (gst_pad_query (pad, q));
    gst_query_parse_latency (q, &live, &min, &max);
    fail_unless (live);
    fail_unless_equals_uint64 (min, 20 * GST_MSECOND);
    gst_query_unref (q);
    gst_object_unref (pad);
    gst_element_set_state (pipe, GST_STATE_NULL);
    gst_object_unref (pipe);
  }
}

GST_END_TEST;

/* A seek to 2 s starts at frame 50 (at 25 fps) with frame 50's content. */
GST_START_TEST (test_seek)
{
  GPtrArray *ref = pull_texts ("seed=4", 53);
  GstHarness *h = make_harness ("seed=4");
  GstBuffer *buf;
  GstEvent *seek;
  char *text;

  buf = gst_harness_pull (h);
  gst_buffer_unref (buf);
  seek = gst_event_new_seek (1.0, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH,
      GST_SEEK_TYPE_SET, 2 * GST_SECOND, GST_SEEK_TYPE_NONE, -1);
  fail_unless (gst_harness_push_upstream_event (h, seek));
  /* drop what was queued before the flush */
  do {
    buf = gst_harness_pull (h);
    if (GST_BUFFER_PTS (buf) == 2 * GST_SECOND)
      break;
    gst_buffer_unref (buf);
  } while (TRUE);
  text = buffer_text (buf);
  fail_unless_equals_string (text, g_ptr_array_index (ref, 50));
  g_free (text);
  gst_buffer_unref (buf);
  buf = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), 2 * GST_SECOND + 40 *
      GST_MSECOND);
  text = buffer_text (buf);
  fail_unless_equals_string (text, g_ptr_array_index (ref, 51));
  g_free (text);
  gst_buffer_unref (buf);
  gst_harness_teardown (h);
  g_ptr_array_unref (ref);
}

GST_END_TEST;

static Suite *
posetestsrc_suite (void)
{
  Suite *s = suite_create ("posetestsrc");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_deterministic);
  tcase_add_test (tc, test_timestamps_and_caps);
  tcase_add_test (tc, test_json_parses);
  tcase_add_test (tc, test_num_buffers);
  tcase_add_test (tc, test_live);
  tcase_add_test (tc, test_seek);
  return s;
}

GST_CHECK_MAIN (posetestsrc);
