/* posetestsrc: procedural talking-presenter keypoints as OpenPose JSON. */
#ifndef GST_POSE_TEST_SRC_H
#define GST_POSE_TEST_SRC_H

#include <gst/gst.h>
#include <gst/base/gstpushsrc.h>

G_BEGIN_DECLS

#define GST_TYPE_POSE_TEST_SRC (gst_pose_test_src_get_type ())
G_DECLARE_FINAL_TYPE (GstPoseTestSrc, gst_pose_test_src, GST, POSE_TEST_SRC,
    GstPushSrc)

GST_ELEMENT_REGISTER_DECLARE (posetestsrc);

G_END_DECLS
#endif /* GST_POSE_TEST_SRC_H */
