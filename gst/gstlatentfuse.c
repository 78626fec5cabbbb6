/* latentfuse: overlapping latent windows -> RGB video frames.
 *
 * The element is thin: AeLatentBlender (engine/avatar-stream.h) blends the
 * copies of every frame with the fusion weights and hands frames out in
 * order, each once; ae_avatar_model_decode_rgb decodes them through the
 * model's VAE. This file does caps, timestamps, keypoint metas and errors.
 */

/**
 * SECTION:element-latentfuse
 * @title: latentfuse
 *
 * latentfuse takes the latent windows avatardiffuse produces
 * (`application/x-avatar-latents`), blends the frames that consecutive
 * windows share (the same uniform or progressive weights as the
 * denoising), decodes every frame through the model's VAE decoder and
 * outputs RGB video: exactly one frame per pose frame that went into
 * avatardiffuse, with that frame's timestamp, duration and
 * #GstAvatarKeypointMeta. A frame held by two windows leaves when the
 * later one arrives; the window flagged last (or EOS) flushes the rest.
 *
 * The model is the one named by #GstLatentFuse:model, else the one the
 * caps name (avatardiffuse's); elements naming the same model share one
 * loaded copy (docs/shared-engine.md). #GstLatentFuse:device picks where the
 * VAE decodes (cpu, vulkan, auto; docs/vulkan.md).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=talk.jsonl ! posemapper ! \
 *     video/x-raw,width=256,height=256 ! avatardiffuse ! latentfuse ! \
 *     videoconvert ! autovideosink
 * ]| Animates the bundled identity with a pose file.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "gstlatentfuse.h"
#include "gstavatarcontext.h"
#include "gstavatardiffuse.h"
#include "gstavatarlatents.h"
#include "gstkeypointmeta.h"

#include "avatar-stream.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_latent_fuse_debug);
#define GST_CAT_DEFAULT gst_latent_fuse_debug

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_DEVICE,
  PROP_STATS,
};

#define DEFAULT_PROP_DEVICE GST_AVATAR_DIFFUSE_DEVICE_CPU

/* A frame whose latent arrived but that has not left yet. */
typedef struct
{
  GstClockTime pts, duration;
  GstBuffer *meta_holder;       /* empty buffer with its keypoint meta */
} PendingFrame;

struct _GstLatentFuse
{
  GstElement parent;

  GstPad *sinkpad, *srcpad;

  /* Properties, under the object lock. */
  gchar *model;
  GstAvatarDiffuseDevice device;

  /* The engine a context brought (set_context, object lock), and the one
   * in use: set at caps, read by pad queries under the object lock. */
  GstAvatarEngine *given;
  GstAvatarEngine *engine;

  /* Streaming state. */
  gboolean configured;
  GstAvatarLatentsInfo info;
  GstVideoInfo out_info;
  AeFusionLayout layout;
  AeAvatarDevice *dev;          /* the model's, where the VAE decodes */
  AeLatentBlender *blender;
  gfloat *fused;                /* one frame's latent */
  AeArena arena;
  gboolean arena_ok;
  PendingFrame *pending;        /* ring, frame % n_pending */
  guint n_pending;
  gint64 next_window;           /* the window index expected next */
  gint64 base_window;           /* blender window 0 = this window index */
  gint64 frames_known;          /* frames recorded so far (absolute) */
  gboolean discont;
  GstAvatarKeypointMeta *metas[GST_AVATAR_LATENTS_MAX_WINDOW];

  /* Statistics, under the object lock. */
  gchar *device_desc;           /* the device in use */
  guint64 windows_in, frames_out;
  GstClockTime decode_time;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_AVATAR_LATENTS_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE ("RGB")));

