/* posemapper: OpenPose JSON keypoints -> pose-guidance video frames. */
#ifndef GST_POSE_MAPPER_H
#define GST_POSE_MAPPER_H

#include <gst/gst.h>
#include <gst/video/video.h>
#include "avatar-pose.h"

G_BEGIN_DECLS

#define GST_TYPE_POSE_MAPPER (gst_pose_mapper_get_type ())
G_DECLARE_FINAL_TYPE (GstPoseMapper, gst_pose_mapper, GST, POSE_MAPPER,
    GstElement)

/* How input buffers map onto JSON objects. */
typedef enum {
  GST_POSE_MAPPER_FRAMING_AUTO,
  GST_POSE_MAPPER_FRAMING_STREAM,
  GST_POSE_MAPPER_FRAMING_DATAGRAM,
} GstPoseMapperFraming;

#define GST_TYPE_POSE_MAPPER_STYLE (gst_pose_mapper_style_get_type ())
#define GST_TYPE_POSE_MAPPER_PEOPLE (gst_pose_mapper_people_get_type ())
#define GST_TYPE_POSE_MAPPER_FRAMING (gst_pose_mapper_framing_get_type ())
GType gst_pose_mapper_style_get_type (void);
GType gst_pose_mapper_people_get_type (void);
GType gst_pose_mapper_framing_get_type (void);

GST_ELEMENT_REGISTER_DECLARE (posemapper);

G_END_DECLS
#endif /* GST_POSE_MAPPER_H */
