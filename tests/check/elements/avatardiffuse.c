/* avatardiffuse: window layout and timestamps for stream lengths that are
 * and are not multiples of window - overlap, determinism, ablation
 * switches, noise-correlation and reference-concat (defaults, ranges, that
 * they reach the engine), lookahead, state cycles, renegotiation,
 * latency, QoS, progress messages, and errors for wrong caps, a missing or
 * corrupt model or reference and device=vulkan. The bundled model at
 * 64x64, 1 step. */
#include "avatar-check.h"
#include "gstavatarlatents.h"

#include <math.h>

#include "avatar-engine.h"
#include "../../engine/avatar/widen-model.h"

#define W 4
#define O 1
#define S (W - O)
#define BASE_PROPS "steps=1 window=4 overlap=1 progress-interval=-1"

/* Keeps the bundled model loaded for the whole test, so that every
 * harness shares it instead of loading it again. */
static GstElement *keeper;

static void
keep_model (void)
{
  keeper = make_element ("avatardiffuse", NULL);
  fail_unless_equals_int (gst_element_set_state (keeper, GST_STATE_PAUSED),
      GST_STATE_CHANGE_SUCCESS);
}

static void
release_model (void)
{
  gst_element_set_state (keeper, GST_STATE_NULL);
  gst_clear_object (&keeper);
}

static GstHarness *
harness_new (const char *props, int w, int h)
{
  GstElement *e = make_element ("avatardiffuse", BASE_PROPS);
  GstHarness *hr;
  gchar *caps = rgb_caps_str (w, h);

  set_props (e, props);
  hr = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_use_testclock (hr);
  gst_harness_set_src_caps_str (hr, caps);
  g_free (caps);
  return hr;
}

static void
push_frames (GstHarness * h, int w, int hh, guint64 from, guint64 n)
{
  for (guint64 i = from; i < from + n; i++)
    fail_unless_equals_int (gst_harness_push (h, pose_frame_new (w, hh, i,
                i % 2 == 0)), GST_FLOW_OK);
}

/* The harness sink's current caps as latents info. */
static void
current_info (GstHarness * h, GstAvatarLatentsInfo * info)
{
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  const gchar *why = NULL;

  fail_unless (caps != NULL);
  gst_avatar_latents_info_init (info);
  fail_unless (gst_avatar_latents_info_from_caps (info, caps, &why), "%s",
      why);
  gst_caps_unref (caps);
}

/* Checks window k of a stream of n_frames frames whose first frame had
 * index frame0 in the input; returns its latents (g_free). */
static gfloat *
check_window (GstBuffer * buf, const GstAvatarLatentsInfo * info, gint64 k,
    gint64 n_frames, guint64 frame0)
{
  GstAvatarLatentsView view;
  GstMapInfo map;
  gchar why[256];
  gint64 first_f = k * S;
  gint len = (gint) MIN (W, n_frames - first_f);
  /* Flagged last when known to be last as it leaves: a shortened window
   * (a full one that ends the stream has left before EOS). */
  gboolean last = len < W;
  gpointer state = NULL;
  GstMeta *m;
  gint n_meta = 0, nonzero = 0;
  gfloat *copy;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  fail_unless (gst_avatar_latents_parse (map.data, map.size, info, &view,
          why, sizeof (why)), "%s", why);
  fail_unless_equals_int64 (view.header->window_index, k);
  fail_unless_equals_int64 (view.header->first_frame, first_f);
  fail_unless_equals_int (view.header->n_frames, len);
  fail_unless_equals_int (! !(view.header->flags &
          GST_AVATAR_LATENTS_FLAG_LAST), last);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (buf),
      (frame0 + first_f) * FRAME_DURATION);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (buf), len * FRAME_DURATION);
  for (gint i = 0; i < len; i++) {
    fail_unless_equals_uint64 (view.frames[i].pts,
        (frame0 + first_f + i) * FRAME_DURATION);
    fail_unless_equals_uint64 (view.frames[i].duration, FRAME_DURATION);
    fail_unless_equals_int (view.frames[i].meta_index, i);
  }
  while ((m = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_AVATAR_KEYPOINT_META_API_TYPE)) != NULL) {
    GstAvatarKeypointMeta *km = (GstAvatarKeypointMeta *) m;
    fail_unless_equals_uint64 (km->frame_number, frame0 + first_f + n_meta);
    fail_unless_equals_int (! !(km->frame.people[0].parts &
            AP_PART_HAND_LEFT), (frame0 + first_f + n_meta) % 2 == 0);
    n_meta++;
  }
  fail_unless_equals_int (n_meta, len);
  for (gsize i = 0; i < len * view.frame_floats; i++) {
    fail_unless (isfinite (view.latents[i]));
    nonzero += view.latents[i] != 0.0f;
  }
  fail_unless (nonzero > 0);
  copy = g_memdup2 (view.latents, len * view.frame_floats * sizeof (gfloat));
  gst_buffer_unmap (buf, &map);
  return copy;
}