#define gst_latent_fuse_parent_class parent_class
G_DEFINE_TYPE (GstLatentFuse, gst_latent_fuse, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (latentfuse, "latentfuse", GST_RANK_NONE,
    GST_TYPE_LATENT_FUSE);

/* ---- Pending frames ------------------------------------------------------ */

static PendingFrame *
pending_at (GstLatentFuse * self, gint64 frame)
{
  return &self->pending[frame % self->n_pending];
}

static void
pending_clear_all (GstLatentFuse * self)
{
  for (guint i = 0; i < self->n_pending; i++)
    gst_clear_buffer (&self->pending[i].meta_holder);
}

/* Forgets the stream: the next window starts a new one. */
static void
stream_reset (GstLatentFuse * self)
{
  if (self->blender)
    ae_latent_blender_reset (self->blender);
  pending_clear_all (self);
  self->next_window = 0;
  self->base_window = 0;
  self->frames_known = 0;
}

static void
free_config (GstLatentFuse * self)
{
  pending_clear_all (self);
  g_clear_pointer (&self->pending, g_free);
  self->n_pending = 0;
  g_clear_pointer (&self->blender, ae_latent_blender_free);
  g_clear_pointer (&self->fused, g_free);
  if (self->arena_ok)
    ae_arena_clear (&self->arena);
  self->arena_ok = FALSE;
  self->configured = FALSE;
  self->dev = NULL;             /* the model's: goes with the engine */
  gst_avatar_latents_info_clear (&self->info);
}

/* ---- Frames out ---------------------------------------------------------- */

static GstFlowReturn
push_frame (GstLatentFuse * self, gint64 frame)
{
  PendingFrame *p = pending_at (self, frame);
  GstAvatarKeypointMeta *meta;
  GstVideoFrame vframe;
  GstBuffer *buf;
  AeError err;
  gint64 t0 = g_get_monotonic_time ();
  int rc;

  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&self->out_info),
      NULL);
  if (buf == NULL || !gst_video_frame_map (&vframe, &self->out_info, buf,
          GST_MAP_WRITE)) {
    gst_clear_buffer (&buf);
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
        ("cannot allocate a %dx%d frame", self->out_info.width,
            self->out_info.height));
    return GST_FLOW_ERROR;
  }
  rc = ae_avatar_device_decode_rgb (self->dev, self->fused, 1,
      self->info.height,
      self->info.width, GST_VIDEO_FRAME_PLANE_DATA (&vframe, 0),
      GST_VIDEO_FRAME_PLANE_STRIDE (&vframe, 0),
      GST_VIDEO_INFO_SIZE (&self->out_info), &self->arena, &err);
  gst_video_frame_unmap (&vframe);
  if (rc == 0)
    rc = ae_arena_reset (&self->arena, &err);
  if (rc != 0) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("Decoding frame %" G_GINT64_FORMAT " failed", frame),
        ("%s", err.msg));
    return GST_FLOW_ERROR;
  }

  GST_BUFFER_PTS (buf) = p->pts;
  GST_BUFFER_DTS (buf) = p->pts;
  GST_BUFFER_DURATION (buf) = p->duration;
  GST_BUFFER_OFFSET (buf) = frame;
  GST_BUFFER_OFFSET_END (buf) = frame + 1;
  meta = p->meta_holder
      ? gst_buffer_get_avatar_keypoint_meta (p->meta_holder) : NULL;
  if (meta != NULL)
    gst_buffer_add_avatar_keypoint_meta_copy (buf, meta);
  gst_clear_buffer (&p->meta_holder);
  if (self->discont) {
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
    self->discont = FALSE;
  }
  GST_OBJECT_LOCK (self);
  self->frames_out++;
  self->decode_time += (g_get_monotonic_time () - t0) * GST_USECOND;
  GST_OBJECT_UNLOCK (self);
  GST_LOG_OBJECT (self, "frame %" G_GINT64_FORMAT " at %" GST_TIME_FORMAT,
      frame, GST_TIME_ARGS (p->pts));
  return gst_pad_push (self->srcpad, buf);
}

