/* avatar-world: command-line tool (contract in docs/world.md).
 *
 *   avatar-world render --identity SEED --motion SEED --frames N --size WxH
 *       --out DIR [--fps 25]
 *   avatar-world dataset --split train|heldout --clips N --frames F
 *       --size WxH --out DIR [--first-clip K] [--fps 25] [--jobs 2]
 *   avatar-world sheet --out FILE [--cell 192]
 */
#include "avatar-world.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_SIZE 512

typedef struct {
  int width, height, frames;
  double fps;
  int dataset;                  /* also pose/, boxes.jsonl, clip.json */
} ClipSpec;

static int
make_dir (const char *path, char *err)
{
  if (g_mkdir_with_parents (path, 0755) != 0) {
    snprintf (err, ERR_SIZE, "%s: cannot create directory", path);
    return -1;
  }
  return 0;
}

static int
write_text (const char *path, const char *text, char *err)
{
  GError *e = NULL;
  if (!g_file_set_contents (path, text, -1, &e)) {
    snprintf (err, ERR_SIZE, "%s", e->message);
    g_error_free (e);
    return -1;
  }
  return 0;
}

static void
append_box (GString * s, const char *key, int ok, const float b[4])
{
  if (!ok) {
    g_string_append_printf (s, "\"%s\":null", key);
    return;
  }
  g_string_append_printf (s, "\"%s\":[%.2f,%.2f,%.2f,%.2f]", key, b[0], b[1],
      b[2], b[3]);
}

/* Pose guidance for the dataset: MimicMotion style, same size. */
static int
draw_guidance (const ApFrame * frame, uint8_t * rgb, int w, int h,
    const char *path, char *err)
{
#ifdef AW_HAVE_DRAW
  if (ap_draw (frame, AP_STYLE_MIMICMOTION, 0, rgb, w, h, 3 * w) != 0) {
    snprintf (err, ERR_SIZE, "%s: ap_draw out of memory", path);
    return -1;
  }
  return aw_write_png (path, rgb, w, h, 3, 3 * w, err, ERR_SIZE);
#else
  snprintf (err, ERR_SIZE, "%s: this build has no pose drawing (pose/draw.c)",
      path);
  return -1;
#endif
}

static int
write_reference (const char *dir, const AwIdentity * id, const ClipSpec * cs,
    uint8_t * rgb, uint8_t * alpha, char *err)
{
  ApPerson truth;
  ApFrame obs;
  char *path, *json;
  int rc;

  aw_neutral_pose (id, cs->width, cs->height, &truth);
  aw_render (id, &truth, rgb, 3 * cs->width, alpha, cs->width, cs->width,
      cs->height);
  path = g_build_filename (dir, "reference.png", NULL);
  rc = aw_write_png (path, rgb, cs->width, cs->height, 3, 3 * cs->width, err,
      ERR_SIZE);
  g_free (path);
  if (rc != 0)
    return rc;
  aw_observed_frame (&truth, cs->width, cs->height, &obs);
  json = ap_frame_to_json (&obs);
  path = g_build_filename (dir, "reference.json", NULL);
  {
    char *line = g_strconcat (json, "\n", NULL);
    rc = write_text (path, line, err);
    g_free (line);
  }
  g_free (path);
  g_free (json);
  return rc;
}