static gint64
expected_windows (gint64 n)
{
  if (n == 0)
    return 0;
  if (n <= W)
    return 1;
  return 1 + (n - W + S - 1) / S;
}

GST_START_TEST (test_windows_and_timestamps)
{
  /* Multiples of S after the first window (4, 7, 10) and not (1, 3, 5, 8,
   * 9). */
  const gint64 lengths[] = { 1, 3, 4, 5, 7, 8, 9, 10 };

  keep_model ();
  for (guint t = 0; t < G_N_ELEMENTS (lengths); t++) {
    gint64 n = lengths[t];
    GstHarness *h = harness_new (NULL, 64, 64);
    GstAvatarLatentsInfo info;

    push_frames (h, 64, 64, 0, n);
    fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
    fail_unless_equals_int (gst_harness_buffers_received (h),
        expected_windows (n));
    current_info (h, &info);
    fail_unless_equals_int (info.channels, 4);
    fail_unless_equals_int (info.width, 8);
    fail_unless_equals_int (info.height, 8);
    fail_unless_equals_int (info.window, W);
    fail_unless_equals_int (info.overlap, O);
    fail_unless_equals_int (info.fusion, 0);
    fail_unless_equals_int (info.fps_n, 25);
    fail_unless (info.model != NULL && g_str_has_suffix (info.model,
            "avatar-default"));
    for (gint64 k = 0; k < expected_windows (n); k++) {
      GstBuffer *buf = gst_harness_pull (h);
      g_free (check_window (buf, &info, k, n, 0));
      gst_buffer_unref (buf);
    }
    gst_avatar_latents_info_clear (&info);
    gst_harness_teardown (h);
  }
  release_model ();
}

GST_END_TEST;

/* All latents of a run of n frames, windows back to back. */
static GByteArray *
run_latents (const char *props, gint64 n)
{
  GstHarness *h = harness_new (props, 64, 64);
  GByteArray *out = g_byte_array_new ();
  GstAvatarLatentsInfo info;

  push_frames (h, 64, 64, 0, n);
  gst_harness_push_event (h, gst_event_new_eos ());
  current_info (h, &info);
  for (gint64 k = 0; k < expected_windows (n); k++) {
    GstBuffer *buf = gst_harness_pull (h);
    gfloat *lat = check_window (buf, &info, k, n, 0);
    g_byte_array_append (out, (guint8 *) lat, gst_buffer_get_size (buf)
        - gst_avatar_latents_header_size (MIN (W, n - k * S)));
    g_free (lat);
    gst_buffer_unref (buf);
  }
  gst_avatar_latents_info_clear (&info);
  gst_harness_teardown (h);
  return out;
}

static gboolean
same_bytes (GByteArray * a, GByteArray * b)
{
  return a->len == b->len && memcmp (a->data, b->data, a->len) == 0;
}

GST_START_TEST (test_deterministic_and_switches)
{
  GByteArray *a, *b, *c, *d;

  keep_model ();
  a = run_latents ("seed=7", 5);
  b = run_latents ("seed=7", 5);
  c = run_latents ("seed=8", 5);
  d = run_latents ("seed=7 reference-attention=false hand-tokens=false "
      "fusion=uniform scheduler=euler guidance-scale=1.0", 5);
  fail_unless (same_bytes (a, b), "same seed, different latents");
  fail_if (same_bytes (a, c), "another seed, same latents");
  fail_unless_equals_int (a->len, d->len);
  fail_if (same_bytes (a, d), "the switches changed nothing");
  g_byte_array_unref (a);
  g_byte_array_unref (b);
  g_byte_array_unref (c);
  g_byte_array_unref (d);
  release_model ();
}