/* Pushes every frame the blender has ready. */
static GstFlowReturn
push_ready (GstLatentFuse * self)
{
  GstFlowReturn ret = GST_FLOW_OK;
  gint64 rel;
  gint64 base_frame = self->base_window * self->layout.stride;

  while (ae_latent_blender_pop (self->blender, &rel, self->fused) == 1) {
    GstFlowReturn r;
    if (ret != GST_FLOW_OK)
      continue;                 /* keep the blender consistent */
    r = push_frame (self, base_frame + rel);
    if (r != GST_FLOW_OK)
      ret = r;
  }
  return ret;
}

/* End of a stream of windows: every frame still held leaves. */
static GstFlowReturn
flush_stream (GstLatentFuse * self)
{
  GstFlowReturn ret;

  if (!self->configured)
    return GST_FLOW_OK;
  ae_latent_blender_finish (self->blender);
  ret = push_ready (self);
  stream_reset (self);
  return ret;
}

/* ---- Caps ---------------------------------------------------------------- */

static gboolean
same_geometry (const GstAvatarLatentsInfo * a, const GstAvatarLatentsInfo * b)
{
  return a->channels == b->channels && a->height == b->height
      && a->width == b->width && a->window == b->window
      && a->overlap == b->overlap && a->fusion == b->fusion
      && g_strcmp0 (a->model, b->model) == 0;
}

static gboolean
set_src_caps (GstLatentFuse * self)
{
  GstCaps *caps;
  gboolean ok;
  gint f = ae_avatar_model_downscale (gst_avatar_engine_get_model
      (self->engine));

  gst_video_info_set_format (&self->out_info, GST_VIDEO_FORMAT_RGB,
      self->info.width * f, self->info.height * f);
  self->out_info.fps_n = self->info.fps_n;
  self->out_info.fps_d = self->info.fps_d;
  caps = gst_video_info_to_caps (&self->out_info);
  ok = gst_pad_set_caps (self->srcpad, caps);
  GST_DEBUG_OBJECT (self, "output %" GST_PTR_FORMAT ": %d", caps, ok);
  gst_caps_unref (caps);
  return ok;
}

/* The model's VAE on the device asked for (docs/vulkan.md): vulkan
 * without a Vulkan device is an error naming what is missing; auto falls
 * back to the CPU and says why. */
