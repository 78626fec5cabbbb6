/* latentfuse: one frame out per pose frame in (through avatardiffuse, for
 * lengths that are and are not multiples of window - overlap) with the
 * input's timestamps and metas; the blend uses the fusion weights; frames
 * leave when their last window arrives, at LAST or at EOS; out-of-order
 * windows; malformed windows, wrong caps and a missing model give errors;
 * state cycles and renegotiation. The bundled model, 8x8 latents. */
#include "avatar-check.h"
#include "gstavatarlatents.h"
#include "fusion.h"
#include "image.h"

#include <math.h>

#define LAT 8

/* Keeps the bundled model loaded for the whole test (see avatardiffuse.c). */
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

/* ---- through avatardiffuse ------------------------------------------- */

GST_START_TEST (test_frames_in_out)
{
  const gint64 lengths[] = { 1, 3, 4, 5, 7, 8, 10 };

  keep_model ();
  for (guint t = 0; t < G_N_ELEMENTS (lengths); t++) {
    gint64 n = lengths[t];
    GstHarness *h = gst_harness_new_parse ("avatardiffuse steps=1 window=4 "
        "overlap=1 progress-interval=-1 ! latentfuse");
    gchar *caps = rgb_caps_str (64, 64);
    GstVideoInfo info;
    GstCaps *out;

    gst_harness_use_testclock (h);
    gst_harness_set_src_caps_str (h, caps);
    g_free (caps);
    for (gint64 i = 0; i < n; i++)
      fail_unless_equals_int (gst_harness_push (h, pose_frame_new (64, 64,
                  i, i % 2 == 0)), GST_FLOW_OK);
    fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
    fail_unless_equals_int (gst_harness_buffers_received (h), n);

    out = gst_pad_get_current_caps (h->sinkpad);
    fail_unless (gst_video_info_from_caps (&info, out));
    gst_caps_unref (out);
    fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&info),
        GST_VIDEO_FORMAT_RGB);
    fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info), 64);
    fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&info), 64);
    fail_unless_equals_int (GST_VIDEO_INFO_FPS_N (&info), 25);

    for (gint64 i = 0; i < n; i++) {
      GstBuffer *buf = gst_harness_pull (h);
      GstAvatarKeypointMeta *meta = gst_buffer_get_avatar_keypoint_meta (buf);
      GstMapInfo map;
      guint lo = 255, hi = 0;

      fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), i * FRAME_DURATION);
      fail_unless_equals_uint64 (GST_BUFFER_DURATION (buf), FRAME_DURATION);
      fail_unless (meta != NULL);
      fail_unless_equals_uint64 (meta->frame_number, i);
      fail_unless_equals_int (! !(meta->frame.people[0].parts &
              AP_PART_HAND_LEFT), i % 2 == 0);
      fail_unless_equals_int (gst_buffer_get_size (buf), 64 * 64 * 3);
      fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
      for (gsize p = 0; p < map.size; p++) {
        lo = MIN (lo, map.data[p]);
        hi = MAX (hi, map.data[p]);
      }
      gst_buffer_unmap (buf, &map);
      fail_unless (hi > lo, "frame %" G_GINT64_FORMAT " is flat", i);
      gst_buffer_unref (buf);
    }
    gst_harness_teardown (h);
  }
  release_model ();
}

GST_END_TEST;

/* ---- synthetic windows ----------------------------------------------- */

static void
info_set (GstAvatarLatentsInfo * info, gint window, gint overlap,
    gint fusion)
{
  gst_avatar_latents_info_init (info);
  info->channels = 4;
  info->height = LAT;
  info->width = LAT;
  info->window = window;
  info->overlap = overlap;
  info->fusion = fusion;
  info->fps_n = 25;
  info->fps_d = 1;
  info->model = avatar_model_dir ();
}

static GstHarness *
fuse_harness (const GstAvatarLatentsInfo * info, const char *props)
{
  GstElement *e = make_element ("latentfuse", props);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  GstCaps *caps = gst_avatar_latents_info_to_caps (info);

  gst_object_unref (e);
  gst_harness_set_src_caps (h, caps);
  return h;
}

