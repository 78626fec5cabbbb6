/* avatardiffuse: pose-guidance frames -> denoised latent windows.
 *
 * The element is thin: AeAvatarStream (engine/avatar-stream.h) runs the
 * pose guider, the hand encoder, the Reference and Denoising UNets and the
 * fusion of overlapping windows; this file does caps, properties,
 * timestamps, keypoint metas, latency, QoS, progress messages and errors.
 */

/**
 * SECTION:element-avatardiffuse
 * @title: avatardiffuse
 *
 * avatardiffuse turns pose-guidance frames (RGB, as posemapper draws them,
 * with their #GstAvatarKeypointMeta) into the latents of an avatar video by
 * pose-guided latent diffusion: a Reference U-Net encodes the reference
 * identity once, and a Denoising U-Net with reference attention, key-point
 * hand tokens and all-frame attention denoises windows of
 * #GstAvatarDiffuse:window frames for #GstAvatarDiffuse:steps steps.
 * Consecutive windows share #GstAvatarDiffuse:overlap frames, fused inside
 * the denoising loop (#GstAvatarDiffuse:fusion).
 *
 * Each output buffer is one window of latent frames
 * (`application/x-avatar-latents`) carrying every frame's timestamp,
 * duration and keypoint meta; latentfuse blends the overlaps and decodes
 * them to video. The caps and the buffer layout are in
 * docs/avatardiffuse.md.
 *
 * The element holds frames until their window (or
 * #GstAvatarDiffuse:lookahead windows) is complete and reports that in the
 * latency query. Long work posts `avatardiffuse-progress` element messages.
 * In a live pipeline, frames that arrive more than one window stride late
 * are dropped with a QoS message (#GstAvatarDiffuse:qos); otherwise no
 * frame is ever dropped. #GstAvatarDiffuse:device picks where the U-Nets
 * run (cpu, vulkan, auto; docs/vulkan.md).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=talk.jsonl ! posemapper ! \
 *     video/x-raw,width=256,height=256 ! avatardiffuse steps=20 ! \
 *     latentfuse ! videoconvert ! x264enc ! mp4mux ! \
 *     filesink location=avatar.mp4
 * ]| Renders a pose file with the bundled model and identity.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "gstavatardiffuse.h"
#include "gstavatarcontext.h"
#include "gstavatarlatents.h"
#include "gstkeypointmeta.h"

#include "avatar-stream.h"
#include "image.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_avatar_diffuse_debug);
#define GST_CAT_DEFAULT gst_avatar_diffuse_debug

#define DEFAULT_PROP_STEPS 20
#define DEFAULT_PROP_SCHEDULER AE_SCHEDULER_DDIM
#define DEFAULT_PROP_GUIDANCE_SCALE 2.5f
#define DEFAULT_PROP_POSE_SCALE 1.0f
#define DEFAULT_PROP_WINDOW 16
#define DEFAULT_PROP_OVERLAP 4
#define DEFAULT_PROP_FUSION AE_FUSION_PROGRESSIVE
#define DEFAULT_PROP_LOOKAHEAD 1
#define DEFAULT_PROP_SEED 0
#define DEFAULT_PROP_THREADS 0
#define DEFAULT_PROP_DEVICE GST_AVATAR_DIFFUSE_DEVICE_CPU
#define DEFAULT_PROP_REFERENCE_ATTENTION TRUE
#define DEFAULT_PROP_HAND_TOKENS TRUE
#define DEFAULT_PROP_TEMPORAL_ATTENTION FALSE
#define DEFAULT_PROP_REFERENCE_INIT TRUE
#define DEFAULT_PROP_REFERENCE_CONCAT TRUE
#define DEFAULT_PROP_NOISE_CORRELATION 1.0
#define DEFAULT_PROP_STRENGTH 1.0
#define DEFAULT_PROP_QOS TRUE
#define DEFAULT_PROP_PROGRESS_INTERVAL 1000
#define DEFAULT_PROP_PROCESSING_LATENCY -1

/* The default reference, inside the model folder. */
#define DEFAULT_REFERENCE "references/identity_00.png"

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_REFERENCE,
  PROP_STEPS,
  PROP_SCHEDULER,
  PROP_GUIDANCE_SCALE,
  PROP_POSE_SCALE,
  PROP_WINDOW,
  PROP_OVERLAP,
  PROP_FUSION,
  PROP_LOOKAHEAD,
  PROP_SEED,
  PROP_THREADS,
  PROP_DEVICE,
  PROP_REFERENCE_ATTENTION,
  PROP_HAND_TOKENS,
  PROP_TEMPORAL_ATTENTION,
  PROP_REFERENCE_INIT,
  PROP_REFERENCE_CONCAT,
  PROP_NOISE_CORRELATION,
  PROP_STRENGTH,
  PROP_QOS,
  PROP_PROGRESS_INTERVAL,
  PROP_PROCESSING_LATENCY,
  PROP_STATS,
};

/* A frame given to the engine whose window has not left yet. */
typedef struct
{
  GstClockTime pts, duration;
  GstBuffer *meta_holder;       /* empty buffer with the frame's keypoint
                                 * meta, or NULL */
} FrameRecord;

struct _GstAvatarDiffuse
{
  GstElement parent;

  GstPad *sinkpad, *srcpad;

  /* Properties, under the object lock. */
  gchar *model;
  gchar *reference;
  guint steps;
  AeSchedulerType scheduler;
  gfloat guidance_scale, pose_scale;
  guint window, overlap;
  AeFusionMode fusion;
  gint lookahead;
  guint64 seed;
  gint threads;
  GstAvatarDiffuseDevice device;
  gboolean reference_attention, hand_tokens, temporal_attention;
  gboolean reference_init, reference_concat;
  gdouble noise_correlation;
  gdouble strength;
  gboolean qos;
  gint progress_interval;
  gint64 processing_latency;

  /* The engine a context brought (set_context, object lock), and the one
   * in use: set in start(), read by pad queries under the object lock. */
  GstAvatarEngine *given;
  GstAvatarEngine *engine;
  /* Set in start(), used by the streaming thread. */
  gchar *model_dir;             /* the folder asked for */
  gchar *reference_path;        /* the reference image in use */
  guint8 *ref_rgb;              /* its pixels, g_malloc'd */
  gint ref_width, ref_height;
  gfloat ref_hand[AE_AVATAR_HAND_FLOATS];
  gboolean ref_has_hand;
  AeAvatarParams params;        /* the properties at start() */
  AeAvatarDevice *dev;          /* the model's, where its networks run */

  /* Streaming state, touched by the streaming thread only (and
   * change_state when streaming has stopped). */
  AeAvatarReference *ref;       /* prepared for ref's size */
  AeAvatarStream *stream;
  GstVideoInfo in_info;
  gboolean configured;
  GstAvatarLatentsInfo out_info;
  GArray *records;              /* FrameRecord, frames records_base.. */
  gint64 records_base;
  gfloat hand_kp[AE_AVATAR_HAND_FLOATS];
  GstSegment segment;
  gboolean live_checked, live;
  GstClockTime upstream_latency;
  GstClockTime frame_duration;  /* for the latency; NONE until known */
  gboolean discont;
  gfloat cur_guidance, cur_pose_scale;
  gint64 progress_last_us;
  gint64 group_start_us;
  gint64 started_us;

  /* Statistics, under the object lock. */
  gchar *device_desc;           /* the device in use ("cpu", "vulkan: ...") */
  guint64 frames_in, frames_denoised, windows_out, qos_dropped;
  GstClockTime last_group_time, max_group_time, total_time;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE ("RGB")));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_AVATAR_LATENTS_CAPS));

#define gst_avatar_diffuse_parent_class parent_class
G_DEFINE_TYPE (GstAvatarDiffuse, gst_avatar_diffuse, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (avatardiffuse, "avatardiffuse", GST_RANK_NONE,
    GST_TYPE_AVATAR_DIFFUSE);

/* ---- Enums --------------------------------------------------------------- */

GType
gst_avatar_diffuse_scheduler_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {AE_SCHEDULER_DDIM, "DDIM (eta 0), deterministic", "ddim"},
    {AE_SCHEDULER_EULER, "Euler (discrete, as diffusers' "
          "EulerDiscreteScheduler)", "euler"},
    {AE_SCHEDULER_LCM, "LCM, few-step (needs an LCM-distilled model for good "
          "results)", "lcm"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type,
        g_enum_register_static ("GstAvatarDiffuseScheduler", values));
  return type;
}

