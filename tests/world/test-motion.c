/* avatar-world motion realism: keypoint speeds and accelerations stay
 * within bounds measured on real presenter recordings, the motion is not
 * frozen, and the mouth opens and closes at speech rates (2-7 Hz). */
#include "avatar-world.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Point groups, as the bounds were measured. */
enum { G_TORSO, G_ARMS, G_HANDS, G_FACE, G_N };
static const char *group_name[G_N] = { "torso", "arms", "hands", "face" };

/* Bounds from ../shared/realpose: the four EchoMimicV2 DWPose clips
 * (echomimicv2_halfbody_01, _02, gesture_good, gesture_fight; 24 fps).
 * Per clip, speeds (|dp| * fps) and accelerations (|d2p| * fps^2) of the
 * points with c > 0.3 in every frame used, divided by the clip's median
 * shoulder width (RShoulder to LShoulder); the 99th percentile (nearest
 * rank) per group. MAX_* is the largest p99 over the four clips, MIN_V95 the
 * smallest 95th percentile of speed. Groups: torso = nose, neck,
 * shoulders; arms = elbows, wrists; hands = all 42 hand points; face = face
 * points 0-35 (contour, brows, nose: the rigid part, without eyes and
 * lips). Units: shoulder widths per second (per second squared). This test
 * recomputes them from ../shared when it is there and checks they agree. */
static const double MAX_V99[G_N] = { 0.326, 2.978, 5.487, 0.215 };
static const double MAX_A99[G_N] = { 9.15, 75.10, 131.80, 6.62 };
static const double MIN_V95[G_N] = { 0.116, 0.626, 1.143, 0.135 };

typedef struct {
  GArray *v[G_N], *a[G_N];
} Stats;

static void
stats_init (Stats * st)
{
  for (int g = 0; g < G_N; g++) {
    st->v[g] = g_array_new (FALSE, FALSE, sizeof (double));
    st->a[g] = g_array_new (FALSE, FALSE, sizeof (double));
  }
}

