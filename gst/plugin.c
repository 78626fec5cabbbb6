/* gst-avatar: pose-guided latent diffusion avatars for GStreamer.
 * plugin.c only registers the elements; each lives in its own gst<name>.c. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <gst/gst.h>

#ifdef HAVE_POSEMAPPER
#include "gstposemapper.h"
#endif
#ifdef HAVE_POSETESTSRC
#include "gstposetestsrc.h"
#endif
#ifdef HAVE_AVATARDIFFUSE
#include "gstavatardiffuse.h"
#endif
#ifdef HAVE_LATENTFUSE
#include "gstlatentfuse.h"
#endif
#ifdef HAVE_FACERECAPTURE
#include "gstfacerecapture.h"
#endif

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

#ifdef HAVE_POSEMAPPER
  ret |= GST_ELEMENT_REGISTER (posemapper, plugin);
#endif
#ifdef HAVE_POSETESTSRC
  ret |= GST_ELEMENT_REGISTER (posetestsrc, plugin);
#endif
#ifdef HAVE_AVATARDIFFUSE
  ret |= GST_ELEMENT_REGISTER (avatardiffuse, plugin);
#endif
#ifdef HAVE_LATENTFUSE
  ret |= GST_ELEMENT_REGISTER (latentfuse, plugin);
#endif
#ifdef HAVE_FACERECAPTURE
  ret |= GST_ELEMENT_REGISTER (facerecapture, plugin);
#endif
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, avatar,
    "Pose-guided latent diffusion avatars", plugin_init, VERSION, "LGPL",
    PACKAGE, "https://example.invalid/gst-avatar")
