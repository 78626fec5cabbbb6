/* latentfuse: overlapping latent windows -> one RGB video frame per pose
 * frame, decoded by the model's VAE. */
#ifndef GST_LATENT_FUSE_H
#define GST_LATENT_FUSE_H

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#define GST_TYPE_LATENT_FUSE (gst_latent_fuse_get_type ())
G_DECLARE_FINAL_TYPE (GstLatentFuse, gst_latent_fuse, GST, LATENT_FUSE,
    GstElement)

GST_ELEMENT_REGISTER_DECLARE (latentfuse);

G_END_DECLS
#endif /* GST_LATENT_FUSE_H */