static void
stats_clear (Stats * st)
{
  for (int g = 0; g < G_N; g++) {
    g_array_free (st->v[g], TRUE);
    g_array_free (st->a[g], TRUE);
  }
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
percentile (GArray * arr, double q)
{
  g_assert_cmpuint (arr->len, >, 10);
  qsort (arr->data, arr->len, sizeof (double), cmp_double);
  return g_array_index (arr, double, (guint) (q * (arr->len - 1)));
}

/* The group's points of one person, as a flat list. */
static int
group_points (const ApPerson * p, int g, ApPoint * out)
{
  static const int torso[4] = { AP_NOSE, AP_NECK, AP_RSHOULDER,
    AP_LSHOULDER
  };
  static const int arms[4] = { AP_RELBOW, AP_RWRIST, AP_LELBOW, AP_LWRIST };
  int n = 0;

  switch (g) {
    case G_TORSO:
      for (int i = 0; i < 4; i++)
        out[n++] = p->body[torso[i]];
      break;
    case G_ARMS:
      for (int i = 0; i < 4; i++)
        out[n++] = p->body[arms[i]];
      break;
    case G_HANDS:
      for (int s = 0; s < 2; s++)
        for (int i = 0; i < AP_HAND_N; i++)
          out[n++] = p->hand[s][i];
      break;
    default:
      for (int i = 0; i < 36 && i < p->n_face; i++)
        out[n++] = p->face[i];
      break;
  }
  return n;
}

static int
cmp_float (const void *a, const void *b)
{
  float x = *(const float *) a, y = *(const float *) b;
  return (x > y) - (x < y);
}

/* Adds a sequence's speeds and accelerations to st. */
static void
stats_add (Stats * st, const ApPerson * seq, int n, double fps)
{
  float *sw = g_new (float, n);
  double norm;

  for (int i = 0; i < n; i++)
    sw[i] = hypotf (seq[i].body[AP_LSHOULDER].x - seq[i].body[AP_RSHOULDER].x,
        seq[i].body[AP_LSHOULDER].y - seq[i].body[AP_RSHOULDER].y);
  qsort (sw, (size_t) n, sizeof (float), cmp_float);
  norm = sw[n / 2];
  g_free (sw);
  g_assert_cmpfloat (norm, >, 1.0);
  for (int g = 0; g < G_N; g++) {
    for (int i = 2; i < n; i++) {
      ApPoint p0[42], p1[42], p2[42];
      int k = group_points (&seq[i - 2], g, p0);
      group_points (&seq[i - 1], g, p1);
      group_points (&seq[i], g, p2);
      for (int j = 0; j < k; j++) {
        if (!(p1[j].c > 0.3f && p2[j].c > 0.3f))
          continue;
        double v = hypot (p2[j].x - p1[j].x, p2[j].y - p1[j].y) * fps / norm;
        g_array_append_val (st->v[g], v);
        if (p0[j].c > 0.3f) {
          double a = hypot (p2[j].x - 2 * p1[j].x + p0[j].x,
              p2[j].y - 2 * p1[j].y + p0[j].y) * fps * fps / norm;
          g_array_append_val (st->a[g], a);
        }
      }
    }
  }
}

/* Real recordings, when ../shared is there: recomputes the bounds. */
static void
test_bounds_from_realpose (void)
{
  static const char *clips[4] = { "echomimicv2_halfbody_01",
    "echomimicv2_halfbody_02", "echomimicv2_gesture_good",
    "echomimicv2_gesture_fight"
  };
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  double v99[G_N] = { 0 }, a99[G_N] = { 0 }, v95[G_N];

  if (!shared || !g_file_test (shared, G_FILE_TEST_IS_DIR)) {
    g_test_skip ("AVATAR_SHARED_DIR (../shared/realpose) is missing: the "
        "constant bounds are used");
    return;
  }
  for (int g = 0; g < G_N; g++)
    v95[g] = 1e9;
  for (int c = 0; c < 4; c++) {
    char *path = g_build_filename (shared, "realpose", clips[c],
        "frames.jsonl", NULL);
    char *text = NULL, **lines;
    GArray *seq = g_array_new (FALSE, TRUE, sizeof (ApPerson));
    Stats st;

    if (!g_file_get_contents (path, &text, NULL, NULL)) {
      g_free (path);
      g_array_free (seq, TRUE);
      g_test_skip ("../shared/realpose has no EchoMimicV2 clips");
      return;
    }
    lines = g_strsplit (text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
      ApFrame fr;
      ApIssues is;
      if (!lines[i][0])
        continue;
      ap_issues_clear (&is);
      g_assert_cmpint (ap_frame_from_json (lines[i], strlen (lines[i]), i + 1,
              &fr, &is), ==, AP_FRAME);
      g_assert_cmpint (fr.n_people, >=, 1);
      g_array_append_val (seq, fr.people[0]);
    }
    stats_init (&st);
    stats_add (&st, (ApPerson *) seq->data, (int) seq->len, 24.0);
    for (int g = 0; g < G_N; g++) {
      v99[g] = fmax (v99[g], percentile (st.v[g], 0.99));
      a99[g] = fmax (a99[g], percentile (st.a[g], 0.99));
      v95[g] = fmin (v95[g], percentile (st.v[g], 0.95));
    }
    stats_clear (&st);
    g_strfreev (lines);
    g_free (text);
    g_free (path);
    g_array_free (seq, TRUE);
  }
  for (int g = 0; g < G_N; g++) {
    g_test_message ("%s: v99 %.3f a99 %.2f v95 %.3f", group_name[g], v99[g],
        a99[g], v95[g]);
    g_assert_cmpfloat (fabs (v99[g] - MAX_V99[g]), <, 0.02 * MAX_V99[g]);
    g_assert_cmpfloat (fabs (a99[g] - MAX_A99[g]), <, 0.02 * MAX_A99[g]);
    g_assert_cmpfloat (fabs (v95[g] - MIN_V95[g]), <, 0.02 * MIN_V95[g]);
  }
}

#define FPS 25.0
#define SECONDS 60

static void
test_speed_and_acceleration (void)
{
  int n = (int) (FPS * SECONDS);
  ApPerson *seq = g_new (ApPerson, n);
  Stats st;

  stats_init (&st);
  for (uint32_t seed = 1; seed <= 6; seed++) {
    AwMotion *m = aw_motion_new (seed * 1009);
    AwIdentity id;
    aw_identity_from_seed (seed, &id);
    for (int i = 0; i < n; i++)
      aw_motion_pose (m, &id, i, FPS, 256, 256, &seq[i]);
    stats_add (&st, seq, n, FPS);
    aw_motion_free (m);
  }
  for (int g = 0; g < G_N; g++) {
    double v99 = percentile (st.v[g], 0.99), a99 = percentile (st.a[g], 0.99);
    double v95 = percentile (st.v[g], 0.95);
    g_test_message ("%s: v99 %.3f (<= %.3f) a99 %.2f (<= %.2f) v95 %.3f "
        "(>= %.3f)", group_name[g], v99, MAX_V99[g], a99, MAX_A99[g], v95,
        0.5 * MIN_V95[g]);
    g_assert_cmpfloat (v99, <=, MAX_V99[g]);
    g_assert_cmpfloat (a99, <=, MAX_A99[g]);
    /* alive: at least half the calmest real clip's brisk motion */
    g_assert_cmpfloat (v95, >=, 0.5 * MIN_V95[g]);
  }
  stats_clear (&st);
  g_free (seq);
}

/* Mouth rate from the lip landmarks: peaks of the inner-lip gap (relative
 * to the face size) during speech, their spacing between 1/7 and 1/2 s. */
static void
test_mouth_rate (void)
{
  int n = (int) (FPS * SECONDS), total = 0, in_range = 0;
  double *gap = g_new (double, n);

  for (uint32_t seed = 1; seed <= 6; seed++) {
    AwMotion *m = aw_motion_new (seed * 31);
    int last = -1;
    for (int i = 0; i < n; i++) {
      ApPerson p;
      double face;
      aw_motion_pose (m, NULL, i, FPS, 256, 256, &p);
      face = hypot (p.face[8].x - p.face[27].x, p.face[8].y - p.face[27].y);
      gap[i] = hypot (p.face[66].x - p.face[62].x,
          p.face[66].y - p.face[62].y) / face;
    }
    for (int i = 1; i + 1 < n; i++) {
      if (!(gap[i] > gap[i - 1] && gap[i] >= gap[i + 1] && gap[i] > 0.04))
        continue;
      /* a peak after a pause starts a new run; within a run, the spacing
       * is one syllable */
      if (last >= 0 && (i - last) / FPS < 0.6) {
        double hz = FPS / (i - last);
        total++;
        in_range += hz >= 2.0 && hz <= 7.0;
      }
      last = i;
    }
    aw_motion_free (m);
  }
  g_free (gap);
  g_test_message ("mouth: %d of %d syllable intervals at 2-7 Hz", in_range,
      total);
  g_assert_cmpint (total, >, 6 * SECONDS);     /* speaks most of the time */
  g_assert_cmpint (in_range, >=, total * 95 / 100);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/world/motion/bounds-from-realpose",
      test_bounds_from_realpose);
  g_test_add_func ("/world/motion/speed-acceleration",
      test_speed_and_acceleration);
  g_test_add_func ("/world/motion/mouth-rate", test_mouth_rate);
  return g_test_run ();
}
