/* GstAvatarKeypointMeta: registration, fields, copies and scaling. */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <string.h>

#include "avatar-pose.h"
#include "gstkeypointmeta.h"

static void
fill_frame (ApFrame * f)
{
  ap_frame_init (f);
  f->canvas_width = 64;
  f->canvas_height = 32;
  f->n_people = 2;
  for (int p = 0; p < 2; p++) {
    f->people[p].parts = AP_PART_BODY | AP_PART_FACE | AP_PART_HAND_LEFT;
    f->people[p].n_face = 70;
    for (int i = 0; i < AP_BODY_N; i++)
      f->people[p].body[i] = (ApPoint) {
      i + p, 2 * i, 0.5f};
    f->people[p].face[69] = (ApPoint) {
    60, 30, 0.9f};
    f->people[p].hand[AP_LEFT][20] = (ApPoint) {
    10, 20, 1.1f};
  }
}

GST_START_TEST (test_add_get)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 64 * 32 * 3, NULL);
  GstAvatarKeypointMeta *meta;
  ApFrame f;
  const gchar *const *tags;

  fill_frame (&f);
  fail_unless (gst_buffer_get_avatar_keypoint_meta (buf) == NULL);
  meta = gst_buffer_add_avatar_keypoint_meta (buf, &f);
  fail_unless (meta != NULL);
  fail_unless (gst_buffer_get_avatar_keypoint_meta (buf) == meta);
  fail_unless (memcmp (&meta->frame, &f, sizeof (f)) == 0);
  fail_unless_equals_int (meta->source_width, 64);
  fail_unless_equals_int (meta->source_height, 32);
  fail_unless_equals_string (g_type_name
      (gst_avatar_keypoint_meta_api_get_type ()), "GstAvatarKeypointMetaAPI");
  tags = gst_meta_api_type_get_tags (GST_AVATAR_KEYPOINT_META_API_TYPE);
  fail_unless (tags != NULL);
  fail_unless (gst_meta_api_type_has_tag (GST_AVATAR_KEYPOINT_META_API_TYPE,
          g_quark_from_string (GST_META_TAG_VIDEO_STR)));
  fail_unless (gst_meta_api_type_has_tag (GST_AVATAR_KEYPOINT_META_API_TYPE,
          g_quark_from_string (GST_META_TAG_VIDEO_SIZE_STR)));
  gst_buffer_unref (buf);
}

GST_END_TEST;

GST_START_TEST (test_copy)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 64 * 32 * 3, NULL), *copy;
  GstAvatarKeypointMeta *meta;
  ApFrame f;

  fill_frame (&f);
  meta = gst_buffer_add_avatar_keypoint_meta (buf, &f);
  meta->frame_number = 42;
  copy = gst_buffer_copy (buf);
  meta = gst_buffer_get_avatar_keypoint_meta (copy);
  fail_unless (meta != NULL);
  fail_unless (memcmp (&meta->frame, &f, sizeof (f)) == 0);
  fail_unless_equals_uint64 (meta->frame_number, 42);
  gst_buffer_unref (copy);

  /* Part of the bytes is not the picture: no meta. */
  copy = gst_buffer_copy_region (buf, GST_BUFFER_COPY_ALL, 0, 100);
  fail_unless (gst_buffer_get_avatar_keypoint_meta (copy) == NULL);
  gst_buffer_unref (copy);

  /* make_writable copies too. */
  gst_buffer_ref (buf);
  copy = gst_buffer_make_writable (buf);
  fail_unless (copy != buf);
  fail_unless (gst_buffer_get_avatar_keypoint_meta (copy) != NULL);
  gst_buffer_unref (copy);
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* Several frames in one buffer (a latent window): one meta each. */
GST_START_TEST (test_several_per_buffer)
{
  GstBuffer *src = gst_buffer_new (), *window = gst_buffer_new ();
  GstAvatarKeypointMeta *meta;
  gpointer state = NULL;
  ApFrame f;
  guint64 expect = 10;

  fill_frame (&f);
  for (int i = 0; i < 4; i++) {
    meta = gst_buffer_add_avatar_keypoint_meta (src, &f);
    meta->frame_number = 10 + i;
    meta->source_width = 640;
  }
  /* Carried one by one onto a new buffer, as latentfuse does. */
  while ((meta = (GstAvatarKeypointMeta *)
          gst_buffer_iterate_meta_filtered (src, &state,
              GST_AVATAR_KEYPOINT_META_API_TYPE)))
    fail_unless (gst_buffer_add_avatar_keypoint_meta_copy (window, meta));
  state = NULL;
  while ((meta = (GstAvatarKeypointMeta *)
          gst_buffer_iterate_meta_filtered (window, &state,
              GST_AVATAR_KEYPOINT_META_API_TYPE))) {
    fail_unless_equals_uint64 (meta->frame_number, expect++);
    fail_unless_equals_int (meta->source_width, 640);
    fail_unless (memcmp (&meta->frame, &f, sizeof (f)) == 0);
  }
  fail_unless_equals_uint64 (expect, 14);
  gst_buffer_unref (src);
  gst_buffer_unref (window);
}