/* One clip: the render layout, plus the dataset's extras. */
static int
write_clip (const char *dir, uint32_t identity_seed, uint32_t motion_seed,
    const ClipSpec * cs, char *err)
{
  int w = cs->width, h = cs->height, rc = -1;
  uint8_t *rgb = g_malloc ((size_t) w * h * 3);
  uint8_t *alpha = g_malloc ((size_t) w * h);
  uint8_t *guide = cs->dataset ? g_malloc ((size_t) w * h * 3) : NULL;
  GString *poses = g_string_new (NULL), *boxes = g_string_new (NULL);
  AwMotion *motion = aw_motion_new (motion_seed);
  AwIdentity id;
  char *sub[3] = {
    g_build_filename (dir, "frames", NULL),
    g_build_filename (dir, "alpha", NULL),
    g_build_filename (dir, "pose", NULL)
  };

  aw_identity_from_seed (identity_seed, &id);
  if (make_dir (sub[0], err) || make_dir (sub[1], err)
      || (cs->dataset && make_dir (sub[2], err)))
    goto out;
  for (int i = 0; i < cs->frames; i++) {
    ApPerson truth;
    ApFrame obs;
    char name[16], *path, *json;
    float fb[4], lb[4], rb[4];
    int ok;

    aw_motion_pose (motion, &id, i, cs->fps, w, h, &truth);
    aw_render (&id, &truth, rgb, 3 * w, alpha, w, w, h);
    g_snprintf (name, sizeof (name), "%05d.png", i);
    path = g_build_filename (sub[0], name, NULL);
    ok = aw_write_png (path, rgb, w, h, 3, 3 * w, err, ERR_SIZE) == 0;
    g_free (path);
    path = g_build_filename (sub[1], name, NULL);
    ok = ok && aw_write_png (path, alpha, w, h, 1, w, err, ERR_SIZE) == 0;
    g_free (path);
    if (!ok)
      goto out;
    aw_observed_frame (&truth, w, h, &obs);
    json = ap_frame_to_json (&obs);
    g_string_append (poses, json);
    g_string_append_c (poses, '\n');
    g_free (json);
    if (!cs->dataset)
      continue;
    path = g_build_filename (sub[2], name, NULL);
    ok = draw_guidance (&obs, guide, w, h, path, err) == 0;
    g_free (path);
    if (!ok)
      goto out;
    g_string_append_c (boxes, '{');
    append_box (boxes, "face", aw_face_box (&truth, w, h, fb), fb);
    g_string_append_c (boxes, ',');
    append_box (boxes, "hand_left", aw_hand_box (&truth, AP_LEFT, w, h, lb),
        lb);
    g_string_append_c (boxes, ',');
    append_box (boxes, "hand_right", aw_hand_box (&truth, AP_RIGHT, w, h, rb),
        rb);
    g_string_append (boxes, "}\n");
  }
  {
    char *path = g_build_filename (dir, "poses.jsonl", NULL);
    int bad = write_text (path, poses->str, err);
    g_free (path);
    if (bad)
      goto out;
  }
  if (write_reference (dir, &id, cs, rgb, alpha, err))
    goto out;
  if (cs->dataset) {
    char *path = g_build_filename (dir, "boxes.jsonl", NULL);
    char *meta = g_strdup_printf ("{\"identity\":%u,\"motion\":%u,\"fps\":%g,"
        "\"frames\":%d,\"width\":%d,\"height\":%d}\n", identity_seed,
        motion_seed, cs->fps, cs->frames, w, h);
    int bad = write_text (path, boxes->str, err);
    g_free (path);
    path = g_build_filename (dir, "clip.json", NULL);
    bad = bad || write_text (path, meta, err);
    g_free (path);
    g_free (meta);
    if (bad)
      goto out;
  }
  rc = 0;
out:
  for (int i = 0; i < 3; i++)
    g_free (sub[i]);
  aw_motion_free (motion);
  g_string_free (poses, TRUE);
  g_string_free (boxes, TRUE);
  g_free (rgb);
  g_free (alpha);
  g_free (guide);
  return rc;
}

/* ---- Options ------------------------------------------------------------- */

typedef struct {
  const char *out, *split;
  long identity, motion, frames, clips, first_clip, jobs, cell;
  int width, height;
  double fps;
} Opts;

static int
parse_u32 (const char *s, long max, long *out)
{
  char *end;
  long long v = g_ascii_strtoll (s, &end, 10);
  if (end == s || *end || v < 0 || v > max)
    return -1;
  *out = (long) v;
  return 0;
}

