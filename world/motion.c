/* avatar-world: procedural talking-presenter motion.
 *
 * A motion is a set of seeded signals (speech, blinks, head, sway, one
 * gesture sequence per hand), each a pure function of time, turned into a
 * skeleton: a 3D face template rotated by the head, a torso, two-bone arms
 * and articulated hands. Nothing is integrated over frames, so any frame
 * can be computed alone (posetestsrc seeks, the dataset jumps). */
#include "world-private.h"
#include "raster.h"

#include <glib.h>
#include <string.h>

struct AwMotion
{
  uint32_t seed;
  uint64_t h;
  double syl_rate;              /* mean syllable rate, Hz (speech 3.5-5) */
  double syl_dev, syl_mod, syl_ph;
  double beat_rate;             /* beat gestures, Hz */
  double phrase_len;            /* seconds per phrase cell */
  double cell_len[2];           /* gesture cell length per hand */
  double cell_off[2];
  double yaw_amp, nod_amp, sway_amp;
  int dominant;                 /* AP_LEFT or AP_RIGHT */
};

typedef enum {
  G_REST_LOW, G_REST_FRONT, G_BEAT, G_POINT, G_COUNT, G_OPEN, G_N
} Gesture;

/* One hand's pose: wrist target relative to the neck (x outwards from the
 * body's midline, y down, shoulder half-widths), the hand's direction
 * (radians from straight up, positive outwards), finger curls (thumb,
 * index, middle, ring, pinky; 0 straight .. 1 fist), spread and facing
 * (+1 palm towards the camera, -1 back of the hand), and how far in front
 * of the body the wrist is. */
typedef struct {
  double tx, ty, angle;
  double curl[5];
  double spread, facing;
  double depth;                 /* wrist in front of the body, shoulder units */
} HandState;

/* Every control signal at one instant. */
typedef struct {
  double sway_x, sway_y, lean;
  double yaw, pitch, roll;
  double mouth, wide, eye_open, gaze_x, gaze_y, brow;
  HandState hand[2];
} Drive;

AwMotion *
aw_motion_new (uint32_t seed)
{
  AwMotion *m = g_new0 (AwMotion, 1);
  uint64_t h = aw_hash2 (0x4D07104Eull, seed);

  m->seed = seed;
  m->h = h;
  m->syl_rate = aw_range (aw_hash2 (h, 1), 3.6, 5.0);
  m->syl_dev = aw_range (aw_hash2 (h, 2), 0.4, 0.9);
  m->syl_mod = aw_range (aw_hash2 (h, 3), 0.15, 0.35);
  m->syl_ph = aw_unit (aw_hash2 (h, 4)) * 2.0 * M_PI;
  m->beat_rate = aw_range (aw_hash2 (h, 5), 1.4, 2.2);
  m->phrase_len = aw_range (aw_hash2 (h, 6), 2.5, 4.5);
  m->cell_len[0] = aw_range (aw_hash2 (h, 7), 2.4, 3.6);
  m->cell_len[1] = aw_range (aw_hash2 (h, 8), 2.4, 3.6);
  m->cell_off[0] = aw_unit (aw_hash2 (h, 9)) * m->cell_len[0];
  m->cell_off[1] = aw_unit (aw_hash2 (h, 10)) * m->cell_len[1];
  m->yaw_amp = aw_range (aw_hash2 (h, 11), 0.12, 0.32);
  m->nod_amp = aw_range (aw_hash2 (h, 12), 0.025, 0.05);
  m->sway_amp = aw_range (aw_hash2 (h, 13), 0.03, 0.08);
  m->dominant = aw_unit (aw_hash2 (h, 14)) < 0.75 ? AP_RIGHT : AP_LEFT;
  return m;
}

void
aw_motion_free (AwMotion * motion)
{
  g_free (motion);
}

/* ---- Speech, blinks, head ------------------------------------------------ */

/* Speaking envelope: each phrase cell starts with a pause of 0.2-0.9 s,
 * then speech; 0.12 s ramps. */
static double
speech_envelope (const AwMotion * m, double t)
{
  double cell = floor (t / m->phrase_len);
  double start = cell * m->phrase_len;
  double pause = aw_range (aw_hash3 (m->h, 20, (uint64_t) (int64_t) cell),
      0.2, 0.9);
  double on = aw_smooth ((t - start - pause) / 0.12);
  double off = aw_smooth ((start + m->phrase_len - t) / 0.12);
  return on * off;
}

