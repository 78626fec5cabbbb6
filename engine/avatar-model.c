/* The avatar model (all parts of a model folder, shared, immutable) and
 * reference identities (avatar-model.h, docs/avatar-pipeline.md). */
#include <math.h>
#include <string.h>

#include <glib.h>

#include "avatar-model.h"
#include "config.h"
#include "image.h"
#include "safetensors.h"
#include "scheduler.h"

/* The model's networks bound to one backend (avatar-model.h). */
struct AeAvatarDevice
{
  AeAvatarModel *m;             /* the owner (no reference: it frees us) */
  AeBackend *be;
  AeBackendUNet *unet, *ref_unet;       /* NULL until prepared */
  AeBackendVae *vae;
  bool serial;                  /* Vulkan: passes and uploads under lock */
  GMutex lock;
};

struct AeAvatarModel
{
  gint refcount;
  char *path;
  AeVae *vae;                   /* vae/ */
  AeUNet *unet;                 /* unet/ (denoising) */
  AeUNet *reference_unet;       /* reference_unet/ */
  AePoseGuider *pose_guider;    /* pose_guider/ */
  AeHandEncoder *hand_encoder;  /* hand_encoder/ (scratch: hand_lock) */
  GMutex hand_lock;
  char *scheduler_path;         /* scheduler_config.json */
  char *scheduler_json;
  int native_size;              /* vae sample_size */
  int size_multiple;
  size_t mapped_bytes, converted_bytes;
  /* The devices, created on first request (dev_lock), freed with us. */
  GMutex dev_lock;
  AeAvatarDevice *cpu, *vulkan;
  char vulkan_note[sizeof ((AeError *) 0)->msg];        /* last failure */
};

struct AeAvatarReference
{
  gint refcount;
  AeAvatarModel *model;
  int width, height;
  float *latent_data;
  AeTensor latent;              /* (1, C, h, w) */
  AeRefBank bank;
};

/* ---- model ---------------------------------------------------------------- */

static const char *const model_parts[] = {
  "vae", "unet", "reference_unet", "pose_guider", "hand_encoder",
};

/* Adds the weights memory of DIR's safetensors to the model's counts. */
static int
count_weights (AeAvatarModel * m, const char *dir, AeError * err)
{
  AeSafetensors *st;

  if (ae_st_open (&st, dir, err) < 0)
    return -1;
  for (int i = 0; i < ae_st_count (st); i++) {
    const AeStTensorInfo *ti = ae_st_info_at (st, i);
    m->mapped_bytes += ti->nbytes;
    if (ti->dtype != AE_DTYPE_F32)
      m->converted_bytes += ti->nbytes / ae_dtype_size (ti->dtype) * 4;
  }
  ae_st_close (st);
  return 0;
}

static int
count_blocks (const AeUNet * u)
{
  return u->n_transformer_blocks;
}

/* The reference UNet must have the denoising UNet's transformer blocks at
 * the same positions with the same widths (its bank feeds them). */
static int
check_unet_pair (const AeAvatarModel * m, AeError * err)
{
  const AeUNetConfig *a = &m->unet->cfg, *b = &m->reference_unet->cfg;
  char *pa = g_build_filename (m->path, "unet", "config.json", NULL);
  char *pb = g_build_filename (m->path, "reference_unet", "config.json",
      NULL);
  int ret = -1;

  if (a->n_levels != b->n_levels) {
    ae_error (err, "%s: %d levels (block_out_channels) != %s: %d", pb,
        b->n_levels, pa, a->n_levels);
    goto out;
  }
  for (int i = 0; i < a->n_levels; i++) {
    if (a->block_out_channels[i] != b->block_out_channels[i] ||
        a->down_types[i] != b->down_types[i] ||
        a->up_types[i] != b->up_types[i]) {
      ae_error (err, "%s: block %d (block_out_channels %d, block types) "
          "differs from %s (block_out_channels %d): the reference "
          "attention needs the same block layout", pb, i,
          b->block_out_channels[i], pa, a->block_out_channels[i]);
      goto out;
    }
  }
  if (a->layers_per_block != b->layers_per_block ||
      a->transformer_layers_per_block != b->transformer_layers_per_block ||
      count_blocks (m->unet) != count_blocks (m->reference_unet)) {
    ae_error (err, "%s: %d transformer blocks (layers_per_block %d) != "
        "%s: %d (layers_per_block %d)", pb,
        count_blocks (m->reference_unet), b->layers_per_block, pa,
        count_blocks (m->unet), a->layers_per_block);
    goto out;
  }
  if (a->cross_attention_dim != b->cross_attention_dim) {
    ae_error (err, "%s: cross_attention_dim %d != %s: %d", pb,
        b->cross_attention_dim, pa, a->cross_attention_dim);
    goto out;
  }
  ret = 0;
out:
  g_free (pa);
  g_free (pb);
  return ret;
}