static int
parse_opts (int argc, char **argv, Opts * o)
{
  o->identity = o->motion = -1;
  o->frames = o->clips = -1;
  o->first_clip = 0;
  o->jobs = 2;
  o->cell = 192;
  o->width = o->height = 0;
  o->fps = 25.0;
  o->out = o->split = NULL;
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int bad = 0;
    if (!v) {
      fprintf (stderr, "avatar-world: %s needs a value\n", k);
      return -1;
    }
    i++;
    if (!strcmp (k, "--out"))
      o->out = v;
    else if (!strcmp (k, "--split"))
      o->split = v;
    else if (!strcmp (k, "--identity"))
      bad = parse_u32 (v, 0xFFFFFFFFl, &o->identity);
    else if (!strcmp (k, "--motion"))
      bad = parse_u32 (v, 0xFFFFFFFFl, &o->motion);
    else if (!strcmp (k, "--frames"))
      bad = parse_u32 (v, 1000000, &o->frames);
    else if (!strcmp (k, "--clips"))
      bad = parse_u32 (v, 1000000, &o->clips);
    else if (!strcmp (k, "--first-clip"))
      bad = parse_u32 (v, 100000000, &o->first_clip);
    else if (!strcmp (k, "--jobs"))
      bad = parse_u32 (v, 64, &o->jobs) || o->jobs < 1;
    else if (!strcmp (k, "--cell"))
      bad = parse_u32 (v, 1024, &o->cell) || o->cell < 32;
    else if (!strcmp (k, "--fps")) {
      char *end;
      o->fps = g_ascii_strtod (v, &end);
      bad = end == v || *end || !(o->fps > 0.0 && o->fps <= 1000.0);
    } else if (!strcmp (k, "--size")) {
      bad = sscanf (v, "%dx%d", &o->width, &o->height) != 2 || o->width < 16
          || o->height < 16 || o->width > 4096 || o->height > 4096;
    } else {
      fprintf (stderr, "avatar-world: unknown option %s\n", k);
      return -1;
    }
    if (bad) {
      fprintf (stderr, "avatar-world: bad value for %s: %s\n", k, v);
      return -1;
    }
  }
  return 0;
}

static int
need (int ok, const char *what)
{
  if (!ok)
    fprintf (stderr, "avatar-world: missing %s\n", what);
  return ok;
}

static int
cmd_render (const Opts * o)
{
  ClipSpec cs = { o->width, o->height, (int) o->frames, o->fps, 0 };
  char err[ERR_SIZE];

  if (!need (o->identity >= 0, "--identity") || !need (o->motion >= 0,
          "--motion") || !need (o->frames >= 0, "--frames")
      || !need (o->width > 0, "--size") || !need (o->out != NULL, "--out"))
    return 2;
  if (write_clip (o->out, (uint32_t) o->identity, (uint32_t) o->motion, &cs,
          err)) {
    fprintf (stderr, "avatar-world: %s\n", err);
    return 1;
  }
  return 0;
}

typedef struct {
  const Opts *o;
  ClipSpec cs;
  int heldout;
  GMutex lock;
  char err[ERR_SIZE];
  int failed;
} Job;

static void
dataset_clip (gpointer data, gpointer user)
{
  Job *job = user;
  long k = GPOINTER_TO_SIZE (data) - 1;
  uint32_t ids, ms;
  char name[32], *dir, err[ERR_SIZE];

  aw_split_seeds (job->heldout, (uint32_t) k, &ids, &ms);
  g_snprintf (name, sizeof (name), "clip_%05ld", k);
  dir = g_build_filename (job->o->out, name, NULL);
  if (write_clip (dir, ids, ms, &job->cs, err) != 0) {
    g_mutex_lock (&job->lock);
    if (!job->failed)
      memcpy (job->err, err, ERR_SIZE);
    job->failed = 1;
    g_mutex_unlock (&job->lock);
  }
  g_free (dir);
}