GST_END_TEST;

/* noise-correlation: a double 0..1, default 1, clamped outside; 0
 * (independent noise per frame) changes the latents, 1 is the default's. */
GST_START_TEST (test_noise_correlation)
{
  GstElement *e = make_element ("avatardiffuse", NULL);
  GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (e),
      "noise-correlation");
  GParamSpecDouble *pd;
  GValue v = G_VALUE_INIT;
  gdouble rho = -1.0;
  GByteArray *a, *b, *c;

  fail_unless (ps != NULL && G_IS_PARAM_SPEC_DOUBLE (ps));
  pd = G_PARAM_SPEC_DOUBLE (ps);
  fail_unless_equals_float (pd->default_value, 1.0);
  fail_unless_equals_float (pd->minimum, 0.0);
  fail_unless_equals_float (pd->maximum, 1.0);
  fail_unless (ps->flags & G_PARAM_WRITABLE);
  g_object_get (e, "noise-correlation", &rho, NULL);
  fail_unless_equals_float (rho, 1.0);
  g_object_set (e, "noise-correlation", 0.25, NULL);
  g_object_get (e, "noise-correlation", &rho, NULL);
  fail_unless_equals_float (rho, 0.25);
  /* out of range: GObject clamps to the range */
  g_value_init (&v, G_TYPE_DOUBLE);
  g_value_set_double (&v, 1.5);
  fail_unless (g_param_value_validate (ps, &v));
  fail_unless_equals_float (g_value_get_double (&v), 1.0);
  g_value_set_double (&v, -0.1);
  fail_unless (g_param_value_validate (ps, &v));
  fail_unless_equals_float (g_value_get_double (&v), 0.0);
  g_value_unset (&v);
  gst_object_unref (e);

  keep_model ();
  a = run_latents ("seed=7", 5);
  b = run_latents ("seed=7 noise-correlation=0", 5);
  c = run_latents ("seed=7 noise-correlation=1", 5);
  fail_unless_equals_int (a->len, b->len);
  fail_if (same_bytes (a, b), "noise-correlation=0 changed nothing");
  fail_unless (same_bytes (a, c), "noise-correlation=1 is not the default");
  g_byte_array_unref (a);
  g_byte_array_unref (b);
  g_byte_array_unref (c);
  release_model ();
}

GST_END_TEST;

/* strength: a double 0.01..1, default 1; 0.5 changes the latents, 1 is
 * the default's (errors: test_model_errors). */
GST_START_TEST (test_strength)
{
  GstElement *e = make_element ("avatardiffuse", NULL);
  GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (e),
      "strength");
  GByteArray *a, *b, *c;

  fail_unless (ps != NULL && G_IS_PARAM_SPEC_DOUBLE (ps));
  fail_unless_equals_float (G_PARAM_SPEC_DOUBLE (ps)->default_value, 1.0);
  fail_unless_equals_float (G_PARAM_SPEC_DOUBLE (ps)->minimum, 0.01);
  fail_unless_equals_float (G_PARAM_SPEC_DOUBLE (ps)->maximum, 1.0);
  gst_object_unref (e);

  keep_model ();
  a = run_latents ("seed=7 steps=4", 5);
  b = run_latents ("seed=7 steps=4 strength=0.5", 5);
  c = run_latents ("seed=7 steps=4 strength=1", 5);
  fail_unless_equals_int (a->len, b->len);
  fail_if (same_bytes (a, b), "strength=0.5 changed nothing");
  fail_unless (same_bytes (a, c), "strength=1 is not the default");
  g_byte_array_unref (a);
  g_byte_array_unref (b);
  g_byte_array_unref (c);
  release_model ();
}

GST_END_TEST;

/* Whether reference-concat=false changes the latents of a 5-frame run on
 * src's model with its unet widened or narrowed to in_channels. */