static int
check_parts (AeAvatarModel * m, AeError * err)
{
  const AeUNetConfig *u = &m->unet->cfg;
  const AeVaeConfig *v = ae_vae_config (m->vae);
  const AePoseGuiderConfig *g = &m->pose_guider->cfg;
  const AeHandEncoderConfig *h = ae_hand_encoder_get_config (m->hand_encoder);
  const char *dir = m->path;
  int down = ae_vae_downscale (m->vae);

  if (check_unet_pair (m, err) < 0)
    return -1;
  if (g->conditioning_embedding_channels != u->block_out_channels[0])
    return ae_error (err, "%s/pose_guider/config.json: "
        "conditioning_embedding_channels %d != %s/unet/config.json "
        "block_out_channels[0] %d", dir, g->conditioning_embedding_channels,
        dir, u->block_out_channels[0]);
  if (g->conditioning_channels != 3)
    return ae_error (err, "%s/pose_guider/config.json: "
        "conditioning_channels %d, the pose image is RGB (3)", dir,
        g->conditioning_channels);
  if ((1 << (g->n_levels - 1)) != down)
    return ae_error (err, "%s/pose_guider/config.json: %d levels downscale "
        "%dx, %s/vae/config.json downscales %dx", dir, g->n_levels,
        1 << (g->n_levels - 1), dir, down);
  if (h->cross_attention_dim != u->cross_attention_dim)
    return ae_error (err, "%s/hand_encoder/config.json: cross_attention_dim "
        "%d != %s/unet/config.json cross_attention_dim %d", dir,
        h->cross_attention_dim, dir, u->cross_attention_dim);
  if (h->num_keypoints != AE_AVATAR_HAND_KP)
    return ae_error (err, "%s/hand_encoder/config.json: num_keypoints %d, "
        "the pipeline gives %d (two OpenPose hands)", dir, h->num_keypoints,
        AE_AVATAR_HAND_KP);
  /* in_channels 2 x latent: SVD-style reference concat (the reference
   * latent after z_t on the channel axis); the reference UNet only ever
   * sees z_ref */
  if (u->in_channels != v->latent_channels &&
      u->in_channels != 2 * v->latent_channels)
    return ae_error (err, "%s/unet/config.json: in_channels %d must be "
        "%s/vae/config.json latent_channels %d, or twice that (reference "
        "concat)", dir, u->in_channels, dir, v->latent_channels);
  if (v->latent_channels != u->out_channels ||
      v->latent_channels != m->reference_unet->cfg.in_channels)
    return ae_error (err, "%s/vae/config.json: latent_channels %d != "
        "%s/unet/config.json out_channels %d (or reference_unet's "
        "in_channels %d)", dir, v->latent_channels, dir, u->out_channels,
        m->reference_unet->cfg.in_channels);
  if (v->in_channels != 3 || v->out_channels != 3)
    return ae_error (err, "%s/vae/config.json: in/out_channels %d/%d, "
        "frames are RGB (3)", dir, v->in_channels, v->out_channels);
  return 0;
}

