/* facerecapture: frames in = frames out with their timestamps and metas;
 * the face region changes and the rest of the frame does not; frames
 * without a meta, with a low-confidence face or a missing face point, and
 * every frame while disabled or at strength 0, pass through byte for byte;
 * a face half out of the frame; steps reach the model; references without
 * key points or without a face give errors naming the files; two elements
 * share one engine; state cycles. The bundled model and identity_00 (a
 * world frame with its OpenPose JSON). */
#include "avatar-check.h"
#include "image.h"

#define W 256
#define H 256

static guint8 *ref_rgb;
static ApFrame ref_frame;

static void
load_reference (void)
{
  gchar *dir = avatar_model_dir ();
  gchar *png = g_build_filename (dir, "references", "identity_00.png", NULL);
  gchar *json = g_build_filename (dir, "references", "identity_00.json",
      NULL);
  gchar *text;
  gsize len;
  gint w, h;
  AeError err;
  ApIssues issues;

  fail_unless (ae_image_load_png (png, &ref_rgb, &w, &h, &err) == 0, "%s",
      err.msg);
  fail_unless (w == W && h == H, "identity_00.png is %dx%d", w, h);
  fail_unless (g_file_get_contents (json, &text, &len, NULL));
  fail_unless_equals_int (ap_frame_from_json (text, len, 1, &ref_frame,
          &issues), AP_FRAME);
  fail_unless (ref_frame.people[0].n_face >= 68);
  g_free (text);
  g_free (json);
  g_free (png);
  g_free (dir);
}

/* The reference image as frame n, with the meta of `f` (NULL: no meta). */
static GstBuffer *
face_frame_new (guint64 n, const ApFrame * f)
{
  GstBuffer *buf = gst_buffer_new_memdup (ref_rgb, W * H * 3);

  if (f != NULL)
    gst_buffer_add_avatar_keypoint_meta (buf, f)->frame_number = n;
  GST_BUFFER_PTS (buf) = n * FRAME_DURATION;
  GST_BUFFER_DURATION (buf) = FRAME_DURATION;
  return buf;
}

static GstHarness *
harness (const char *props)
{
  gchar *desc = g_strdup_printf ("facerecapture %s", props ? props : "");
  GstHarness *h = gst_harness_new_parse (desc);
  gchar *caps = rgb_caps_str (W, H);

  g_free (desc);
  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  return h;
}

/* Number of bytes that differ, inside and outside the face box (the box of
 * the face points, grown by half its size). */
static void
count_diff (GstBuffer * buf, const ApFrame * f, gint * inside, gint * outside)
{
  GstMapInfo map;
  float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f, gx, gy;

  for (int k = 0; k < 68; k++) {
    const ApPoint *p = &f->people[0].face[k];
    x0 = MIN (x0, p->x);
    x1 = MAX (x1, p->x);
    y0 = MIN (y0, p->y);
    y1 = MAX (y1, p->y);
  }
  gx = (x1 - x0) * 0.5f;
  gy = (y1 - y0) * 0.5f;
  *inside = *outside = 0;
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++) {
        gsize i = ((gsize) y * W + x) * 3 + c;
        if (map.data[i] == ref_rgb[i])
          continue;
        if (x >= x0 - gx && x <= x1 + gx && y >= y0 - gy && y <= y1 + gy)
          (*inside)++;
        else
          (*outside)++;
      }
  gst_buffer_unmap (buf, &map);
}

static guint64
stat_of (GstElement * e, const char *field)
{
  GstStructure *s;
  guint64 v = 0;

  g_object_get (e, "stats", &s, NULL);
  fail_unless (gst_structure_get_uint64 (s, field, &v));
  gst_structure_free (s);
  return v;
}

static GstElement *
harness_element (GstHarness * h)
{
  return gst_harness_find_element (h, "facerecapture");
}