static gboolean
open_device (GstLatentFuse * self, AeAvatarModel * model, const gchar * dir)
{
  GstAvatarDiffuseDevice device;
  AeDevice want;
  AeError err;

  GST_OBJECT_LOCK (self);
  device = self->device;
  GST_OBJECT_UNLOCK (self);
  want = device == GST_AVATAR_DIFFUSE_DEVICE_VULKAN ? AE_DEVICE_VULKAN :
      device == GST_AVATAR_DIFFUSE_DEVICE_AUTO ? AE_DEVICE_AUTO :
      AE_DEVICE_CPU;
  if (ae_avatar_model_device (model, want, &self->dev, &err) != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("device=vulkan: %s", err.msg),
        ("model '%s'; device=cpu or device=auto run without Vulkan", dir));
    return FALSE;
  }
  if (want == AE_DEVICE_AUTO
      && ae_avatar_device_kind (self->dev) == AE_DEVICE_CPU) {
    GST_INFO_OBJECT (self, "device=auto: decoding on the CPU: %s",
        ae_avatar_device_note (self->dev));
    GST_ELEMENT_INFO (self, RESOURCE, NOT_FOUND,
        ("device=auto: no Vulkan GPU, decoding on the CPU"),
        ("%s", ae_avatar_device_note (self->dev)));
  }
  if (ae_avatar_device_prepare (self->dev, AE_AVATAR_PART_VAE, &err) != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Cannot load the VAE of the model '%s' onto %s", dir,
            ae_avatar_device_describe (self->dev)), ("%s", err.msg));
    self->dev = NULL;
    return FALSE;
  }
  GST_INFO_OBJECT (self, "decoding on %s",
      ae_avatar_device_describe (self->dev));
  GST_OBJECT_LOCK (self);
  g_free (self->device_desc);
  self->device_desc = g_strdup (ae_avatar_device_describe (self->dev));
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static gboolean
latent_fuse_set_caps (GstLatentFuse * self, GstCaps * caps)
{
  GstAvatarLatentsInfo info;
  const gchar *why = NULL;
  gchar *dir;
  GError *error = NULL;
  AeAvatarModel *model;
  AeError err;
  gsize frame_floats;

  gst_avatar_latents_info_init (&info);
  if (!gst_avatar_latents_info_from_caps (&info, caps, &why)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Bad latent window caps: %s", why), ("caps %" GST_PTR_FORMAT, caps));
    gst_avatar_latents_info_clear (&info);
    return FALSE;
  }

  if (self->configured && same_geometry (&info, &self->info)) {
    self->info.fps_n = info.fps_n;
    self->info.fps_d = info.fps_d;
    gst_avatar_latents_info_clear (&info);
    return set_src_caps (self);
  }
  if (self->configured) {
    GstFlowReturn ret = flush_stream (self);
    if (ret != GST_FLOW_OK)
      GST_WARNING_OBJECT (self, "flushing before new caps: %s",
          gst_flow_get_name (ret));
  }
  free_config (self);

  GST_OBJECT_LOCK (self);
  dir = g_strdup (self->model ? self->model : info.model);
  GST_OBJECT_UNLOCK (self);
  if (dir == NULL)
    dir = gst_avatar_default_model_dir ();
  if (!gst_avatar_engine_ensure (GST_ELEMENT (self), dir, &self->given,
          &self->engine, &error)) {
    if (error->code == GST_RESOURCE_ERROR_NOT_FOUND)
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("Cannot find the model '%s'", dir), ("%s", error->message));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
          ("Cannot load the model '%s'", dir), ("%s", error->message));
    g_clear_error (&error);
    g_free (dir);
    gst_avatar_latents_info_clear (&info);
    return FALSE;
  }
  model = gst_avatar_engine_get_model (self->engine);
  if (info.channels != ae_avatar_model_latent_channels (model)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Latents have %d channels, the VAE of the model '%s' takes %d",
            info.channels, dir, ae_avatar_model_latent_channels (model)),
        (NULL));
    g_free (dir);
    gst_avatar_latents_info_clear (&info);
    return FALSE;
  }
  if (!open_device (self, model, dir)) {
    g_free (dir);
    gst_avatar_latents_info_clear (&info);
    return FALSE;
  }
  g_free (dir);

  frame_floats = (gsize) info.channels * info.height * info.width;
  if (ae_fusion_layout_init (&self->layout, info.window, info.overlap,
          info.fusion ? AE_FUSION_UNIFORM : AE_FUSION_PROGRESSIVE, &err) != 0
      || (self->blender = ae_latent_blender_new (&self->layout, frame_floats,
              &err)) == NULL || ae_arena_init (&self->arena, 0, &err) != 0) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT, (NULL), ("%s", err.msg));
    gst_avatar_latents_info_clear (&info);
    free_config (self);
    return FALSE;
  }
  self->arena_ok = TRUE;
  self->fused = g_new (gfloat, frame_floats);
  self->n_pending = 2 * info.window;
  self->pending = g_new0 (PendingFrame, self->n_pending);
  self->info = info;            /* takes info.model */
  self->configured = TRUE;
  stream_reset (self);
  return set_src_caps (self);
}

/* ---- Windows in ---------------------------------------------------------- */

/* Collects the buffer's keypoint metas in order into self->metas. */
static guint
collect_metas (GstLatentFuse * self, GstBuffer * buf)
{
  gpointer state = NULL;
  GstMeta *m;
  guint n = 0;

  while ((m = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_AVATAR_KEYPOINT_META_API_TYPE)) != NULL
      && n < G_N_ELEMENTS (self->metas))
    self->metas[n++] = (GstAvatarKeypointMeta *) m;
  return n;
}