/* Syllable phase: the rate swings around syl_rate (instantaneous rate
 * syl_rate + syl_dev cos(...)), integrated analytically. */
static double
syllable_phase (const AwMotion * m, double t)
{
  double w = 2.0 * M_PI * m->syl_mod;
  return m->syl_rate * t + m->syl_dev / w * (sin (w * t + m->syl_ph)
      - sin (m->syl_ph));
}

float
aw_motion_mouth (const AwMotion * m, double t)
{
  double phi = syllable_phase (m, t);
  double k = floor (phi);
  /* each syllable its own loudness; the raised cosine is 0 with zero slope
   * at syllable borders, so the signal stays smooth */
  double amp = aw_range (aw_hash3 (m->h, 21, (uint64_t) (int64_t) k), 0.35,
      1.0);
  double s = 0.5 - 0.5 * cos (2.0 * M_PI * (phi - k));
  return (float) (speech_envelope (m, t) * amp * s);
}

/* Eye openness: a 0.16 s blink somewhere in every 3.3 s cell. */
static double
eye_open (const AwMotion * m, double t)
{
  double len = 3.3, dur = 0.16;
  double cell = floor (t / len);
  double at = cell * len + aw_range (aw_hash3 (m->h, 22, (uint64_t) (int64_t)
          cell), 0.1, len - dur - 0.1);
  double x = (t - at) / dur;
  if (x <= 0.0 || x >= 1.0)
    return 1.0;
  /* closes fast, opens a little slower */
  return x < 0.4 ? 1.0 - aw_smooth (x / 0.4) : aw_smooth ((x - 0.4) / 0.6);
}

/* ---- Gestures ---------------------------------------------------------- */

static Gesture
cell_gesture (const AwMotion * m, int side, int64_t cell)
{
  double u = aw_unit (aw_hash3 (m->h, 30 + side, (uint64_t) cell));
  /* cumulative weights: the dominant hand talks, the other rests more */
  static const double dom[G_N] = { 0.12, 0.24, 0.50, 0.64, 0.80, 1.0 };
  static const double other[G_N] = { 0.30, 0.55, 0.75, 0.82, 0.88, 1.0 };
  const double *w = side == m->dominant ? dom : other;
  for (int g = 0; g < G_N; g++)
    if (u < w[g])
      return (Gesture) g;
  return G_REST_FRONT;
}

static void
set_curls (HandState * s, double thumb, double index, double middle,
    double ring, double pinky)
{
  s->curl[0] = thumb;
  s->curl[1] = index;
  s->curl[2] = middle;
  s->curl[3] = ring;
  s->curl[4] = pinky;
}

/* The hand's pose for gesture g at time t, tc seconds into its cell. */
static void
gesture_state (const AwMotion * m, int side, Gesture g, int64_t cell,
    double t, double tc, HandState * s)
{
  uint64_t h = aw_hash3 (m->h, 40 + side, (uint64_t) cell);
  double jx = aw_range (aw_hash2 (h, 1), -0.12, 0.12);
  double jy = aw_range (aw_hash2 (h, 2), -0.12, 0.12);
  double beat = sin (2.0 * M_PI * m->beat_rate * t + side);

  memset (s, 0, sizeof (*s));
  s->facing = 1.0;
  s->spread = 0.4;
  switch (g) {
    case G_REST_LOW:           /* hanging below the frame */
      s->tx = 1.05 + jx;
      s->ty = 2.6;
      s->angle = M_PI - 0.15;
      set_curls (s, 0.3, 0.3, 0.35, 0.4, 0.45);
      s->depth = 0.2;
      break;
    case G_REST_FRONT:         /* hands folded in front of the waist */
      s->tx = 0.32 + jx * 0.5;
      s->ty = 1.6 + jy;
      s->angle = -1.25;
      s->facing = -1.0;
      set_curls (s, 0.5, 0.55, 0.6, 0.65, 0.7);
      s->depth = 0.9;
      break;
    case G_BEAT:               /* rhythmic strokes in front of the chest */
      s->tx = 0.62 + jx;
      s->ty = 1.25 + jy + 0.13 * beat;
      s->angle = -0.55 + 0.1 * beat;
      set_curls (s, 0.25, 0.2, 0.3, 0.4, 0.45);
      s->spread = 0.6;
      s->depth = 1.2;
      break;
    case G_POINT:              /* index out to the side */
      s->tx = 1.6 + jx;
      s->ty = 0.35 + jy + 0.04 * beat;
      s->angle = 1.3 + jy;
      s->facing = -1.0;
      set_curls (s, 0.65, 0.0, 0.95, 0.95, 0.95);
      s->depth = 0.5;
      break;
    case G_COUNT:{             /* counts on its fingers, one every 0.7 s */
      double c = (tc - 0.5) / 0.7;
      double ext[5];
      /* order of counting: index, middle, ring, pinky, thumb */
      static const int order[5] = { 1, 2, 3, 4, 0 };
      for (int i = 0; i < 5; i++)
        ext[order[i]] = aw_smooth ((c - i) * 3.0 + 1.0);
      s->tx = 0.55 + jx;
      s->ty = 0.95 + jy;
      s->angle = -0.2;
      set_curls (s, 0.9 - 0.9 * ext[0], 1.0 - ext[1], 1.0 - ext[2],
          1.0 - ext[3], 1.0 - ext[4]);
      s->spread = 0.7;
      s->depth = 1.4;
      break;
    }
    case G_OPEN:               /* open palm, presenting */
    default:
      s->tx = 0.95 + jx;
      s->ty = 0.75 + jy + 0.06 * beat;
      s->angle = 0.5;
      set_curls (s, 0.05, 0.05, 0.05, 0.1, 0.1);
      s->spread = 1.0;
      s->depth = 1.1;
      break;
  }
}