/* Window k of info's layout, n frames; frame f's latents all equal
 * values[f - first], or (values NULL) a pattern of f. */
static GstBuffer *
window_new (const GstAvatarLatentsInfo * info, gint64 k, gint n,
    guint flags, const gfloat * values)
{
  gsize size = gst_avatar_latents_buffer_size (info, n);
  gsize header = gst_avatar_latents_header_size (n);
  GstBuffer *buf = gst_buffer_new_allocate (NULL, size, NULL);
  gint64 first = k * (info->window - info->overlap);
  gint ff = info->channels * info->height * info->width;
  GstAvatarLatentsFrame *frames;
  gfloat *lat;
  GstMapInfo map;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_WRITE));
  gst_avatar_latents_write_header (map.data, info, k, first, n, flags);
  frames = (GstAvatarLatentsFrame *) (map.data
      + sizeof (GstAvatarLatentsHeader));
  lat = (gfloat *) (map.data + header);
  for (gint i = 0; i < n; i++) {
    GstBuffer *tmp = pose_frame_new (64, 64, first + i, TRUE);
    gst_buffer_add_avatar_keypoint_meta_copy (buf,
        gst_buffer_get_avatar_keypoint_meta (tmp));
    gst_buffer_unref (tmp);
    frames[i].pts = (first + i) * FRAME_DURATION;
    frames[i].duration = FRAME_DURATION;
    frames[i].meta_index = i;
    for (gint j = 0; j < ff; j++)
      lat[i * ff + j] = values ? values[i]
          : 0.5f * sinf (0.3f * (first + i) + 0.1f * j);
  }
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = first * FRAME_DURATION;
  return buf;
}

GST_START_TEST (test_emission_order)
{
  GstAvatarLatentsInfo info;
  GstHarness *h;

  keep_model ();
  info_set (&info, 4, 1, 0);
  /* The last frame of a window waits for the next window; EOS flushes. */
  h = fuse_harness (&info, NULL);
  gst_harness_push (h, window_new (&info, 0, 4, 0, NULL));
  fail_unless_equals_int (gst_harness_buffers_received (h), 3);
  gst_harness_push (h, window_new (&info, 1, 4, 0, NULL));
  fail_unless_equals_int (gst_harness_buffers_received (h), 6);
  gst_harness_push_event (h, gst_event_new_eos ());
  fail_unless_equals_int (gst_harness_buffers_received (h), 7);
  for (int i = 0; i < 7; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), i * FRAME_DURATION);
    fail_unless_equals_uint64 (gst_buffer_get_avatar_keypoint_meta
        (buf)->frame_number, i);
    gst_buffer_unref (buf);
  }
  gst_harness_teardown (h);

  /* A window flagged last flushes at once; the next stream starts at
   * window 0 again. */
  h = fuse_harness (&info, NULL);
  gst_harness_push (h, window_new (&info, 0, 4, 0, NULL));
  gst_harness_push (h, window_new (&info, 1, 2,
          GST_AVATAR_LATENTS_FLAG_LAST, NULL));
  fail_unless_equals_int (gst_harness_buffers_received (h), 5);
  gst_harness_push (h, window_new (&info, 0, 2,
          GST_AVATAR_LATENTS_FLAG_LAST, NULL));
  fail_unless_equals_int (gst_harness_buffers_received (h), 7);
  gst_harness_teardown (h);
  gst_avatar_latents_info_clear (&info);
  release_model ();
}

GST_END_TEST;

/* Decoded frames of a stream of windows whose frame f in window k holds
 * the constant value(k, f). */
typedef gfloat (*ValueFn) (const AeFusionLayout * l, gint64 k, gint64 f);

