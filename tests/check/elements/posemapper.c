/* posemapper: frames in = frames out, timestamps, caps, keep-aspect, the
 * keypoint meta, warnings and stats, datagrams, flushing, and real
 * transports (filesrc, UDP and TCP on loopback). */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/net/gstnetaddressmeta.h>
#include <gst/video/video.h>
#include <gio/gio.h>
#include <string.h>

#include "avatar-pose.h"
#include "gstkeypointmeta.h"

static char *
data_path (const char *name)
{
  const char *src = g_getenv ("AVATAR_SOURCE_DIR");
  return g_build_filename (src ? src : SOURCE_DIR, "tests", "pose", "data",
      name, NULL);
}

static char *
read_data (const char *name, gsize * len)
{
  char *path = data_path (name), *text;
  fail_unless (g_file_get_contents (path, &text, len, NULL), "read %s", path);
  g_free (path);
  return text;
}

static GstHarness *
harness_new (const char *props)
{
  GstElement *e = gst_element_factory_make ("posemapper", NULL);
  char **pairs = g_strsplit (props ? props : "", " ", -1);
  GstHarness *h;

  /* "name=value name=value", set before the harness starts the element
   * (some are only read on the way to PAUSED). */
  fail_unless (e != NULL);
  for (char **p = pairs; *p; p++) {
    char *eq = strchr (*p, '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    gst_util_set_object_arg (G_OBJECT (e), *p, eq + 1);
  }
  g_strfreev (pairs);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, "application/x-openpose-json");
  return h;
}

/* Pushes text in pieces of 1..max bytes. */
static void
push_text (GstHarness * h, const char *text, gsize len, gsize max, GRand * r)
{
  for (gsize off = 0; off < len;) {
    gsize n = MIN (len - off, (gsize) g_rand_int_range (r, 1, max + 1));
    fail_unless_equals_int (gst_harness_push (h,
            gst_buffer_new_memdup (text + off, n)), GST_FLOW_OK);
    off += n;
  }
}

static GstStructure *
get_stats (GstHarness * h)
{
  GstStructure *s = NULL;
  g_object_get (h->element, "stats", &s, NULL);
  fail_unless (s != NULL);
  return s;
}

static guint64
stat (GstHarness * h, const char *name)
{
  GstStructure *s = get_stats (h);
  guint64 v = 0;
  fail_unless (gst_structure_get_uint64 (s, name, &v), "no %s", name);
  gst_structure_free (s);
  return v;
}