static GstFlowReturn
gst_latent_fuse_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstLatentFuse *self = GST_LATENT_FUSE (parent);
  GstAvatarLatentsView view;
  GstMapInfo map;
  gchar why[256];
  AeError err;
  gint64 index, first;
  guint n_metas;
  gboolean last;
  GstFlowReturn ret = GST_FLOW_OK;

  if (!self->configured) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("a window arrived before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map input"));
    return GST_FLOW_ERROR;
  }
  if (!gst_avatar_latents_parse (map.data, map.size, &self->info, &view,
          why, sizeof (why))) {
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("Malformed latent window"), ("%s", why));
    return GST_FLOW_ERROR;
  }
  index = view.header->window_index;
  first = view.header->first_frame;
  last = (view.header->flags & GST_AVATAR_LATENTS_FLAG_LAST) != 0;
  GST_OBJECT_LOCK (self);
  self->windows_in++;
  GST_OBJECT_UNLOCK (self);

  /* A window out of sequence: what was held leaves, a new stream starts
   * at this window (upstream restarted, or a window was lost). */
  if (index != self->next_window) {
    if (index != 0)
      GST_ELEMENT_WARNING (self, STREAM, DECODE,
          ("Latent window %" G_GINT64_FORMAT " arrived, %" G_GINT64_FORMAT
              " was expected: the overlap with the windows before is not "
              "blended", index, self->next_window), (NULL));
    ret = flush_stream (self);
    self->base_window = index;
    self->next_window = index;
    self->frames_known = first;
  }

  /* Frames no earlier window carried: their time and meta. */
  n_metas = collect_metas (self, buf);
  for (guint i = 0; i < view.header->n_frames; i++) {
    gint64 f = first + i;
    const GstAvatarLatentsFrame *fr = &view.frames[i];
    PendingFrame *p;

    if (f < self->frames_known)
      continue;
    p = pending_at (self, f);
    gst_clear_buffer (&p->meta_holder);
    p->pts = fr->pts;
    p->duration = fr->duration;
    if (fr->meta_index >= 0 && (guint) fr->meta_index < n_metas) {
      p->meta_holder = gst_buffer_new ();
      gst_buffer_add_avatar_keypoint_meta_copy (p->meta_holder,
          self->metas[fr->meta_index]);
    }
  }
  self->frames_known = MAX (self->frames_known,
      first + (gint64) view.header->n_frames);

  if (ae_latent_blender_push (self->blender, index - self->base_window,
          first - self->base_window * self->layout.stride,
          view.header->n_frames, view.latents, &err) != 0) {
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("Latent window %" G_GINT64_FORMAT " does not fit the stream",
            index), ("%s", err.msg));
    return GST_FLOW_ERROR;
  }
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);
  self->next_window = index + 1;

  if (ret == GST_FLOW_OK)
    ret = push_ready (self);
  if (last) {
    GstFlowReturn r = flush_stream (self);
    if (ret == GST_FLOW_OK)
      ret = r;
  }
  return ret;
}

/* ---- Events and queries -------------------------------------------------- */

static gboolean
gst_latent_fuse_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstLatentFuse *self = GST_LATENT_FUSE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gboolean ok;
      gst_event_parse_caps (event, &caps);
      ok = latent_fuse_set_caps (self, caps);
      gst_event_unref (event);
      return ok;
    }
    case GST_EVENT_FLUSH_STOP:
      stream_reset (self);
      self->discont = TRUE;
      break;
    case GST_EVENT_EOS:
      flush_stream (self);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_latent_fuse_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstLatentFuse *self = GST_LATENT_FUSE (parent);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CONTEXT) {
    if (gst_avatar_engine_handle_context_query (GST_ELEMENT (self), query,
            &self->engine))
      return TRUE;
  }
  if (pad == self->sinkpad && GST_QUERY_TYPE (query) == GST_QUERY_ALLOCATION)
    return FALSE;
  return gst_pad_query_default (pad, parent, query);
}

/* ---- GObject ------------------------------------------------------------- */