static gboolean
concat_off_changes_latents (const gchar * src, int in_channels)
{
  AeError err;
  gchar *dir = widen_model_new (src, in_channels, &err), *props;
  GByteArray *on, *off;
  gboolean changed;

  fail_unless (dir != NULL, "%s", err.msg);
  props = g_strdup_printf ("seed=7 model=%s", dir);
  on = run_latents (props, 5);
  g_free (props);
  props = g_strdup_printf ("seed=7 model=%s reference-concat=false", dir);
  off = run_latents (props, 5);
  g_free (props);
  fail_unless_equals_int (on->len, off->len);
  changed = !same_bytes (on, off);
  g_byte_array_unref (on);
  g_byte_array_unref (off);
  widen_model_remove (dir);
  return changed;
}

/* reference-concat: a boolean, default TRUE, settable; it reaches the
 * engine (on the bundled model widened to unet in_channels 8 it changes
 * the latents) and a model without the concat (in_channels 4: the bundled
 * one narrowed to its first 4 input channels) ignores it. */
GST_START_TEST (test_reference_concat)
{
  GstElement *e = make_element ("avatardiffuse", NULL);
  GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (e),
      "reference-concat");
  gboolean on = FALSE;
  gchar *src = avatar_model_dir ();

  fail_unless (ps != NULL && G_IS_PARAM_SPEC_BOOLEAN (ps));
  fail_unless (G_PARAM_SPEC_BOOLEAN (ps)->default_value == TRUE);
  fail_unless (ps->flags & G_PARAM_WRITABLE);
  g_object_get (e, "reference-concat", &on, NULL);
  fail_unless (on);
  g_object_set (e, "reference-concat", FALSE, NULL);
  g_object_get (e, "reference-concat", &on, NULL);
  fail_if (on);
  gst_object_unref (e);

  fail_if (concat_off_changes_latents (src, 4), "in_channels 4: "
      "reference-concat=false changed the latents");
  fail_unless (concat_off_changes_latents (src, 8), "in_channels 8: "
      "reference-concat=false changed nothing");
  g_free (src);
}

GST_END_TEST;

GST_START_TEST (test_lookahead)
{
  GstHarness *h;

  keep_model ();
  /* L = 2: windows 0 and 1 leave together once frame 6 (window 1's last)
   * arrived; window 2 (frames 6..9, shortened) at EOS. */
  h = harness_new ("lookahead=2", 64, 64);
  push_frames (h, 64, 64, 0, 6);
  fail_unless_equals_int (gst_harness_buffers_received (h), 0);
  push_frames (h, 64, 64, 6, 1);
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  push_frames (h, 64, 64, 7, 3);
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  gst_harness_push_event (h, gst_event_new_eos ());
  fail_unless_equals_int (gst_harness_buffers_received (h), 3);
  gst_harness_teardown (h);

  /* L = 0 (all): nothing leaves before EOS. */
  h = harness_new ("lookahead=0", 64, 64);
  push_frames (h, 64, 64, 0, 8);
  fail_unless_equals_int (gst_harness_buffers_received (h), 0);
  gst_harness_push_event (h, gst_event_new_eos ());
  fail_unless_equals_int (gst_harness_buffers_received (h), 3);
  gst_harness_teardown (h);
  release_model ();
}

GST_END_TEST;