GType
gst_avatar_diffuse_fusion_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {AE_FUSION_PROGRESSIVE, "MimicMotion progressive fusion: each window's "
          "prediction weighted by a triangle over its positions",
        "progressive"},
    {AE_FUSION_UNIFORM, "Make-Your-Anchor: overlapped predictions averaged",
        "uniform"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type,
        g_enum_register_static ("GstAvatarDiffuseFusion", values));
  return type;
}

GType
gst_avatar_diffuse_device_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_AVATAR_DIFFUSE_DEVICE_CPU, "CPU (OpenBLAS and threads)", "cpu"},
    {GST_AVATAR_DIFFUSE_DEVICE_VULKAN, "Vulkan compute (an error when no "
          "Vulkan device opens)", "vulkan"},
    {GST_AVATAR_DIFFUSE_DEVICE_AUTO, "A Vulkan GPU when one opens, else the "
          "CPU (a software Vulkan device such as lavapipe only when "
          "AE_VULKAN_DEVICE names it)", "auto"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type,
        g_enum_register_static ("GstAvatarDiffuseDevice", values));
  return type;
}

/* ---- Frame records ------------------------------------------------------- */

static void
frame_record_clear (gpointer p)
{
  FrameRecord *r = p;
  gst_clear_buffer (&r->meta_holder);
}

static void
records_reset (GstAvatarDiffuse * self)
{
  g_array_set_size (self->records, 0);
  self->records_base = 0;
}

/* Forgets the records of frames before `frame`. */
static void
records_drop_before (GstAvatarDiffuse * self, gint64 frame)
{
  gint64 n = frame - self->records_base;

  if (n <= 0)
    return;
  n = MIN (n, (gint64) self->records->len);
  g_array_remove_range (self->records, 0, n);
  self->records_base += n;
}

static const FrameRecord *
records_get (GstAvatarDiffuse * self, gint64 frame)
{
  gint64 i = frame - self->records_base;

  if (i < 0 || i >= (gint64) self->records->len)
    return NULL;
  return &g_array_index (self->records, FrameRecord, i);
}

/* ---- Reference ----------------------------------------------------------- */

/* The hand key points of a reference image: its sibling JSON (same name,
 * .json), its largest person (as posemapper selects). FALSE (no hands)
 * when there is no such file; warns when it is there but unusable. */
static gboolean
load_reference_hands (GstAvatarDiffuse * self, const gchar * image_path,
    gfloat * kp)
{
  const gchar *dot = strrchr (image_path, '.');
  gchar *base = dot ? g_strndup (image_path, dot - image_path)
      : g_strdup (image_path);
  gchar *json_path = g_strconcat (base, ".json", NULL);
  gchar *text = NULL;
  gsize len;
  ApFrame *frame = NULL;
  ApIssues issues;
  gboolean ok = FALSE;
  AeError err;

  g_free (base);
  if (!g_file_get_contents (json_path, &text, &len, NULL)) {
    GST_INFO_OBJECT (self, "no %s: reference hands missing", json_path);
    goto done;
  }
  frame = g_new0 (ApFrame, 1);
  if (ap_frame_from_json (text, len, 1, frame, &issues) != AP_FRAME
      || frame->n_people < 1) {
    GST_ELEMENT_WARNING (self, RESOURCE, READ,
        ("Reference key points '%s' unusable: its hands are treated as "
            "missing", json_path), ("no person could be read"));
    goto done;
  }
  ap_frame_select (frame, AP_SELECT_LARGEST);
  {
    const ApPerson *p = &frame->people[0];
    const float *left = (p->parts & AP_PART_HAND_LEFT)
        ? (const float *) p->hand[AP_LEFT] : NULL;
    const float *right = (p->parts & AP_PART_HAND_RIGHT)
        ? (const float *) p->hand[AP_RIGHT] : NULL;
    if (ae_hand_keypoints_fill (kp, left, right, frame->canvas_width,
            frame->canvas_height, &err) != 0) {
      GST_ELEMENT_WARNING (self, RESOURCE, READ,
          ("Reference key points '%s' unusable: its hands are treated as "
              "missing", json_path), ("%s", err.msg));
      goto done;
    }
  }
  ok = TRUE;
done:
  g_free (frame);
  g_free (text);
  g_free (json_path);
  return ok;
}

/* ---- Start / stop -------------------------------------------------------- */

static void
read_params (GstAvatarDiffuse * self, AeAvatarParams * p)
{
  ae_avatar_params_init (p);
  GST_OBJECT_LOCK (self);
  p->steps = self->steps;
  p->scheduler = self->scheduler;
  p->guidance_scale = self->guidance_scale;
  p->pose_scale = self->pose_scale;
  p->window = self->window;
  p->overlap = self->overlap;
  p->fusion = self->fusion;
  p->lookahead = self->lookahead;
  p->seed = self->seed;
  p->threads = self->threads;
  p->reference_attention = self->reference_attention;
  p->hand_tokens = self->hand_tokens;
  p->temporal_attention = self->temporal_attention;
  p->reference_init = self->reference_init;
  p->reference_concat = self->reference_concat;
  p->noise_correlation = (float) self->noise_correlation;
  p->strength = (float) self->strength;
  GST_OBJECT_UNLOCK (self);
}

/* The model on the device asked for (docs/vulkan.md): device=vulkan
 * without a Vulkan device is an error naming what is missing; auto falls
 * back to the CPU and says why. The weights are uploaded here, so that the
 * first window does not wait for them. */