static void
hand_lerp (const HandState * a, const HandState * b, double w, HandState * o)
{
  o->tx = aw_lerp (a->tx, b->tx, w);
  o->ty = aw_lerp (a->ty, b->ty, w);
  o->angle = aw_lerp (a->angle, b->angle, w);
  for (int i = 0; i < 5; i++)
    o->curl[i] = aw_lerp (a->curl[i], b->curl[i], w);
  o->spread = aw_lerp (a->spread, b->spread, w);
  o->facing = aw_lerp (a->facing, b->facing, w);
  o->depth = aw_lerp (a->depth, b->depth, w);
}

/* Each cell blends in from the previous one over its first 0.9 s. */
static void
hand_drive (const AwMotion * m, int side, double t, HandState * out)
{
  double len = m->cell_len[side];
  double tt = t + m->cell_off[side];
  int64_t cell = (int64_t) floor (tt / len);
  double tc = tt - (double) cell * len;
  HandState cur, prev;

  gesture_state (m, side, cell_gesture (m, side, cell), cell, t, tc, &cur);
  if (tc >= 0.9) {
    *out = cur;
    return;
  }
  gesture_state (m, side, cell_gesture (m, side, cell - 1), cell - 1, t,
      tc + len, &prev);
  hand_lerp (&prev, &cur, aw_smooth (tc / 0.9), out);
}

static void
compute_drive (const AwMotion * m, double t, Drive * d)
{
  uint64_t h = m->h;
  double speak = speech_envelope (m, t);
  /* nods land on the beats while speaking */
  double nod = speak * sin (2.0 * M_PI * m->beat_rate * 0.5 * t);

  d->sway_x = m->sway_amp * aw_noise (h, 50, t * 0.3);
  d->sway_y = 0.015 * aw_noise (h, 51, t * 0.4);
  d->lean = 0.03 * aw_noise (h, 52, t * 0.25);
  d->yaw = m->yaw_amp * aw_noise (h, 53, t * 0.35);
  d->pitch = 0.04 * aw_noise (h, 54, t * 0.3) + m->nod_amp * nod;
  d->roll = 0.05 * aw_noise (h, 55, t * 0.3);
  d->mouth = aw_motion_mouth (m, t);
  d->wide = 1.0 + 0.12 * aw_noise (h, 56, syllable_phase (m, t) * 0.5);
  d->eye_open = eye_open (m, t);
  d->gaze_x = 0.5 * aw_noise (h, 57, t * 0.4) - d->yaw;
  d->gaze_y = 0.3 * aw_noise (h, 58, t * 0.4);
  d->brow = 0.04 * speak * fmax (0.0, aw_noise (h, 59, t * 0.7));
  hand_drive (m, AP_LEFT, t, &d->hand[AP_LEFT]);
  hand_drive (m, AP_RIGHT, t, &d->hand[AP_RIGHT]);
}