GST_START_TEST (test_state_cycles)
{
  GstHarness *h;
  GByteArray *first_f = NULL;

  keep_model ();
  h = harness_new ("seed=3", 64, 64);
  for (int round = 0; round < 3; round++) {
    GByteArray *lat = g_byte_array_new ();
    GstAvatarLatentsInfo info;
    gchar *caps = rgb_caps_str (64, 64);
    GstSegment seg;

    if (round > 0) {
      fail_unless_equals_int (gst_element_set_state (h->element,
              GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
      fail_unless_equals_int (gst_element_set_state (h->element,
              GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
      gst_harness_push_event (h, gst_event_new_stream_start ("again"));
      gst_harness_set_src_caps_str (h, caps);
      gst_segment_init (&seg, GST_FORMAT_TIME);
      gst_harness_push_event (h, gst_event_new_segment (&seg));
    }
    g_free (caps);
    push_frames (h, 64, 64, 0, 5);
    gst_harness_push_event (h, gst_event_new_eos ());
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 2);
    current_info (h, &info);
    for (int k = 0; k < 2; k++) {
      GstBuffer *buf = gst_harness_pull (h);
      gfloat *l = check_window (buf, &info, k, 5, 0);
      g_byte_array_append (lat, (guint8 *) l,
          MIN (W, 5 - k * S) * 4 * 8 * 8 * sizeof (gfloat));
      g_free (l);
      gst_buffer_unref (buf);
    }
    gst_avatar_latents_info_clear (&info);
    /* Events the harness sink queued (EOS etc.) are not checked. */
    while (gst_harness_events_in_queue (h) > 0)
      gst_event_unref (gst_harness_pull_event (h));
    if (first_f == NULL)
      first_f = lat;
    else {
      fail_unless (same_bytes (first_f, lat), "round %d differs", round);
      g_byte_array_unref (lat);
    }
  }
  g_byte_array_unref (first_f);
  gst_harness_teardown (h);
  release_model ();
}

GST_END_TEST;

GST_START_TEST (test_renegotiation)
{
  GstHarness *h;
  GstAvatarLatentsInfo info;
  gchar *caps;

  keep_model ();
  h = harness_new (NULL, 64, 64);
  push_frames (h, 64, 64, 0, 5);
  fail_unless_equals_int (gst_harness_buffers_received (h), 1);

  /* A new size ends the first stream (window 1 = frames 3..4, last) and
   * starts another at frame 0 with 12x8 latents. */
  caps = rgb_caps_str (96, 64);
  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  push_frames (h, 96, 64, 5, 4);
  gst_harness_push_event (h, gst_event_new_eos ());
  fail_unless_equals_int (gst_harness_buffers_received (h), 3);

  {
    GstBuffer *b0 = gst_harness_pull (h), *b1 = gst_harness_pull (h), *b2;
    GstAvatarLatentsInfo old = { 0 };
    old.channels = 4;
    old.width = 8;
    old.height = 8;
    old.window = W;
    old.overlap = O;
    g_free (check_window (b0, &old, 0, 5, 0));
    g_free (check_window (b1, &old, 1, 5, 0));
    current_info (h, &info);
    fail_unless_equals_int (info.width, 12);
    fail_unless_equals_int (info.height, 8);
    b2 = gst_harness_pull (h);
    g_free (check_window (b2, &info, 0, 4, 5));
    gst_buffer_unref (b0);
    gst_buffer_unref (b1);
    gst_buffer_unref (b2);
  }
  gst_avatar_latents_info_clear (&info);
  gst_harness_teardown (h);
  release_model ();
}

GST_END_TEST;

GST_START_TEST (test_segment_drains)
{
  GstHarness *h;
  GstSegment seg;
  GstEvent *ev;

  keep_model ();
  h = harness_new (NULL, 64, 64);
  push_frames (h, 64, 64, 0, 5);
  fail_unless_equals_int (gst_harness_buffers_received (h), 1);
  while ((ev = gst_harness_try_pull_event (h)) != NULL)
    gst_event_unref (ev);
  /* A new segment: the held frames leave first, in the old one. */
  gst_segment_init (&seg, GST_FORMAT_TIME);
  seg.base = 10 * GST_SECOND;
  gst_harness_push_event (h, gst_event_new_segment (&seg));
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  ev = gst_harness_pull_event (h);
  fail_unless_equals_int (GST_EVENT_TYPE (ev), GST_EVENT_SEGMENT);
  gst_event_unref (ev);
  gst_harness_teardown (h);
  release_model ();
}

GST_END_TEST;

static GstClockTime
query_latency (GstHarness * h, gboolean * ok)
{
  GstQuery *q = gst_query_new_latency ();
  gboolean live = FALSE;
  GstClockTime min = 0;

  *ok = gst_pad_peer_query (h->sinkpad, q);
  if (*ok) {
    gst_query_parse_latency (q, &live, &min, NULL);
    fail_unless (live);
  }
  gst_query_unref (q);
  return min;
}

GST_START_TEST (test_latency)
{
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  gboolean ok;
  GstMessage *msg;

  keep_model ();
  /* window - 1 frames + the fixed processing latency + upstream's. */
  h = harness_new ("processing-latency=5000000", 64, 64);
  gst_harness_set_upstream_latency (h, 10 * GST_MSECOND);
  fail_unless_equals_uint64 (query_latency (h, &ok),
      10 * GST_MSECOND + (W - 1) * FRAME_DURATION + 5 * GST_MSECOND);
  fail_unless (ok);
  gst_harness_teardown (h);

  /* L = 2: L S + O - 1 = 6 frames. */
  h = harness_new ("processing-latency=0 lookahead=2", 64, 64);
  fail_unless_equals_uint64 (query_latency (h, &ok), 6 * FRAME_DURATION);
  gst_harness_teardown (h);

  /* Measured: the longest group is added once one has run, and a latency
   * message announces it. */
  h = harness_new (NULL, 64, 64);
  gst_element_set_bus (h->element, bus);
  fail_unless_equals_uint64 (query_latency (h, &ok), 3 * FRAME_DURATION);
  push_frames (h, 64, 64, 0, 4);
  fail_unless (query_latency (h, &ok) > 3 * FRAME_DURATION);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY);
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  gst_element_set_bus (h->element, NULL);
  gst_harness_teardown (h);

  /* lookahead=0 cannot be live: the query fails. */
  h = harness_new ("lookahead=0", 64, 64);
  query_latency (h, &ok);
  fail_if (ok);
  gst_harness_teardown (h);
  gst_object_unref (bus);
  release_model ();
}

GST_END_TEST;

GST_START_TEST (test_qos)
{
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  GstStructure *stats;
  guint64 dropped = 0, in = 0;
  GstMessage *msg;
  int n_qos = 0;

  keep_model ();
  /* The clock says 2 s: frames stamped 0..0.36 s are more than one stride
   * (3 frames) late in a live pipeline and are dropped, with QoS messages;
   * frames from 2 s on are kept. */
  h = harness_new (NULL, 64, 64);
  gst_element_set_bus (h->element, bus);
  gst_test_clock_set_time (gst_harness_get_testclock (h), 2 * GST_SECOND);
  push_frames (h, 64, 64, 0, 10);
  push_frames (h, 64, 64, 50, 5);
  gst_harness_push_event (h, gst_event_new_eos ());
  g_object_get (h->element, "stats", &stats, NULL);
  gst_structure_get_uint64 (stats, "qos-dropped", &dropped);
  gst_structure_get_uint64 (stats, "frames-in", &in);
  gst_structure_free (stats);
  fail_unless_equals_uint64 (dropped, 10);
  fail_unless_equals_uint64 (in, 15);
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_QOS)) != NULL) {
    GstFormat fmt;
    guint64 processed, drop;
    gst_message_parse_qos_stats (msg, &fmt, &processed, &drop);
    fail_unless_equals_int (fmt, GST_FORMAT_BUFFERS);
    fail_unless_equals_uint64 (drop, ++n_qos);
    gst_message_unref (msg);
  }
  fail_unless_equals_int (n_qos, 10);
  /* The 5 kept frames: windows 0..3 and 3..4. */
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  {
    GstBuffer *buf = gst_harness_pull (h);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), 50 * FRAME_DURATION);
    gst_buffer_unref (buf);
  }
  gst_element_set_bus (h->element, NULL);
  gst_harness_teardown (h);

  /* qos=false: late frames are all denoised. */
  h = harness_new ("qos=false", 64, 64);
  gst_test_clock_set_time (gst_harness_get_testclock (h), 2 * GST_SECOND);
  push_frames (h, 64, 64, 0, 5);
  gst_harness_push_event (h, gst_event_new_eos ());
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  gst_harness_teardown (h);
  gst_object_unref (bus);
  release_model ();
}