GST_START_TEST (test_frames_in_out)
{
  GstHarness *h = harness (NULL);
  ApFrame *low = g_new (ApFrame, 1), *missing = g_new (ApFrame, 1);
  const ApFrame *metas[6];
  gboolean restored[6] = { TRUE, FALSE, FALSE, FALSE, TRUE, TRUE };
  GstElement *e;

  *low = ref_frame;
  for (int k = 0; k < low->people[0].n_face; k++)
    low->people[0].face[k].c = 0.2f;
  *missing = ref_frame;
  missing->people[0].face[57].c = 0.0f;   /* a lip point under a hand */
  metas[0] = &ref_frame;
  metas[1] = NULL;
  metas[2] = low;
  metas[3] = missing;
  metas[4] = &ref_frame;
  metas[5] = &ref_frame;

  for (guint64 i = 0; i < 6; i++)
    fail_unless_equals_int (gst_harness_push (h, face_frame_new (i,
                metas[i])), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (h), 6);
  for (guint64 i = 0; i < 6; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    GstAvatarKeypointMeta *meta = gst_buffer_get_avatar_keypoint_meta (buf);
    gint in, out;

    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), i * FRAME_DURATION);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (buf), FRAME_DURATION);
    fail_unless_equals_int (gst_buffer_get_size (buf), W * H * 3);
    if (metas[i] == NULL)
      fail_unless (meta == NULL);
    else {
      fail_unless (meta != NULL);
      fail_unless_equals_uint64 (meta->frame_number, i);
      fail_unless_equals_float (meta->frame.people[0].face[57].c,
          metas[i]->people[0].face[57].c);
    }
    count_diff (buf, &ref_frame, &in, &out);
    if (restored[i]) {
      fail_unless (in > 500, "frame %d: only %d face bytes changed", (int) i,
          in);
      fail_unless_equals_int (out, 0);
    } else {
      fail_unless_equals_int (in, 0);
      fail_unless_equals_int (out, 0);
    }
    gst_buffer_unref (buf);
  }
  e = harness_element (h);
  fail_unless_equals_uint64 (stat_of (e, "frames"), 6);
  fail_unless_equals_uint64 (stat_of (e, "restored"), 3);
  fail_unless_equals_uint64 (stat_of (e, "passed-through"), 3);
  gst_object_unref (e);
  gst_harness_teardown (h);
  g_free (low);
  g_free (missing);
}

GST_END_TEST;

