/* avatar-engine render: an OpenPose JSON stream + a reference image through
 * the avatar pipeline (AeAvatarStream -> AeLatentBlender -> VAE) into one
 * PNG per pose frame. What train/quality.py runs for every held-out clip;
 * docs/avatar-pipeline.md. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "avatar-engine.h"
#include "avatar-pose.h"
#include "tool-render.h"

typedef struct {
  const char *model, *reference, *reference_pose, *poses, *out, *save;
  int64_t frames;               /* -1 = all */
  AeAvatarParams p;
} RenderArgs;

static int
usage_error (const char *fmt, const char *arg)
{
  fprintf (stderr, "avatar-engine render: ");
  fprintf (stderr, fmt, arg);
  fprintf (stderr, "\nusage:\n" AE_TOOL_RENDER_USAGE);
  return -1;
}

static int
parse_long (const char *opt, const char *s, long lo, long hi, long *out)
{
  char *end;
  long v;

  errno = 0;
  v = strtol (s, &end, 10);
  if (*s == '\0' || *end != '\0' || errno || v < lo || v > hi) {
    fprintf (stderr, "avatar-engine render: %s: '%s' is not a number in "
        "%ld..%ld\n", opt, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int
parse_float (const char *opt, const char *s, float *out)
{
  char *end;
  double v = strtod (s, &end);

  if (*s == '\0' || *end != '\0' || !isfinite (v)) {
    fprintf (stderr, "avatar-engine render: %s: not a number '%s'\n", opt, s);
    return -1;
  }
  *out = (float) v;
  return 0;
}

static int
parse_render_args (RenderArgs * a, int argc, char **argv)
{
  long v;

  memset (a, 0, sizeof *a);
  a->frames = -1;
  ae_avatar_params_init (&a->p);
  for (int i = 2; i < argc; i++) {
    const char *o = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;

    if (strcmp (o, "--no-reference-attention") == 0) {
      a->p.reference_attention = false;
      continue;
    } else if (strcmp (o, "--no-hand-tokens") == 0) {
      a->p.hand_tokens = false;
      continue;
    } else if (strcmp (o, "--temporal-attention") == 0) {
      a->p.temporal_attention = true;
      continue;
    } else if (strcmp (o, "--no-temporal-attention") == 0) {
      a->p.temporal_attention = false;
      continue;
    } else if (strcmp (o, "--no-reference-init") == 0) {
      a->p.reference_init = false;
      continue;
    } else if (strcmp (o, "--no-reference-concat") == 0) {
      a->p.reference_concat = false;
      continue;
    }
    if (strncmp (o, "--", 2) != 0)
      return usage_error ("unexpected argument '%s'", o);
    if (val == NULL)
      return usage_error ("%s needs a value", o);
    i++;
    if (strcmp (o, "--model") == 0)
      a->model = val;
    else if (strcmp (o, "--reference") == 0)
      a->reference = val;
    else if (strcmp (o, "--reference-pose") == 0)
      a->reference_pose = val;
    else if (strcmp (o, "--poses") == 0)
      a->poses = val;
    else if (strcmp (o, "--out") == 0)
      a->out = val;
    else if (strcmp (o, "--save-latents") == 0)
      a->save = val;
    else if (strcmp (o, "--device") == 0) {
      AeError e;
      if (ae_device_parse (val, &a->p.device, &e) < 0)
        return usage_error ("--device: %s", e.msg);
    }
    else if (strcmp (o, "--frames") == 0) {
      if (parse_long (o, val, 0, G_MAXINT32, &v) < 0)
        return -1;
      a->frames = v;
    } else if (strcmp (o, "--size") == 0) {
      int w, h;
      char tail;
      if (sscanf (val, "%dx%d%c", &w, &h, &tail) != 2 || w <= 0 || h <= 0)
        return usage_error ("--size: expected WxH, got '%s'", val);
      a->p.width = w;
      a->p.height = h;
    } else if (strcmp (o, "--steps") == 0) {
      if (parse_long (o, val, 1, 1000, &v) < 0)
        return -1;
      a->p.steps = (int) v;
    } else if (strcmp (o, "--scheduler") == 0) {
      int t = ae_scheduler_type_from_name (val);
      if (t < 0)
        return usage_error ("--scheduler: unknown '%s' (ddim, euler, lcm)",
            val);
      a->p.scheduler = (AeSchedulerType) t;
    } else if (strcmp (o, "--guidance") == 0) {
      if (parse_float (o, val, &a->p.guidance_scale) < 0)
        return -1;
    } else if (strcmp (o, "--pose-scale") == 0) {
      if (parse_float (o, val, &a->p.pose_scale) < 0)
        return -1;
    } else if (strcmp (o, "--window") == 0) {
      if (parse_long (o, val, 1, 1024, &v) < 0)
        return -1;
      a->p.window = (int) v;
    } else if (strcmp (o, "--overlap") == 0) {
      if (parse_long (o, val, 0, 1023, &v) < 0)
        return -1;
      a->p.overlap = (int) v;
    } else if (strcmp (o, "--fusion") == 0) {
      if (strcmp (val, "progressive") == 0)
        a->p.fusion = AE_FUSION_PROGRESSIVE;
      else if (strcmp (val, "uniform") == 0)
        a->p.fusion = AE_FUSION_UNIFORM;
      else
        return usage_error ("--fusion: '%s' is not progressive or uniform",
            val);
    } else if (strcmp (o, "--lookahead") == 0) {
      if (strcmp (val, "all") == 0)
        a->p.lookahead = 0;
      else if (parse_long (o, val, -1, 1024, &v) < 0)
        return -1;
      else
        a->p.lookahead = (int) v;
    } else if (strcmp (o, "--seed") == 0) {
      char *end;
      errno = 0;
      a->p.seed = g_ascii_strtoull (val, &end, 10);
      if (*val == '\0' || *end != '\0' || errno || val[0] == '-')
        return usage_error ("--seed: not an unsigned number '%s'", val);
    } else if (strcmp (o, "--noise-correlation") == 0) {
      if (parse_float (o, val, &a->p.noise_correlation) < 0)
        return -1;
      if (!(a->p.noise_correlation >= 0.0f &&
              a->p.noise_correlation <= 1.0f))
        return usage_error ("--noise-correlation: '%s' is not in 0..1",
            val);
    } else if (strcmp (o, "--strength") == 0) {
      if (parse_float (o, val, &a->p.strength) < 0)
        return -1;
      if (!(a->p.strength > 0.0f && a->p.strength <= 1.0f))
        return usage_error ("--strength: '%s' is not in (0, 1]", val);
    } else if (strcmp (o, "--threads") == 0) {
      if (parse_long (o, val, 0, 1024, &v) < 0)
        return -1;
      a->p.threads = (int) v;
    } else {
      return usage_error ("unknown option '%s'", o);
    }
  }
  if (a->model == NULL || a->poses == NULL || a->out == NULL)
    return usage_error ("%s", "--model, --poses and --out are required");
  return 0;
}

/* The 42 x 3 hand key points of the frame's first person (after
 * ap_frame_select), normalised to its canvas; all missing without one. */
static int
frame_hands (const ApFrame * fr, float *kp, AeError * err)
{
  const ApPerson *p;

  if (fr->n_people == 0) {
    memset (kp, 0, AE_AVATAR_HAND_FLOATS * sizeof (float));
    return 0;
  }
  p = &fr->people[0];
  return ae_hand_keypoints_fill (kp,
      (p->parts & AP_PART_HAND_LEFT) ? (const float *) p->hand[AP_LEFT] : NULL,
      (p->parts & AP_PART_HAND_RIGHT) ? (const float *) p->hand[AP_RIGHT] :
      NULL, fr->canvas_width, fr->canvas_height, err);
}

/* Hand key points of a reference pose JSON (OpenPose object, or
 * {"pose": {...}} as the dataset's reference.json may wrap it). */
static int
reference_hands (const char *path, float *kp, AeError * err)
{
  char *text = NULL, *inner = NULL;
  gsize len = 0;
  GError *gerr = NULL;
  ApFrame fr;
  ApIssues issues;
  JsonParser *jp;
  int ret = -1;

  if (!g_file_get_contents (path, &text, &len, &gerr)) {
    ae_error (err, "%s: %s", path, gerr->message);
    g_error_free (gerr);
    return -1;
  }
  jp = json_parser_new ();
  if (json_parser_load_from_data (jp, text, (gssize) len, NULL)) {
    JsonNode *root = json_parser_get_root (jp);
    if (JSON_NODE_HOLDS_OBJECT (root)) {
      JsonObject *o = json_node_get_object (root);
      JsonNode *pose = json_object_get_member (o, "pose");
      if (!json_object_has_member (o, "people") && pose &&
          JSON_NODE_HOLDS_OBJECT (pose))
        inner = json_to_string (pose, FALSE);
    }
  }
  g_object_unref (jp);
  ap_frame_init (&fr);
  ap_issues_clear (&issues);
  if (ap_frame_from_json (inner ? inner : text, strlen (inner ? inner : text),
          1, &fr, &issues) != AP_FRAME) {
    char why[256] = "not an OpenPose JSON object";
    if (issues.n > 0)
      ap_issue_format (&issues.items[0], why, sizeof why);
    ae_error (err, "%s: %s", path, why);
    goto out;
  }
  ap_frame_select (&fr, AP_SELECT_LARGEST);
  ret = frame_hands (&fr, kp, err);
out:
  g_free (inner);
  g_free (text);
  return ret;
}

/* Everything --save-latents writes, gathered per frame. */
typedef struct {
  GArray *latents, *noise, *hands;      /* float */
  GByteArray *pose;             /* RGB8 frames */
} Saved;

static int
save_file (const RenderArgs * a, const Saved * sv, int64_t n, int C, int h,
    int w, const uint8_t * ref_img, const float *ref_kp, AeError * err)
{
  AeStWriter *wr = ae_st_writer_new ();
  int64_t lat[4] = { n, C, h, w };
  int64_t pose[4] = { n, a->p.height, a->p.width, 3 };
  int64_t ref[4] = { 1, a->p.height, a->p.width, 3 };
  int64_t hk[3] = { n, AE_AVATAR_HAND_KP, 3 };
  int64_t rk[2] = { AE_AVATAR_HAND_KP, 3 };
  char buf[64];
  int ret = -1;

#define META(key, fmt, val) \
  snprintf (buf, sizeof buf, fmt, val); \
  if (ae_st_writer_add_metadata (wr, key, buf, err) < 0) goto out;
  META ("steps", "%d", a->p.steps);
  META ("scheduler", "%s", ae_scheduler_type_name (a->p.scheduler));
  META ("guidance_scale", "%.9g", a->p.guidance_scale);
  META ("pose_scale", "%.9g", a->p.pose_scale);
  META ("window", "%d", a->p.window);
  META ("overlap", "%d", a->p.overlap);
  META ("fusion", "%s", a->p.fusion == AE_FUSION_UNIFORM ? "uniform" :
      "progressive");
  META ("lookahead", "%d", a->p.lookahead);
  META ("seed", "%llu", (unsigned long long) a->p.seed);
  META ("reference_attention", "%d", (int) a->p.reference_attention);
  META ("hand_tokens", "%d", (int) a->p.hand_tokens);
  META ("temporal_attention", "%d", (int) a->p.temporal_attention);
  META ("reference_init", "%d", (int) a->p.reference_init);
  META ("reference_concat", "%d", (int) a->p.reference_concat);
  META ("noise_correlation", "%.9g", a->p.noise_correlation);
  META ("strength", "%.9g", a->p.strength);
#undef META
  if (ae_st_writer_add_raw (wr, "latents", AE_DTYPE_F32, 4, lat,
          sv->latents->data, err) < 0 ||
      ae_st_writer_add_raw (wr, "noise_init", AE_DTYPE_F32, 4, lat,
          sv->noise->data, err) < 0 ||
      ae_st_writer_add_raw (wr, "pose", AE_DTYPE_U8, 4, pose,
          sv->pose->data, err) < 0 ||
      ae_st_writer_add_raw (wr, "hand_keypoints", AE_DTYPE_F32, 3, hk,
          sv->hands->data, err) < 0 ||
      ae_st_writer_add_raw (wr, "reference", AE_DTYPE_U8, 4, ref, ref_img,
          err) < 0 ||
      ae_st_writer_add_raw (wr, "reference_hand_keypoints", AE_DTYPE_F32, 2,
          rk, ref_kp, err) < 0 || ae_st_writer_save (wr, a->save, err) < 0)
    goto out;
  ret = 0;
out:
  ae_st_writer_free (wr);
  return ret;
}

typedef struct {
  const RenderArgs *a;
  AeAvatarModel *model;
  AeAvatarDevice *dev;          /* UNets and VAE (--device) */
  AeAvatarStream *stream;
  AeLatentBlender *blender;
  AeArena arena;
  float *frame_lat;
  uint8_t *rgb;
  int C, h, w;
  size_t fs;
  int64_t written;
  double t_window;
  Saved sv;
} Render;

/* Moves every ready window into the blender and every ready frame out to
 * OUT/NNNNN.png. */
static int
drain (Render * r, AeError * err)
{
  AeAvatarWindow win;
  int64_t frame;

  while (ae_avatar_stream_pop_window (r->stream, &win) == 1) {
    double t = ae_seconds ();
    printf ("window %lld: frames %lld-%lld (%d), %.2f s\n",
        (long long) win.index, (long long) win.first_frame,
        (long long) (win.first_frame + win.n_frames - 1), win.n_frames,
        t - r->t_window);
    fflush (stdout);
    r->t_window = t;
    if (ae_latent_blender_push (r->blender, win.index, win.first_frame,
            win.n_frames, win.latents, err) < 0)
      return -1;
    if (win.last)
      ae_latent_blender_finish (r->blender);
  }
  while (ae_latent_blender_pop (r->blender, &frame, r->frame_lat) == 1) {
    char name[32];
    char *path;
    int ret;

    if (r->sv.latents)
      g_array_append_vals (r->sv.latents, r->frame_lat, r->fs);
    if (ae_avatar_device_decode_rgb (r->dev, r->frame_lat, 1, r->h, r->w,
            r->rgb, r->a->p.width * 3, 0, &r->arena, err) < 0)
      return -1;
    snprintf (name, sizeof name, "%05lld.png", (long long) frame);
    path = g_build_filename (r->a->out, name, NULL);
    ret = ae_image_save_png (path, r->rgb, r->a->p.width, r->a->p.height,
        r->a->p.width * 3, err);
    g_free (path);
    if (ret < 0)
      return -1;
    r->written++;
  }
  return 0;
}

static int
render (RenderArgs * a, AeError * err)
{
  Render r;
  AeAvatarReference *ref = NULL;
  char *ref_png = NULL, *ref_json = NULL;
  uint8_t *ref_rgb = NULL, *ref_img = NULL, *pose_rgb = NULL;
  int rw = 0, rh = 0;
  float ref_kp[AE_AVATAR_HAND_FLOATS] = { 0 };
  float kp[AE_AVATAR_HAND_FLOATS];
  ApParser *parser = NULL;
  FILE *fp = NULL;
  char buf[65536];
  int64_t n_in = 0, dropped = 0;
  bool done = false;
  double t0 = ae_seconds ();
  int ret = -1;

  memset (&r, 0, sizeof r);
  r.a = a;
  if (ae_arena_init (&r.arena, 0, err) < 0)
    return -1;
  if (a->p.threads > 0)
    ae_threads_init (a->p.threads);
  if (ae_avatar_model_load (&r.model, a->model, err) < 0)
    goto out;
  if (a->p.width == 0 && a->p.height == 0)
    a->p.width = a->p.height = ae_avatar_model_native_size (r.model);
  /* --device: the model's device (auto says why it fell back) */
  if (ae_avatar_model_device (r.model, a->p.device, &r.dev, err) < 0) {
    char why[sizeof err->msg];
    g_strlcpy (why, err->msg, sizeof why);
    ae_error (err, "--device %s: %s", ae_device_name (a->p.device), why);
    goto out;
  }
  if (a->p.device != AE_DEVICE_CPU)
    fprintf (stderr, "avatar-engine: device %s%s%s\n",
        ae_avatar_device_describe (r.dev),
        *ae_avatar_device_note (r.dev) ? " -- " : "",
        ae_avatar_device_note (r.dev));
  a->p.device = ae_avatar_device_kind (r.dev);

  /* reference: PNG + its pose JSON (--reference-pose, or the PNG's
   * sidecar NAME.json when it exists) */
  ref_png = a->reference ? g_strdup (a->reference) :
      g_build_filename (a->model, "references", "identity_00.png", NULL);
  if (a->reference_pose) {
    ref_json = g_strdup (a->reference_pose);
  } else {
    size_t n = strlen (ref_png);
    if (n > 4 && g_ascii_strcasecmp (ref_png + n - 4, ".png") == 0) {
      ref_json = g_strdup_printf ("%.*s.json", (int) (n - 4), ref_png);
      if (!g_file_test (ref_json, G_FILE_TEST_EXISTS)) {
        g_free (ref_json);
        ref_json = NULL;
      }
    }
  }
  if (ae_image_load_png (ref_png, &ref_rgb, &rw, &rh, err) < 0)
    goto out;
  if (ref_json && reference_hands (ref_json, ref_kp, err) < 0)
    goto out;
  if (ae_avatar_reference_new_on (&ref, r.dev, ref_rgb, rw, rh, rw * 3,
          ref_kp, a->p.width, a->p.height, err) < 0 ||
      ae_avatar_stream_new (&r.stream, r.model,
          ae_avatar_params_need_reference (&a->p, r.model) ? ref : NULL,
          &a->p, err) < 0)
    goto out;
  ae_avatar_stream_latent_shape (r.stream, &r.C, &r.h, &r.w);
  r.fs = ae_avatar_stream_frame_floats (r.stream);
  r.blender = ae_latent_blender_new (ae_avatar_stream_layout (r.stream),
      r.fs, err);
  if (r.blender == NULL)
    goto out;
  r.frame_lat = g_new (float, r.fs);
  r.rgb = g_malloc ((size_t) a->p.width * a->p.height * 3);
  pose_rgb = g_malloc ((size_t) a->p.width * a->p.height * 3);
  if (a->save) {
    r.sv.latents = g_array_new (FALSE, FALSE, sizeof (float));
    r.sv.noise = g_array_new (FALSE, FALSE, sizeof (float));
    r.sv.hands = g_array_new (FALSE, FALSE, sizeof (float));
    r.sv.pose = g_byte_array_new ();
    ref_img = g_malloc ((size_t) a->p.width * a->p.height * 3);
    if (ae_image_resize (ref_rgb, rw, rh, rw * 3, ref_img, a->p.width,
            a->p.height, a->p.width * 3, err) < 0)
      goto out;
  }
  if (g_mkdir_with_parents (a->out, 0755) < 0) {
    ae_error (err, "%s: cannot create the folder: %s", a->out,
        g_strerror (errno));
    goto out;
  }
  fp = strcmp (a->poses, "-") == 0 ? stdin : fopen (a->poses, "rb");
  if (fp == NULL) {
    ae_error (err, "%s: cannot open: %s", a->poses, g_strerror (errno));
    goto out;
  }
  printf ("render: %s, %dx%d, window %d overlap %d lookahead %d, %d %s "
      "steps, guidance %.3g, latency %lld frames, device %s\n", a->model,
      a->p.width, a->p.height, a->p.window, a->p.overlap, a->p.lookahead,
      a->p.steps, ae_scheduler_type_name (a->p.scheduler),
      a->p.guidance_scale,
      (long long) ae_avatar_stream_latency_frames (r.stream),
      ae_avatar_device_describe (r.dev));
  r.t_window = ae_seconds ();
  parser = ap_parser_new (AP_DEFAULT_MAX_OBJECT_BYTES);
  while (!done) {
    size_t got = fread (buf, 1, sizeof buf, fp);
    ApFrame fr;
    ApIssues issues;
    ApParseResult res;

    if (got > 0)
      ap_parser_push (parser, buf, got);
    else
      ap_parser_finish (parser);
    while ((res = ap_parser_next (parser, &fr, &issues)) != AP_NEED_DATA) {
      if (res == AP_DROPPED) {
        char why[256] = "?";
        if (issues.n > 0)
          ap_issue_format (&issues.items[0], why, sizeof why);
        fprintf (stderr, "avatar-engine render: %s: frame dropped: %s\n",
            a->poses, why);
        dropped++;
        continue;
      }
      if (a->frames >= 0 && n_in >= a->frames)
        continue;
      ap_frame_select (&fr, AP_SELECT_LARGEST);
      if (frame_hands (&fr, kp, err) < 0)
        goto out;
      if (ap_draw (&fr, AP_STYLE_MIMICMOTION, 0, pose_rgb, a->p.width,
              a->p.height, a->p.width * 3) < 0) {
        ae_error (err, "%s: frame %lld: drawing failed (out of memory)",
            a->poses, (long long) n_in);
        goto out;
      }
      if (a->save) {
        size_t nf = r.fs;
        g_byte_array_append (r.sv.pose, pose_rgb,
            (guint) ((size_t) a->p.width * a->p.height * 3));
        g_array_append_vals (r.sv.hands, kp, AE_AVATAR_HAND_FLOATS);
        g_array_set_size (r.sv.noise, r.sv.noise->len + nf);
        /* the noise the stream starts this frame from (noise correlation
         * mixed in, before the reference init) */
        ae_avatar_stream_initial_noise (r.stream, n_in,
            &g_array_index (r.sv.noise, float, r.sv.noise->len - nf));
      }
      if (ae_avatar_stream_push_frame (r.stream, pose_rgb, a->p.width * 3,
              kp, err) < 0 || drain (&r, err) < 0)
        goto out;
      n_in++;
    }
    if (got == 0)
      done = true;
  }
  if (ferror (fp)) {
    ae_error (err, "%s: read error", a->poses);
    goto out;
  }
  if (ae_avatar_stream_finish (r.stream, err) < 0 || drain (&r, err) < 0)
    goto out;
  ae_latent_blender_finish (r.blender);
  if (drain (&r, err) < 0)
    goto out;
  if (r.written != n_in) {
    ae_error (err, "internal: %lld pose frames in, %lld frames out",
        (long long) n_in, (long long) r.written);
    goto out;
  }
  if (a->save && save_file (a, &r.sv, n_in, r.C, r.h, r.w, ref_img, ref_kp,
          err) < 0)
    goto out;
  printf ("rendered %lld frames to %s in %.2f s (%.3f s/frame)%s\n",
      (long long) r.written, a->out, ae_seconds () - t0,
      r.written ? (ae_seconds () - t0) / r.written : 0.0,
      dropped ? ", some input frames were dropped" : "");
  ret = 0;
out:
  if (fp && fp != stdin)
    fclose (fp);
  ap_parser_free (parser);
  ae_latent_blender_free (r.blender);
  ae_avatar_stream_free (r.stream);
  ae_avatar_reference_unref (ref);
  ae_avatar_model_unref (r.model);
  ae_arena_clear (&r.arena);
  if (r.sv.latents) {
    g_array_free (r.sv.latents, TRUE);
    g_array_free (r.sv.noise, TRUE);
    g_array_free (r.sv.hands, TRUE);
    g_byte_array_free (r.sv.pose, TRUE);
  }
  g_free (r.frame_lat);
  g_free (r.rgb);
  g_free (pose_rgb);
  g_free (ref_img);
  g_free (ref_rgb);
  g_free (ref_png);
  g_free (ref_json);
  return ret;
}

int
ae_tool_render (int argc, char **argv)
{
  RenderArgs a;
  AeError err = { {0} };

  if (parse_render_args (&a, argc, argv) < 0)
    return 2;
  if (render (&a, &err) < 0) {
    fprintf (stderr, "avatar-engine render: %s\n", err.msg);
    return 1;
  }
  return 0;
}