static gboolean
open_device (GstAvatarDiffuse * self, GstAvatarDiffuseDevice device)
{
  AeAvatarModel *model = gst_avatar_engine_get_model (self->engine);
  const gchar *path = gst_avatar_engine_get_path (self->engine);
  AeDevice want = device == GST_AVATAR_DIFFUSE_DEVICE_VULKAN ?
      AE_DEVICE_VULKAN : device == GST_AVATAR_DIFFUSE_DEVICE_AUTO ?
      AE_DEVICE_AUTO : AE_DEVICE_CPU;
  AeError err;

  self->dev = NULL;
  if (ae_avatar_model_device (model, want, &self->dev, &err) != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("device=vulkan: %s", err.msg),
        ("model '%s'; device=cpu or device=auto run without Vulkan", path));
    return FALSE;
  }
  if (want == AE_DEVICE_AUTO
      && ae_avatar_device_kind (self->dev) == AE_DEVICE_CPU) {
    GST_INFO_OBJECT (self, "device=auto: running on the CPU: %s",
        ae_avatar_device_note (self->dev));
    GST_ELEMENT_INFO (self, RESOURCE, NOT_FOUND,
        ("device=auto: no Vulkan GPU, running on the CPU"),
        ("%s", ae_avatar_device_note (self->dev)));
  }
  if (ae_avatar_device_prepare (self->dev, AE_AVATAR_PART_UNET |
          AE_AVATAR_PART_REFERENCE_UNET | AE_AVATAR_PART_VAE, &err) != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Cannot load the model '%s' onto %s", path,
            ae_avatar_device_describe (self->dev)), ("%s", err.msg));
    self->dev = NULL;
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  g_free (self->device_desc);
  self->device_desc = g_strdup (ae_avatar_device_describe (self->dev));
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static gboolean
avatar_diffuse_start (GstAvatarDiffuse * self)
{
  GstAvatarDiffuseDevice device;
  GError *error = NULL;
  AeError err;
  guint window, overlap, steps;
  gdouble strength;
  gboolean reference_init;

  GST_OBJECT_LOCK (self);
  device = self->device;
  window = self->window;
  overlap = self->overlap;
  steps = self->steps;
  strength = self->strength;
  reference_init = self->reference_init;
  g_free (self->model_dir);
  self->model_dir = self->model ? g_strdup (self->model) : NULL;
  g_free (self->reference_path);
  self->reference_path = self->reference ? g_strdup (self->reference) : NULL;
  GST_OBJECT_UNLOCK (self);

  if (overlap >= window) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("overlap (%u) must be smaller than window (%u)", overlap, window),
        (NULL));
    return FALSE;
  }
  if (strength < 1.0 && !reference_init) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("strength %g needs reference-init: sampling starts from the "
            "reference's latent", strength), (NULL));
    return FALSE;
  }
  /* the engine keeps int(steps x strength) steps, as diffusers' img2img */
  if ((guint) ((double) steps * (float) strength) < 1) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("strength %g leaves none of the %u steps; raise steps or strength",
            strength, steps), (NULL));
    return FALSE;
  }

  if (self->model_dir == NULL)
    self->model_dir = gst_avatar_default_model_dir ();
  if (!gst_avatar_engine_ensure (GST_ELEMENT (self), self->model_dir,
          &self->given, &self->engine, &error)) {
    if (error->code == GST_RESOURCE_ERROR_NOT_FOUND)
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("Cannot find the model '%s'", self->model_dir),
          ("%s", error->message));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
          ("Cannot load the model '%s'", self->model_dir),
          ("%s", error->message));
    g_clear_error (&error);
    return FALSE;
  }

  if (!open_device (self, device))
    return FALSE;

  if (self->reference_path == NULL)
    self->reference_path = g_build_filename (gst_avatar_engine_get_path
        (self->engine), DEFAULT_REFERENCE, NULL);
  g_clear_pointer (&self->ref_rgb, g_free);
  if (ae_image_load_png (self->reference_path, &self->ref_rgb,
          &self->ref_width, &self->ref_height, &err) != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Cannot read the reference image '%s'", self->reference_path),
        ("%s", err.msg));
    return FALSE;
  }
  self->ref_has_hand = load_reference_hands (self, self->reference_path,
      self->ref_hand);
  read_params (self, &self->params);
  self->params.device = ae_avatar_device_kind (self->dev);
  GST_INFO_OBJECT (self, "model %s, reference %s (%dx%d), device %s",
      gst_avatar_engine_get_path (self->engine), self->reference_path,
      self->ref_width, self->ref_height,
      ae_avatar_device_describe (self->dev));
  return TRUE;
}

static void
free_stream (GstAvatarDiffuse * self)
{
  g_clear_pointer (&self->stream, ae_avatar_stream_free);
  g_clear_pointer (&self->ref, ae_avatar_reference_unref);
  self->configured = FALSE;
}

static void
avatar_diffuse_stop (GstAvatarDiffuse * self)
{
  free_stream (self);
  records_reset (self);
  g_clear_pointer (&self->ref_rgb, g_free);
  gst_avatar_latents_info_clear (&self->out_info);
  self->dev = NULL;             /* the model's: goes with the engine */
  GST_OBJECT_LOCK (self);
  gst_clear_object (&self->engine);
  GST_OBJECT_UNLOCK (self);
}

/* ---- Progress ------------------------------------------------------------ */

static void
post_progress (GstAvatarDiffuse * self, gint64 first_window, gint n_windows,
    gint step, gint steps)
{
  GstStructure *s;
  gint64 now = g_get_monotonic_time ();
  guint64 frames_in, frames_done;
  gdouble elapsed = (now - self->started_us) / 1e6;

  GST_OBJECT_LOCK (self);
  frames_in = self->frames_in;
  frames_done = self->frames_denoised;
  GST_OBJECT_UNLOCK (self);
  s = gst_structure_new ("avatardiffuse-progress",
      "first-window", G_TYPE_INT64, first_window,
      "windows", G_TYPE_INT, n_windows,
      "step", G_TYPE_INT, step + 1,
      "steps", G_TYPE_INT, steps,
      "frames-in", G_TYPE_UINT64, frames_in,
      "frames-done", G_TYPE_UINT64, frames_done,
      "elapsed", G_TYPE_DOUBLE, elapsed,
      "frames-per-second", G_TYPE_DOUBLE,
      elapsed > 0 ? frames_done / elapsed : 0.0, NULL);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self), s));
}

/* AeAvatarProgressFn: after every step of a lookahead group. */
static void
on_engine_progress (void *user, int64_t first_window, int n_windows,
    int step, int steps)
{
  GstAvatarDiffuse *self = user;
  gint interval;
  gint64 now = g_get_monotonic_time ();

  GST_OBJECT_LOCK (self);
  interval = self->progress_interval;
  GST_OBJECT_UNLOCK (self);
  if (interval < 0)
    return;
  /* Rate-limited, but the last step of a group always reports. */
  if (step + 1 < steps && now - self->progress_last_us
      < (gint64) interval * 1000)
    return;
  self->progress_last_us = now;
  post_progress (self, first_window, n_windows, step, steps);
}

/* ---- Caps ---------------------------------------------------------------- */

/* What the sink takes once the model is known: RGB, width and height
 * multiples of the model's size multiple. */
static GstCaps *
sink_caps (GstAvatarDiffuse * self)
{
  GstCaps *caps;
  AeAvatarModel *model = NULL;
  gint m, native;
  GValue range = G_VALUE_INIT;

  GST_OBJECT_LOCK (self);
  if (self->engine)
    model = gst_avatar_engine_get_model (self->engine);
  GST_OBJECT_UNLOCK (self);
  caps = gst_pad_get_pad_template_caps (self->sinkpad);
  if (model == NULL)
    return caps;
  /* The model's native size first (what it was trained at: upstream
   * picks it unless told otherwise), then every multiple. */
  m = ae_avatar_model_size_multiple (model);
  native = ae_avatar_model_native_size (model);
  caps = gst_caps_make_writable (caps);
  g_value_init (&range, GST_TYPE_INT_RANGE);
  gst_value_set_int_range_step (&range, m, (4096 / m) * m, m);
  gst_caps_set_value (caps, "width", &range);
  gst_caps_set_value (caps, "height", &range);
  g_value_unset (&range);
  if (native > 0 && native % m == 0) {
    GstCaps *first = gst_caps_copy (caps);
    gst_caps_set_simple (first, "width", G_TYPE_INT, native, "height",
        G_TYPE_INT, native, NULL);
    caps = gst_caps_merge (first, caps);
  }
  return caps;
}

static GstFlowReturn push_windows (GstAvatarDiffuse * self);
static GstFlowReturn drain (GstAvatarDiffuse * self);

static gboolean
avatar_diffuse_set_caps (GstAvatarDiffuse * self, GstCaps * caps)
{
  GstVideoInfo info;
  AeAvatarModel *model;
  AeAvatarParams params;
  AeError err;
  gint m, c, h, w;
  GstCaps *out;
  gboolean ok;

  if (self->engine == NULL) {
    GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL),
        ("caps before the model was loaded"));
    return FALSE;
  }
  if (!gst_video_info_from_caps (&info, caps)
      || GST_VIDEO_INFO_FORMAT (&info) != GST_VIDEO_FORMAT_RGB) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("avatardiffuse takes RGB pose-guidance frames"),
        ("refused caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  model = gst_avatar_engine_get_model (self->engine);
  m = ae_avatar_model_size_multiple (model);
  if (info.width % m != 0 || info.height % m != 0) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Frame size %dx%d is not a multiple of %d, which the model '%s' "
            "needs", info.width, info.height, m,
            gst_avatar_engine_get_path (self->engine)),
        ("put videoscale or a caps filter with a multiple of %d before "
            "avatardiffuse", m));
    return FALSE;
  }

  /* Same size: keep the stream (frame rate changes only touch caps). */
  if (self->configured && info.width == self->in_info.width
      && info.height == self->in_info.height) {
    self->in_info = info;
    goto caps_out;
  }

  /* A new size: the frames so far end their stream first. */
  if (self->configured) {
    GstFlowReturn ret = drain (self);
    if (ret != GST_FLOW_OK && ret != GST_FLOW_FLUSHING)
      GST_WARNING_OBJECT (self, "draining before new caps: %s",
          gst_flow_get_name (ret));
    free_stream (self);
  }

  params = self->params;
  params.width = info.width;
  params.height = info.height;
  params.progress = on_engine_progress;
  params.progress_user = self;
  if (ae_avatar_params_need_reference (&params, model)
      && (self->ref == NULL
          || ae_avatar_reference_width (self->ref) != info.width
          || ae_avatar_reference_height (self->ref) != info.height)) {
    g_clear_pointer (&self->ref, ae_avatar_reference_unref);
    if (ae_avatar_reference_new_on (&self->ref, self->dev, self->ref_rgb,
            self->ref_width, self->ref_height, 3 * self->ref_width,
            self->ref_has_hand ? self->ref_hand : NULL, info.width,
            info.height, &err) != 0) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT,
          ("Cannot prepare the reference '%s'", self->reference_path),
          ("%s", err.msg));
      return FALSE;
    }
  }
  if (ae_avatar_stream_new (&self->stream, model, self->ref, &params,
          &err) != 0) {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Cannot set up diffusion on the model '%s'",
            gst_avatar_engine_get_path (self->engine)), ("%s", err.msg));
    return FALSE;
  }
  self->in_info = info;
  self->configured = TRUE;
  self->cur_guidance = params.guidance_scale;
  self->cur_pose_scale = params.pose_scale;
  records_reset (self);