GST_START_TEST (test_frames_in_out)
{
  GstHarness *h = harness_new (NULL);
  GRand *r = g_rand_new_with_seed (1);
  gsize len;
  char *text = read_data ("talk.jsonl", &len);
  GstCaps *caps;
  GstVideoInfo info;

  push_text (h, text, len, 300, r);
  gst_harness_push_event (h, gst_event_new_eos ());
  fail_unless_equals_int (gst_harness_buffers_received (h), 10);

  /* Downstream left the size open: the first frame's canvas. */
  caps = gst_pad_get_current_caps (h->sinkpad);
  fail_unless (gst_video_info_from_caps (&info, caps));
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info), 320);
  fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&info), 240);
  fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&info),
      GST_VIDEO_FORMAT_RGB);
  fail_unless_equals_int (GST_VIDEO_INFO_FPS_N (&info), 25);
  gst_caps_unref (caps);

  for (int n = 0; n < 10; n++) {
    GstBuffer *buf = gst_harness_pull (h);
    GstAvatarKeypointMeta *meta = gst_buffer_get_avatar_keypoint_meta (buf);
    GstBuffer *copy;
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), n * GST_SECOND / 25);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (buf), GST_SECOND / 25);
    fail_unless_equals_int (gst_buffer_get_size (buf),
        GST_VIDEO_INFO_SIZE (&info));
    fail_unless (meta != NULL);
    fail_unless_equals_int (meta->frame.n_people, 1);
    fail_unless_equals_int (meta->frame.canvas_width, 320);
    fail_unless_equals_int (meta->source_width, 320);
    fail_unless_equals_uint64 (meta->frame_number, n);
    /* Hands only on even frames (see tests/pose/data). */
    fail_unless_equals_int (! !(meta->frame.people[0].parts
            & AP_PART_HAND_LEFT), n % 2 == 0);
    copy = gst_buffer_copy (buf);
    fail_unless (gst_buffer_get_avatar_keypoint_meta (copy) != NULL);
    fail_unless (memcmp (&gst_buffer_get_avatar_keypoint_meta (copy)->frame,
            &meta->frame, sizeof (ApFrame)) == 0);
    gst_buffer_unref (copy);
    gst_buffer_unref (buf);
  }
  fail_unless_equals_uint64 (stat (h, "frames-in"), 10);
  fail_unless_equals_uint64 (stat (h, "frames-out"), 10);
  fail_unless_equals_uint64 (stat (h, "dropped"), 0);
  g_free (text);
  g_rand_free (r);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_framerate_and_time)
{
  GstHarness *h = harness_new ("framerate=30000/1001");
  gsize len;
  char *text = read_data ("talk.jsonl", &len);
  const GstClockTime times[4] = { 0, GST_SECOND / 2, 3 * GST_SECOND / 4,
    2 * GST_SECOND
  };
  GstCaps *caps;
  GstStructure *s;
  gint n, d;

  gst_harness_push (h, gst_buffer_new_memdup (text, len));
  fail_unless_equals_int (gst_harness_buffers_received (h), 10);
  caps = gst_pad_get_current_caps (h->sinkpad);
  s = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_get_fraction (s, "framerate", &n, &d));
  fail_unless_equals_int (n, 30000);
  fail_unless_equals_int (d, 1001);
  gst_caps_unref (caps);
  for (int i = 0; i < 10; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf),
        gst_util_uint64_scale (i, 1001 * GST_SECOND, 30000));
    gst_buffer_unref (buf);
  }
  gst_harness_teardown (h);
  g_free (text);

  /* "time" overrides the framerate. */
  h = harness_new (NULL);
  text = read_data ("timed.jsonl", &len);
  gst_harness_push (h, gst_buffer_new_memdup (text, len));
  fail_unless_equals_int (gst_harness_buffers_received (h), 4);
  for (int i = 0; i < 4; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), times[i]);
    fail_unless (GST_BUFFER_DURATION_IS_VALID (buf));
    fail_unless_equals_int (gst_buffer_get_avatar_keypoint_meta
        (buf)->frame.has_time, 1);
    gst_buffer_unref (buf);
  }
  gst_harness_teardown (h);
  g_free (text);
}

GST_END_TEST;

/* Output size fixed by downstream: the canvas is mapped onto it. */
static GstBuffer *
run_one_frame (const char *props, const char *sink_caps)
{
  GstHarness *h = harness_new (props);
  gsize len;
  char *text = read_data ("talk.jsonl", &len);
  char *nl = strchr (text, '\n');
  GstBuffer *buf;

  gst_harness_set_sink_caps_str (h, sink_caps);
  gst_harness_push (h, gst_buffer_new_memdup (text, nl - text + 1));
  buf = gst_harness_pull (h);
  gst_harness_teardown (h);
  g_free (text);
  return buf;
}

GST_START_TEST (test_negotiated_size)
{
  GstBuffer *stretch = run_one_frame (NULL,
      "video/x-raw,format=RGB,width=160,height=200");
  GstBuffer *raw = run_one_frame (NULL, "video/x-raw,format=RGB");
  GstAvatarKeypointMeta *ms = gst_buffer_get_avatar_keypoint_meta (stretch);
  GstAvatarKeypointMeta *mr = gst_buffer_get_avatar_keypoint_meta (raw);

  fail_unless_equals_int (gst_buffer_get_size (stretch), 160 * 3 * 200);
  fail_unless_equals_int (ms->frame.canvas_width, 160);
  fail_unless_equals_int (ms->frame.canvas_height, 200);
  fail_unless_equals_int (ms->source_width, 320);
  fail_unless_equals_int (ms->source_height, 240);
  for (int i = 0; i < AP_BODY_N; i++) {
    ApPoint *p = &ms->frame.people[0].body[i], *q = &mr->frame.people[0].body[i];
    fail_unless (fabsf (p->x - q->x * 0.5f) < 1e-3f);
    fail_unless (fabsf (p->y - q->y * 200.0f / 240.0f) < 1e-3f);
  }
  gst_buffer_unref (stretch);
  gst_buffer_unref (raw);
}