static void
neutral_drive (Drive * d)
{
  memset (d, 0, sizeof (*d));
  d->wide = 1.0;
  d->eye_open = 1.0;
  for (int side = 0; side < 2; side++) {
    /* hands resting open in front of the waist, fully in view, so the
     * reference shows them */
    HandState *s = &d->hand[side];
    s->tx = 0.85;
    s->ty = 1.1;
    s->angle = -0.6;
    set_curls (s, 0.1, 0.15, 0.2, 0.25, 0.3);
    s->spread = 0.3;
    s->facing = 1.0;
    s->depth = 1.0;
  }
}

/* ---- Skeleton -------------------------------------------------------- */

/* Face template, face units (half-width 1), origin between the eyes'
 * level and the nose, y down, z towards the camera: 68 iBUG points, then
 * the two pupils. */
static void
face_template (const Drive * d, double q[AP_FACE_N][3])
{
  double gap = d->mouth * 0.24;
  double mw = 0.36 * d->wide * (1.0 - 0.12 * d->mouth);
  double my = 0.62;
  double up = -0.15 * gap, lo = 0.85 * gap;

  for (int i = 0; i <= 16; i++) {
    double th = M_PI * i / 16.0, s = sin (th);
    q[i][0] = -cos (th) * (1.0 - 0.16 * s * s);
    q[i][1] = -0.2 + 1.25 * pow (s, 0.7) + 0.06 * gap * s * s * s * s;
    q[i][2] = 0.1 + 0.6 * s;
  }
  for (int k = 0; k < 5; k++) {
    double arch = 0.1 * sin (M_PI * k / 4.0) + d->brow;
    q[17 + k][0] = -0.8 + 0.15 * k;
    q[17 + k][1] = -0.52 - arch;
    q[22 + k][0] = 0.2 + 0.15 * k;
    q[22 + k][1] = -0.52 - 0.1 * sin (M_PI * k / 4.0) - d->brow;
    q[17 + k][2] = q[22 + k][2] = 0.75;
  }
  for (int k = 0; k < 4; k++) {
    q[27 + k][0] = 0.0;
    q[27 + k][1] = -0.28 + 0.17 * k;
    q[27 + k][2] = 0.9 + 0.13 * k;
  }
  for (int k = 0; k < 5; k++) {
    static const double drop[5] = { 0.0, 0.025, 0.04, 0.025, 0.0 };
    q[31 + k][0] = -0.18 + 0.09 * k;
    q[31 + k][1] = 0.3 + drop[k];
    q[31 + k][2] = 1.0;
  }
  for (int e = 0; e < 2; e++) {
    /* e = 0: the person's right eye (image left), 36-41, outer corner
     * first; e = 1: left eye 42-47, inner corner first */
    double ex = e == 0 ? -0.4 : 0.4, ey = -0.2, hw = 0.19;
    double hh = 0.085 * d->eye_open;
    double (*p)[3] = q + 36 + 6 * e;
    p[0][0] = ex - hw;
    p[0][1] = ey;
    p[1][0] = ex - 0.07;
    p[1][1] = ey - hh;
    p[2][0] = ex + 0.07;
    p[2][1] = ey - hh;
    p[3][0] = ex + hw;
    p[3][1] = ey;
    p[4][0] = ex + 0.07;
    p[4][1] = ey + 0.9 * hh;
    p[5][0] = ex - 0.07;
    p[5][1] = ey + 0.9 * hh;
    for (int k = 0; k < 6; k++)
      p[k][2] = 0.72;
    q[68 + e][0] = ex + 0.07 * d->gaze_x;
    q[68 + e][1] = ey + 0.03 * d->gaze_y;
    q[68 + e][2] = 0.78;
  }
  {
    static const double ox[12] = { -1, -0.6, -0.22, 0, 0.22, 0.6, 1, 0.6,
      0.25, 0, -0.25, -0.6
    };
    static const double oy[12] = { 0, -0.06, -0.085, -0.07, -0.085, -0.06, 0,
      0.08, 0.1, 0.105, 0.1, 0.08
    };
    static const double ix[8] = { -0.85, -0.35, 0, 0.35, 0.85, 0.35, 0,
      -0.35
    };
    static const double iy[8] = { 0, -0.01, -0.005, -0.01, 0, 0.01, 0.005,
      0.01
    };
    for (int k = 0; k < 12; k++) {
      q[48 + k][0] = ox[k] * mw;
      q[48 + k][1] = my + oy[k] + (k > 0 && k < 6 ? up : k > 6 ? lo : 0.4 * lo);
      q[48 + k][2] = 0.9;
    }
    for (int k = 0; k < 8; k++) {
      q[60 + k][0] = ix[k] * mw;
      q[60 + k][1] = my + iy[k] + (k > 0 && k < 4 ? up : k > 4 ? lo :
          0.4 * lo);
      q[60 + k][2] = 0.88;
    }
  }
}