static int
load_native_size (AeAvatarModel * m, AeError * err)
{
  char *path = g_build_filename (m->path, "vae", "config.json", NULL);
  AeConfig *c = NULL;
  int64_t size = 0;
  int ret = -1;

  if (ae_config_load (&c, path, err) < 0 ||
      ae_config_get_int_or (c, "sample_size",
          (int64_t) 32 * ae_vae_downscale (m->vae), &size, err) < 0)
    goto out;
  if (size <= 0 || size > 16384 || size % m->size_multiple != 0) {
    ae_error (err, "%s: sample_size %lld is not a positive multiple of %d",
        path, (long long) size, m->size_multiple);
    goto out;
  }
  m->native_size = (int) size;
  ret = 0;
out:
  ae_config_free (c);
  g_free (path);
  return ret;
}

/* ---- devices -------------------------------------------------------------- */

static void
device_free (AeAvatarDevice * d)
{
  if (d == NULL)
    return;
  ae_backend_unet_free (d->unet);
  ae_backend_unet_free (d->ref_unet);
  ae_backend_vae_free (d->vae);
  ae_backend_free (d->be);
  g_mutex_clear (&d->lock);
  g_free (d);
}

/* Opens a backend of kind `want` (cpu or vulkan) for m. */
static int
device_open (AeAvatarModel * m, AeDevice want, AeAvatarDevice ** out,
    AeError * err)
{
  AeAvatarDevice *d = g_new0 (AeAvatarDevice, 1);

  g_mutex_init (&d->lock);
  d->m = m;
  if (ae_backend_open (&d->be, want, err) < 0) {
    device_free (d);
    return -1;
  }
  d->serial = ae_backend_device (d->be) != AE_DEVICE_CPU;
  *out = d;
  return 0;
}

int
ae_avatar_model_device (AeAvatarModel * m, AeDevice want,
    AeAvatarDevice ** out, AeError * err)
{
  AeError verr;
  int ret = 0;

  *out = NULL;
  if (want != AE_DEVICE_CPU && want != AE_DEVICE_VULKAN &&
      want != AE_DEVICE_AUTO)
    return ae_error (err, "%s: unknown device %d", m->path, (int) want);
  g_mutex_lock (&m->dev_lock);
  if (want != AE_DEVICE_CPU && m->vulkan == NULL) {
    /* tried again on every request until it opens (cheap when it fails);
     * auto keeps a device only if it would take it (a GPU) */
    AeAvatarDevice *d = NULL;
    if (device_open (m, want, &d, &verr) < 0) {
      g_strlcpy (m->vulkan_note, verr.msg, sizeof m->vulkan_note);
    } else if (ae_backend_device (d->be) == AE_DEVICE_CPU) {
      g_strlcpy (m->vulkan_note, ae_backend_note (d->be),
          sizeof m->vulkan_note);
      device_free (d);
    } else {
      m->vulkan = d;
      m->vulkan_note[0] = '\0';
    }
    if (m->vulkan == NULL && want == AE_DEVICE_VULKAN) {
      ae_error (err, "%s", verr.msg);
      ret = -1;
      goto out;
    }
  }
  if (want == AE_DEVICE_VULKAN || (want == AE_DEVICE_AUTO && m->vulkan &&
          ae_backend_auto_accepts (m->vulkan->be, m->vulkan_note,
              sizeof m->vulkan_note))) {
    *out = m->vulkan;
    goto out;
  }
  if (m->cpu == NULL && (device_open (m, AE_DEVICE_CPU, &m->cpu, err) < 0 ||
          ae_avatar_device_prepare (m->cpu, AE_AVATAR_PART_UNET |
              AE_AVATAR_PART_REFERENCE_UNET | AE_AVATAR_PART_VAE,
              err) < 0)) {
    device_free (m->cpu);
    m->cpu = NULL;
    ret = -1;
    goto out;
  }
  *out = m->cpu;
out:
  g_mutex_unlock (&m->dev_lock);
  return ret;
}

AeDevice
ae_avatar_device_kind (const AeAvatarDevice * d)
{
  return ae_backend_device (d->be);
}

const char *
ae_avatar_device_describe (const AeAvatarDevice * d)
{
  return ae_backend_describe (d->be);
}

