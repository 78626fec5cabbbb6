/* application/x-avatar-latents caps and buffer layout (gstavatarlatents.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "gstavatarlatents.h"

#include <string.h>

G_STATIC_ASSERT (sizeof (GstAvatarLatentsHeader) == 64);
G_STATIC_ASSERT (sizeof (GstAvatarLatentsFrame) == 24);

void
gst_avatar_latents_info_init (GstAvatarLatentsInfo * info)
{
  memset (info, 0, sizeof (*info));
  info->fps_d = 1;
}

void
gst_avatar_latents_info_clear (GstAvatarLatentsInfo * info)
{
  g_free (info->model);
  gst_avatar_latents_info_init (info);
}

GstCaps *
gst_avatar_latents_info_to_caps (const GstAvatarLatentsInfo * info)
{
  GstCaps *caps = gst_caps_new_simple (GST_AVATAR_LATENTS_MEDIA_TYPE,
      "channels", G_TYPE_INT, info->channels,
      "height", G_TYPE_INT, info->height,
      "width", G_TYPE_INT, info->width,
      "window", G_TYPE_INT, info->window,
      "overlap", G_TYPE_INT, info->overlap,
      "fusion", G_TYPE_STRING, info->fusion ? "uniform" : "progressive",
      "framerate", GST_TYPE_FRACTION, info->fps_n, info->fps_d, NULL);

  if (info->model)
    gst_caps_set_simple (caps, "model", G_TYPE_STRING, info->model, NULL);
  return caps;
}

gboolean
gst_avatar_latents_info_from_caps (GstAvatarLatentsInfo * info,
    const GstCaps * caps, const gchar ** why)
{
  const GstStructure *s;
  const gchar *fusion, *model;

  gst_avatar_latents_info_clear (info);
  if (caps == NULL || !gst_caps_is_fixed (caps)) {
    *why = "caps are not fixed";
    return FALSE;
  }
  s = gst_caps_get_structure (caps, 0);
  if (!gst_structure_has_name (s, GST_AVATAR_LATENTS_MEDIA_TYPE)) {
    *why = "not " GST_AVATAR_LATENTS_MEDIA_TYPE;
    return FALSE;
  }
  if (!gst_structure_get_int (s, "channels", &info->channels)
      || info->channels < 1
      || info->channels > GST_AVATAR_LATENTS_MAX_CHANNELS) {
    *why = "field 'channels' missing or out of range";
    return FALSE;
  }
  if (!gst_structure_get_int (s, "height", &info->height) || info->height < 1
      || info->height > GST_AVATAR_LATENTS_MAX_SIZE) {
    *why = "field 'height' missing or out of range";
    return FALSE;
  }
  if (!gst_structure_get_int (s, "width", &info->width) || info->width < 1
      || info->width > GST_AVATAR_LATENTS_MAX_SIZE) {
    *why = "field 'width' missing or out of range";
    return FALSE;
  }
  if (!gst_structure_get_int (s, "window", &info->window) || info->window < 1
      || info->window > GST_AVATAR_LATENTS_MAX_WINDOW) {
    *why = "field 'window' missing or out of range";
    return FALSE;
  }
  if (!gst_structure_get_int (s, "overlap", &info->overlap)
      || info->overlap < 0 || info->overlap >= info->window) {
    *why = "field 'overlap' missing or not in [0, window)";
    return FALSE;
  }
  fusion = gst_structure_get_string (s, "fusion");
  if (fusion == NULL || (strcmp (fusion, "progressive") != 0
          && strcmp (fusion, "uniform") != 0)) {
    *why = "field 'fusion' missing or not progressive/uniform";
    return FALSE;
  }
  info->fusion = strcmp (fusion, "uniform") == 0;
  if (!gst_structure_get_fraction (s, "framerate", &info->fps_n,
          &info->fps_d) || info->fps_n < 0 || info->fps_d <= 0) {
    *why = "field 'framerate' missing or invalid";
    return FALSE;
  }
  model = gst_structure_get_string (s, "model");
  info->model = g_strdup (model);
  return TRUE;
}

gsize
gst_avatar_latents_header_size (guint n_frames)
{
  gsize n = sizeof (GstAvatarLatentsHeader)
      + (gsize) n_frames * sizeof (GstAvatarLatentsFrame);
  return (n + 63) & ~(gsize) 63;
}

gsize
gst_avatar_latents_buffer_size (const GstAvatarLatentsInfo * info,
    guint n_frames)
{
  return gst_avatar_latents_header_size (n_frames) + (gsize) n_frames
      * info->channels * info->height * info->width * sizeof (float);
}

void
gst_avatar_latents_write_header (guint8 * data,
    const GstAvatarLatentsInfo * info, guint64 window_index,
    guint64 first_frame, guint n_frames, guint flags)
{
  GstAvatarLatentsHeader h;
  gsize header_size = gst_avatar_latents_header_size (n_frames);

  memset (data, 0, header_size);
  memset (&h, 0, sizeof (h));
  h.magic = GST_AVATAR_LATENTS_MAGIC;
  h.version = GST_AVATAR_LATENTS_VERSION;
  h.flags = flags;
  h.header_size = header_size;
  h.n_frames = n_frames;
  h.channels = info->channels;
  h.height = info->height;
  h.width = info->width;
  h.window = info->window;
  h.overlap = info->overlap;
  h.window_index = window_index;
  h.first_frame = first_frame;
  memcpy (data, &h, sizeof (h));
  for (guint i = 0; i < n_frames; i++) {
    GstAvatarLatentsFrame f = { GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE, -1,
      0
    };
    memcpy (data + sizeof (h) + i * sizeof (f), &f, sizeof (f));
  }
}

gboolean
gst_avatar_latents_parse (const guint8 * data, gsize size,
    const GstAvatarLatentsInfo * info, GstAvatarLatentsView * view,
    gchar * why, gsize why_size)
{
  const GstAvatarLatentsHeader *h = (const GstAvatarLatentsHeader *) data;
  gsize frame_floats, need;

  if (size < sizeof (*h)) {
    g_snprintf (why, why_size, "buffer of %" G_GSIZE_FORMAT " bytes is "
        "shorter than the %u-byte window header", size, (guint) sizeof (*h));
    return FALSE;
  }
  if (((guintptr) data) % 8 != 0) {
    g_snprintf (why, why_size, "buffer memory is not 8-byte aligned");
    return FALSE;
  }
  if (h->magic != GST_AVATAR_LATENTS_MAGIC) {
    g_snprintf (why, why_size, "header 'magic' is 0x%08x, not 0x%08x "
        "(\"AVLW\")", h->magic, GST_AVATAR_LATENTS_MAGIC);
    return FALSE;
  }
  if (h->version != GST_AVATAR_LATENTS_VERSION) {
    g_snprintf (why, why_size, "header 'version' %u is not %u", h->version,
        GST_AVATAR_LATENTS_VERSION);
    return FALSE;
  }
  if (h->channels != (guint32) info->channels
      || h->height != (guint32) info->height
      || h->width != (guint32) info->width
      || h->window != (guint32) info->window
      || h->overlap != (guint32) info->overlap) {
    g_snprintf (why, why_size, "header 'channels/height/width/window/"
        "overlap' %u/%u/%u/%u/%u differ from the caps' %d/%d/%d/%d/%d",
        h->channels, h->height, h->width, h->window, h->overlap,
        info->channels, info->height, info->width, info->window,
        info->overlap);
    return FALSE;
  }
  if (h->n_frames < 1 || h->n_frames > (guint32) info->window) {
    g_snprintf (why, why_size, "header 'n_frames' %u is not in [1, %d]",
        h->n_frames, info->window);
    return FALSE;
  }
  if (h->header_size != gst_avatar_latents_header_size (h->n_frames)) {
    g_snprintf (why, why_size, "header 'header_size' %u is not %"
        G_GSIZE_FORMAT " for %u frames", h->header_size,
        gst_avatar_latents_header_size (h->n_frames), h->n_frames);
    return FALSE;
  }
  if (h->window_index > G_MAXINT64 / GST_AVATAR_LATENTS_MAX_WINDOW
      || h->first_frame != h->window_index * (guint64) (info->window
          - info->overlap)) {
    g_snprintf (why, why_size, "header 'first_frame' %" G_GUINT64_FORMAT
        " is not window_index %" G_GUINT64_FORMAT " x stride %d",
        h->first_frame, h->window_index, info->window - info->overlap);
    return FALSE;
  }
  frame_floats = (gsize) info->channels * info->height * info->width;
  need = gst_avatar_latents_buffer_size (info, h->n_frames);
  if (size != need) {
    g_snprintf (why, why_size, "buffer has %" G_GSIZE_FORMAT " bytes, "
        "%u frames of %dx%dx%d latents need %" G_GSIZE_FORMAT, size,
        h->n_frames, info->channels, info->height, info->width, need);
    return FALSE;
  }
  view->header = h;
  view->frames = (const GstAvatarLatentsFrame *) (data + sizeof (*h));
  view->latents = (const float *) (data + h->header_size);
  view->frame_floats = frame_floats;
  return TRUE;
}