GST_END_TEST;

GST_START_TEST (test_keep_aspect)
{
  GstBuffer *buf = run_one_frame ("keep-aspect=true",
      "video/x-raw,format=RGB,width=200,height=200");
  GstBuffer *raw = run_one_frame (NULL, "video/x-raw,format=RGB");
  GstAvatarKeypointMeta *m = gst_buffer_get_avatar_keypoint_meta (buf);
  GstAvatarKeypointMeta *mr = gst_buffer_get_avatar_keypoint_meta (raw);
  GstMapInfo map;
  gboolean bands_black = TRUE, any_pixel = FALSE;

  /* 320x240 into 200x200: scale 0.625, 25-row bands above and below. */
  for (int i = 0; i < AP_BODY_N; i++) {
    ApPoint *p = &m->frame.people[0].body[i], *q = &mr->frame.people[0].body[i];
    fail_unless (fabsf (p->x - q->x * 0.625f) < 1e-3f);
    fail_unless (fabsf (p->y - (q->y * 0.625f + 25.0f)) < 1e-3f);
  }
  gst_buffer_map (buf, &map, GST_MAP_READ);
  for (gsize i = 0; i < map.size; i++) {
    gsize row = i / (200 * 3);
    if ((row < 25 || row >= 175) && map.data[i] != 0)
      bands_black = FALSE;
    any_pixel |= map.data[i] != 0;
  }
  gst_buffer_unmap (buf, &map);
  fail_unless (bands_black);
#ifdef AP_HAVE_DRAW
  fail_unless (any_pixel, "nothing drawn");
#else
  (void) any_pixel;
#endif
  gst_buffer_unref (buf);
  gst_buffer_unref (raw);
}

GST_END_TEST;

/* Collects the element's warnings. */
static GPtrArray *
take_warnings (GstBus * bus)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING))) {
    GError *err = NULL;
    char *debug = NULL;
    gst_message_parse_warning (msg, &err, &debug);
    g_ptr_array_add (out, g_strdup_printf ("%s | %s", err->message, debug));
    g_error_free (err);
    g_free (debug);
    gst_message_unref (msg);
  }
  return out;
}

static gboolean
has_warning (GPtrArray * w, const char *a, const char *b)
{
  for (guint i = 0; i < w->len; i++)
    if (strstr (w->pdata[i], a) && (!b || strstr (w->pdata[i], b)))
      return TRUE;
  for (guint i = 0; i < w->len; i++)
    g_printerr ("  warning: %s\n", (char *) w->pdata[i]);
  return FALSE;
}