const char *
ae_avatar_device_note (const AeAvatarDevice * d)
{
  return ae_backend_device (d->be) == AE_DEVICE_CPU ? d->m->vulkan_note : "";
}

AeAvatarModel *
ae_avatar_device_model (const AeAvatarDevice * d)
{
  return d->m;
}

AeBackend *
ae_avatar_device_backend (const AeAvatarDevice * d)
{
  return d->be;
}

/* Binds the parts not bound yet; the caller holds d->lock if serial. */
static int
prepare_locked (AeAvatarDevice * d, unsigned parts, AeError * err)
{
  AeError e;

  if ((parts & AE_AVATAR_PART_UNET) && d->unet == NULL &&
      ae_backend_unet_new (&d->unet, d->be, d->m->unet, &e) < 0)
    return ae_error (err, "%s/unet on %s: %s", d->m->path,
        ae_backend_describe (d->be), e.msg);
  if ((parts & AE_AVATAR_PART_REFERENCE_UNET) && d->ref_unet == NULL &&
      ae_backend_unet_new (&d->ref_unet, d->be, d->m->reference_unet,
          &e) < 0)
    return ae_error (err, "%s/reference_unet on %s: %s", d->m->path,
        ae_backend_describe (d->be), e.msg);
  if ((parts & AE_AVATAR_PART_VAE) && d->vae == NULL &&
      ae_backend_vae_new (&d->vae, d->be, d->m->vae, &e) < 0)
    return ae_error (err, "%s/vae on %s: %s", d->m->path,
        ae_backend_describe (d->be), e.msg);
  return 0;
}

static inline void
device_lock (AeAvatarDevice * d)
{
  if (d->serial)
    g_mutex_lock (&d->lock);
}

static inline void
device_unlock (AeAvatarDevice * d)
{
  if (d->serial)
    g_mutex_unlock (&d->lock);
}

int
ae_avatar_device_prepare (AeAvatarDevice * d, unsigned parts, AeError * err)
{
  int ret;

  /* the CPU device is fully bound at creation (nothing to upload), so only
   * Vulkan ever binds here after it is shared */
  device_lock (d);
  ret = prepare_locked (d, parts, err);
  device_unlock (d);
  return ret;
}

int
ae_avatar_device_unet_forward (AeAvatarDevice * d, AeAvatarPart which,
    AeTensor * out, const AeTensor * sample, const float *timesteps,
    int n_timesteps, const AeTensor * encoder_hidden_states,
    const AeUNetHooks * hooks, AeArena * arena, AeError * err)
{
  int ret;

  if (which != AE_AVATAR_PART_UNET && which != AE_AVATAR_PART_REFERENCE_UNET)
    return ae_error (err, "%s: part %d is not a UNet", d->m->path,
        (int) which);
  device_lock (d);
  ret = prepare_locked (d, which, err);
  if (ret == 0)
    ret = ae_backend_unet_forward (which == AE_AVATAR_PART_UNET ? d->unet :
        d->ref_unet, out, sample, timesteps, n_timesteps,
        encoder_hidden_states, hooks, arena, err);
  device_unlock (d);
  return ret;
}

int
ae_avatar_device_vae_encode (AeAvatarDevice * d, const AeTensor * x,
    AeTensor * mean, AeTensor * logvar, AeArena * arena, AeError * err)
{
  int ret;

  device_lock (d);
  ret = prepare_locked (d, AE_AVATAR_PART_VAE, err);
  if (ret == 0)
    ret = ae_backend_vae_encode (d->vae, x, mean, logvar, NULL, NULL, arena,
        err);
  device_unlock (d);
  return ret;
}

int
ae_avatar_device_vae_decode (AeAvatarDevice * d, const AeTensor * latent,
    AeTensor * sample, AeArena * arena, AeError * err)
{
  int ret;

  device_lock (d);
  ret = prepare_locked (d, AE_AVATAR_PART_VAE, err);
  if (ret == 0)
    ret = ae_backend_vae_decode (d->vae, latent, sample, NULL, NULL, arena,
        err);
  device_unlock (d);
  return ret;
}

