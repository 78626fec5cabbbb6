/* Backend choice: CPU or Vulkan (see backend.h). Built in every
 * configuration; the Vulkan paths exist when AE_HAVE_VULKAN is set. */
#include "backend.h"

#include <stdio.h>
#include <string.h>

#include <glib.h>

#ifdef AE_HAVE_VULKAN
#include "vk-context.h"
#include "vk-unet.h"
#include "vk-vae.h"
#endif

struct AeBackend {
  AeDevice device;              /* resolved: CPU or VULKAN */
  char describe[320];
  char note[1024];
#ifdef AE_HAVE_VULKAN
  AeVkContext vk;
  bool vk_open;
#endif
};

struct AeBackendUNet {
  AeBackend *b;
  AeUNet *u;
#ifdef AE_HAVE_VULKAN
  AeVkUNet *vk;
#endif
};

struct AeBackendVae {
  AeBackend *b;
  AeVae *vae;
#ifdef AE_HAVE_VULKAN
  AeVkVae *vk;
#endif
};

int
ae_device_parse (const char *name, AeDevice * out, AeError * err)
{
  if (name && strcmp (name, "cpu") == 0)
    *out = AE_DEVICE_CPU;
  else if (name && strcmp (name, "vulkan") == 0)
    *out = AE_DEVICE_VULKAN;
  else if (name && strcmp (name, "auto") == 0)
    *out = AE_DEVICE_AUTO;
  else
    return ae_error (err, "unknown device '%s' (cpu, vulkan or auto)",
        name ? name : "(null)");
  return 0;
}

const char *
ae_device_name (AeDevice d)
{
  switch (d) {
    case AE_DEVICE_CPU:
      return "cpu";
    case AE_DEVICE_VULKAN:
      return "vulkan";
    case AE_DEVICE_AUTO:
      return "auto";
  }
  return "?";
}

bool
ae_vulkan_built (void)
{
#ifdef AE_HAVE_VULKAN
  return true;
#else
  return false;
#endif
}

/* Opens the Vulkan context or says what is missing. */
static int
open_vulkan (AeBackend * b, AeError * err)
{
#ifdef AE_HAVE_VULKAN
  if (ae_vk_context_init (&b->vk, err) < 0) {
    ae_vk_context_free (&b->vk);
    return -1;
  }
  b->vk_open = true;
  snprintf (b->describe, sizeof b->describe, "vulkan: %s (%s)",
      ae_vk_device_name (&b->vk), ae_vk_device_type_name (&b->vk));
  return 0;
#else
  return ae_error (err, "vulkan: this build has no Vulkan backend (the "
      "Vulkan loader or glslc was missing at configure time: install "
      "libvulkan-dev and glslc, then reconfigure)");
#endif
}

bool
ae_backend_auto_accepts (const AeBackend * b, char *why, size_t why_size)
{
#ifdef AE_HAVE_VULKAN
  const char *named = g_getenv ("AE_VULKAN_DEVICE");

  if (!b->vk_open)
    return false;
  if (strcmp (ae_vk_device_type_name (&b->vk), "cpu") != 0 ||
      (named != NULL && named[0] != '\0'))
    return true;
  if (why)
    snprintf (why, why_size, "vulkan: the only device, %s (cpu), is a "
        "software implementation, slower than the CPU backend (ask for "
        "vulkan, or name it in AE_VULKAN_DEVICE, to use it)",
        ae_vk_device_name (&b->vk));
  return false;
#else
  if (why)
    snprintf (why, why_size, "vulkan: no Vulkan backend in this build");
  (void) b;
  return false;
#endif
}

int
ae_backend_open (AeBackend ** out, AeDevice want, AeError * err)
{
  AeBackend *b = g_new0 (AeBackend, 1);
  AeError verr;

  *out = NULL;
  b->device = AE_DEVICE_CPU;
  snprintf (b->describe, sizeof b->describe, "cpu");
  if (want == AE_DEVICE_VULKAN) {
    if (open_vulkan (b, err) < 0) {
      g_free (b);
      return -1;
    }
    b->device = AE_DEVICE_VULKAN;
  } else if (want == AE_DEVICE_AUTO) {
    if (open_vulkan (b, &verr) < 0) {
      snprintf (b->note, sizeof b->note, "%s", verr.msg);
    } else if (!ae_backend_auto_accepts (b, b->note, sizeof b->note)) {
      /* a CPU implementation (lavapipe) is slower than the CPU backend */
#ifdef AE_HAVE_VULKAN
      ae_vk_context_free (&b->vk);
      b->vk_open = false;
#endif
      snprintf (b->describe, sizeof b->describe, "cpu");
    } else {
      b->device = AE_DEVICE_VULKAN;
    }
  }
  *out = b;
  return 0;
}