GST_START_TEST (test_bad_input_warnings)
{
  GstHarness *h = harness_new ("max-line-bytes=2048");
  GstBus *bus = gst_bus_new ();
  GString *s = g_string_new ("");
  GPtrArray *w;

  gst_element_set_bus (h->element, bus);
  g_string_append (s, "{\"canvas_width\":64,\"canvas_height\":64,"
      "\"people\":[]}\n");                                    /* 1 ok */
  g_string_append (s, "{\"people\": [}\n");                   /* 2 malformed */
  g_string_append (s, "{\"people\":[{\"pose_keypoints_2d\":[1,2,3]}]}\n");
  /* 3: wrong length, kept */
  g_string_append (s, "{\"canvas_width\":64}\n");             /* 4 no people */
  g_string_append (s, "\x01\x02garbage\xff\n");               /* 5 garbage */
  g_string_append (s, "{\"people\":[],\"pad\":\"");           /* 6 too long */
  for (int i = 0; i < 5000; i++)
    g_string_append_c (s, 'x');
  g_string_append (s, "\"}\n");
  g_string_append (s, "{\"people\":[{\"pose_keypoints_2d\":[");
  for (int i = 0; i < AP_BODY_N; i++)
    g_string_append_printf (s, "%s%s,5,0.9", i ? "," : "",
        i == 3 ? "1e999" : "5");
  g_string_append (s, "]}]}\n");                              /* 7 inf */
  g_string_append (s, "{\"people\":[{\"pose_keypoints_2d\":");/* 8 truncated */

  gst_harness_push (h, gst_buffer_new_memdup (s->str, s->len));
  gst_harness_push_event (h, gst_event_new_eos ());

  fail_unless_equals_int (gst_harness_buffers_received (h), 3);
  fail_unless_equals_uint64 (stat (h, "frames-in"), 8);
  fail_unless_equals_uint64 (stat (h, "frames-out"), 3);
  fail_unless_equals_uint64 (stat (h, "dropped"), 5);
  fail_unless_equals_uint64 (stat (h, "parts-missing-by-error"), 2);
  /* 5 drops, 2 bad parts, line 3's missing canvas. */
  fail_unless_equals_uint64 (stat (h, "issues"), 8);
  fail_unless_equals_uint64 (stat (h, "bytes-in"), s->len);

  w = take_warnings (bus);
  fail_unless_equals_int (w->len, 7);
  fail_unless (has_warning (w, "dropped: line 2", "closes"));
  fail_unless (has_warning (w, "missing: line 3",
          "line 3, people[0].pose_keypoints_2d: has 3 numbers"));
  fail_unless (has_warning (w, "dropped: line 4, people", NULL));
  fail_unless (has_warning (w, "dropped: line 5", "outside a JSON object"));
  fail_unless (has_warning (w, "dropped: line 6", "longer than 2048"));
  fail_unless (has_warning (w, "line 7, people[0].pose_keypoints_2d[9]",
          "non-finite"));
  fail_unless (has_warning (w, "dropped: line 8", "end of the stream"));
  g_ptr_array_unref (w);

  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  g_string_free (s, TRUE);
  gst_harness_teardown (h);
}

GST_END_TEST;

static const char dgram[] = "{\"canvas_width\":32,\"canvas_height\":16,"
    "\"people\":[]}";

GST_START_TEST (test_datagrams)
{
  GstHarness *h = harness_new ("framing=datagram");
  GstBus *bus = gst_bus_new ();
  GPtrArray *w;

  gst_element_set_bus (h->element, bus);
  gst_harness_push (h, gst_buffer_new_memdup (dgram, strlen (dgram)));
  /* Half an object is a broken datagram, not the start of a stream. */
  gst_harness_push (h, gst_buffer_new_memdup (dgram, 10));
  gst_harness_push (h, gst_buffer_new_memdup (dgram + 10,
          strlen (dgram) - 10));
  gst_harness_push (h, gst_buffer_new_memdup (dgram, strlen (dgram)));
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  fail_unless_equals_uint64 (stat (h, "datagrams-in"), 4);
  fail_unless_equals_uint64 (stat (h, "dropped"), 2);
  w = take_warnings (bus);
  fail_unless (has_warning (w, "datagram 2", NULL));
  fail_unless (has_warning (w, "datagram 3", NULL));
  g_ptr_array_unref (w);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);

  /* framing=auto: a buffer with a network address is a datagram. */
  h = harness_new (NULL);
  for (int i = 0; i < 3; i++) {
    GstBuffer *buf = gst_buffer_new_memdup (dgram, 20);
    GInetAddress *ia = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
    GSocketAddress *sa = g_inet_socket_address_new (ia, 5000);
    if (i != 1)
      gst_buffer_add_net_address_meta (buf, sa);
    gst_harness_push (h, buf);
    g_object_unref (sa);
    g_object_unref (ia);
  }
  /* Datagram 1 and 3 are cut (dropped at once); the plain buffer waits
   * as the start of a stream object. */
  fail_unless_equals_uint64 (stat (h, "datagrams-in"), 2);
  fail_unless_equals_uint64 (stat (h, "dropped"), 2);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_flush)
{
  GstHarness *h = harness_new (NULL);
  char *line = g_strdup_printf ("%s\n", dgram);
  GstBuffer *buf;

  gst_harness_push (h, gst_buffer_new_memdup (line, strlen (line)));
  gst_harness_push (h, gst_buffer_new_memdup (line, strlen (line)));
  gst_harness_push (h, gst_buffer_new_memdup (line, 15));
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  gst_buffer_unref (gst_harness_pull (h));
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  {
    GstSegment seg;
    gst_segment_init (&seg, GST_FORMAT_BYTES);
    fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
  }
  /* The half object is forgotten; numbering and time start again. */
  gst_harness_push (h, gst_buffer_new_memdup (line, strlen (line)));
  buf = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), 0);
  fail_unless_equals_uint64 (stat (h, "dropped"), 0);
  gst_buffer_unref (buf);
  g_free (line);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Runs a pipeline ending in "appsink name=out" to EOS; returns the
 * number of buffers and checks each has the meta. */