int
ae_avatar_model_load (AeAvatarModel ** out, const char *dir, AeError * err)
{
  AeAvatarModel *m;
  AeScheduler *sched = NULL;
  GError *gerr = NULL;
  char *sub;
  int ret = -1;

  *out = NULL;
  if (dir == NULL || !g_file_test (dir, G_FILE_TEST_IS_DIR))
    return ae_error (err, "%s: not a model folder (no such directory)",
        dir ? dir : "(null)");
  for (size_t i = 0; i < G_N_ELEMENTS (model_parts); i++) {
    sub = g_build_filename (dir, model_parts[i], NULL);
    if (!g_file_test (sub, G_FILE_TEST_IS_DIR)) {
      ae_error (err, "%s: missing folder (a model folder holds vae/ unet/ "
          "reference_unet/ pose_guider/ hand_encoder/ "
          "scheduler_config.json)", sub);
      g_free (sub);
      return -1;
    }
    g_free (sub);
  }
  m = g_new0 (AeAvatarModel, 1);
  m->refcount = 1;
  m->path = g_strdup (dir);
  g_mutex_init (&m->hand_lock);
  g_mutex_init (&m->dev_lock);
  m->scheduler_path = g_build_filename (dir, "scheduler_config.json", NULL);
  if (!g_file_get_contents (m->scheduler_path, &m->scheduler_json, NULL,
          &gerr)) {
    ae_error (err, "%s: %s", m->scheduler_path, gerr->message);
    g_error_free (gerr);
    goto out;
  }
  if (ae_scheduler_load_data (&sched, m->scheduler_path, m->scheduler_json,
          NULL, err) < 0)
    goto out;
  ae_scheduler_free (sched);

#define LOAD_PART(name, call)                                           \
  sub = g_build_filename (dir, name, NULL);                             \
  if (call < 0 || count_weights (m, sub, err) < 0) {                    \
    g_free (sub);                                                       \
    goto out;                                                           \
  }                                                                     \
  g_free (sub);
  LOAD_PART ("vae", ae_vae_load (&m->vae, sub, err));
  LOAD_PART ("unet", ae_unet_load (&m->unet, sub, err));
  LOAD_PART ("reference_unet", ae_unet_load (&m->reference_unet, sub, err));
  LOAD_PART ("pose_guider", ae_pose_guider_load (&m->pose_guider, sub, err));
  LOAD_PART ("hand_encoder", ae_hand_encoder_load (&m->hand_encoder, sub,
          err));
#undef LOAD_PART
  if (check_parts (m, err) < 0)
    goto out;
  m->size_multiple = ae_vae_downscale (m->vae) *
      (1 << (m->unet->cfg.n_levels - 1));
  if (load_native_size (m, err) < 0)
    goto out;
  ret = 0;
out:
  if (ret < 0) {
    ae_avatar_model_unref (m);
    return -1;
  }
  *out = m;
  return 0;
}

AeAvatarModel *
ae_avatar_model_ref (AeAvatarModel * m)
{
  g_atomic_int_inc (&m->refcount);
  return m;
}

void
ae_avatar_model_unref (AeAvatarModel * m)
{
  if (m == NULL || !g_atomic_int_dec_and_test (&m->refcount))
    return;
  /* the bindings first: they point into the parts */
  device_free (m->vulkan);
  device_free (m->cpu);
  g_mutex_clear (&m->dev_lock);
  ae_vae_free (m->vae);
  ae_unet_free (m->unet);
  ae_unet_free (m->reference_unet);
  ae_pose_guider_free (m->pose_guider);
  ae_hand_encoder_free (m->hand_encoder);
  g_mutex_clear (&m->hand_lock);
  g_free (m->scheduler_path);
  g_free (m->scheduler_json);
  g_free (m->path);
  g_free (m);
}

const char *
ae_avatar_model_path (const AeAvatarModel * m)
{
  return m->path;
}

int
ae_avatar_model_native_size (const AeAvatarModel * m)
{
  return m->native_size;
}

int
ae_avatar_model_size_multiple (const AeAvatarModel * m)
{
  return m->size_multiple;
}

