/* facerecapture: restores the face of RGB frames that carry a keypoint meta
 * with the face model of the avatar model folder (MODEL/face). */
#ifndef GST_FACE_RECAPTURE_H
#define GST_FACE_RECAPTURE_H

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_FACE_RECAPTURE (gst_face_recapture_get_type ())
G_DECLARE_FINAL_TYPE (GstFaceRecapture, gst_face_recapture, GST,
    FACE_RECAPTURE, GstVideoFilter)

GST_ELEMENT_REGISTER_DECLARE (facerecapture);

G_END_DECLS
#endif /* GST_FACE_RECAPTURE_H */