/* enabled=false, strength=0 and min-confidence above the face's: untouched */
GST_START_TEST (test_pass_through_settings)
{
  const char *props[] = { "enabled=false", "strength=0",
    "min-confidence=0.99"
  };

  for (guint t = 0; t < G_N_ELEMENTS (props); t++) {
    GstHarness *h = harness (props[t]);
    GstBuffer *buf;
    gint in, out;

    buf = gst_harness_push_and_pull (h, face_frame_new (0, &ref_frame));
    fail_unless (buf != NULL);
    count_diff (buf, &ref_frame, &in, &out);
    fail_unless (in == 0 && out == 0, "%s: %d/%d bytes changed", props[t], in,
        out);
    fail_unless (gst_buffer_get_avatar_keypoint_meta (buf) != NULL);
    gst_buffer_unref (buf);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* The face half out of the frame (points moved left by the face's x): the
 * crop repeats edge pixels, only the frame's pixels change. */
GST_START_TEST (test_face_at_border)
{
  GstHarness *h = harness (NULL);
  ApFrame *moved = g_new (ApFrame, 1);
  GstBuffer *buf;
  GstElement *e;
  gint in, out;
  float cx = 0;

  *moved = ref_frame;
  for (int k = 0; k < 68; k++)
    cx += ref_frame.people[0].face[k].x / 68.0f;
  for (int k = 0; k < moved->people[0].n_face; k++)
    moved->people[0].face[k].x -= cx;
  buf = gst_harness_push_and_pull (h, face_frame_new (0, moved));
  fail_unless (buf != NULL);
  fail_unless_equals_int (gst_buffer_get_size (buf), W * H * 3);
  count_diff (buf, moved, &in, &out);
  fail_unless (in > 100, "border face: %d bytes changed", in);
  fail_unless_equals_int (out, 0);
  e = harness_element (h);
  fail_unless_equals_uint64 (stat_of (e, "restored"), 1);
  gst_object_unref (e);
  gst_buffer_unref (buf);
  gst_harness_teardown (h);
  g_free (moved);
}

GST_END_TEST;

/* steps and seed reach the model; the same settings give the same frame */
GST_START_TEST (test_steps_and_determinism)
{
  const char *props[] = { "steps=1", "steps=1", "steps=2", "steps=1 seed=5" };
  GstBuffer *bufs[4];
  GstMapInfo a, b;

  for (guint t = 0; t < 4; t++) {
    GstHarness *h = harness (props[t]);
    bufs[t] = gst_harness_push_and_pull (h, face_frame_new (0, &ref_frame));
    gst_harness_teardown (h);
  }
  fail_unless (gst_buffer_map (bufs[0], &a, GST_MAP_READ));
  for (guint t = 1; t < 4; t++) {
    fail_unless (gst_buffer_map (bufs[t], &b, GST_MAP_READ));
    if (t == 1)
      fail_unless (memcmp (a.data, b.data, a.size) == 0, "not reproducible");
    else
      fail_unless (memcmp (a.data, b.data, a.size) != 0, "%s changed nothing",
          props[t]);
    gst_buffer_unmap (bufs[t], &b);
  }
  gst_buffer_unmap (bufs[0], &a);
  for (guint t = 0; t < 4; t++)
    gst_buffer_unref (bufs[t]);
}

GST_END_TEST;

/* A reference image whose sidecar JSON is missing, has no face, or whose
 * face has no confident points: errors name the files. */
GST_START_TEST (test_reference_errors)
{
  gchar *dir = g_dir_make_tmp ("facerecapture-XXXXXX", NULL);
  gchar *png = g_build_filename (dir, "anchor.png", NULL);
  gchar *json = g_build_filename (dir, "anchor.json", NULL);
  gchar *text;
  GstElement *e;
  AeError err;
  ApFrame *f = g_new (ApFrame, 1);
  gchar *line;

  fail_unless (ae_image_save_png (png, ref_rgb, W, H, W * 3, &err) == 0);

  e = make_element ("facerecapture", NULL);
  g_object_set (e, "reference", png, NULL);
  text = start_expect_error (e);
  fail_unless (strstr (text, "anchor.png") && strstr (text, "anchor.json"),
      "no sidecar: %s", text);
  g_free (text);

  /* a person without face points */
  *f = ref_frame;
  f->people[0].n_face = 0;
  f->people[0].parts &= ~AP_PART_FACE;
  line = ap_frame_to_json (f);
  fail_unless (g_file_set_contents (json, line, -1, NULL));
  g_free (line);
  text = start_expect_error (e);
  fail_unless (strstr (text, "no face key points") && strstr (text,
          "anchor.json"), "no face: %s", text);
  g_free (text);

  /* face points that are all missing: not a confident face */
  *f = ref_frame;
  for (int k = 0; k < f->people[0].n_face; k++)
    f->people[0].face[k].c = 0.0f;
  f->people[0].face[0].c = 0.5f;
  line = ap_frame_to_json (f);
  fail_unless (g_file_set_contents (json, line, -1, NULL));
  g_free (line);
  text = start_expect_error (e);
  fail_unless (strstr (text, "no confident face") && strstr (text,
          "anchor.png"), "faceless: %s", text);
  g_free (text);

  /* a missing image */
  g_object_set (e, "reference", "/nonexistent/anchor.png", NULL);
  text = start_expect_error (e);
  fail_unless (strstr (text, "/nonexistent/anchor.png") != NULL, "%s", text);
  g_free (text);

  /* a model folder without face/ */
  g_object_set (e, "reference", NULL, "model", dir, NULL);
  text = start_expect_error (e);
  fail_unless (strstr (text, dir) != NULL, "%s", text);
  g_free (text);

  gst_object_unref (e);
  g_unlink (png);
  g_unlink (json);
  g_rmdir (dir);
  g_free (png);
  g_free (json);
  g_free (dir);
  g_free (f);
}

GST_END_TEST;

static gpointer
engine_of (GstPad * pad)
{
  GstQuery *q = gst_query_new_context ("gst-avatar.engine");
  GstContext *ctx = NULL;
  gpointer engine = NULL;

  if (gst_pad_query (pad, q)) {
    gst_query_parse_context (q, &ctx);
    if (ctx) {
      const GValue *v = gst_structure_get_value (gst_context_get_structure
          (ctx), "engine");
      engine = v ? g_value_get_object (v) : NULL;
    }
  }
  gst_query_unref (q);
  return engine;
}

/* Two facerecapture in one pipeline answer with the same engine. */
GST_START_TEST (test_shared_engine)
{
  GstHarness *h = gst_harness_new_parse ("facerecapture name=a ! "
      "facerecapture name=b");
  gchar *caps = rgb_caps_str (W, H);
  GstElement *a, *b;
  GstPad *pa, *pb;
  GstBuffer *buf;
  gpointer ea, eb;

  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  buf = gst_harness_push_and_pull (h, face_frame_new (0, &ref_frame));
  fail_unless (buf != NULL);
  gst_buffer_unref (buf);
  a = gst_harness_find_element (h, "facerecapture");
  fail_unless (a != NULL);
  b = gst_bin_get_by_name (GST_BIN (GST_OBJECT_PARENT (a)), "b");
  fail_unless (b != NULL);
  pa = gst_element_get_static_pad (a, "sink");
  pb = gst_element_get_static_pad (b, "src");
  ea = engine_of (pa);
  eb = engine_of (pb);
  fail_unless (ea != NULL && ea == eb, "engines %p %p", ea, eb);
  gst_object_unref (pa);
  gst_object_unref (pb);
  gst_object_unref (a);
  gst_object_unref (b);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* avatardiffuse ! latentfuse ! facerecapture: one engine for the three;
 * the stick-figure frames have no face, so every frame passes through. */
GST_START_TEST (test_engine_shared_with_avatardiffuse)
{
  GstHarness *h = gst_harness_new_parse ("avatardiffuse steps=1 window=4 "
      "overlap=1 progress-interval=-1 ! latentfuse ! facerecapture");
  gchar *caps = rgb_caps_str (64, 64);
  GstElement *diffuse, *face;
  GstPad *pd, *pf;
  gpointer ed, ef;

  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  for (guint64 i = 0; i < 4; i++)
    fail_unless_equals_int (gst_harness_push (h, pose_frame_new (64, 64, i,
                FALSE)), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (h), 4);
  diffuse = gst_harness_find_element (h, "avatardiffuse");
  face = gst_harness_find_element (h, "facerecapture");
  pd = gst_element_get_static_pad (diffuse, "sink");
  pf = gst_element_get_static_pad (face, "src");
  ed = engine_of (pd);
  ef = engine_of (pf);
  fail_unless (ed != NULL && ed == ef, "engines %p %p", ed, ef);
  fail_unless_equals_uint64 (stat_of (face, "frames"), 4);
  fail_unless_equals_uint64 (stat_of (face, "restored"), 0);
  gst_object_unref (pd);
  gst_object_unref (pf);
  gst_object_unref (diffuse);
  gst_object_unref (face);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_state_cycles)
{
  GstElement *e = make_element ("facerecapture", "steps=1");

  for (int i = 0; i < 3; i++) {
    fail_unless (gst_element_set_state (e, GST_STATE_PAUSED) !=
        GST_STATE_CHANGE_FAILURE);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
  }
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
facerecapture_suite (void)
{
  Suite *s = suite_create ("facerecapture");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, load_reference, NULL);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_frames_in_out);
  tcase_add_test (tc, test_pass_through_settings);
  tcase_add_test (tc, test_face_at_border);
  tcase_add_test (tc, test_steps_and_determinism);
  tcase_add_test (tc, test_reference_errors);
  tcase_add_test (tc, test_shared_engine);
  tcase_add_test (tc, test_engine_shared_with_avatardiffuse);
  tcase_add_test (tc, test_state_cycles);
  return s;
}

GST_CHECK_MAIN (facerecapture);