int
ae_avatar_model_latent_channels (const AeAvatarModel * m)
{
  return ae_vae_config (m->vae)->latent_channels;
}

int
ae_avatar_model_downscale (const AeAvatarModel * m)
{
  return ae_vae_downscale (m->vae);
}

float
ae_avatar_model_scaling_factor (const AeAvatarModel * m)
{
  return ae_vae_scaling_factor (m->vae);
}

bool
ae_avatar_model_reference_concat (const AeAvatarModel * m)
{
  return m->unet->cfg.in_channels == 2 * ae_avatar_model_latent_channels (m);
}

AeVae *
ae_avatar_model_vae (const AeAvatarModel * m)
{
  return m->vae;
}

AeUNet *
ae_avatar_model_unet (const AeAvatarModel * m)
{
  return m->unet;
}

AeUNet *
ae_avatar_model_reference_unet (const AeAvatarModel * m)
{
  return m->reference_unet;
}

AePoseGuider *
ae_avatar_model_pose_guider (const AeAvatarModel * m)
{
  return m->pose_guider;
}

const AeHandEncoderConfig *
ae_avatar_model_hand_config (const AeAvatarModel * m)
{
  return ae_hand_encoder_get_config (m->hand_encoder);
}

const char *
ae_avatar_model_scheduler_path (const AeAvatarModel * m)
{
  return m->scheduler_path;
}

const char *
ae_avatar_model_scheduler_json (const AeAvatarModel * m)
{
  return m->scheduler_json;
}

void
ae_avatar_model_weight_bytes (const AeAvatarModel * m, size_t * mapped,
    size_t * converted)
{
  if (mapped)
    *mapped = m->mapped_bytes;
  if (converted)
    *converted = m->converted_bytes;
}

int
ae_avatar_model_hand_tokens (AeAvatarModel * m, const float *keypoints,
    int B, float *tokens, AeError * err)
{
  int ret;

  g_mutex_lock (&m->hand_lock);
  ret = ae_hand_encoder_forward (m->hand_encoder, keypoints, B, tokens, err);
  g_mutex_unlock (&m->hand_lock);
  return ret;
}

int
ae_avatar_model_decode_rgb (AeAvatarModel * m, const float *latents, int n,
    int h, int w, uint8_t * rgb, int stride, size_t frame_bytes,
    AeArena * arena, AeError * err)
{
  AeAvatarDevice *d;

  if (ae_avatar_model_device (m, AE_DEVICE_CPU, &d, err) < 0)
    return -1;
  return ae_avatar_device_decode_rgb (d, latents, n, h, w, rgb, stride,
      frame_bytes, arena, err);
}

int
ae_avatar_device_decode_rgb (AeAvatarDevice * d, const float *latents,
    int n, int h, int w, uint8_t * rgb, int stride, size_t frame_bytes,
    AeArena * arena, AeError * err)
{
  AeAvatarModel *m = d->m;
  int c = ae_avatar_model_latent_channels (m);
  int f = ae_avatar_model_downscale (m);
  float inv = 1.0f / ae_avatar_model_scaling_factor (m);
  int64_t H = (int64_t) h * f, W = (int64_t) w * f;
  size_t lat_n = (size_t) c * h * w;

  if (n < 0 || h <= 0 || w <= 0 || stride < 3 * W)
    return ae_error (err, "%s: decode: bad shape (%d frames, %dx%d latent, "
        "stride %d)", m->path, n, h, w, stride);
  for (int i = 0; i < n; i++) {
    size_t mark = ae_arena_mark (arena);
    AeTensor z, y;
    uint8_t *img = rgb + (size_t) i * frame_bytes;
    int ret = -1;

    if (ae_arena_tensor4 (arena, &z, 1, c, h, w, err) < 0 ||
        ae_arena_tensor4 (arena, &y, 1, 3, H, W, err) < 0)
      goto frame_out;
    for (size_t j = 0; j < lat_n; j++)
      z.data[j] = latents[(size_t) i * lat_n + j] * inv;
    if (ae_avatar_device_vae_decode (d, &z, &y, arena, err) < 0)
      goto frame_out;
    for (int64_t yy = 0; yy < H; yy++) {
      uint8_t *row = img + (size_t) yy * stride;
      for (int64_t xx = 0; xx < W; xx++) {
        for (int ch = 0; ch < 3; ch++) {
          float v = (y.data[(ch * H + yy) * W + xx] + 1.0f) * 0.5f;
          v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
          if (!(v == v))
            v = 0.0f;
          row[xx * 3 + ch] = (uint8_t) lrintf (v * 255.0f);
        }
      }
    }
    ret = 0;
  frame_out:
    ae_arena_release (arena, mark);
    if (ret < 0)
      return -1;
  }
  return ae_arena_reset (arena, err);
}