caps_out:
  ae_avatar_stream_latent_shape (self->stream, &c, &h, &w);
  gst_avatar_latents_info_clear (&self->out_info);
  self->out_info.channels = c;
  self->out_info.height = h;
  self->out_info.width = w;
  self->out_info.window = self->params.window;
  self->out_info.overlap = self->params.overlap;
  self->out_info.fusion = self->params.fusion;
  self->out_info.fps_n = info.fps_n;
  self->out_info.fps_d = info.fps_d;
  self->out_info.model = g_strdup (gst_avatar_engine_get_path (self->engine));
  if (info.fps_n > 0)
    self->frame_duration = gst_util_uint64_scale_int (GST_SECOND, info.fps_d,
        info.fps_n);
  out = gst_avatar_latents_info_to_caps (&self->out_info);
  ok = gst_pad_set_caps (self->srcpad, out);
  GST_DEBUG_OBJECT (self, "output %" GST_PTR_FORMAT ": %d", out, ok);
  gst_caps_unref (out);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_latency (GST_OBJECT (self)));
  return ok;
}

/* ---- Windows out --------------------------------------------------------- */

static GstFlowReturn
push_window (GstAvatarDiffuse * self, const AeAvatarWindow * win)
{
  const GstAvatarLatentsInfo *info = &self->out_info;
  gsize size = gst_avatar_latents_buffer_size (info, win->n_frames);
  gsize header = gst_avatar_latents_header_size (win->n_frames);
  GstAvatarLatentsFrame *frames;
  GstBuffer *buf;
  GstMapInfo map;
  GstClockTime first_pts = GST_CLOCK_TIME_NONE, end = GST_CLOCK_TIME_NONE;
  gint n_meta = 0;

  if (win->channels != info->channels || win->height != info->height
      || win->width != info->width) {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED, (NULL),
        ("window %" G_GINT64_FORMAT " has shape %dx%dx%d, caps say %dx%dx%d",
            win->index, win->channels, win->height, win->width,
            info->channels, info->height, info->width));
    return GST_FLOW_ERROR;
  }
  buf = gst_buffer_new_allocate (NULL, size, NULL);
  if (buf == NULL || !gst_buffer_map (buf, &map, GST_MAP_WRITE)) {
    gst_clear_buffer (&buf);
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
        ("cannot allocate a window of %" G_GSIZE_FORMAT " bytes", size));
    return GST_FLOW_ERROR;
  }
  gst_avatar_latents_write_header (map.data, info, win->index,
      win->first_frame, win->n_frames,
      win->last ? GST_AVATAR_LATENTS_FLAG_LAST : 0);
  frames = (GstAvatarLatentsFrame *) (map.data
      + sizeof (GstAvatarLatentsHeader));
  for (gint i = 0; i < win->n_frames; i++) {
    const FrameRecord *r = records_get (self, win->first_frame + i);
    GstAvatarKeypointMeta *meta;

    if (r == NULL) {
      gst_buffer_unmap (buf, &map);
      gst_buffer_unref (buf);
      GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL),
          ("no record of frame %" G_GINT64_FORMAT, win->first_frame + i));
      return GST_FLOW_ERROR;
    }
    frames[i].pts = r->pts;
    frames[i].duration = r->duration;
    meta = r->meta_holder
        ? gst_buffer_get_avatar_keypoint_meta (r->meta_holder) : NULL;
    if (meta != NULL) {
      gst_buffer_add_avatar_keypoint_meta_copy (buf, meta);
      frames[i].meta_index = n_meta++;
    }
    if (i == 0)
      first_pts = r->pts;
    if (GST_CLOCK_TIME_IS_VALID (r->pts)
        && GST_CLOCK_TIME_IS_VALID (r->duration))
      end = r->pts + r->duration;
  }
  memcpy (map.data + header, win->latents, size - header);
  gst_buffer_unmap (buf, &map);

  GST_BUFFER_PTS (buf) = first_pts;
  GST_BUFFER_DTS (buf) = first_pts;
  if (GST_CLOCK_TIME_IS_VALID (first_pts) && GST_CLOCK_TIME_IS_VALID (end)
      && end >= first_pts)
    GST_BUFFER_DURATION (buf) = end - first_pts;
  GST_BUFFER_OFFSET (buf) = win->first_frame;
  GST_BUFFER_OFFSET_END (buf) = win->first_frame + win->n_frames;
  if (self->discont) {
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
    self->discont = FALSE;
  }

  GST_OBJECT_LOCK (self);
  self->windows_out++;
  /* Frames no earlier window of this stream held. */
  self->frames_denoised += win->index == 0 ? win->n_frames
      : win->n_frames - info->overlap;
  GST_OBJECT_UNLOCK (self);
  GST_LOG_OBJECT (self, "window %" G_GINT64_FORMAT ": frames %"
      G_GINT64_FORMAT "..%" G_GINT64_FORMAT "%s", win->index,
      win->first_frame, win->first_frame + win->n_frames - 1,
      win->last ? " (last)" : "");
  return gst_pad_push (self->srcpad, buf);
}

/* Pushes every window the engine has finished. */
static GstFlowReturn
push_windows (GstAvatarDiffuse * self)
{
  AeAvatarWindow win;
  GstFlowReturn ret = GST_FLOW_OK;
  gint stride = self->params.window - self->params.overlap;

  while (ae_avatar_stream_pop_window (self->stream, &win) == 1) {
    GstFlowReturn r = push_window (self, &win);
    /* The next window starts S frames later: older records are done. */
    records_drop_before (self, win.first_frame + stride);
    if (ret == GST_FLOW_OK)
      ret = r;
  }
  return ret;
}

static void
account_group (GstAvatarDiffuse * self, gint64 t0_us)
{
  GstClockTime dt = (g_get_monotonic_time () - t0_us) * GST_USECOND;
  gint64 fixed;
  gboolean grew = FALSE;

  GST_OBJECT_LOCK (self);
  self->last_group_time = dt;
  self->total_time += dt;
  if (dt > self->max_group_time) {
    /* Latency is re-announced when the worst case grows by over 10%. */
    grew = dt > self->max_group_time + self->max_group_time / 10;
    self->max_group_time = dt;
  }
  fixed = self->processing_latency;
  GST_OBJECT_UNLOCK (self);
  if (grew && fixed < 0 && self->live)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
}

/* End of a stream (EOS or a new size): denoise the rest, push it. */
static GstFlowReturn
drain (GstAvatarDiffuse * self)
{
  AeError err;
  gint64 t0 = g_get_monotonic_time ();
  GstFlowReturn ret;

  if (!self->configured || self->stream == NULL)
    return GST_FLOW_OK;
  if (ae_avatar_stream_frames_pushed (self->stream) == 0)
    return GST_FLOW_OK;
  if (ae_avatar_stream_finish (self->stream, &err) != 0) {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("Diffusion failed at the end of the stream"), ("%s", err.msg));
    return GST_FLOW_ERROR;
  }
  account_group (self, t0);
  ret = push_windows (self);
  ae_avatar_stream_reset (self->stream);
  records_reset (self);
  return ret;
}