typedef struct {
  double x, y;
} V2;

static V2
v2 (double x, double y)
{
  V2 v = { x, y };
  return v;
}

/* Two-bone arm in 3D: the wrist target sits depth shoulder half-widths in
 * front of the body plane, so an arm reaching towards the camera is
 * foreshortened in the image as it is in video. The elbow lies on the
 * solution circle towards a pole below, a little outside and behind the
 * shoulder, like a relaxed arm. A target out of reach is pulled in. */
static V2
arm_elbow (V2 sh, V2 * w, double depth, double l1, double l2, double out_x)
{
  double d3[3] = { w->x - sh.x, w->y - sh.y, depth };
  double d = sqrt (d3[0] * d3[0] + d3[1] * d3[1] + d3[2] * d3[2]);
  double reach = 0.985 * (l1 + l2), lo = fabs (l1 - l2) + 0.05 * (l1 + l2);
  double n[3], pole[3] = { 0.35 * out_x, 1.0, -0.3 }, pn, a, h, len;
  V2 e;

  if (d < 1e-6) {
    d3[0] = 0.0;
    d3[1] = 1.0;
    d3[2] = 0.0;
    d = 1.0;
  }
  if (d > reach || d < lo) {
    double k = (d > reach ? reach : lo) / d;
    for (int i = 0; i < 3; i++)
      d3[i] *= k;
    d *= k;
    w->x = sh.x + d3[0];
    w->y = sh.y + d3[1];
  }
  for (int i = 0; i < 3; i++)
    n[i] = d3[i] / d;
  pn = pole[0] * n[0] + pole[1] * n[1] + pole[2] * n[2];
  for (int i = 0; i < 3; i++)
    pole[i] -= pn * n[i];
  len = sqrt (pole[0] * pole[0] + pole[1] * pole[1] + pole[2] * pole[2]);
  if (len < 1e-6) {
    pole[0] = out_x;
    pole[1] = pole[2] = 0.0;
    len = 1.0;
  }
  a = (l1 * l1 - l2 * l2 + d * d) / (2.0 * d);
  h = sqrt (fmax (0.0, l1 * l1 - a * a));
  e.x = sh.x + a * n[0] + h * pole[0] / len;
  e.y = sh.y + a * n[1] + h * pole[1] / len;
  return e;
}

/* Finger geometry in units of the hand length: MCP positions (across the
 * palm towards the thumb, along the hand) and bone lengths. */
static const double finger_base[5][2] = {
  {0.10, 0.10}, {0.17, 0.47}, {0.05, 0.50}, {-0.07, 0.48}, {-0.18, 0.43}
};

static const double finger_len[5][3] = {
  {0.17, 0.14, 0.12}, {0.22, 0.13, 0.10}, {0.24, 0.15, 0.11},
  {0.22, 0.14, 0.10}, {0.17, 0.11, 0.09}
};

/* Hand keypoints from wrist w, hand length hl (pixels), state s; sx = -1
 * for a hand on the image's left. hidden[i] is set for points the hand
 * itself hides (fingertips curled behind the back of the hand). */
static void
build_hand (V2 w, double hl, double sx, const HandState * s, ApPoint * p,
    int *hidden)
{
  double ux = sx * sin (s->angle), uy = -cos (s->angle);
  /* across the palm towards the thumb: inwards when the palm faces us;
   * facing between -1 and 1 foreshortens the palm as the hand turns */
  double vx = -sx * s->facing * -uy, vy = -sx * s->facing * ux;

  p[0].x = (float) w.x;
  p[0].y = (float) w.y;
  hidden[0] = 0;
  for (int f = 0; f < 5; f++) {
    double bx = finger_base[f][0], by = finger_base[f][1];
    double spread = (f == 0 ? 0.85 : 0.14 * (2 - f)) * (0.4 + s->spread);
    double curl = s->curl[f];
    double da, db, bend = 0.0, a, b;
    static const double joint[3] = { 1.5, 1.7, 1.2 };

    if (f == 0)
      spread -= 0.7 * curl; /* the thumb folds across the palm */
    da = sin (spread);
    db = cos (spread);
    a = bx;
    b = by;
    if (f > 0) {
      p[4 * f + 1].x = (float) (w.x + hl * (a * vx + b * ux));
      p[4 * f + 1].y = (float) (w.y + hl * (a * vy + b * uy));
      hidden[4 * f + 1] = 0;
    }
    for (int j = (f == 0 ? 0 : 1); j < 4; j++) {
      int idx = f == 0 ? 1 + j : 4 * f + 1 + j;
      double len = finger_len[f][f == 0 ? (j == 0 ? 0 : j - 1) : j - 1];
      if (f == 0 && j == 0) {
        /* thumb CMC sits on the palm near the wrist */
        p[idx].x = (float) (w.x + hl * (a * vx + b * ux));
        p[idx].y = (float) (w.y + hl * (a * vy + b * uy));
        hidden[idx] = 0;
        continue;
      }
      bend += curl * joint[j - 1] * (f == 0 ? 0.5 : 1.0);
      a += len * da * cos (bend);
      b += len * db * cos (bend);
      p[idx].x = (float) (w.x + hl * (a * vx + b * ux));
      p[idx].y = (float) (w.y + hl * (a * vy + b * uy));
      /* past 90 degrees the finger tucks under the palm: seen from the back
       * of the hand, those joints are hidden */
      hidden[idx] = s->facing < 0.0 && bend > 1.7;
    }
  }
}