GST_END_TEST;

GST_START_TEST (test_progress)
{
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  int n = 0, last_steps = 0;

  keep_model ();
  h = harness_new ("steps=2 progress-interval=0", 64, 64);
  gst_element_set_bus (h->element, bus);
  push_frames (h, 64, 64, 0, 5);
  gst_harness_push_event (h, gst_event_new_eos ());
  /* 2 windows of 1 group each, 2 steps: 4 messages. */
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT)) != NULL) {
    const GstStructure *s = gst_message_get_structure (msg);
    gint step, steps, windows;
    gint64 first_f;
    if (gst_structure_has_name (s, "avatardiffuse-progress")) {
      fail_unless (gst_structure_get (s, "step", G_TYPE_INT, &step,
              "steps", G_TYPE_INT, &steps, "windows", G_TYPE_INT, &windows,
              "first-window", G_TYPE_INT64, &first_f, NULL));
      fail_unless_equals_int (steps, 2);
      fail_unless_equals_int (step, n % 2 + 1);
      fail_unless_equals_int64 (first_f, n / 2);
      fail_unless_equals_int (windows, 1);
      fail_unless (gst_structure_has_field (s, "frames-per-second"));
      last_steps = step;
      n++;
    }
    gst_message_unref (msg);
  }
  fail_unless_equals_int (n, 4);
  fail_unless_equals_int (last_steps, 2);
  gst_element_set_bus (h->element, NULL);
  gst_harness_teardown (h);
  gst_object_unref (bus);
  release_model ();
}