/* ---- Frames in ----------------------------------------------------------- */

/* Asks upstream whether it is live, once per stream. */
static void
check_live (GstAvatarDiffuse * self)
{
  GstQuery *q;

  if (self->live_checked)
    return;
  self->live_checked = TRUE;
  self->live = FALSE;
  self->upstream_latency = 0;
  q = gst_query_new_latency ();
  if (gst_pad_peer_query (self->sinkpad, q)) {
    GstClockTime min;
    gst_query_parse_latency (q, &self->live, &min, NULL);
    self->upstream_latency = GST_CLOCK_TIME_IS_VALID (min) ? min : 0;
  }
  gst_query_unref (q);
  GST_DEBUG_OBJECT (self, "upstream live: %d, latency %" GST_TIME_FORMAT,
      self->live, GST_TIME_ARGS (self->upstream_latency));
}

/* Live and behind: TRUE if frame buf is late by more than one window
 * stride (and a QoS message was posted). */
static gboolean
qos_drop (GstAvatarDiffuse * self, GstBuffer * buf)
{
  GstClock *clock;
  GstClockTime rt, now, base, stride_time, deadline;
  gboolean qos;
  guint64 processed, dropped;
  GstMessage *msg;
  gint64 jitter;

  GST_OBJECT_LOCK (self);
  qos = self->qos;
  GST_OBJECT_UNLOCK (self);
  if (!qos || !self->live || !GST_BUFFER_PTS_IS_VALID (buf))
    return FALSE;
  rt = gst_segment_to_running_time (&self->segment, GST_FORMAT_TIME,
      GST_BUFFER_PTS (buf));
  clock = gst_element_get_clock (GST_ELEMENT (self));
  if (clock == NULL || !GST_CLOCK_TIME_IS_VALID (rt)) {
    gst_clear_object (&clock);
    return FALSE;
  }
  base = gst_element_get_base_time (GST_ELEMENT (self));
  now = gst_clock_get_time (clock);
  gst_object_unref (clock);
  if (now < base)
    return FALSE;
  now -= base;
  stride_time = GST_CLOCK_TIME_IS_VALID (self->frame_duration)
      ? self->frame_duration * (self->params.window - self->params.overlap)
      : 0;
  deadline = rt + self->upstream_latency + stride_time;
  if (now <= deadline)
    return FALSE;

  jitter = (gint64) (now - deadline);
  GST_OBJECT_LOCK (self);
  self->qos_dropped++;
  processed = self->frames_in;
  dropped = self->qos_dropped;
  GST_OBJECT_UNLOCK (self);
  GST_DEBUG_OBJECT (self, "frame %" GST_TIME_FORMAT " late by %"
      GST_STIME_FORMAT ": dropped", GST_TIME_ARGS (GST_BUFFER_PTS (buf)),
      GST_STIME_ARGS (jitter));
  msg = gst_message_new_qos (GST_OBJECT (self), TRUE, rt,
      gst_segment_to_stream_time (&self->segment, GST_FORMAT_TIME,
          GST_BUFFER_PTS (buf)), GST_BUFFER_PTS (buf),
      GST_BUFFER_DURATION (buf));
  gst_message_set_qos_values (msg, jitter, 1.0, 1000000);
  gst_message_set_qos_stats (msg, GST_FORMAT_BUFFERS, processed, dropped);
  gst_element_post_message (GST_ELEMENT (self), msg);
  return TRUE;
}

/* The hand key points of a frame from its keypoint meta (first person);
 * NULL when it has none. */
static const gfloat *
frame_hands (GstAvatarDiffuse * self, GstAvatarKeypointMeta * meta)
{
  const ApPerson *p;
  AeError err;

  if (meta == NULL || meta->frame.n_people < 1)
    return NULL;
  p = &meta->frame.people[0];
  if (!(p->parts & (AP_PART_HAND_LEFT | AP_PART_HAND_RIGHT)))
    return NULL;
  if (ae_hand_keypoints_fill (self->hand_kp,
          (p->parts & AP_PART_HAND_LEFT) ? (const float *) p->hand[AP_LEFT]
          : NULL, (p->parts & AP_PART_HAND_RIGHT)
          ? (const float *) p->hand[AP_RIGHT] : NULL,
          meta->frame.canvas_width, meta->frame.canvas_height, &err) != 0) {
    GST_WARNING_OBJECT (self, "hand key points unusable: %s", err.msg);
    return NULL;
  }
  return self->hand_kp;
}

/* Controllable properties follow the controller at the frame's time. */
static void
sync_controlled (GstAvatarDiffuse * self, GstBuffer * buf)
{
  gfloat g, ps;

  if (GST_BUFFER_PTS_IS_VALID (buf))
    gst_object_sync_values (GST_OBJECT (self),
        gst_segment_to_stream_time (&self->segment, GST_FORMAT_TIME,
            GST_BUFFER_PTS (buf)));
  GST_OBJECT_LOCK (self);
  g = self->guidance_scale;
  ps = self->pose_scale;
  GST_OBJECT_UNLOCK (self);
  if (g != self->cur_guidance) {
    ae_avatar_stream_set_guidance_scale (self->stream, g);
    self->cur_guidance = g;
  }
  if (ps != self->cur_pose_scale) {
    ae_avatar_stream_set_pose_scale (self->stream, ps);
    self->cur_pose_scale = ps;
  }
}

static GstFlowReturn
gst_avatar_diffuse_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstAvatarDiffuse *self = GST_AVATAR_DIFFUSE (parent);
  GstAvatarKeypointMeta *meta;
  GstVideoFrame vframe;
  FrameRecord rec;
  AeError err;
  gint64 windows_before, t0;
  int rc;

  if (!self->configured) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("a frame arrived before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  check_live (self);
  GST_OBJECT_LOCK (self);
  self->frames_in++;
  GST_OBJECT_UNLOCK (self);
  if (qos_drop (self, buf)) {
    gst_buffer_unref (buf);
    return GST_FLOW_OK;
  }
  sync_controlled (self, buf);

  if (!gst_video_frame_map (&vframe, &self->in_info, buf, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
        ("cannot map a %dx%d RGB frame (buffer too small?)",
            self->in_info.width, self->in_info.height));
    return GST_FLOW_ERROR;
  }
  meta = gst_buffer_get_avatar_keypoint_meta (buf);
  if (self->frame_duration == GST_CLOCK_TIME_NONE
      && GST_BUFFER_DURATION_IS_VALID (buf))
    self->frame_duration = GST_BUFFER_DURATION (buf);

  windows_before = ae_avatar_stream_windows_done (self->stream);
  t0 = g_get_monotonic_time ();
  rc = ae_avatar_stream_push_frame (self->stream,
      GST_VIDEO_FRAME_PLANE_DATA (&vframe, 0),
      GST_VIDEO_FRAME_PLANE_STRIDE (&vframe, 0),
      self->params.hand_tokens ? frame_hands (self, meta) : NULL, &err);
  gst_video_frame_unmap (&vframe);
  if (rc != 0) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("Diffusion failed"),
        ("%s", err.msg));
    return GST_FLOW_ERROR;
  }

  rec.pts = GST_BUFFER_PTS (buf);
  rec.duration = GST_BUFFER_DURATION (buf);
  rec.meta_holder = NULL;
  if (meta != NULL) {
    rec.meta_holder = gst_buffer_new ();
    gst_buffer_add_avatar_keypoint_meta_copy (rec.meta_holder, meta);
  }
  gst_buffer_unref (buf);
  if (self->records->len == 0)
    self->records_base = ae_avatar_stream_frames_pushed (self->stream) - 1;
  g_array_append_val (self->records, rec);

  if (ae_avatar_stream_windows_done (self->stream) == windows_before)
    return GST_FLOW_OK;
  account_group (self, t0);
  return push_windows (self);
}