static int
run_to_eos (GstElement * pipe, int *n_warnings)
{
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "out");
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *msg;
  int n = 0;

  *n_warnings = 0;
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);
  for (;;) {
    GstSample *sample = NULL;
    g_signal_emit_by_name (sink, "try-pull-sample", 20 * GST_SECOND, &sample);
    if (sample == NULL)
      break;
    fail_unless (gst_buffer_get_avatar_keypoint_meta (gst_sample_get_buffer
            (sample)) != NULL);
    gst_sample_unref (sample);
    n++;
  }
  while ((msg = gst_bus_pop (bus))) {
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING)
      (*n_warnings)++;
    fail_if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR);
    gst_message_unref (msg);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (sink);
  return n;
}

GST_START_TEST (test_filesrc_pretty)
{
  char *path = data_path ("pretty.json");
  char *desc = g_strdup_printf ("filesrc location=\"%s\" blocksize=100 ! "
      "posemapper people=all ! appsink name=out sync=false", path);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  int warnings;

  fail_unless (pipe != NULL);
  fail_unless_equals_int (run_to_eos (pipe, &warnings), 3);
  fail_unless_equals_int (warnings, 0);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (path);
}

GST_END_TEST;

GST_START_TEST (test_filesrc_realpose)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  const char *sets[] = { "echomimicv2_gesture_good",
    "openposer_dgs_psychologie"
  };
  const int frames[] = { 102, 157 };

  for (guint i = 0; i < G_N_ELEMENTS (sets); i++) {
    char *path = g_build_filename (shared ? shared : "/nonexistent",
        "realpose", sets[i], "frames.jsonl", NULL);
    char *desc;
    GstElement *pipe;
    int warnings;

    if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
      g_print ("skipped: %s is absent\n", path);
      g_free (path);
      continue;
    }
    desc = g_strdup_printf ("filesrc location=\"%s\" ! posemapper ! "
        "video/x-raw,width=128,height=128 ! appsink name=out sync=false",
        path);
    pipe = gst_parse_launch (desc, NULL);
    fail_unless_equals_int (run_to_eos (pipe, &warnings), frames[i]);
    fail_unless_equals_int (warnings, 0);
    gst_object_unref (pipe);
    g_free (desc);
    g_free (path);
  }
}

GST_END_TEST;