GST_END_TEST;

GST_START_TEST (test_wrong_caps)
{
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  gchar *text = NULL;

  keep_model ();
  /* Not RGB: refused by the pad. */
  h = harness_new (NULL, 64, 64);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=64,"
      "height=64,framerate=25/1");
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_allocate (NULL,
              64 * 64, NULL)), GST_FLOW_NOT_NEGOTIATED);
  gst_harness_teardown (h);

  /* RGB of a size the model cannot take: an error naming size and
   * model. */
  h = harness_new (NULL, 64, 64);
  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=100,"
      "height=64,framerate=25/1");
  fail_unless (gst_harness_push (h, gst_buffer_new_allocate (NULL,
              100 * 64 * 3, NULL)) != GST_FLOW_OK);
  fail_unless (bus_pop_error (bus, &text));
  fail_unless (strstr (text, "100x64") != NULL, "%s", text);
  fail_unless (strstr (text, "multiple of 32") != NULL, "%s", text);
  fail_unless (strstr (text, "avatar-default") != NULL, "%s", text);
  g_free (text);
  gst_element_set_bus (h->element, NULL);
  gst_harness_teardown (h);

  /* A buffer too small for its caps: an error, no crash. Frames without
   * a keypoint meta are fine (hands missing). */
  gst_bus_set_flushing (bus, TRUE);
  gst_bus_set_flushing (bus, FALSE);
  h = harness_new (NULL, 64, 64);
  gst_element_set_bus (h->element, bus);
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_allocate (NULL,
              100, NULL)), GST_FLOW_ERROR);
  fail_unless (bus_pop_error (bus, &text));
  fail_unless (strstr (text, "64x64") != NULL, "%s", text);
  g_free (text);
  gst_element_set_bus (h->element, NULL);
  gst_harness_teardown (h);
  h = harness_new (NULL, 64, 64);
  for (int i = 0; i < 4; i++) {
    GstBuffer *buf = gst_buffer_new_allocate (NULL, 64 * 64 * 3, NULL);
    gst_buffer_memset (buf, 0, i * 40, 64 * 64 * 3);
    GST_BUFFER_PTS (buf) = i * FRAME_DURATION;
    fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
  }
  fail_unless_equals_int (gst_harness_buffers_received (h), 1);
  gst_harness_teardown (h);

  /* The caps query offers multiples of 32 only. */
  h = harness_new (NULL, 64, 64);
  {
    GstCaps *caps = gst_pad_peer_query_caps (h->srcpad, NULL);
    GstCaps *bad = gst_caps_from_string ("video/x-raw,format=RGB,width=100,"
        "height=64");
    GstCaps *good = gst_caps_from_string ("video/x-raw,format=RGB,width=96,"
        "height=64");
    gint w = 0;
    fail_if (gst_caps_can_intersect (caps, bad));
    fail_unless (gst_caps_can_intersect (caps, good));
    /* The model's native size comes first. */
    fail_unless (gst_structure_get_int (gst_caps_get_structure (caps, 0),
            "width", &w));
    fail_unless_equals_int (w, 256);
    gst_caps_unref (caps);
    gst_caps_unref (bad);
    gst_caps_unref (good);
  }
  gst_harness_teardown (h);
  gst_object_unref (bus);
  release_model ();
}