/* ---- Events and queries -------------------------------------------------- */

static gboolean
gst_avatar_diffuse_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstAvatarDiffuse *self = GST_AVATAR_DIFFUSE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gboolean ok;
      gst_event_parse_caps (event, &caps);
      ok = avatar_diffuse_set_caps (self, caps);
      gst_event_unref (event);
      return ok;
    }
    case GST_EVENT_STREAM_START:
    case GST_EVENT_SEGMENT:
      /* Held frames belong to the old stream or segment: they leave
       * first (a flush drops them instead). */
      if (self->stream && ae_avatar_stream_frames_pushed (self->stream) > 0)
        drain (self);
      if (GST_EVENT_TYPE (event) == GST_EVENT_SEGMENT)
        gst_event_copy_segment (event, &self->segment);
      break;
    case GST_EVENT_GAP:
      /* Frames are held for their window: a gap would overtake them.
       * Every frame leaves latentfuse with its own time instead. */
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      if (self->stream)
        ae_avatar_stream_reset (self->stream);
      records_reset (self);
      gst_segment_init (&self->segment, GST_FORMAT_TIME);
      self->discont = TRUE;
      self->live_checked = FALSE;
      break;
    case GST_EVENT_EOS:
      drain (self);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_avatar_diffuse_sink_query (GstPad * pad, GstObject * parent,
    GstQuery * query)
{
  GstAvatarDiffuse *self = GST_AVATAR_DIFFUSE (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:{
      GstCaps *filter, *caps = sink_caps (self);
      gst_query_parse_caps (query, &filter);
      if (filter) {
        GstCaps *tmp = gst_caps_intersect_full (filter, caps,
            GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref (caps);
        caps = tmp;
      }
      gst_query_set_caps_result (query, caps);
      gst_caps_unref (caps);
      return TRUE;
    }
    case GST_QUERY_CONTEXT:{
      if (gst_avatar_engine_handle_context_query (GST_ELEMENT (self), query,
              &self->engine))
        return TRUE;
      break;
    }
    case GST_QUERY_ALLOCATION:
      /* We copy out what we need: any allocation is fine. */
      return FALSE;
    default:
      break;
  }
  return gst_pad_query_default (pad, parent, query);
}

/* Our own latency in frames, times a frame, plus processing time. */
static gboolean
own_latency (GstAvatarDiffuse * self, GstClockTime * latency)
{
  gint64 frames;
  GstClockTime proc;
  gint64 fixed;
  AeFusionLayout layout;

  if (self->params.lookahead <= 0)
    return FALSE;
  if (ae_fusion_layout_init (&layout, self->params.window,
          self->params.overlap, self->params.fusion, NULL) != 0)
    return FALSE;
  frames = ae_fusion_latency_frames (&layout, self->params.lookahead);
  GST_OBJECT_LOCK (self);
  fixed = self->processing_latency;
  proc = fixed >= 0 ? (GstClockTime) fixed : self->max_group_time;
  GST_OBJECT_UNLOCK (self);
  *latency = (GST_CLOCK_TIME_IS_VALID (self->frame_duration)
      ? frames * self->frame_duration : 0) + proc;
  return TRUE;
}

static gboolean
gst_avatar_diffuse_src_query (GstPad * pad, GstObject * parent,
    GstQuery * query)
{
  GstAvatarDiffuse *self = GST_AVATAR_DIFFUSE (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_LATENCY:{
      gboolean live;
      GstClockTime min, max, ours;
      if (!gst_pad_peer_query (self->sinkpad, query))
        return FALSE;
      gst_query_parse_latency (query, &live, &min, &max);
      if (!own_latency (self, &ours)) {
        if (live) {
          GST_ELEMENT_WARNING (self, CORE, CLOCK,
              ("lookahead=0 (all windows) holds every frame until the end "
                  "of the stream: it cannot run live"), (NULL));
          return FALSE;
        }
        return TRUE;
      }
      min += ours;
      if (GST_CLOCK_TIME_IS_VALID (max))
        max += ours;
      GST_DEBUG_OBJECT (self, "latency: ours %" GST_TIME_FORMAT ", total "
          "min %" GST_TIME_FORMAT, GST_TIME_ARGS (ours), GST_TIME_ARGS (min));
      gst_query_set_latency (query, live, min, max);
      return TRUE;
    }
    case GST_QUERY_CONTEXT:{
      if (gst_avatar_engine_handle_context_query (GST_ELEMENT (self), query,
              &self->engine))
        return TRUE;
      break;
    }
    default:
      break;
  }
  return gst_pad_query_default (pad, parent, query);
}

/* ---- GObject ------------------------------------------------------------- */

static GstStructure *
make_stats (GstAvatarDiffuse * self)
{
  GstStructure *s;

  GST_OBJECT_LOCK (self);
  s = gst_structure_new ("avatardiffuse-stats",
      "frames-in", G_TYPE_UINT64, self->frames_in,
      "frames-denoised", G_TYPE_UINT64, self->frames_denoised,
      "windows-out", G_TYPE_UINT64, self->windows_out,
      "qos-dropped", G_TYPE_UINT64, self->qos_dropped,
      "last-group-time", G_TYPE_UINT64, self->last_group_time,
      "max-group-time", G_TYPE_UINT64, self->max_group_time,
      "total-time", G_TYPE_UINT64, self->total_time,
      "device", G_TYPE_STRING, self->device_desc, NULL);
  GST_OBJECT_UNLOCK (self);
  return s;
}

static void
gst_avatar_diffuse_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstAvatarDiffuse *self = GST_AVATAR_DIFFUSE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->model);
      self->model = g_value_dup_string (value);
      if (self->model && self->model[0] == '\0')
        g_clear_pointer (&self->model, g_free);
      break;
    case PROP_REFERENCE:
      g_free (self->reference);
      self->reference = g_value_dup_string (value);
      if (self->reference && self->reference[0] == '\0')
        g_clear_pointer (&self->reference, g_free);
      break;
    case PROP_STEPS:
      self->steps = g_value_get_uint (value);
      break;
    case PROP_SCHEDULER:
      self->scheduler = g_value_get_enum (value);
      break;
    case PROP_GUIDANCE_SCALE:
      self->guidance_scale = g_value_get_float (value);
      break;
    case PROP_POSE_SCALE:
      self->pose_scale = g_value_get_float (value);
      break;
    case PROP_WINDOW:
      self->window = g_value_get_uint (value);
      break;
    case PROP_OVERLAP:
      self->overlap = g_value_get_uint (value);
      break;
    case PROP_FUSION:
      self->fusion = g_value_get_enum (value);
      break;
    case PROP_LOOKAHEAD:
      self->lookahead = g_value_get_int (value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_uint64 (value);
      break;
    case PROP_THREADS:
      self->threads = g_value_get_int (value);
      break;
    case PROP_DEVICE:
      self->device = g_value_get_enum (value);
      break;
    case PROP_REFERENCE_ATTENTION:
      self->reference_attention = g_value_get_boolean (value);
      break;
    case PROP_HAND_TOKENS:
      self->hand_tokens = g_value_get_boolean (value);
      break;
    case PROP_TEMPORAL_ATTENTION:
      self->temporal_attention = g_value_get_boolean (value);
      break;
    case PROP_REFERENCE_INIT:
      self->reference_init = g_value_get_boolean (value);
      break;
    case PROP_REFERENCE_CONCAT:
      self->reference_concat = g_value_get_boolean (value);
      break;
    case PROP_NOISE_CORRELATION:
      self->noise_correlation = g_value_get_double (value);
      break;
    case PROP_STRENGTH:
      self->strength = g_value_get_double (value);
      break;
    case PROP_QOS:
      self->qos = g_value_get_boolean (value);
      break;
    case PROP_PROGRESS_INTERVAL:
      self->progress_interval = g_value_get_int (value);
      break;
    case PROP_PROCESSING_LATENCY:
      self->processing_latency = g_value_get_int64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_avatar_diffuse_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstAvatarDiffuse *self = GST_AVATAR_DIFFUSE (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, make_stats (self));
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model);
      break;
    case PROP_REFERENCE:
      g_value_set_string (value, self->reference);
      break;
    case PROP_STEPS:
      g_value_set_uint (value, self->steps);
      break;
    case PROP_SCHEDULER:
      g_value_set_enum (value, self->scheduler);
      break;
    case PROP_GUIDANCE_SCALE:
      g_value_set_float (value, self->guidance_scale);
      break;
    case PROP_POSE_SCALE:
      g_value_set_float (value, self->pose_scale);
      break;
    case PROP_WINDOW:
      g_value_set_uint (value, self->window);
      break;
    case PROP_OVERLAP:
      g_value_set_uint (value, self->overlap);
      break;
    case PROP_FUSION:
      g_value_set_enum (value, self->fusion);
      break;
    case PROP_LOOKAHEAD:
      g_value_set_int (value, self->lookahead);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    case PROP_THREADS:
      g_value_set_int (value, self->threads);
      break;
    case PROP_DEVICE:
      g_value_set_enum (value, self->device);
      break;
    case PROP_REFERENCE_ATTENTION:
      g_value_set_boolean (value, self->reference_attention);
      break;
    case PROP_HAND_TOKENS:
      g_value_set_boolean (value, self->hand_tokens);
      break;
    case PROP_TEMPORAL_ATTENTION:
      g_value_set_boolean (value, self->temporal_attention);
      break;
    case PROP_REFERENCE_INIT:
      g_value_set_boolean (value, self->reference_init);
      break;
    case PROP_REFERENCE_CONCAT:
      g_value_set_boolean (value, self->reference_concat);
      break;
    case PROP_NOISE_CORRELATION:
      g_value_set_double (value, self->noise_correlation);
      break;
    case PROP_STRENGTH:
      g_value_set_double (value, self->strength);
      break;
    case PROP_QOS:
      g_value_set_boolean (value, self->qos);
      break;
    case PROP_PROGRESS_INTERVAL:
      g_value_set_int (value, self->progress_interval);
      break;
    case PROP_PROCESSING_LATENCY:
      g_value_set_int64 (value, self->processing_latency);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_avatar_diffuse_set_context (GstElement * element, GstContext * context)
{
  GstAvatarDiffuse *self = GST_AVATAR_DIFFUSE (element);

  gst_avatar_engine_handle_set_context (element, context, &self->given);
  GST_ELEMENT_CLASS (parent_class)->set_context (element, context);
}