void
ae_backend_free (AeBackend * b)
{
  if (b == NULL)
    return;
#ifdef AE_HAVE_VULKAN
  if (b->vk_open)
    ae_vk_context_free (&b->vk);
#endif
  g_free (b);
}

AeDevice
ae_backend_device (const AeBackend * b)
{
  return b->device;
}

const char *
ae_backend_describe (const AeBackend * b)
{
  return b->describe;
}

const char *
ae_backend_note (const AeBackend * b)
{
  return b->note;
}

void *
ae_backend_vk_context (AeBackend * b)
{
#ifdef AE_HAVE_VULKAN
  return b->vk_open ? &b->vk : NULL;
#else
  return NULL;
#endif
}

/* ---- UNet ----------------------------------------------------------- */

int
ae_backend_unet_new (AeBackendUNet ** out, AeBackend * b, AeUNet * u,
    AeError * err)
{
  AeBackendUNet *bu = g_new0 (AeBackendUNet, 1);

  *out = NULL;
  bu->b = b;
  bu->u = u;
#ifdef AE_HAVE_VULKAN
  if (b->device == AE_DEVICE_VULKAN &&
      ae_vk_unet_new (&bu->vk, &b->vk, u, err) < 0) {
    g_free (bu);
    return -1;
  }
#else
  (void) err;
#endif
  *out = bu;
  return 0;
}

void
ae_backend_unet_free (AeBackendUNet * bu)
{
  if (bu == NULL)
    return;
#ifdef AE_HAVE_VULKAN
  ae_vk_unet_free (bu->vk);
#endif
  g_free (bu);
}

int
ae_backend_unet_forward (AeBackendUNet * bu, AeTensor * out,
    const AeTensor * sample, const float *timesteps, int n_timesteps,
    const AeTensor * encoder_hidden_states, const AeUNetHooks * hooks,
    AeArena * arena, AeError * err)
{
#ifdef AE_HAVE_VULKAN
  if (bu->vk)
    return ae_vk_unet_forward (bu->vk, out, sample, timesteps, n_timesteps,
        encoder_hidden_states, hooks, err);
#endif
  if (arena == NULL)
    return ae_error (err, "unet: the CPU backend needs an arena");
  return ae_unet_forward (bu->u, out, sample, timesteps, n_timesteps,
      encoder_hidden_states, hooks, arena, err);
}

/* ---- VAE ------------------------------------------------------------ */

int
ae_backend_vae_new (AeBackendVae ** out, AeBackend * b, AeVae * vae,
    AeError * err)
{
  AeBackendVae *bv = g_new0 (AeBackendVae, 1);

  *out = NULL;
  bv->b = b;
  bv->vae = vae;
#ifdef AE_HAVE_VULKAN
  if (b->device == AE_DEVICE_VULKAN &&
      ae_vk_vae_new (&bv->vk, &b->vk, vae, err) < 0) {
    g_free (bv);
    return -1;
  }
#else
  (void) err;
#endif
  *out = bv;
  return 0;
}

void
ae_backend_vae_free (AeBackendVae * bv)
{
  if (bv == NULL)
    return;
#ifdef AE_HAVE_VULKAN
  ae_vk_vae_free (bv->vk);
#endif
  g_free (bv);
}

int
ae_backend_vae_decode (AeBackendVae * bv, const AeTensor * latent,
    AeTensor * sample, AeVaeActFn act_fn, void *act_user, AeArena * arena,
    AeError * err)
{
#ifdef AE_HAVE_VULKAN
  if (bv->vk) {
    if (act_fn)
      return ae_error (err, "vulkan vae: activation capture is only "
          "available on the CPU backend");
    return ae_vk_vae_decode (bv->vk, latent, sample, err);
  }
#endif
  if (arena == NULL)
    return ae_error (err, "vae: the CPU backend needs an arena");
  return ae_vae_decode (bv->vae, latent, sample, act_fn, act_user, arena,
      err);
}

int
ae_backend_vae_encode (AeBackendVae * bv, const AeTensor * x,
    AeTensor * mean, AeTensor * logvar, AeVaeActFn act_fn, void *act_user,
    AeArena * arena, AeError * err)
{
#ifdef AE_HAVE_VULKAN
  if (bv->vk) {
    if (act_fn)
      return ae_error (err, "vulkan vae: activation capture is only "
          "available on the CPU backend");
    return ae_vk_vae_encode (bv->vk, x, mean, logvar, err);
  }
#endif
  if (arena == NULL)
    return ae_error (err, "vae: the CPU backend needs an arena");
  return ae_vae_encode (bv->vae, x, mean, logvar, act_fn, act_user, arena,
      err);
}
