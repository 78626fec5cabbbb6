/* avatardiffuse: pose-guidance frames + a reference image -> denoised latent
 * windows (application/x-avatar-latents). */
#ifndef GST_AVATAR_DIFFUSE_H
#define GST_AVATAR_DIFFUSE_H

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#define GST_TYPE_AVATAR_DIFFUSE (gst_avatar_diffuse_get_type ())
G_DECLARE_FINAL_TYPE (GstAvatarDiffuse, gst_avatar_diffuse, GST,
    AVATAR_DIFFUSE, GstElement)

/* Where the engine runs. */
typedef enum {
  GST_AVATAR_DIFFUSE_DEVICE_CPU,
  GST_AVATAR_DIFFUSE_DEVICE_VULKAN,
  GST_AVATAR_DIFFUSE_DEVICE_AUTO,
} GstAvatarDiffuseDevice;

#define GST_TYPE_AVATAR_DIFFUSE_SCHEDULER \
  (gst_avatar_diffuse_scheduler_get_type ())
#define GST_TYPE_AVATAR_DIFFUSE_FUSION (gst_avatar_diffuse_fusion_get_type ())
#define GST_TYPE_AVATAR_DIFFUSE_DEVICE (gst_avatar_diffuse_device_get_type ())
GType gst_avatar_diffuse_scheduler_get_type (void);
GType gst_avatar_diffuse_fusion_get_type (void);
GType gst_avatar_diffuse_device_get_type (void);

GST_ELEMENT_REGISTER_DECLARE (avatardiffuse);

G_END_DECLS
#endif /* GST_AVATAR_DIFFUSE_H */