/* udpsink -> udpsrc on loopback: one frame per datagram. */
GST_START_TEST (test_udp_loopback)
{
  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
      G_SOCKET_PROTOCOL_UDP, NULL);
  GInetAddress *lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  GSocketAddress *addr = g_inet_socket_address_new (lo, 0), *bound;
  GstElement *rx, *tx, *src, *appsrc, *sink;
  guint16 port;
  char *desc;
  int received = 0;
  GstClockTime first_pts = 0;

  fail_unless (g_socket_bind (sock, addr, TRUE, NULL));
  bound = g_socket_get_local_address (sock, NULL);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));

  rx = gst_parse_launch ("udpsrc name=src ! posemapper name=pm ! "
      "appsink name=out sync=false", NULL);
  src = gst_bin_get_by_name (GST_BIN (rx), "src");
  g_object_set (src, "socket", sock, NULL);
  desc = g_strdup_printf ("appsrc name=in format=time ! udpsink "
      "host=127.0.0.1 port=%u sync=false", port);
  tx = gst_parse_launch (desc, NULL);
  appsrc = gst_bin_get_by_name (GST_BIN (tx), "in");
  sink = gst_bin_get_by_name (GST_BIN (rx), "out");
  fail_unless (gst_element_set_state (rx, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);
  fail_unless (gst_element_set_state (tx, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);

  /* Frames 0..4, with a broken datagram in between. */
  for (int i = 0; i < 6; i++) {
    GstBuffer *buf = i == 3 ? gst_buffer_new_memdup ("{\"people\":", 10) :
        gst_buffer_new_memdup (dgram, strlen (dgram));
    GstFlowReturn ret;
    g_signal_emit_by_name (appsrc, "push-buffer", buf, &ret);
    gst_buffer_unref (buf);
    fail_unless_equals_int (ret, GST_FLOW_OK);
  }
  while (received < 5) {
    GstSample *sample = NULL;
    GstBuffer *buf;
    g_signal_emit_by_name (sink, "try-pull-sample", 10 * GST_SECOND, &sample);
    fail_unless (sample != NULL, "only %d frames came", received);
    buf = gst_sample_get_buffer (sample);
    fail_unless (gst_buffer_get_avatar_keypoint_meta (buf) != NULL);
    /* Live: counted from the first datagram's running time, 25 fps. */
    if (received == 0)
      first_pts = GST_BUFFER_PTS (buf);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf) - first_pts,
        received * GST_SECOND / 25);
    gst_sample_unref (sample);
    received++;
  }
  {
    GstElement *pm = gst_bin_get_by_name (GST_BIN (rx), "pm");
    GstStructure *s;
    guint64 dropped = 0, datagrams = 0;
    g_object_get (pm, "stats", &s, NULL);
    gst_structure_get_uint64 (s, "dropped", &dropped);
    gst_structure_get_uint64 (s, "datagrams-in", &datagrams);
    fail_unless_equals_uint64 (dropped, 1);
    fail_unless_equals_uint64 (datagrams, 6);
    gst_structure_free (s);
    gst_object_unref (pm);
  }
  gst_element_set_state (tx, GST_STATE_NULL);
  gst_element_set_state (rx, GST_STATE_NULL);
  gst_object_unref (appsrc);
  gst_object_unref (sink);
  gst_object_unref (src);
  gst_object_unref (tx);
  gst_object_unref (rx);
  g_free (desc);
  g_object_unref (bound);
  g_object_unref (addr);
  g_object_unref (lo);
  g_object_unref (sock);
}

GST_END_TEST;

/* tcpclientsrc reads a stream we serve from a socket opened here, written
 * in pieces that cut objects in half. */
GST_START_TEST (test_tcp_loopback)
{
  GSocketListener *listener = g_socket_listener_new ();
  GSocketConnection *conn;
  GOutputStream *out;
  GstElement *pipe;
  guint16 port;
  char *desc, *text;
  gsize len;
  int warnings;
  GstElement *sink;
  int n = 0;

  port = g_socket_listener_add_any_inet_port (listener, NULL, NULL);
  fail_unless (port != 0);
  desc = g_strdup_printf ("tcpclientsrc host=127.0.0.1 port=%u ! "
      "posemapper ! appsink name=out sync=false", port);
  pipe = gst_parse_launch (desc, NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipe), "out");
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);
  conn = g_socket_listener_accept (listener, NULL, NULL, NULL);
  fail_unless (conn != NULL);
  out = g_io_stream_get_output_stream (G_IO_STREAM (conn));
  text = read_data ("talk.jsonl", &len);
  for (gsize off = 0; off < len; off += 777)
    fail_unless (g_output_stream_write_all (out, text + off,
            MIN (777, len - off), NULL, NULL, NULL));
  g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);

  for (;;) {
    GstSample *sample = NULL;
    g_signal_emit_by_name (sink, "try-pull-sample", 10 * GST_SECOND, &sample);
    if (sample == NULL)
      break;
    gst_sample_unref (sample);
    n++;
  }
  fail_unless_equals_int (n, 10);
  (void) warnings;
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  g_object_unref (conn);
  g_object_unref (listener);
  g_free (desc);
  g_free (text);
}

