/* GstAvatarKeypointMeta: registration, copy and scale transforms. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "gstkeypointmeta.h"

#include <gst/video/video.h>
#include <string.h>

GType
gst_avatar_keypoint_meta_api_get_type (void)
{
  static GType type = 0;
  /* "size": the keypoints are pixel positions, so scalers must call our
   * transform (which rescales them) or drop the meta. */
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR,
    GST_META_TAG_VIDEO_SIZE_STR, NULL
  };

  /* Looked up first: a test program that links this file and loads the
   * plugin holds two copies of it, and both must name one type. */
  if (g_once_init_enter (&type)) {
    GType t = g_type_from_name ("GstAvatarKeypointMetaAPI");
    if (t == 0)
      t = gst_meta_api_type_register ("GstAvatarKeypointMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
keypoint_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  GstAvatarKeypointMeta *kmeta = (GstAvatarKeypointMeta *) meta;

  ap_frame_init (&kmeta->frame);
  kmeta->frame.canvas_width = kmeta->frame.canvas_height = 0;
  kmeta->source_width = kmeta->source_height = 0;
  kmeta->frame_number = 0;
  return TRUE;
}

static void
copy_fields (GstAvatarKeypointMeta * dst, const GstAvatarKeypointMeta * src)
{
  memcpy (&dst->frame, &src->frame, sizeof (ApFrame));
  dst->source_width = src->source_width;
  dst->source_height = src->source_height;
  dst->frame_number = src->frame_number;
}

static gboolean
keypoint_meta_transform (GstBuffer * dest, GstMeta * meta, GstBuffer * src,
    GQuark type, gpointer data)
{
  GstAvatarKeypointMeta *smeta = (GstAvatarKeypointMeta *) meta, *dmeta;

  if (GST_META_TRANSFORM_IS_COPY (type)) {
    GstMetaTransformCopy *copy = data;
    /* A region of the bytes is not a region of the picture. */
    if (copy->region)
      return TRUE;
    dmeta = (GstAvatarKeypointMeta *) gst_buffer_add_meta (dest,
        GST_AVATAR_KEYPOINT_META_INFO, NULL);
    if (dmeta == NULL)
      return FALSE;
    copy_fields (dmeta, smeta);
    return TRUE;
  }
  if (GST_VIDEO_META_TRANSFORM_IS_SCALE (type)) {
    GstVideoMetaTransform *trans = data;
    int w = GST_VIDEO_INFO_WIDTH (trans->out_info);
    int h = GST_VIDEO_INFO_HEIGHT (trans->out_info);
    dmeta = (GstAvatarKeypointMeta *) gst_buffer_add_meta (dest,
        GST_AVATAR_KEYPOINT_META_INFO, NULL);
    if (dmeta == NULL)
      return FALSE;
    copy_fields (dmeta, smeta);
    /* A scaler stretches the whole picture: stretch the points alike. */
    dmeta->frame.canvas_width = GST_VIDEO_INFO_WIDTH (trans->in_info);
    dmeta->frame.canvas_height = GST_VIDEO_INFO_HEIGHT (trans->in_info);
    ap_frame_map_to (&dmeta->frame, w, h, 0);
    return TRUE;
  }
  /* Anything else (cropping, rotating) would move the points in ways we
   * cannot follow: the meta is not carried over. */
  return FALSE;
}

const GstMetaInfo *
gst_avatar_keypoint_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *i = gst_meta_get_info ("GstAvatarKeypointMeta");
    if (i == NULL)
      i = gst_meta_register (GST_AVATAR_KEYPOINT_META_API_TYPE,
          "GstAvatarKeypointMeta", sizeof (GstAvatarKeypointMeta),
          keypoint_meta_init, NULL, keypoint_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) i);
  }
  return info;
}

GstAvatarKeypointMeta *
gst_buffer_add_avatar_keypoint_meta (GstBuffer * buffer, const ApFrame * frame)
{
  GstAvatarKeypointMeta *meta;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (frame != NULL, NULL);
  meta = (GstAvatarKeypointMeta *) gst_buffer_add_meta (buffer,
      GST_AVATAR_KEYPOINT_META_INFO, NULL);
  if (meta == NULL)
    return NULL;
  memcpy (&meta->frame, frame, sizeof (ApFrame));
  meta->source_width = frame->canvas_width;
  meta->source_height = frame->canvas_height;
  return meta;
}

GstAvatarKeypointMeta *
gst_buffer_add_avatar_keypoint_meta_copy (GstBuffer * buffer,
    const GstAvatarKeypointMeta * src)
{
  GstAvatarKeypointMeta *meta;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (src != NULL, NULL);
  meta = (GstAvatarKeypointMeta *) gst_buffer_add_meta (buffer,
      GST_AVATAR_KEYPOINT_META_INFO, NULL);
  if (meta != NULL)
    copy_fields (meta, src);
  return meta;
}