/* Whether point (x, y) lies under hand h as aw_render draws it: inside the
 * palm or on a finger (radii as in render.c, less a pixel so points on the
 * rim stay visible). */
static int
under_hand (const ApPoint * h, double hl, float x, float y)
{
  static const int palm[6] = { 0, 1, 5, 9, 13, 17 };
  float v[12];
  float r = (float) (0.065 * hl) - 1.0f;

  for (int i = 0; i < 6; i++) {
    v[2 * i] = h[palm[i]].x;
    v[2 * i + 1] = h[palm[i]].y;
  }
  if (aw_polygon_sd (v, 6, x, y) < (float) (0.08 * hl) - 1.0f)
    return 1;
  for (int f = 0; f < 5; f++) {
    int base = f == 0 ? 1 : 4 * f + 1;
    for (int j = 0; j < 3; j++) {
      const ApPoint *a = &h[base + j], *b = &h[base + j + 1];
      float ex = b->x - a->x, ey = b->y - a->y, ee = ex * ex + ey * ey;
      float t = ee > 1e-9f ? ((x - a->x) * ex + (y - a->y) * ey) / ee : 0.0f;
      float qx, qy;
      t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
      qx = x - a->x - ex * t;
      qy = y - a->y - ey * t;
      if (qx * qx + qy * qy < r * r)
        return 1;
    }
  }
  return 0;
}

/* Hands are drawn last, the left one over the right: what they cover is
 * occluded (c = 0), as a detector would miss it. */
static void
occlude_by_hands (ApPerson * p, double hl)
{
  for (int side = 0; side < 2; side++) {
    const ApPoint *h = p->hand[side];
    for (int i = 0; i < AP_FACE_N; i++)
      if (under_hand (h, hl, p->face[i].x, p->face[i].y))
        p->face[i].c = 0.0f;
  }
  for (int i = 1; i < AP_HAND_N; i++)
    if (under_hand (p->hand[AP_LEFT], hl, p->hand[AP_RIGHT][i].x,
            p->hand[AP_RIGHT][i].y))
      p->hand[AP_RIGHT][i].c = 0.0f;
  /* the body's face points are the face's */
  p->body[AP_NOSE].c = fminf (p->body[AP_NOSE].c, p->face[30].c);
  p->body[AP_REYE].c = fminf (p->body[AP_REYE].c, p->face[68].c);
  p->body[AP_LEYE].c = fminf (p->body[AP_LEYE].c, p->face[69].c);
}

/* Positions of every point (truth) and the parts hidden by the body
 * itself; p->c is 1 for visible points, 0 for hidden ones. */