int
ae_avatar_model_encode_rgb (AeAvatarModel * m, const uint8_t * rgb,
    int width, int height, int stride, float *latent, AeArena * arena,
    AeError * err)
{
  AeAvatarDevice *d;

  if (ae_avatar_model_device (m, AE_DEVICE_CPU, &d, err) < 0)
    return -1;
  return ae_avatar_device_encode_rgb (d, rgb, width, height, stride, latent,
      arena, err);
}

int
ae_avatar_device_encode_rgb (AeAvatarDevice * d, const uint8_t * rgb,
    int width, int height, int stride, float *latent, AeArena * arena,
    AeError * err)
{
  AeAvatarModel *m = d->m;
  int c = ae_avatar_model_latent_channels (m);
  int f = ae_avatar_model_downscale (m);
  float sf = ae_avatar_model_scaling_factor (m);
  size_t mark = ae_arena_mark (arena);
  AeTensor x, mean;
  int ret = -1;

  if (width <= 0 || height <= 0 || width % f || height % f ||
      stride < 3 * width)
    return ae_error (err, "%s: encode: image %dx%d is not a multiple of %d",
        m->path, width, height, f);
  if (ae_arena_tensor4 (arena, &x, 1, 3, height, width, err) < 0 ||
      ae_arena_tensor4 (arena, &mean, 1, c, height / f, width / f, err) < 0)
    goto out;
  for (int yy = 0; yy < height; yy++)
    for (int xx = 0; xx < width; xx++)
      for (int ch = 0; ch < 3; ch++)
        x.data[((size_t) ch * height + yy) * width + xx] =
            2.0f * rgb[(size_t) yy * stride + xx * 3 + ch] / 255.0f - 1.0f;
  if (ae_avatar_device_vae_encode (d, &x, &mean, NULL, arena, err) < 0)
    goto out;
  for (int64_t i = 0; i < ae_tensor_numel (&mean); i++)
    latent[i] = mean.data[i] * sf;
  ret = 0;
out:
  ae_arena_release (arena, mark);
  return ret;
}

/* ---- reference ------------------------------------------------------------ */

int
ae_avatar_reference_new (AeAvatarReference ** out, AeAvatarModel * m,
    const uint8_t * rgb, int rgb_width, int rgb_height, int stride,
    const float *hand_kp, int width, int height, AeError * err)
{
  AeAvatarDevice *d;

  *out = NULL;
  if (ae_avatar_model_device (m, AE_DEVICE_CPU, &d, err) < 0)
    return -1;
  return ae_avatar_reference_new_on (out, d, rgb, rgb_width, rgb_height,
      stride, hand_kp, width, height, err);
}

