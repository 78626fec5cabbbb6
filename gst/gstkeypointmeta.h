/* GstAvatarKeypointMeta: the pose keypoints of one video frame.
 * See docs/keypoint-meta.md. */
#ifndef GST_AVATAR_KEYPOINT_META_H
#define GST_AVATAR_KEYPOINT_META_H

#include <gst/gst.h>
#include "avatar-pose.h"

G_BEGIN_DECLS

#define GST_AVATAR_KEYPOINT_META_API_TYPE \
  (gst_avatar_keypoint_meta_api_get_type ())
#define GST_AVATAR_KEYPOINT_META_INFO \
  (gst_avatar_keypoint_meta_get_info ())

typedef struct _GstAvatarKeypointMeta GstAvatarKeypointMeta;

/**
 * GstAvatarKeypointMeta:
 * @meta: parent #GstMeta
 * @frame: the people's keypoints (body, feet, face, both hands: x, y,
 *   confidence) in pixels of this buffer's video frame; @frame.canvas_width
 *   and @frame.canvas_height are that frame's size.
 * @source_width: width of the canvas the keypoints came in on (the JSON's)
 * @source_height: height of that canvas
 * @frame_number: the pose frame's index in its stream, from 0
 */
struct _GstAvatarKeypointMeta
{
  GstMeta meta;

  ApFrame frame;
  gint source_width, source_height;
  guint64 frame_number;
};

GType gst_avatar_keypoint_meta_api_get_type (void);
const GstMetaInfo *gst_avatar_keypoint_meta_get_info (void);

/* Copies frame into a new meta on buffer (writable); returns the meta. */
GstAvatarKeypointMeta *gst_buffer_add_avatar_keypoint_meta (GstBuffer *
    buffer, const ApFrame * frame);

/* Adds a copy of src (all fields) to buffer: how elements that make new
 * buffers from old ones (latentfuse) carry the keypoints on. */
GstAvatarKeypointMeta *gst_buffer_add_avatar_keypoint_meta_copy (GstBuffer *
    buffer, const GstAvatarKeypointMeta * src);

/* The first keypoint meta; a buffer that holds several frames (a latent
 * window) has one per frame: walk them with
 * gst_buffer_iterate_meta_filtered (b, &state,
 * GST_AVATAR_KEYPOINT_META_API_TYPE) and tell them apart by frame_number. */
#define gst_buffer_get_avatar_keypoint_meta(b) ((GstAvatarKeypointMeta *) \
    gst_buffer_get_meta ((b), GST_AVATAR_KEYPOINT_META_API_TYPE))

G_END_DECLS
#endif /* GST_AVATAR_KEYPOINT_META_H */