static GPtrArray *
run_windows (const GstAvatarLatentsInfo * info, gint n_frames, ValueFn fn)
{
  AeFusionLayout l;
  GstHarness *h = fuse_harness (info, NULL);
  GPtrArray *frames = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_buffer_unref);
  gint64 K;

  fail_unless (ae_fusion_layout_init (&l, info->window, info->overlap,
          info->fusion ? AE_FUSION_UNIFORM : AE_FUSION_PROGRESSIVE,
          NULL) == 0);
  K = ae_fusion_n_windows (&l, n_frames);
  for (gint64 k = 0; k < K; k++) {
    gint len = ae_fusion_window_length (&l, k, n_frames);
    gfloat values[GST_AVATAR_LATENTS_MAX_WINDOW];
    for (gint i = 0; i < len; i++)
      values[i] = fn (&l, k, k * l.stride + i);
    fail_unless_equals_int (gst_harness_push (h, window_new (info, k, len,
                k == K - 1 ? GST_AVATAR_LATENTS_FLAG_LAST : 0, values)),
        GST_FLOW_OK);
  }
  fail_unless_equals_int (gst_harness_buffers_received (h), n_frames);
  for (gint i = 0; i < n_frames; i++)
    g_ptr_array_add (frames, gst_harness_pull (h));
  gst_harness_teardown (h);
  return frames;
}

/* Copies that disagree: window k's copy of frame f is f/10 + (k odd ? 0.6 :
 * -0.4). */
static gfloat
value_split (const AeFusionLayout * l, gint64 k, gint64 f)
{
  return 0.1f * (f % 7) - 0.3f + ((k % 2) ? 0.6f : -0.4f);
}

/* Every copy already holds the weighted blend of value_split's copies. */
static gfloat
value_blended (const AeFusionLayout * l, gint64 k, gint64 f)
{
  gint64 k0, k1;
  gfloat v = 0.0f;

  ae_fusion_covering (l, f, 10, &k0, &k1);
  for (gint64 j = k0; j <= k1; j++)
    v += ae_fusion_weight (l, f, j, 10) * value_split (l, j, f);
  return v;
}

static gfloat
value_plain (const AeFusionLayout * l, gint64 k, gint64 f)
{
  return 0.1f * (f % 7) - 0.3f - 0.4f;
}

/* Largest difference of two frames' bytes. */
static gint
max_diff (GstBuffer * a, GstBuffer * b)
{
  GstMapInfo ma, mb;
  gint d = 0;

  fail_unless (gst_buffer_map (a, &ma, GST_MAP_READ));
  fail_unless (gst_buffer_map (b, &mb, GST_MAP_READ));
  fail_unless_equals_int (ma.size, mb.size);
  for (gsize i = 0; i < ma.size; i++)
    d = MAX (d, ABS ((gint) ma.data[i] - (gint) mb.data[i]));
  gst_buffer_unmap (a, &ma);
  gst_buffer_unmap (b, &mb);
  return d;
}

GST_START_TEST (test_blend_weights)
{
  /* progressive W=4 O=2 (three copies never, two copies for the overlap),
   * uniform W=5 O=3 (O > S: up to three copies). */
  const gint layouts[][3] = { {4, 2, 0}, {5, 3, 1} };

  keep_model ();
  for (guint t = 0; t < G_N_ELEMENTS (layouts); t++) {
    GstAvatarLatentsInfo info;
    GPtrArray *split, *blended, *plain;
    gint differ = 0;

    info_set (&info, layouts[t][0], layouts[t][1], layouts[t][2]);
    split = run_windows (&info, 10, value_split);
    blended = run_windows (&info, 10, value_blended);
    plain = run_windows (&info, 10, value_plain);
    for (guint i = 0; i < 10; i++) {
      /* Blending in latentfuse = decoding pre-blended copies. */
      fail_unless (max_diff (split->pdata[i], blended->pdata[i]) <= 1,
          "layout %u frame %u: %d", t, i, max_diff (split->pdata[i],
              blended->pdata[i]));
      differ += max_diff (split->pdata[i], plain->pdata[i]) > 8;
    }
    /* ...and the weights matter: the frames held by two windows differ
     * from those of the first copy alone. */
    fail_unless (differ >= 3, "layout %u: only %d frames differ", t,
        differ);
    g_ptr_array_unref (split);
    g_ptr_array_unref (blended);
    g_ptr_array_unref (plain);
    gst_avatar_latents_info_clear (&info);
  }
  release_model ();
}