GST_END_TEST;

static void
expect_start_error (const char *props, const char *needle)
{
  GstElement *e = make_element ("avatardiffuse", BASE_PROPS);
  gchar *text;

  set_props (e, props);
  text = start_expect_error (e);
  fail_unless (strstr (text, needle) != NULL, "'%s' not in: %s", needle,
      text);
  g_free (text);
  gst_object_unref (e);
}

GST_START_TEST (test_model_errors)
{
  gchar *dir, *props;

  expect_start_error ("model=/nonexistent/avatar-model",
      "/nonexistent/avatar-model");

  /* A truncated UNet, a garbage VAE config: the file is named. */
  dir = model_copy ("unet/diffusion_pytorch_model.safetensors", 1000);
  props = g_strdup_printf ("model=%s", dir);
  expect_start_error (props, "unet/diffusion_pytorch_model.safetensors");
  g_free (props);
  rm_tree (dir);
  g_free (dir);

  dir = model_copy ("vae/config.json", 0);
  props = g_strdup_printf ("model=%s", dir);
  expect_start_error (props, "vae/config.json");
  g_free (props);
  rm_tree (dir);
  g_free (dir);

  /* no Vulkan driver: device=vulkan is an error naming what is missing */
  g_setenv ("VK_ICD_FILENAMES", "/nonexistent.json", TRUE);
  g_setenv ("VK_DRIVER_FILES", "/nonexistent.json", TRUE);
  expect_start_error ("device=vulkan", "device=vulkan: vulkan: ");
  g_unsetenv ("VK_ICD_FILENAMES");
  g_unsetenv ("VK_DRIVER_FILES");
  expect_start_error ("window=4 overlap=4", "overlap");
  expect_start_error ("strength=0.5 reference-init=false", "strength 0.5 "
      "needs reference-init");
  expect_start_error ("steps=2 strength=0.1", "leaves none of the 2 steps");
}

GST_END_TEST;

GST_START_TEST (test_reference_errors)
{
  gchar *dir = g_dir_make_tmp ("avatar-ref-XXXXXX", NULL);
  gchar *bad = g_build_filename (dir, "bad.png", NULL);
  gchar *missing = g_build_filename (dir, "missing.png", NULL);
  gchar *props;

  keep_model ();
  fail_unless (g_file_set_contents (bad, "\x89PNG\r\n\x1a\n garbage", -1,
          NULL));
  props = g_strdup_printf ("reference=%s", bad);
  expect_start_error (props, bad);
  g_free (props);
  props = g_strdup_printf ("reference=%s", missing);
  expect_start_error (props, missing);
  g_free (props);
  rm_tree (dir);
  g_free (bad);
  g_free (missing);
  g_free (dir);
  release_model ();
}

GST_END_TEST;

static Suite *
avatardiffuse_suite (void)
{
  Suite *s = suite_create ("avatardiffuse");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_windows_and_timestamps);
  tcase_add_test (tc, test_deterministic_and_switches);
  tcase_add_test (tc, test_noise_correlation);
  tcase_add_test (tc, test_strength);
  tcase_add_test (tc, test_reference_concat);
  tcase_add_test (tc, test_lookahead);
  tcase_add_test (tc, test_state_cycles);
  tcase_add_test (tc, test_renegotiation);
  tcase_add_test (tc, test_segment_drains);
  tcase_add_test (tc, test_latency);
  tcase_add_test (tc, test_qos);
  tcase_add_test (tc, test_progress);
  tcase_add_test (tc, test_wrong_caps);
  tcase_add_test (tc, test_model_errors);
  tcase_add_test (tc, test_reference_errors);
  return s;
}

GST_CHECK_MAIN (avatardiffuse);
