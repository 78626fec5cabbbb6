/* Helpers shared by the avatardiffuse, latentfuse and shared-engine tests:
 * the bundled model, synthetic pose-guidance frames with keypoint metas,
 * elements from "name=value" strings, bus errors, and broken copies of the
 * model folder. Tests run at 64x64 frames (8x8 latents), 1 step. */
#ifndef AVATAR_CHECK_H
#define AVATAR_CHECK_H

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "avatar-pose.h"
#include "gstkeypointmeta.h"

#define FRAME_DURATION (GST_SECOND / 25)

static G_GNUC_UNUSED gchar *
avatar_model_dir (void)
{
  const char *src = g_getenv ("AVATAR_SOURCE_DIR");
  return g_build_filename (src ? src : SOURCE_DIR, "models", "avatar-default",
      NULL);
}

/* Sets "name=value name=value" on an element. */
static G_GNUC_UNUSED void
set_props (GstElement * e, const char *props)
{
  char **pairs = g_strsplit (props ? props : "", " ", -1);

  for (char **p = pairs; *p; p++) {
    char *eq = strchr (*p, '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    gst_util_set_object_arg (G_OBJECT (e), *p, eq + 1);
  }
  g_strfreev (pairs);
}

static G_GNUC_UNUSED GstElement *
make_element (const char *factory, const char *props)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  fail_unless (e != NULL, "no element %s", factory);
  set_props (e, props);
  return e;
}

/* Frame n of a synthetic pose stream: a w x h RGB image with a moving
 * stick figure and a keypoint meta (one person, body and, with hands, both
 * hands), stamped n / 25 s. */
static G_GNUC_UNUSED GstBuffer *
pose_frame_new (int w, int h, guint64 n, gboolean hands)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, (gsize) w * h * 3, NULL);
  ApFrame *f = g_new0 (ApFrame, 1);
  GstAvatarKeypointMeta *meta;
  GstMapInfo map;
  float cx = w * (0.4f + 0.02f * (n % 10)), cy = h * 0.5f;

  ap_frame_init (f);
  f->canvas_width = w;
  f->canvas_height = h;
  f->n_people = 1;
  f->people[0].parts = AP_PART_BODY;
  for (int i = 0; i < AP_BODY_N; i++)
    f->people[0].body[i] = (ApPoint) {
    cx + (i % 5 - 2) * w / 16.0f, cy + (i / 5 - 2) * h / 12.0f, 0.9f};
  if (hands) {
    f->people[0].parts |= AP_PART_HAND_LEFT | AP_PART_HAND_RIGHT;
    for (int s = 0; s < 2; s++)
      for (int i = 0; i < AP_HAND_N; i++)
        f->people[0].hand[s][i] = (ApPoint) {
        cx + (s ? 1 : -1) * w / 4.0f + (i % 4) * 1.5f, cy + h / 5.0f
              + (i / 4) * 1.5f, 0.8f};
  }

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_WRITE));
  memset (map.data, 0, map.size);
  for (int i = 0; i < AP_BODY_N; i++) {
    int x = (int) f->people[0].body[i].x, y = (int) f->people[0].body[i].y;
    for (int dy = -1; dy <= 1; dy++)
      for (int dx = -1; dx <= 1; dx++) {
        int xx = CLAMP (x + dx, 0, w - 1), yy = CLAMP (y + dy, 0, h - 1);
        guint8 *px = map.data + ((gsize) yy * w + xx) * 3;
        px[0] = (guint8) (i * 14);
        px[1] = (guint8) (255 - i * 14);
        px[2] = 128;
      }
  }
  gst_buffer_unmap (buf, &map);
  meta = gst_buffer_add_avatar_keypoint_meta (buf, f);
  meta->frame_number = n;
  g_free (f);
  GST_BUFFER_PTS (buf) = n * FRAME_DURATION;
  GST_BUFFER_DURATION (buf) = FRAME_DURATION;
  return buf;
}

static G_GNUC_UNUSED gchar *
rgb_caps_str (int w, int h)
{
  return g_strdup_printf ("video/x-raw,format=RGB,width=%d,height=%d,"
      "framerate=25/1", w, h);
}

/* The first ERROR message on bus (waits up to 5 s); NULL if none. Its text
 * and debug string are joined into *text. */