static GstStateChangeReturn
gst_avatar_diffuse_change_state (GstElement * element,
    GstStateChange transition)
{
  GstAvatarDiffuse *self = GST_AVATAR_DIFFUSE (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    GST_OBJECT_LOCK (self);
    self->frames_in = self->frames_denoised = self->windows_out = 0;
    self->qos_dropped = 0;
    self->last_group_time = self->max_group_time = self->total_time = 0;
    GST_OBJECT_UNLOCK (self);
    gst_segment_init (&self->segment, GST_FORMAT_TIME);
    self->live_checked = FALSE;
    self->live = FALSE;
    self->frame_duration = GST_CLOCK_TIME_NONE;
    self->discont = TRUE;
    self->started_us = g_get_monotonic_time ();
    self->progress_last_us = 0;
    if (!avatar_diffuse_start (self)) {
      avatar_diffuse_stop (self);
      return GST_STATE_CHANGE_FAILURE;
    }
  }
  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    avatar_diffuse_stop (self);
  return ret;
}

static void
gst_avatar_diffuse_finalize (GObject * object)
{
  GstAvatarDiffuse *self = GST_AVATAR_DIFFUSE (object);

  avatar_diffuse_stop (self);
  gst_clear_object (&self->given);
  g_array_unref (self->records);
  g_free (self->model);
  g_free (self->reference);
  g_free (self->model_dir);
  g_free (self->reference_path);
  g_free (self->device_desc);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_avatar_diffuse_class_init (GstAvatarDiffuseClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags ready = rw | GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_avatar_diffuse_set_property;
  gobject_class->get_property = gst_avatar_diffuse_get_property;
  gobject_class->finalize = gst_avatar_diffuse_finalize;
  element_class->change_state = gst_avatar_diffuse_change_state;
  element_class->set_context = gst_avatar_diffuse_set_context;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model folder",
          "Model folder (diffusers layout: vae/, unet/, reference_unet/, "
          "pose_guider/, hand_encoder/, scheduler_config.json). NULL: "
          "$GST_AVATAR_MODEL_DIR, else the bundled models/avatar-default. "
          "Elements naming the same folder share one loaded model", NULL,
          ready));
  g_object_class_install_property (gobject_class, PROP_REFERENCE,
      g_param_spec_string ("reference", "Reference image",
          "PNG of the identity to animate (any size: it is resized to the "
          "frame size). Hand key points are read from a sibling .json "
          "(OpenPose) when there is one. NULL: the model's "
          DEFAULT_REFERENCE, NULL, ready));
  g_object_class_install_property (gobject_class, PROP_STEPS,
      g_param_spec_uint ("steps", "Steps", "Denoising steps per window",
          1, 1000, DEFAULT_PROP_STEPS, ready));
  g_object_class_install_property (gobject_class, PROP_SCHEDULER,
      g_param_spec_enum ("scheduler", "Scheduler",
          "Sampler, on the model's scheduler_config.json schedule",
          GST_TYPE_AVATAR_DIFFUSE_SCHEDULER, DEFAULT_PROP_SCHEDULER, ready));
  g_object_class_install_property (gobject_class, PROP_GUIDANCE_SCALE,
      g_param_spec_float ("guidance-scale", "Guidance scale",
          "Classifier-free guidance scale: uncond + g (cond - uncond), uncond "
          "without reference attention and hand tokens; <= 1 runs the "
          "conditional pass only (half the work). Applies from the next "
          "window on", 0.0f, 30.0f, DEFAULT_PROP_GUIDANCE_SCALE,
          rw | GST_PARAM_CONTROLLABLE | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_POSE_SCALE,
      g_param_spec_float ("pose-scale", "Pose scale",
          "Multiplies the pose guider's features before they are added to "
          "the UNet (condition scale); applies from the next window on",
          0.0f, 10.0f, DEFAULT_PROP_POSE_SCALE,
          rw | GST_PARAM_CONTROLLABLE | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_WINDOW,
      g_param_spec_uint ("window", "Window",
          "Frames per window: the frames denoised together (the UNet batch "
          "and the span of all-frame attention)", 1,
          GST_AVATAR_LATENTS_MAX_WINDOW, DEFAULT_PROP_WINDOW, ready));
  g_object_class_install_property (gobject_class, PROP_OVERLAP,
      g_param_spec_uint ("overlap", "Overlap",
          "Frames shared by consecutive windows, fused at every step; must "
          "be smaller than window", 0, GST_AVATAR_LATENTS_MAX_WINDOW - 1,
          DEFAULT_PROP_OVERLAP, ready));
  g_object_class_install_property (gobject_class, PROP_FUSION,
      g_param_spec_enum ("fusion", "Fusion",
          "How overlapping windows are fused: progressive (MimicMotion "
          "triangle weights) or uniform (Make-Your-Anchor average)",
          GST_TYPE_AVATAR_DIFFUSE_FUSION, DEFAULT_PROP_FUSION, ready));
  g_object_class_install_property (gobject_class, PROP_LOOKAHEAD,
      g_param_spec_int ("lookahead", "Lookahead",
          "Windows denoised in lockstep, fused over their overlaps: 1 is "
          "causal (lowest latency); more is closer to whole-clip fusion; 0 "
          "denoises every window together at the end of the stream "
          "(offline only)", 0, 1024, DEFAULT_PROP_LOOKAHEAD, ready));
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Seed of the initial noise (a function of seed and frame index: "
          "the same input gives the same output)", 0, G_MAXUINT64,
          DEFAULT_PROP_SEED, ready));
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_int ("threads", "Threads",
          "Engine threads (the engine's own pool; process-wide, the last "
          "element to start sets it); 0 leaves it as it is: "
          "$AE_NUM_THREADS, else every core", 0, 1024, DEFAULT_PROP_THREADS,
          ready));
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_enum ("device", "Device",
          "Where the U-Nets and the reference's VAE encode run: cpu; "
          "vulkan (Vulkan compute; an error at start naming what is missing "
          "when no Vulkan device opens); auto (a Vulkan GPU when one opens, "
          "else the CPU, with an info message saying why). The weights are "
          "uploaded once per model and device, shared by every element "
          "using that model (docs/vulkan.md)", GST_TYPE_AVATAR_DIFFUSE_DEVICE,
          DEFAULT_PROP_DEVICE, ready));
  g_object_class_install_property (gobject_class, PROP_REFERENCE_ATTENTION,
      g_param_spec_boolean ("reference-attention", "Reference attention",
          "The conditional pass attends to the Reference U-Net's tokens of "
          "the reference image (off: ablation, identity is lost)",
          DEFAULT_PROP_REFERENCE_ATTENTION, ready));
  g_object_class_install_property (gobject_class, PROP_HAND_TOKENS,
      g_param_spec_boolean ("hand-tokens", "Hand tokens",
          "The conditional pass gets key-point hand tokens from each frame's "
          "keypoint meta (off: ablation, zero tokens)",
          DEFAULT_PROP_HAND_TOKENS, ready));
  g_object_class_install_property (gobject_class, PROP_TEMPORAL_ATTENTION,
      g_param_spec_boolean ("temporal-attention", "All-frame attention",
          "Self-attention over the tokens of every frame of a window at once "
          "(Make-Your-Anchor all-frame attention), for models trained with "
          "it; off: per frame, as the embedded model was trained",
          DEFAULT_PROP_TEMPORAL_ATTENTION, ready));
  g_object_class_install_property (gobject_class, PROP_REFERENCE_INIT,
      g_param_spec_boolean ("reference-init", "Reference init",
          "Start every frame from noise carrying the reference's latent as "
          "much as a training sample at the first timestep carries its own "
          "(SD1.5's schedule keeps sqrt(alphas_cumprod) of the signal there), "
          "instead of pure noise: backgrounds and colours follow the "
          "reference (off: pure noise, ablation)",
          DEFAULT_PROP_REFERENCE_INIT, ready));
  g_object_class_install_property (gobject_class, PROP_REFERENCE_CONCAT,
      g_param_spec_boolean ("reference-concat", "Reference concat",
          "With a model whose U-Net takes the reference's latent "
          "concatenated to every frame's noisy latent (unet in_channels = 2 "
          "x latent channels; Stable Video Diffusion / MimicMotion image "
          "conditioning), the conditional pass gets the reference's latent "
          "there (off: zeros as in the unconditional pass, ablation). "
          "Ignored by a model without it",
          DEFAULT_PROP_REFERENCE_CONCAT, ready));
  g_object_class_install_property (gobject_class, PROP_NOISE_CORRELATION,
      g_param_spec_double ("noise-correlation", "Noise correlation",
          "How much initial noise consecutive frames share (PYoCo's mixed "
          "noise prior): frame f starts from sqrt(r) x shared + sqrt(1 - r) "
          "x its own noise, the shared field the same for every frame. 1 = "
          "every frame starts from the same noise: steadiest video, the "
          "least frame-to-frame flicker; 0 = independent noise per frame "
          "(flickers without a trained temporal module); LCM's per-step "
          "noise likewise", 0.0, 1.0, DEFAULT_PROP_NOISE_CORRELATION,
          ready));
  g_object_class_install_property (gobject_class, PROP_STRENGTH,
      g_param_spec_double ("strength", "Strength",
          "img2img strength (diffusers' img2img pipelines): sampling runs "
          "the last int(steps x strength) steps, starting from the "
          "reference's latent noised to the first of them. 1 = from noise "
          "(with the reference's leak, reference-init); lower keeps more of "
          "the reference and flickers less but follows the pose less. "
          "Needs reference-init; an error when it leaves no step",
          0.01, 1.0, DEFAULT_PROP_STRENGTH, ready));
  g_object_class_install_property (gobject_class, PROP_QOS,
      g_param_spec_boolean ("qos", "QoS",
          "In a live pipeline, drop frames that arrive more than one window "
          "stride (window - overlap frames) late, posting a QoS message for "
          "each; never drops when upstream is not live",
          DEFAULT_PROP_QOS, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_PROGRESS_INTERVAL,
      g_param_spec_int ("progress-interval", "Progress interval",
          "Least milliseconds between avatardiffuse-progress element "
          "messages (posted after denoising steps; the last step of every "
          "window group always posts); 0 = every step, -1 = none",
          -1, G_MAXINT, DEFAULT_PROP_PROGRESS_INTERVAL,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_PROCESSING_LATENCY,
      g_param_spec_int64 ("processing-latency", "Processing latency",
          "Nanoseconds of processing added to the reported latency; -1 = "
          "measured: the longest window group so far (a latency message is "
          "posted when it grows by more than 10%)", -1, G_MAXINT64,
          DEFAULT_PROP_PROCESSING_LATENCY, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Counters since the element went to PAUSED: frames-in, "
          "frames-denoised, windows-out, qos-dropped (guint64), "
          "last-group-time, max-group-time, total-time (guint64 ns of "
          "denoising), device (string: the device in use, \"cpu\" or "
          "\"vulkan: <name> (<type>)\"; NULL before the first start)",
          GST_TYPE_STRUCTURE,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Avatar latent diffusion", "Filter/Video",
      "Denoises windows of avatar latents guided by pose frames and a "
      "reference image (pose-guided latent diffusion)",
      "gst-avatar developers");

  gst_type_mark_as_plugin_api (GST_TYPE_AVATAR_DIFFUSE_SCHEDULER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_AVATAR_DIFFUSE_FUSION, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_AVATAR_DIFFUSE_DEVICE, 0);
  GST_DEBUG_CATEGORY_INIT (gst_avatar_diffuse_debug, "avatardiffuse", 0,
      "pose-guided latent diffusion");
}

static void
gst_avatar_diffuse_init (GstAvatarDiffuse * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_avatar_diffuse_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_avatar_diffuse_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_avatar_diffuse_sink_query));
  GST_PAD_SET_ACCEPT_TEMPLATE (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_avatar_diffuse_src_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->steps = DEFAULT_PROP_STEPS;
  self->scheduler = DEFAULT_PROP_SCHEDULER;
  self->guidance_scale = DEFAULT_PROP_GUIDANCE_SCALE;
  self->pose_scale = DEFAULT_PROP_POSE_SCALE;
  self->window = DEFAULT_PROP_WINDOW;
  self->overlap = DEFAULT_PROP_OVERLAP;
  self->fusion = DEFAULT_PROP_FUSION;
  self->lookahead = DEFAULT_PROP_LOOKAHEAD;
  self->seed = DEFAULT_PROP_SEED;
  self->threads = DEFAULT_PROP_THREADS;
  self->device = DEFAULT_PROP_DEVICE;
  self->reference_attention = DEFAULT_PROP_REFERENCE_ATTENTION;
  self->hand_tokens = DEFAULT_PROP_HAND_TOKENS;
  self->temporal_attention = DEFAULT_PROP_TEMPORAL_ATTENTION;
  self->reference_init = DEFAULT_PROP_REFERENCE_INIT;
  self->reference_concat = DEFAULT_PROP_REFERENCE_CONCAT;
  self->noise_correlation = DEFAULT_PROP_NOISE_CORRELATION;
  self->strength = DEFAULT_PROP_STRENGTH;
  self->qos = DEFAULT_PROP_QOS;
  self->progress_interval = DEFAULT_PROP_PROGRESS_INTERVAL;
  self->processing_latency = DEFAULT_PROP_PROCESSING_LATENCY;
  self->records = g_array_new (FALSE, TRUE, sizeof (FrameRecord));
  g_array_set_clear_func (self->records, frame_record_clear);
  gst_video_info_init (&self->in_info);
  gst_avatar_latents_info_init (&self->out_info);
  gst_segment_init (&self->segment, GST_FORMAT_TIME);
  self->frame_duration = GST_CLOCK_TIME_NONE;
}