GST_END_TEST;

GST_START_TEST (test_out_of_order)
{
  GstAvatarLatentsInfo info;
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;

  keep_model ();
  info_set (&info, 4, 1, 0);
  h = fuse_harness (&info, NULL);
  gst_element_set_bus (h->element, bus);
  gst_harness_push (h, window_new (&info, 0, 4, 0, NULL));
  fail_unless_equals_int (gst_harness_buffers_received (h), 3);
  /* Window 1 lost: frame 3 leaves unblended, a warning says so, and the
   * stream goes on from window 2 (frames 6..9). */
  gst_harness_push (h, window_new (&info, 2, 4, 0, NULL));
  fail_unless_equals_int (gst_harness_buffers_received (h), 7);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  gst_harness_push_event (h, gst_event_new_eos ());
  fail_unless_equals_int (gst_harness_buffers_received (h), 8);
  for (int i = 0; i < 8; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf),
        (i < 4 ? i : i + 2) * FRAME_DURATION);
    gst_buffer_unref (buf);
  }
  gst_element_set_bus (h->element, NULL);
  gst_harness_teardown (h);
  gst_avatar_latents_info_clear (&info);
  gst_object_unref (bus);
  release_model ();
}

GST_END_TEST;

/* Pushes buf expecting an error whose text holds needle. */
static void
push_expect_error (GstHarness * h, GstBuffer * buf, const char *needle)
{
  GstBus *bus = gst_bus_new ();
  gchar *text = NULL;

  gst_element_set_bus (h->element, bus);
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_ERROR);
  fail_unless (bus_pop_error (bus, &text));
  fail_unless (strstr (text, needle) != NULL, "'%s' not in: %s", needle,
      text);
  g_free (text);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
}

GST_START_TEST (test_malformed_windows)
{
  GstAvatarLatentsInfo info;
  GstHarness *h;
  GstBuffer *buf;
  GstMapInfo map;

  keep_model ();
  info_set (&info, 4, 1, 0);

  h = fuse_harness (&info, NULL);
  buf = window_new (&info, 0, 4, 0, NULL);
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  map.data[0] ^= 0xff;
  gst_buffer_unmap (buf, &map);
  push_expect_error (h, buf, "magic");
  gst_harness_teardown (h);

  h = fuse_harness (&info, NULL);
  buf = window_new (&info, 0, 4, 0, NULL);
  gst_buffer_resize (buf, 0, gst_buffer_get_size (buf) - 4);
  push_expect_error (h, buf, "bytes");
  gst_harness_teardown (h);

  h = fuse_harness (&info, NULL);
  push_expect_error (h, gst_buffer_new_allocate (NULL, 10, NULL), "shorter");
  gst_harness_teardown (h);

  h = fuse_harness (&info, NULL);
  buf = window_new (&info, 0, 4, 0, NULL);
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  ((GstAvatarLatentsHeader *) map.data)->n_frames = 9;
  gst_buffer_unmap (buf, &map);
  push_expect_error (h, buf, "n_frames");
  gst_harness_teardown (h);

  /* A window of the wrong length in the middle of a stream. */
  h = fuse_harness (&info, NULL);
  gst_harness_push (h, window_new (&info, 0, 2, 0, NULL));
  push_expect_error (h, window_new (&info, 1, 4, 0, NULL), "window 1");
  gst_harness_teardown (h);
  gst_avatar_latents_info_clear (&info);
  release_model ();
}

GST_END_TEST;