GST_END_TEST;

/* Through a real scaler: the points are scaled with the picture. */
GST_START_TEST (test_videoscale)
{
  GstElement *pipe = gst_parse_launch ("appsrc name=in caps=video/x-raw,"
      "format=RGB,width=64,height=32,framerate=25/1 format=time ! "
      "videoscale ! video/x-raw,width=128,height=96 ! appsink name=out", NULL);
  GstElement *in = gst_bin_get_by_name (GST_BIN (pipe), "in");
  GstElement *out = gst_bin_get_by_name (GST_BIN (pipe), "out");
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 64 * 32 * 3, NULL);
  GstAvatarKeypointMeta *meta;
  GstSample *sample = NULL;
  GstFlowReturn ret;
  ApFrame f;

  fill_frame (&f);
  gst_buffer_memset (buf, 0, 0, 64 * 32 * 3);
  gst_buffer_add_avatar_keypoint_meta (buf, &f)->frame_number = 7;
  GST_BUFFER_PTS (buf) = 0;
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);
  g_signal_emit_by_name (in, "push-buffer", buf, &ret);
  gst_buffer_unref (buf);
  g_signal_emit_by_name (in, "end-of-stream", &ret);
  g_signal_emit_by_name (out, "try-pull-sample", 10 * GST_SECOND, &sample);
  fail_unless (sample != NULL);
  meta = gst_buffer_get_avatar_keypoint_meta (gst_sample_get_buffer (sample));
  fail_unless (meta != NULL, "videoscale dropped the meta");
  fail_unless_equals_int (meta->frame.canvas_width, 128);
  fail_unless_equals_int (meta->frame.canvas_height, 96);
  fail_unless_equals_int (meta->source_width, 64);
  fail_unless_equals_uint64 (meta->frame_number, 7);
  fail_unless_equals_float (meta->frame.people[1].body[5].x, 12.0f);
  fail_unless_equals_float (meta->frame.people[1].body[5].y, 30.0f);
  fail_unless_equals_float (meta->frame.people[0].face[69].y, 90.0f);
  fail_unless_equals_float (meta->frame.people[0].hand[AP_LEFT][20].c, 1.1f);
  gst_sample_unref (sample);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (in);
  gst_object_unref (out);
  gst_object_unref (pipe);
}

GST_END_TEST;

static Suite *
keypointmeta_suite (void)
{
  Suite *s = suite_create ("keypointmeta");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_add_get);
  tcase_add_test (tc, test_copy);
  tcase_add_test (tc, test_several_per_buffer);
  tcase_add_test (tc, test_videoscale);
  return s;
}

GST_CHECK_MAIN (keypointmeta);