static void
gst_latent_fuse_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstLatentFuse *self = GST_LATENT_FUSE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->model);
      self->model = g_value_dup_string (value);
      if (self->model && self->model[0] == '\0')
        g_clear_pointer (&self->model, g_free);
      break;
    case PROP_DEVICE:
      self->device = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_latent_fuse_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstLatentFuse *self = GST_LATENT_FUSE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model);
      break;
    case PROP_DEVICE:
      g_value_set_enum (value, self->device);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, gst_structure_new ("latentfuse-stats",
              "windows-in", G_TYPE_UINT64, self->windows_in,
              "frames-out", G_TYPE_UINT64, self->frames_out,
              "decode-time", G_TYPE_UINT64, self->decode_time,
              "device", G_TYPE_STRING, self->device_desc, NULL));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_latent_fuse_set_context (GstElement * element, GstContext * context)
{
  GstLatentFuse *self = GST_LATENT_FUSE (element);

  gst_avatar_engine_handle_set_context (element, context, &self->given);
  GST_ELEMENT_CLASS (parent_class)->set_context (element, context);
}

static GstStateChangeReturn
gst_latent_fuse_change_state (GstElement * element, GstStateChange transition)
{
  GstLatentFuse *self = GST_LATENT_FUSE (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    GST_OBJECT_LOCK (self);
    self->windows_in = self->frames_out = 0;
    self->decode_time = 0;
    GST_OBJECT_UNLOCK (self);
    self->discont = TRUE;
  }
  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    free_config (self);
    GST_OBJECT_LOCK (self);
    gst_clear_object (&self->engine);
    GST_OBJECT_UNLOCK (self);
  }
  return ret;
}

static void
gst_latent_fuse_finalize (GObject * object)
{
  GstLatentFuse *self = GST_LATENT_FUSE (object);

  free_config (self);
  gst_clear_object (&self->engine);
  gst_clear_object (&self->given);
  g_free (self->model);
  g_free (self->device_desc);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_latent_fuse_class_init (GstLatentFuseClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_latent_fuse_set_property;
  gobject_class->get_property = gst_latent_fuse_get_property;
  gobject_class->finalize = gst_latent_fuse_finalize;
  element_class->change_state = gst_latent_fuse_change_state;
  element_class->set_context = gst_latent_fuse_set_context;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model folder",
          "Model folder whose VAE decodes the latents. NULL: the model the "
          "caps name (the one avatardiffuse uses), else "
          "$GST_AVATAR_MODEL_DIR, else the bundled models/avatar-default. "
          "Elements naming the same folder share one loaded model", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_enum ("device", "Device",
          "Where the VAE decodes: cpu; vulkan (Vulkan compute; an error at "
          "caps naming what is missing when no Vulkan device opens); auto "
          "(a Vulkan GPU when one opens, else the CPU, with an info message "
          "saying why). The weights are uploaded once per model and device, "
          "shared with avatardiffuse when it uses the same model and device "
          "(docs/vulkan.md)", GST_TYPE_AVATAR_DIFFUSE_DEVICE,
          DEFAULT_PROP_DEVICE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Counters since the element went to PAUSED: windows-in, "
          "frames-out, decode-time (guint64 ns spent decoding), device "
          "(string: where the VAE decodes, \"cpu\" or \"vulkan: <name> "
          "(<type>)\"; NULL before the first caps)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Avatar latent fusion", "Filter/Decoder/Video",
      "Blends overlapping latent windows and decodes one RGB frame per pose "
      "frame through the model's VAE", "gst-avatar developers");
  GST_DEBUG_CATEGORY_INIT (gst_latent_fuse_debug, "latentfuse", 0,
      "latent window blending and VAE decoding");
}

static void
gst_latent_fuse_init (GstLatentFuse * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_latent_fuse_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_latent_fuse_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_latent_fuse_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_latent_fuse_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  gst_avatar_latents_info_init (&self->info);
  gst_video_info_init (&self->out_info);
  self->device = DEFAULT_PROP_DEVICE;
}