static int
cmd_dataset (const Opts * o)
{
  Job job;
  GThreadPool *pool;

  if (!need (o->split != NULL, "--split") || !need (o->clips >= 0, "--clips")
      || !need (o->frames >= 0, "--frames") || !need (o->width > 0, "--size")
      || !need (o->out != NULL, "--out"))
    return 2;
  if (strcmp (o->split, "train") && strcmp (o->split, "heldout")) {
    fprintf (stderr, "avatar-world: --split must be train or heldout, not %s\n",
        o->split);
    return 2;
  }
  memset (&job, 0, sizeof (job));
  job.o = o;
  job.cs.width = o->width;
  job.cs.height = o->height;
  job.cs.frames = (int) o->frames;
  job.cs.fps = o->fps;
  job.cs.dataset = 1;
  job.heldout = !strcmp (o->split, "heldout");
  if (job.heldout && o->first_clip + o->clips > (long) AW_HELDOUT_N) {
    fprintf (stderr, "avatar-world: the heldout split has %u clips\n",
        AW_HELDOUT_N);
    return 2;
  }
  g_mutex_init (&job.lock);
  pool = g_thread_pool_new (dataset_clip, &job, (int) o->jobs, TRUE, NULL);
  for (long k = o->first_clip; k < o->first_clip + o->clips; k++)
    g_thread_pool_push (pool, GSIZE_TO_POINTER ((gsize) k + 1), NULL);
  g_thread_pool_free (pool, FALSE, TRUE);
  g_mutex_clear (&job.lock);
  if (job.failed) {
    fprintf (stderr, "avatar-world: %s\n", job.err);
    return 1;
  }
  return 0;
}

/* Contact sheet: two rows of identities mid-gesture, then one motion's
 * frames every second. */
static int
cmd_sheet (const Opts * o)
{
  int cell = (int) o->cell, cols = 6, rows = 3;
  int W = cols * cell, H = rows * cell;
  uint8_t *sheet = g_malloc0 ((size_t) W * H * 3);
  uint8_t *rgb = g_malloc ((size_t) cell * cell * 3);
  AwMotion *strip = aw_motion_new (12);
  char err[ERR_SIZE];
  int rc;

  if (!need (o->out != NULL, "--out"))
    return 2;
  for (int r = 0; r < rows; r++) {
    for (int c = 0; c < cols; c++) {
      AwIdentity id;
      ApPerson pose;
      if (r < 2) {
        AwMotion *m = aw_motion_new ((uint32_t) (r * cols + c + 1));
        aw_identity_from_seed ((uint32_t) (r * cols + c), &id);
        aw_motion_pose (m, &id, 40 + 13 * c, 25.0, cell, cell, &pose);
        aw_motion_free (m);
      } else {
        aw_identity_from_seed (21, &id);
        aw_motion_pose (strip, &id, 25 * c + 10, 25.0, cell, cell, &pose);
      }
      aw_render (&id, &pose, rgb, 3 * cell, NULL, 0, cell, cell);
      for (int y = 0; y < cell; y++)
        memcpy (sheet + ((size_t) (r * cell + y) * W + c * cell) * 3,
            rgb + (size_t) y * cell * 3, (size_t) cell * 3);
    }
  }
  rc = aw_write_png (o->out, sheet, W, H, 3, 3 * W, err, ERR_SIZE);
  if (rc)
    fprintf (stderr, "avatar-world: %s\n", err);
  aw_motion_free (strip);
  g_free (rgb);
  g_free (sheet);
  return rc ? 1 : 0;
}

static void
usage (void)
{
  fprintf (stderr,
      "usage: avatar-world render --identity SEED --motion SEED --frames N "
      "--size WxH --out DIR [--fps 25]\n"
      "       avatar-world dataset --split train|heldout --clips N --frames F "
      "--size WxH --out DIR [--first-clip K] [--fps 25] [--jobs 2]\n"
      "       avatar-world sheet --out FILE [--cell 192]\n");
}

int
main (int argc, char **argv)
{
  Opts o;

  if (argc < 2) {
    usage ();
    return 2;
  }
  if (parse_opts (argc, argv, &o) != 0) {
    usage ();
    return 2;
  }
  if (!strcmp (argv[1], "render"))
    return cmd_render (&o);
  if (!strcmp (argv[1], "dataset"))
    return cmd_dataset (&o);
  if (!strcmp (argv[1], "sheet"))
    return cmd_sheet (&o);
  usage ();
  return 2;
}