static void
build_pose (const AwIdentity * id, const Drive * d, int cw, int ch,
    ApPerson * p)
{
  double S = id->frame_scale * ch;
  double lean = d->lean;
  double ex = cos (lean), ey = sin (lean);     /* along the shoulders */
  double dx = -sin (lean), dy = cos (lean);    /* down the torso */
  V2 neck = v2 (id->frame_x * cw + d->sway_x * S, id->frame_y * ch
      + d->sway_y * S);
  double f = id->head_size * S;
  double q[AP_FACE_N][3];
  V2 pivot;
  double cy = cos (d->yaw), sy = sin (d->yaw), cp = cos (d->pitch),
      sp = sin (d->pitch), roll = d->roll + lean;
  double cr = cos (roll), sr = sin (roll);
  /* the head turns about a point behind the chin, in face units */
  const double pv[3] = { 0.0, 1.35, -0.3 };

  memset (p, 0, sizeof (*p));
  p->parts = AP_PART_BODY | AP_PART_FACE | AP_PART_HAND_LEFT
      | AP_PART_HAND_RIGHT;
  p->n_face = AP_FACE_N;

#define SETP(pt, X, Y) do { (pt).x = (float) (X); (pt).y = (float) (Y); \
    (pt).c = 1.0f; } while (0)
  SETP (p->body[AP_NECK], neck.x, neck.y);
  SETP (p->body[AP_RSHOULDER], neck.x - ex * S + dx * AW_SHOULDER_DROP * S,
      neck.y - ey * S + dy * AW_SHOULDER_DROP * S);
  SETP (p->body[AP_LSHOULDER], neck.x + ex * S + dx * AW_SHOULDER_DROP * S,
      neck.y + ey * S + dy * AW_SHOULDER_DROP * S);
  for (int side = 0; side < 2; side++) {
    double sx = side == AP_RIGHT ? -1.0 : 1.0;
    int hip = side == AP_RIGHT ? AP_RHIP : AP_LHIP;
    double hx = neck.x + sx * ex * 0.78 * S + dx * id->torso_len * S;
    double hy = neck.y + sx * ey * 0.78 * S + dy * id->torso_len * S;
    SETP (p->body[hip], hx, hy);
    SETP (p->body[hip + 1], hx + dx * 2.3 * S, hy + dy * 2.3 * S);
    SETP (p->body[hip + 2], hx + dx * 4.5 * S, hy + dy * 4.5 * S);
  }

  /* head */
  face_template (d, q);
  pivot = v2 (neck.x - dx * id->neck_len * S, neck.y - dy * id->neck_len * S);
  for (int i = 0; i < AP_FACE_N; i++) {
    double x = q[i][0] - pv[0], y = q[i][1] - pv[1], z = q[i][2] - pv[2];
    double x1 = x * cy + z * sy, z1 = -x * sy + z * cy;
    double y2 = y * cp - z1 * sp;
    double X = x1 * cr - y2 * sr, Y = x1 * sr + y2 * cr;
    /* the side of the face turned away: its contour lies behind the cheek */
    double zv = -q[i][0] * sy + q[i][2] * cy;
    SETP (p->face[i], pivot.x + f * X, pivot.y + f * Y);
    if (i <= 16 && zv < 0.0)
      p->face[i].c = (float) fmax (0.3, 1.0 + zv * 3.0);
  }
  p->body[AP_NOSE] = p->face[30];
  p->body[AP_REYE] = p->face[68];
  p->body[AP_LEYE] = p->face[69];
  for (int side = 0; side < 2; side++) {
    /* ears just outside the jaw line at eye level, behind the face plane */
    double x = (side == 0 ? -1.04 : 1.04) - pv[0], y = -0.15 - pv[1],
        z = -0.1 - pv[2];
    double x1 = x * cy + z * sy, z1 = -x * sy + z * cy;
    double y2 = y * cp - z1 * sp;
    double X = x1 * cr - y2 * sr, Y = x1 * sr + y2 * cr;
    double zv = -(side == 0 ? -1.04 : 1.04) * sy - 0.1 * cy;
    ApPoint *e = &p->body[side == 0 ? AP_REAR : AP_LEAR];
    SETP (*e, pivot.x + f * X, pivot.y + f * Y);
    if (zv < -0.3)
      e->c = 0.0f;
  }

  /* arms and hands */
  for (int side = 0; side < 2; side++) {
    double sx = side == AP_RIGHT ? -1.0 : 1.0;
    int sh_i = side == AP_RIGHT ? AP_RSHOULDER : AP_LSHOULDER;
    V2 sh = v2 (p->body[sh_i].x, p->body[sh_i].y);
    const HandState *hs = &d->hand[side];
    V2 w = v2 (neck.x + sx * hs->tx * S, neck.y + hs->ty * S);
    V2 el = arm_elbow (sh, &w, hs->depth * S, id->upper_arm * S,
        id->forearm * S, sx);
    int hidden[AP_HAND_N];

    SETP (p->body[sh_i + 1], el.x, el.y);
    SETP (p->body[sh_i + 2], w.x, w.y);
    build_hand (w, id->hand_size * S, sx, hs, p->hand[side], hidden);
    for (int i = 0; i < AP_HAND_N; i++)
      p->hand[side][i].c = hidden[i] ? 0.0f : 1.0f;
  }
  occlude_by_hands (p, id->hand_size * S);