GST_END_TEST;

/* The element draws exactly what ap_draw draws for the same frame, style,
 * size and keep-aspect: the stride, style and mapping are passed right. */
GST_START_TEST (test_pixels_are_ap_draw)
{
#ifdef AP_HAVE_DRAW
  const char *props[3] = { "style=dwpose", "style=mimicmotion",
    "style=dwpose keep-aspect=true"
  };
  gsize len;
  char *text = read_data ("talk.jsonl", &len);
  char *nl = strchr (text, '\n');
  ApFrame frame;
  ApIssues issues;

  fail_unless_equals_int (ap_frame_from_json (text, nl - text, 1, &frame,
          &issues), AP_FRAME);
  for (int i = 0; i < 3; i++) {
    /* 150 px rows of RGB are padded to 452 bytes. */
    GstBuffer *buf = run_one_frame (props[i],
        "video/x-raw,format=RGB,width=150,height=90");
    guint8 *want = g_malloc0 (452 * 90);
    GstMapInfo map;
    gsize nonzero = 0;
    fail_unless_equals_int (ap_draw (&frame, i == 1 ? AP_STYLE_MIMICMOTION :
            AP_STYLE_DWPOSE, i == 2, want, 150, 90, 452), 0);
    gst_buffer_map (buf, &map, GST_MAP_READ);
    fail_unless_equals_int (map.size, 452 * 90);
    for (int y = 0; y < 90; y++) {
      fail_unless (memcmp (map.data + y * 452, want + y * 452, 450) == 0,
          "%s: row %d differs from ap_draw", props[i], y);
      for (int x = 0; x < 450; x++)
        nonzero += want[y * 452 + x] != 0;
    }
    fail_unless (nonzero > 100, "%s: almost nothing drawn", props[i]);
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    g_free (want);
  }
  g_free (text);
#else
  g_print ("skipped: pose/draw.c is not in this tree yet\n");
#endif
}

GST_END_TEST;

/* The world's source feeds posemapper directly: frames in = frames out. */
GST_START_TEST (test_posetestsrc)
{
  GstElementFactory *f = gst_element_factory_find ("posetestsrc");
  GstElement *pipe;
  int warnings;

  if (f == NULL) {
    g_print ("skipped: posetestsrc is not in this build\n");
    return;
  }
  gst_object_unref (f);
  pipe = gst_parse_launch ("posetestsrc num-buffers=40 ! posemapper "
      "style=dwpose ! video/x-raw,width=96,height=96 ! "
      "appsink name=out sync=false", NULL);
  fail_unless (pipe != NULL);
  fail_unless_equals_int (run_to_eos (pipe, &warnings), 40);
  fail_unless_equals_int (warnings, 0);
  gst_object_unref (pipe);
}

GST_END_TEST;

static Suite *
posemapper_suite (void)
{
  Suite *s = suite_create ("posemapper");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_frames_in_out);
  tcase_add_test (tc, test_framerate_and_time);
  tcase_add_test (tc, test_negotiated_size);
  tcase_add_test (tc, test_keep_aspect);
  tcase_add_test (tc, test_bad_input_warnings);
  tcase_add_test (tc, test_datagrams);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_filesrc_pretty);
  tcase_add_test (tc, test_filesrc_realpose);
  tcase_add_test (tc, test_udp_loopback);
  tcase_add_test (tc, test_tcp_loopback);
  tcase_add_test (tc, test_pixels_are_ap_draw);
  tcase_add_test (tc, test_posetestsrc);
  return s;
}

GST_CHECK_MAIN (posemapper);