int
ae_avatar_reference_new_on (AeAvatarReference ** out, AeAvatarDevice * dev,
    const uint8_t * rgb, int rgb_width, int rgb_height, int stride,
    const float *hand_kp, int width, int height, AeError * err)
{
  AeAvatarModel *m = dev->m;
  AeAvatarReference *r;
  const AeHandEncoderConfig *hc = ae_avatar_model_hand_config (m);
  int mult = m->size_multiple, f = ae_avatar_model_downscale (m);
  int c = ae_avatar_model_latent_channels (m);
  float kp[AE_AVATAR_HAND_FLOATS];
  float *tokens = NULL;
  uint8_t *img = NULL;
  AeArena arena;
  AeTensor ctx, eps;
  float t0 = 0.0f;
  AeUNetHooks hooks;
  int ret = -1;

  *out = NULL;
  if (width == 0 && height == 0)
    width = height = m->native_size;
  if (width <= 0 || height <= 0 || width % mult || height % mult)
    return ae_error (err, "%s: reference: frame size %dx%d is not a "
        "positive multiple of %d", m->path, width, height, mult);
  if (rgb == NULL || rgb_width <= 0 || rgb_height <= 0 ||
      stride < 3 * rgb_width)
    return ae_error (err, "%s: reference: no image (%dx%d)", m->path,
        rgb_width, rgb_height);
  if (ae_arena_init (&arena, 0, err) < 0)
    return -1;
  r = g_new0 (AeAvatarReference, 1);
  r->refcount = 1;
  r->model = ae_avatar_model_ref (m);
  r->width = width;
  r->height = height;
  r->latent_data = g_new0 (float, (size_t) c * (height / f) * (width / f));
  r->latent = ae_tensor_4d (r->latent_data, 1, c, height / f, width / f);
  img = g_malloc ((size_t) width * height * 3);
  tokens = g_new (float, (size_t) AE_AVATAR_HAND_KP * hc->cross_attention_dim);

  /* 1-2: resize, encode */
  if (ae_image_resize (rgb, rgb_width, rgb_height, stride, img, width, height,
          width * 3, err) < 0 ||
      ae_avatar_device_encode_rgb (dev, img, width, height, width * 3,
          r->latent_data, &arena, err) < 0)
    goto out;
  /* 3: hand tokens */
  if (hand_kp)
    memcpy (kp, hand_kp, sizeof kp);
  else
    memset (kp, 0, sizeof kp);
  if (ae_avatar_model_hand_tokens (m, kp, 1, tokens, err) < 0)
    goto out;
  ctx = ae_tensor_3d (tokens, 1, AE_AVATAR_HAND_KP, hc->cross_attention_dim);
  /* 4: reference UNet at t = 0, capturing the bank */
  memset (&hooks, 0, sizeof hooks);
  hooks.ref_mode = AE_REF_CAPTURE;
  hooks.bank = &r->bank;
  if (ae_arena_tensor4 (&arena, &eps, 1, c, height / f, width / f, err) < 0 ||
      ae_avatar_device_unet_forward (dev, AE_AVATAR_PART_REFERENCE_UNET,
          &eps, &r->latent, &t0, 1, &ctx, &hooks, &arena, err) < 0)
    goto out;
  if (r->bank.n != m->unet->n_transformer_blocks) {
    ae_error (err, "%s/reference_unet: captured %d blocks, unet has %d",
        m->path, r->bank.n, m->unet->n_transformer_blocks);
    goto out;
  }
  ret = 0;
out:
  ae_arena_clear (&arena);
  g_free (img);
  g_free (tokens);
  if (ret < 0) {
    ae_avatar_reference_unref (r);
    return -1;
  }
  *out = r;
  return 0;
}

AeAvatarReference *
ae_avatar_reference_ref (AeAvatarReference * r)
{
  g_atomic_int_inc (&r->refcount);
  return r;
}

void
ae_avatar_reference_unref (AeAvatarReference * r)
{
  if (r == NULL || !g_atomic_int_dec_and_test (&r->refcount))
    return;
  ae_ref_bank_clear (&r->bank);
  g_free (r->latent_data);
  ae_avatar_model_unref (r->model);
  g_free (r);
}

int
ae_avatar_reference_width (const AeAvatarReference * r)
{
  return r->width;
}

int
ae_avatar_reference_height (const AeAvatarReference * r)
{
  return r->height;
}

AeAvatarModel *
ae_avatar_reference_model (const AeAvatarReference * r)
{
  return r->model;
}

const AeRefBank *
ae_avatar_reference_bank (const AeAvatarReference * r)
{
  return &r->bank;
}

const AeTensor *
ae_avatar_reference_latent (const AeAvatarReference * r)
{
  return &r->latent;
}