#undef SETP
}

/* Detector-like confidences on top of the visibility build_pose set. */
static void
set_confidences (const AwMotion * m, int64_t frame, const ApPerson * prev,
    double fps, double S, int cw, int ch, ApPerson * p)
{
  uint64_t h = aw_hash2 (m ? m->h : 0, (uint64_t) frame);
  int k = 0;

#define JIT(lo, hi) aw_range (aw_hash2 (h, (uint64_t) k++), lo, hi)
#define ONCANVAS(pt) ((pt).x >= 0.0f && (pt).y >= 0.0f && \
    (pt).x <= (float) (cw - 1) && (pt).y <= (float) (ch - 1))
  for (int i = 0; i < AP_BODY_N; i++) {
    ApPoint *q = &p->body[i];
    q->c = ONCANVAS (*q) ? (float) (q->c * JIT (0.82, 0.97)) : 0.0f;
  }
  for (int i = 0; i < AP_FACE_N; i++) {
    ApPoint *q = &p->face[i];
    q->c = ONCANVAS (*q) ? (float) (q->c * JIT (0.78, 0.95)) : 0.0f;
  }
  for (int side = 0; side < 2; side++) {
    for (int i = 0; i < AP_HAND_N; i++) {
      ApPoint *q = &p->hand[side][i];
      double speed = 0.0;
      if (prev) {
        double vx = q->x - prev->hand[side][i].x;
        double vy = q->y - prev->hand[side][i].y;
        speed = sqrt (vx * vx + vy * vy) * fps / S;
      }
      /* motion blur: a hand moving 4 shoulder half-widths a second loses
       * 0.4 of its score */
      q->c = ONCANVAS (*q) ? (float) (q->c * (JIT (0.75, 0.93)
              - 0.4 * fmin (1.0, speed / 4.0))) : 0.0f;
    }
    /* the body's wrist is the hand's wrist */
    p->body[side == AP_RIGHT ? AP_RWRIST : AP_LWRIST].c =
        fminf (p->body[side == AP_RIGHT ? AP_RWRIST : AP_LWRIST].c,
        p->hand[side][0].c + 0.1f);
  }
#undef JIT
#undef ONCANVAS
}

void
aw_motion_pose (const AwMotion * motion, const AwIdentity * id,
    int64_t frame_index, double fps, int canvas_w, int canvas_h,
    ApPerson * out)
{
  AwIdentity def;
  Drive d;
  ApPerson prev;

  if (!id) {
    aw_identity_default (&def);
    id = &def;
  }
  if (!(fps > 0.0))
    fps = 25.0;
  compute_drive (motion, frame_index / fps, &d);
  build_pose (id, &d, canvas_w, canvas_h, out);
  compute_drive (motion, (frame_index - 1) / fps, &d);
  build_pose (id, &d, canvas_w, canvas_h, &prev);
  set_confidences (motion, frame_index, &prev, fps,
      id->frame_scale * canvas_h, canvas_w, canvas_h, out);
}

void
aw_neutral_pose (const AwIdentity * id, int canvas_w, int canvas_h,
    ApPerson * out)
{
  Drive d;

  neutral_drive (&d);
  build_pose (id, &d, canvas_w, canvas_h, out);
  set_confidences (NULL, 0, NULL, 25.0, id->frame_scale * canvas_h,
      canvas_w, canvas_h, out);
}

static void
observe (const ApPoint * in, ApPoint * out, int n)
{
  for (int i = 0; i < n; i++) {
    out[i] = in[i];
    if (!(in[i].c > 0.0f))
      out[i].x = out[i].y = out[i].c = 0.0f;
  }
}

void
aw_observed_frame (const ApPerson * truth, int canvas_w, int canvas_h,
    ApFrame * out)
{
  ApPerson *p;

  ap_frame_init (out);
  out->canvas_width = canvas_w;
  out->canvas_height = canvas_h;
  out->n_people = 1;
  p = &out->people[0];
  *p = *truth;
  p->parts &= ~(unsigned) AP_PART_FEET;
  observe (truth->body, p->body, AP_BODY_N);
  observe (truth->face, p->face, AP_FACE_N);
  observe (truth->hand[0], p->hand[0], AP_HAND_N);
  observe (truth->hand[1], p->hand[1], AP_HAND_N);
}