static G_GNUC_UNUSED gboolean
bus_pop_error (GstBus * bus, gchar ** text)
{
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, 5 * GST_SECOND,
      GST_MESSAGE_ERROR);
  GError *err = NULL;
  gchar *dbg = NULL;

  if (msg == NULL)
    return FALSE;
  gst_message_parse_error (msg, &err, &dbg);
  *text = g_strdup_printf ("%s | %s", err->message, dbg ? dbg : "");
  GST_INFO ("error: %s", *text);
  g_clear_error (&err);
  g_free (dbg);
  gst_message_unref (msg);
  return TRUE;
}

/* Sets element (outside any pipeline) to PAUSED expecting failure, and
 * returns the error text it posted. */
static G_GNUC_UNUSED gchar *
start_expect_error (GstElement * e)
{
  GstBus *bus = gst_bus_new ();
  gchar *text = NULL;

  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  fail_unless (bus_pop_error (bus, &text), "no error posted");
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  return text;
}

/* A temporary copy of the model folder: every file a symlink to the
 * original, except `corrupt` (a path inside the folder, or NULL) which is
 * replaced by `corrupt_bytes` bytes of the original's start (0: garbage
 * text). g_free the path; remove with rm_tree. */
static G_GNUC_UNUSED gchar *
model_copy (const char *corrupt, gsize corrupt_bytes)
{
  gchar *src = avatar_model_dir (), *dst = g_dir_make_tmp ("avatar-XXXXXX",
      NULL);
  const char *subs[] = { "", "vae", "unet", "reference_unet", "pose_guider",
    "hand_encoder", "references"
  };

  fail_unless (dst != NULL);
  for (guint s = 0; s < G_N_ELEMENTS (subs); s++) {
    gchar *sd = g_build_filename (src, subs[s], NULL);
    gchar *dd = g_build_filename (dst, subs[s], NULL);
    GDir *dir = g_dir_open (sd, 0, NULL);
    const gchar *name;

    fail_unless (dir != NULL, "cannot list %s", sd);
    g_mkdir_with_parents (dd, 0755);
    while ((name = g_dir_read_name (dir)) != NULL) {
      gchar *from = g_build_filename (sd, name, NULL);
      gchar *to = g_build_filename (dd, name, NULL);
      gchar *rel = g_build_filename (subs[s], name, NULL);
      if (g_file_test (from, G_FILE_TEST_IS_REGULAR)) {
        if (corrupt && strcmp (rel, corrupt) == 0) {
          gchar *data = NULL;
          gsize len = 0;
          if (corrupt_bytes == 0) {
            fail_unless (g_file_set_contents (to, "not a model file\n", -1,
                    NULL));
          } else {
            fail_unless (g_file_get_contents (from, &data, &len, NULL));
            fail_unless (g_file_set_contents (to, data,
                    MIN (len, corrupt_bytes), NULL));
            g_free (data);
          }
        } else {
          fail_unless (symlink (from, to) == 0, "symlink %s", to);
        }
      }
      g_free (rel);
      g_free (from);
      g_free (to);
    }
    g_dir_close (dir);
    g_free (sd);
    g_free (dd);
  }
  g_free (src);
  return dst;
}

static G_GNUC_UNUSED void
rm_tree (const gchar * path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const gchar *name;

  if (dir == NULL) {
    g_unlink (path);
    return;
  }
  while ((name = g_dir_read_name (dir)) != NULL) {
    gchar *p = g_build_filename (path, name, NULL);
    if (g_file_test (p, G_FILE_TEST_IS_DIR)
        && !g_file_test (p, G_FILE_TEST_IS_SYMLINK))
      rm_tree (p);
    else
      g_unlink (p);
    g_free (p);
  }
  g_dir_close (dir);
  g_rmdir (path);
}

/* Resident memory of this process in bytes (VmRSS). */
static G_GNUC_UNUSED gsize
rss_bytes (void)
{
  gchar *text = NULL, *line;
  gsize kb = 0;

  fail_unless (g_file_get_contents ("/proc/self/status", &text, NULL, NULL));
  line = strstr (text, "VmRSS:");
  if (line)
    kb = g_ascii_strtoull (line + 6, NULL, 10);
  g_free (text);
  return kb * 1024;
}

#endif /* AVATAR_CHECK_H */