static void
caps_expect_error (const GstAvatarLatentsInfo * info, const char *props,
    const char *needle)
{
  GstElement *e = make_element ("latentfuse", props);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  GstBus *bus = gst_bus_new ();
  GstCaps *caps = gst_avatar_latents_info_to_caps (info);
  gchar *text = NULL;

  gst_element_set_bus (e, bus);
  gst_harness_set_src_caps (h, caps);
  fail_unless_equals_int (gst_harness_push (h, window_new (info, 0, 2, 0,
              NULL)), GST_FLOW_NOT_NEGOTIATED);
  fail_unless (bus_pop_error (bus, &text));
  fail_unless (strstr (text, needle) != NULL, "'%s' not in: %s", needle,
      text);
  g_free (text);
  gst_element_set_bus (e, NULL);
  gst_object_unref (e);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_START_TEST (test_caps_and_model_errors)
{
  GstAvatarLatentsInfo info;
  gchar *dir, *props;

  keep_model ();
  info_set (&info, 4, 1, 0);
  info.channels = 3;
  caps_expect_error (&info, NULL, "3 channels");
  info.channels = 4;
  caps_expect_error (&info, "model=/nonexistent/avatar-model",
      "/nonexistent/avatar-model");
  g_free (info.model);
  info.model = g_strdup ("/nonexistent/caps-model");
  caps_expect_error (&info, NULL, "/nonexistent/caps-model");

  dir = model_copy ("vae/diffusion_pytorch_model.safetensors", 100);
  props = g_strdup_printf ("model=%s", dir);
  caps_expect_error (&info, props, "vae/diffusion_pytorch_model.safetensors");
  g_free (props);
  rm_tree (dir);
  g_free (dir);
  gst_avatar_latents_info_clear (&info);
  release_model ();
}

GST_END_TEST;

GST_START_TEST (test_state_cycles_and_renegotiation)
{
  GstAvatarLatentsInfo info, wide;
  GstHarness *h;

  keep_model ();
  info_set (&info, 4, 1, 0);
  h = fuse_harness (&info, NULL);
  for (int round = 0; round < 3; round++) {
    if (round > 0) {
      GstCaps *caps = gst_avatar_latents_info_to_caps (&info);
      GstSegment seg;
      fail_unless_equals_int (gst_element_set_state (h->element,
              GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
      fail_unless_equals_int (gst_element_set_state (h->element,
              GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
      gst_harness_push_event (h, gst_event_new_stream_start ("again"));
      gst_harness_set_src_caps (h, caps);
      gst_segment_init (&seg, GST_FORMAT_TIME);
      gst_harness_push_event (h, gst_event_new_segment (&seg));
    }
    gst_harness_push (h, window_new (&info, 0, 4, 0, NULL));
    gst_harness_push (h, window_new (&info, 1, 3, 0, NULL));
    gst_harness_push_event (h, gst_event_new_eos ());
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 6);
    for (int i = 0; i < 6; i++)
      gst_buffer_unref (gst_harness_pull (h));
  }

  /* New caps mid-stream (after a flush, which ends the EOS): the held
   * frame leaves, then 16x8 latents come out as 128x64 frames. */
  gst_harness_push_event (h, gst_event_new_flush_start ());
  gst_harness_push_event (h, gst_event_new_flush_stop (TRUE));
  {
    GstSegment seg;
    gst_segment_init (&seg, GST_FORMAT_TIME);
    gst_harness_push_event (h, gst_event_new_segment (&seg));
  }
  gst_harness_push (h, window_new (&info, 0, 4, 0, NULL));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 3);
  info_set (&wide, 4, 1, 0);
  wide.width = 16;
  gst_harness_set_src_caps (h, gst_avatar_latents_info_to_caps (&wide));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 4);
  gst_harness_push (h, window_new (&wide, 0, 2, 0, NULL));
  gst_harness_push_event (h, gst_event_new_eos ());
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 6);
  for (int i = 0; i < 6; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    fail_unless_equals_int (gst_buffer_get_size (buf),
        (i < 4 ? 64 : 128) * 64 * 3);
    gst_buffer_unref (buf);
  }
  gst_harness_teardown (h);
  gst_avatar_latents_info_clear (&info);
  gst_avatar_latents_info_clear (&wide);
  release_model ();
}

GST_END_TEST;

/* posemapper ! avatardiffuse ! latentfuse gives the frames
 * `avatar-engine render` gives for the same poses and settings: the
 * elements add caps, timestamps and metas, and change no pixel (but for
 * rounding: the render tool normalises hand key points by the JSON canvas,
 * the element by the frame the meta was mapped to). */
GST_START_TEST (test_matches_engine_render)
{
  const char *src = g_getenv ("AVATAR_SOURCE_DIR");
  gchar *poses = g_build_filename (src ? src : SOURCE_DIR, "tests", "pose",
      "data", "talk.jsonl", NULL);
  gchar *model = avatar_model_dir ();
  gchar *out = g_dir_make_tmp ("avatar-render-XXXXXX", NULL);
  gchar *argv[] = { (gchar *) AVATAR_ENGINE_EXE, (gchar *) "render",
    (gchar *) "--model", model, (gchar *) "--poses", poses,
    (gchar *) "--out", out, (gchar *) "--size", (gchar *) "64x64",
    (gchar *) "--steps", (gchar *) "1", (gchar *) "--window", (gchar *) "4",
    (gchar *) "--overlap", (gchar *) "1", (gchar *) "--seed", (gchar *) "5",
    (gchar *) "--no-temporal-attention", NULL
  };
  gchar *launch, *err_text = NULL;
  gint status = -1, n = 0, worst = 0;
  GstElement *pipe, *sink;
  GstSample *sample;

  fail_unless (g_spawn_sync (NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
          NULL, NULL, NULL, &err_text, &status, NULL));
  fail_unless (g_spawn_check_wait_status (status, NULL), "render: %s",
      err_text);

  launch = g_strdup_printf ("filesrc location=%s ! posemapper ! "
      "video/x-raw,width=64,height=64 ! avatardiffuse steps=1 window=4 "
      "overlap=1 seed=5 progress-interval=-1 ! latentfuse ! "
      "appsink name=s sync=false", poses);
  pipe = gst_parse_launch (launch, NULL);
  fail_unless (pipe != NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipe), "s");
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);
  for (;;) {
    GstMapInfo map;
    gchar *name, *path;
    guint8 *rgb = NULL;
    int w = 0, h = 0;
    AeError err;

    g_signal_emit_by_name (sink, "pull-sample", &sample);
    if (sample == NULL)
      break;
    name = g_strdup_printf ("%05d.png", n);
    path = g_build_filename (out, name, NULL);
    fail_unless (ae_image_load_png (path, &rgb, &w, &h, &err) == 0, "%s",
        err.msg);
    fail_unless (w == 64 && h == 64);
    fail_unless (gst_buffer_map (gst_sample_get_buffer (sample), &map,
            GST_MAP_READ));
    fail_unless_equals_uint64 (GST_BUFFER_PTS (gst_sample_get_buffer
            (sample)), n * FRAME_DURATION);
    for (gsize i = 0; i < map.size; i++)
      worst = MAX (worst, ABS ((gint) map.data[i] - (gint) rgb[i]));
    gst_buffer_unmap (gst_sample_get_buffer (sample), &map);
    gst_sample_unref (sample);
    g_free (rgb);
    g_free (path);
    g_free (name);
    n++;
  }
  fail_unless_equals_int (n, 10);
  GST_INFO ("largest difference to avatar-engine render: %d", worst);
  fail_unless (worst <= 2, "frames differ from the render by %d", worst);

  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  rm_tree (out);
  g_free (out);
  g_free (launch);
  g_free (err_text);
  g_free (model);
  g_free (poses);
}

GST_END_TEST;

static Suite *
latentfuse_suite (void)
{
  Suite *s = suite_create ("latentfuse");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_frames_in_out);
  tcase_add_test (tc, test_matches_engine_render);
  tcase_add_test (tc, test_emission_order);
  tcase_add_test (tc, test_blend_weights);
  tcase_add_test (tc, test_out_of_order);
  tcase_add_test (tc, test_malformed_windows);
  tcase_add_test (tc, test_caps_and_model_errors);
  tcase_add_test (tc, test_state_cycles_and_renegotiation);
  return s;
}

GST_CHECK_MAIN (latentfuse);
