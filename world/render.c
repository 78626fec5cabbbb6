/* avatar-world: the presenter renderer.
 *
 * Back to front: background, hair behind the head, torso and clothing,
 * arms, neck, ears, head, hair, face features, accessories, hands (hands
 * last, so they pass in front of body and face). Every part is placed from
 * the keypoints alone; the identity gives colours, styles and sizes. */
#include "world-private.h"
#include "raster.h"

#include <string.h>

typedef struct {
  float x, y;
} P2;

/* A keypoint usable for drawing: OpenPose writes missing points as 0,0,0. */
static int
have (const ApPoint * p)
{
  return isfinite (p->x) && isfinite (p->y)
      && !(p->c <= 0.0f && p->x == 0.0f && p->y == 0.0f);
}

static P2
pt (const ApPoint * p)
{
  P2 r = { p->x, p->y };
  return r;
}

static void
mix3 (uint8_t out[3], const uint8_t a[3], const uint8_t b[3], float t)
{
  for (int i = 0; i < 3; i++)
    out[i] = (uint8_t) (a[i] + (b[i] - a[i]) * t + 0.5f);
}

/* ---- Background --------------------------------------------------------- */

static void
draw_background (AwCanvas * cv, const AwIdentity * id)
{
  int w = cv->width, h = cv->height;

  for (int y = 0; y < h; y++) {
    uint8_t *row = cv->rgb + (size_t) y * cv->rgb_stride;
    float ty = h > 1 ? (float) y / (h - 1) : 0.0f;
    if (id->background == AW_BG_FLAT || id->background == AW_BG_GRADIENT) {
      /* one colour per row */
      float t = id->background == AW_BG_GRADIENT ? ty : 0.0f;
      uint8_t c[3];
      for (int i = 0; i < 3; i++)
        c[i] = (uint8_t) (id->bg[i] + (id->bg2[i] - id->bg[i]) * t + 0.5f);
      for (int x = 0; x < w; x++)
        memcpy (row + 3 * x, c, 3);
      if (cv->alpha)
        memset (cv->alpha + (size_t) y * cv->alpha_stride, 0, (size_t) w);
      continue;
    }
    for (int x = 0; x < w; x++) {
      float t = 0.0f;
      switch (id->background) {
        case AW_BG_GRADIENT:
          t = ty;
          break;
        case AW_BG_PATTERN:{
          /* soft diagonal bands, 1/8 of the canvas apart */
          float u = (x + y) * 8.0f / (w + h);
          t = 0.35f * (((int) floorf (u)) & 1);
          break;
        }
        case AW_BG_STUDIO:{
          /* lit backdrop: bright behind the presenter, darker corners */
          float dx = (x - 0.5f * w) / w, dy = (y - 0.4f * h) / h;
          t = fminf (1.0f, 2.2f * (dx * dx + dy * dy));
          break;
        }
        default:
          break;
      }
      for (int i = 0; i < 3; i++)
        row[3 * x + i] = (uint8_t) (id->bg[i] + (id->bg2[i] - id->bg[i]) * t
            + 0.5f);
    }
    if (cv->alpha)
      memset (cv->alpha + (size_t) y * cv->alpha_stride, 0, (size_t) w);
  }
}

/* ---- Head frame ----------------------------------------------------------- */

int
aw_head_from_pose (const ApPerson * p, AwHead * hd)
{
  const ApPoint *f = p->face;
  float mx, my, wx, wy, ux, uy, n, fw, fh;

  if (p->n_face < 68 || !have (&f[0]) || !have (&f[16]) || !have (&f[8])
      || !have (&f[27]))
    return 0;
  mx = 0.5f * (f[0].x + f[16].x);
  my = 0.5f * (f[0].y + f[16].y);
  wx = f[16].x - f[0].x;
  wy = f[16].y - f[0].y;
  ux = f[27].x - f[8].x;
  uy = f[27].y - f[8].y;
  n = sqrtf (ux * ux + uy * uy);
  if (n < 1e-3f)
    return 0;
  fh = n / 1.33f;               /* chin to nose bridge: 1.33 face units */
  fw = 0.5f * sqrtf (wx * wx + wy * wy);
  hd->f = fw > fh ? fw : fh;
  hd->ux = ux / n;
  hd->uy = uy / n;
  /* skull centre 0.15 face units above the ears' line */
  hd->cx = mx + hd->ux * 0.15f * hd->f;
  hd->cy = my + hd->uy * 0.15f * hd->f;
  return 1;
}

/* Head-local (x right, y down, face units from the skull centre) to image. */
static P2
hl (const AwHead * hd, float x, float y)
{
  float rx = -hd->uy, ry = hd->ux;      /* image "right" of the head */
  P2 r = { hd->cx + hd->f * (x * rx - y * hd->ux),
    hd->cy + hd->f * (x * ry - y * hd->uy)
  };
  return r;
}

static float
head_angle (const AwHead * hd)
{
  return atan2f (hd->ux, -hd->uy);
}

/* ---- Hair ------------------------------------------------------------ */

/* Hairline height (head-local y) at x for the style. */
static float
hairline (AwHairStyle s, float x)
{
  float ax = fabsf (x);
  switch (s) {
    case AW_HAIR_BOB:
      return -0.42f + 0.9f * ax * ax * ax * ax;
    case AW_HAIR_LONG:
      return -0.62f + 0.8f * powf (ax, 1.5f);
    case AW_HAIR_BUN:
      return -0.66f + 0.5f * ax * ax;
    case AW_HAIR_BUZZ:
      return -0.62f + 0.6f * ax * ax * ax;
    case AW_HAIR_SIDE_PART:
      return -0.55f + 0.2f * x + 0.45f * ax * ax * ax;
    case AW_HAIR_SHORT:
    default:
      return -0.58f + 0.55f * ax * ax * ax;
  }
}

static void
draw_hair_back (AwCanvas * cv, const AwIdentity * id, const AwHead * hd)
{
  AwPaint p;
  P2 c;
  float ang = head_angle (hd), f = hd->f;

  aw_paint_shade (&p, id->hair, 0.82f, 1);
  switch (id->hair_style) {
    case AW_HAIR_BOB:
      c = hl (hd, 0.0f, 0.0f);
      aw_fill_ellipse (cv, c.x, c.y, 1.32f * f, 1.38f * f, ang, &p);
      break;
    case AW_HAIR_LONG:{
      float v[8];
      P2 a = hl (hd, -1.15f, -0.3f), b = hl (hd, 1.15f, -0.3f),
          e = hl (hd, 1.3f, 3.0f), g = hl (hd, -1.3f, 3.0f);
      v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
      v[4] = e.x, v[5] = e.y, v[6] = g.x, v[7] = g.y;
      aw_fill_polygon (cv, v, 4, 0.2f * f, NULL, 0, &p);
      break;
    }
    case AW_HAIR_BUN:
      c = hl (hd, 0.0f, -1.2f);
      aw_fill_ellipse (cv, c.x, c.y, 0.45f * f, 0.4f * f, ang, &p);
      /* hair around the skull too */
      /* FALLTHROUGH */
    case AW_HAIR_SHORT:
    case AW_HAIR_SIDE_PART:
      c = hl (hd, 0.0f, -0.05f);
      aw_fill_ellipse (cv, c.x, c.y, 1.1f * f, 1.2f * f, ang, &p);
      break;
    default:
      break;
  }
}

static void
draw_hair_front (AwCanvas * cv, const AwIdentity * id, const AwHead * hd,
    const uint8_t skin[3])
{
  float v[2 * 40];
  int n = 0;
  float thick = id->hair_style == AW_HAIR_BUZZ ? 1.02f : 1.09f;
  uint8_t col[3];
  AwPaint p;

  /* the crown: the skull's upper arc, a little outside it */
  for (int i = 0; i <= 20; i++) {
    float a = (float) M_PI * (-0.06f + 1.12f * i / 20.0f);
    P2 q = hl (hd, -thick * 1.03f * cosf (a), -0.05f - thick * 1.12f
        * sinf (a));
    v[n++] = q.x;
    v[n++] = q.y;
  }
  /* back across the forehead along the hairline */
  for (int i = 0; i <= 16; i++) {
    float x = 1.1f - 2.2f * i / 16.0f;
    P2 q = hl (hd, x, fminf (hairline (id->hair_style, x), 0.25f));
    v[n++] = q.x;
    v[n++] = q.y;
  }
  if (id->hair_style == AW_HAIR_BUZZ)
    mix3 (col, id->hair, skin, 0.45f);
  else
    memcpy (col, id->hair, 3);
  aw_paint_solid (&p, col, 1);
  aw_fill_polygon (cv, v, n / 2, 0.0f, NULL, 0, &p);
}

/* ---- Body ---------------------------------------------------------------- */

static void
draw_torso (AwCanvas * cv, const AwIdentity * id, const ApPerson * p, float S)
{
  const ApPoint *b = p->body;
  float v[12];
  AwPaint paint;
  P2 nk = pt (&b[AP_NECK]);
  float ex, ey, dx, dy, n;

  if (!have (&b[AP_RSHOULDER]) || !have (&b[AP_LSHOULDER])
      || !have (&b[AP_NECK]))
    return;
  /* along the shoulders (image left to right) and down the body */
  ex = b[AP_LSHOULDER].x - b[AP_RSHOULDER].x;
  ey = b[AP_LSHOULDER].y - b[AP_RSHOULDER].y;
  n = sqrtf (ex * ex + ey * ey);
  ex /= n;
  ey /= n;
  dx = -ey;
  dy = ex;
  /* sloping shoulders: the outline rises towards the neck */
  v[0] = b[AP_RSHOULDER].x + 0.12f * S * dx;
  v[1] = b[AP_RSHOULDER].y + 0.12f * S * dy;
  v[2] = nk.x - 0.45f * S * ex - 0.25f * S * dx;
  v[3] = nk.y - 0.45f * S * ey - 0.25f * S * dy;
  v[4] = nk.x + 0.45f * S * ex - 0.25f * S * dx;
  v[5] = nk.y + 0.45f * S * ey - 0.25f * S * dy;
  v[6] = b[AP_LSHOULDER].x + 0.12f * S * dx;
  v[7] = b[AP_LSHOULDER].y + 0.12f * S * dy;
  if (have (&b[AP_LHIP]) && have (&b[AP_RHIP])) {
    v[8] = b[AP_LHIP].x;
    v[9] = b[AP_LHIP].y;
    v[10] = b[AP_RHIP].x;
    v[11] = b[AP_RHIP].y;
  } else {
    v[8] = v[6] - 0.2f * S * ex + 2.6f * S * dx;
    v[9] = v[7] - 0.2f * S * ey + 2.6f * S * dy;
    v[10] = v[0] + 0.2f * S * ex + 2.6f * S * dx;
    v[11] = v[1] + 0.2f * S * ey + 2.6f * S * dy;
  }

  aw_paint_solid (&paint, id->cloth, 1);
  paint.ox = nk.x;
  paint.oy = nk.y;
  paint.period = id->pattern_period * S;
  {
    float a = id->pattern_angle;
    /* pattern axes follow the body */
    paint.ux = dx * cosf (a) + ex * sinf (a);
    paint.uy = dy * cosf (a) + ey * sinf (a);
  }
  if (id->pattern == AW_CLOTH_STRIPES || id->pattern == AW_CLOTH_CHECKS) {
    paint.kind = id->pattern == AW_CLOTH_STRIPES ? AW_PAINT_STRIPES
        : AW_PAINT_CHECKS;
    for (int i = 0; i < 3; i++)
      paint.c1[i] = id->cloth2[i];
  }
  {
    /* a darker rim, so parts of the same cloth stay apart */
    AwPaint rim;
    aw_paint_shade (&rim, id->cloth, 0.62f, 1);
    aw_fill_polygon (cv, v, 6, 0.28f * S + 1.0f, NULL, 0, &rim);
  }
  aw_fill_polygon (cv, v, 6, 0.28f * S, NULL, 0, &paint);

  if (id->pattern == AW_CLOTH_SUIT) {
    /* shirt in the jacket's V, lapel shadow, and a tie */
    float s[6] = { nk.x - 0.36f * S * ex - 0.45f * S * dx,
      nk.y - 0.36f * S * ey - 0.45f * S * dy,
      nk.x + 0.36f * S * ex - 0.45f * S * dx,
      nk.y + 0.36f * S * ey - 0.45f * S * dy,
      nk.x + 1.5f * S * dx, nk.y + 1.5f * S * dy
    };
    AwPaint sp;
    aw_paint_shade (&sp, id->cloth, 0.7f, 1);
    aw_fill_polygon (cv, s, 3, 0.06f * S, NULL, 0, &sp);
    aw_paint_solid (&sp, id->shirt, 1);
    aw_fill_polygon (cv, s, 3, 0.0f, NULL, 0, &sp);
    if (id->has_tie) {
      float t[8] = { nk.x - 0.09f * S * ex + 0.12f * S * dx,
        nk.y - 0.09f * S * ey + 0.12f * S * dy,
        nk.x + 0.09f * S * ex + 0.12f * S * dx,
        nk.y + 0.09f * S * ey + 0.12f * S * dy,
        nk.x + 0.14f * S * ex + 1.45f * S * dx,
        nk.y + 0.14f * S * ey + 1.45f * S * dy,
        nk.x - 0.14f * S * ex + 1.45f * S * dx,
        nk.y - 0.14f * S * ey + 1.45f * S * dy
      };
      aw_paint_solid (&sp, id->cloth2, 1);
      aw_fill_polygon (cv, t, 4, 0.03f * S, s, 3, &sp);
    }
  } else {
    /* round neckline with a trim: a U whose top lies on the neck */
    float u[2 * 12], t[2 * 12];
    AwPaint sp;
    for (int i = 0; i < 12; i++) {
      float a = (float) M_PI * i / 11.0f;
      float x = -cosf (a), y = sinf (a);
      /* 0.28 S wide at the top (inside the neck), rounded bottom */
      u[2 * i] = nk.x + 0.28f * S * x * ex + (-0.6f + 0.45f * y) * S * dx;
      u[2 * i + 1] = nk.y + 0.28f * S * x * ey + (-0.6f + 0.45f * y) * S * dy;
      t[2 * i] = nk.x + 0.36f * S * x * ex + (-0.5f + 0.42f * y) * S * dx;
      t[2 * i + 1] = nk.y + 0.36f * S * x * ey + (-0.5f + 0.42f * y) * S * dy;
    }
    aw_paint_solid (&sp, id->cloth2, 1);
    aw_fill_polygon (cv, t, 12, 0.0f, NULL, 0, &sp);
    aw_paint_shade (&sp, id->skin, 0.88f, 1);
    aw_fill_polygon (cv, u, 12, 0.0f, NULL, 0, &sp);
  }
  if (id->has_logo) {
    /* a round badge on the left chest (image right) */
    float lx = nk.x + 0.55f * S * ex + 0.75f * S * dx;
    float ly = nk.y + 0.55f * S * ey + 0.75f * S * dy;
    AwPaint lp;
    aw_paint_solid (&lp, id->logo, 1);
    aw_fill_ellipse (cv, lx, ly, 0.17f * S, 0.17f * S, 0.0f, &lp);
    aw_paint_solid (&lp, id->shirt, 1);
    aw_fill_capsule (cv, lx - 0.08f * S, ly + 0.05f * S, lx + 0.08f * S,
        ly - 0.05f * S, 0.04f * S, 0.04f * S, &lp);
  }
}

static void
draw_arm (AwCanvas * cv, const AwIdentity * id, const ApPerson * p, int side,
    float S)
{
  int sh = side == AP_RIGHT ? AP_RSHOULDER : AP_LSHOULDER;
  const ApPoint *b = p->body;
  P2 s, e, w;
  AwPaint cloth, skin, rim;

  if (!have (&b[sh]) || !have (&b[sh + 1]))
    return;
  s = pt (&b[sh]);
  e = pt (&b[sh + 1]);
  w = have (&b[sh + 2]) ? pt (&b[sh + 2]) : e;
  aw_paint_shade (&cloth, id->cloth, 0.92f, 1);
  aw_paint_solid (&skin, id->skin, 1);
  if (id->sleeves_short) {
    P2 m = { 0.5f * (s.x + e.x), 0.5f * (s.y + e.y) };
    aw_paint_shade (&rim, id->skin, 0.7f, 1);
    aw_fill_capsule (cv, m.x, m.y, e.x, e.y, 0.2f * S + 1.0f, 0.19f * S + 1.0f,
        &rim);
    aw_fill_capsule (cv, e.x, e.y, w.x, w.y, 0.19f * S + 1.0f, 0.15f * S
        + 1.0f, &rim);
    aw_fill_capsule (cv, m.x, m.y, e.x, e.y, 0.2f * S, 0.19f * S, &skin);
    aw_fill_capsule (cv, e.x, e.y, w.x, w.y, 0.19f * S, 0.15f * S, &skin);
    aw_fill_capsule (cv, s.x, s.y, m.x, m.y, 0.3f * S, 0.27f * S, &cloth);
    return;
  }
  aw_paint_shade (&rim, id->cloth, 0.6f, 1);
  aw_fill_capsule (cv, s.x, s.y, e.x, e.y, 0.3f * S + 1.0f, 0.25f * S + 1.0f,
      &rim);
  aw_fill_capsule (cv, e.x, e.y, w.x, w.y, 0.25f * S + 1.0f, 0.2f * S + 1.0f,
      &rim);
  aw_fill_capsule (cv, s.x, s.y, e.x, e.y, 0.3f * S, 0.25f * S, &cloth);
  aw_fill_capsule (cv, e.x, e.y, w.x, w.y, 0.25f * S, 0.2f * S, &cloth);
  if (id->pattern == AW_CLOTH_SUIT) {
    /* shirt cuff at the wrist */
    float dx = e.x - w.x, dy = e.y - w.y, n = sqrtf (dx * dx + dy * dy);
    if (n > 1e-3f) {
      AwPaint cuff;
      aw_paint_solid (&cuff, id->shirt, 1);
      aw_fill_capsule (cv, w.x + dx / n * 0.18f * S, w.y + dy / n * 0.18f * S,
          w.x + dx / n * 0.08f * S, w.y + dy / n * 0.08f * S, 0.19f * S,
          0.18f * S, &cuff);
    }
  }
}

static void
draw_neck (AwCanvas * cv, const AwIdentity * id, const ApPerson * p,
    const AwHead * hd, float S)
{
  AwPaint sp;
  P2 top;

  if (!have (&p->body[AP_NECK]))
    return;
  top = hl (hd, 0.0f, 0.8f);
  /* slightly darker than the face so the jaw line reads */
  aw_paint_shade (&sp, id->skin, 0.88f, 1);
  aw_fill_capsule (cv, p->body[AP_NECK].x, p->body[AP_NECK].y, top.x, top.y,
      0.3f * S, 0.32f * S, &sp);
}

/* ---- Head ---------------------------------------------------------------- */

static void
draw_ears (AwCanvas * cv, const AwIdentity * id, const ApPerson * p,
    const AwHead * hd)
{
  AwPaint sp, gold;
  static const uint8_t gold_c[3] = { 230, 190, 60 };
  float ang = head_angle (hd);

  aw_paint_shade (&sp, id->skin, 0.93f, 1);
  aw_paint_solid (&gold, gold_c, 1);
  for (int side = 0; side < 2; side++) {
    const ApPoint *e = &p->body[side == 0 ? AP_REAR : AP_LEAR];
    if (!have (e) || e->c <= 0.0f)
      continue;
    aw_fill_ellipse (cv, e->x, e->y, 0.17f * hd->f, 0.27f * hd->f, ang, &sp);
    if (id->has_earrings) {
      float x = e->x - hd->ux * 0.3f * hd->f, y = e->y - hd->uy * 0.3f * hd->f;
      aw_fill_ellipse (cv, x, y, 0.08f * hd->f, 0.08f * hd->f, 0.0f, &gold);
    }
  }
}

static void
poly_of (const ApPoint * f, int first, int n, float *v)
{
  for (int i = 0; i < n; i++) {
    v[2 * i] = f[first + i].x;
    v[2 * i + 1] = f[first + i].y;
  }
}

static void
draw_face_shape (AwCanvas * cv, const AwIdentity * id, const ApPerson * p,
    const AwHead * hd)
{
  float v[2 * 17];
  AwPaint sp;
  P2 c = hl (hd, 0.0f, 0.0f);

  poly_of (p->face, 0, 17, v);
  aw_paint_shade (&sp, id->skin, 0.72f, 1);
  aw_fill_ellipse (cv, c.x, c.y, 1.03f * hd->f + 0.9f, 1.12f * hd->f + 0.9f,
      head_angle (hd), &sp);
  aw_fill_polygon (cv, v, 17, 0.05f * hd->f + 0.9f, NULL, 0, &sp);
  aw_paint_solid (&sp, id->skin, 1);
  aw_fill_ellipse (cv, c.x, c.y, 1.03f * hd->f, 1.12f * hd->f,
      head_angle (hd), &sp);
  aw_fill_polygon (cv, v, 17, 0.05f * hd->f, NULL, 0, &sp);
}

static void
draw_eye (AwCanvas * cv, const AwIdentity * id, const ApPoint * f, int first,
    const ApPoint * pupil, float fu)
{
  float v[12];
  float open;
  AwPaint white, iris, dark, lid;
  static const uint8_t white_c[3] = { 246, 244, 240 };
  static const uint8_t dark_c[3] = { 20, 16, 16 };

  poly_of (f, first, 6, v);
  /* lid gap: upper (first+1, first+2) to lower (first+5, first+4) */
  open = 0.5f * (fabsf (f[first + 5].y - f[first + 1].y)
      + fabsf (f[first + 4].y - f[first + 2].y));
  aw_paint_solid (&lid, dark_c, 1);
  lid.opacity = 0.85f;
  if (open > 0.03f * fu) {
    float clip[12];
    memcpy (clip, v, sizeof (clip));
    aw_paint_solid (&white, white_c, 1);
    aw_fill_polygon (cv, v, 6, 0.015f * fu, NULL, 0, &white);
    /* iris and pupil are discs clipped to the eye opening */
    {
      float r = 0.095f * fu, disc[2 * 12], pd[2 * 12];
      for (int i = 0; i < 12; i++) {
        float a = 2.0f * (float) M_PI * i / 12.0f;
        disc[2 * i] = pupil->x + r * cosf (a);
        disc[2 * i + 1] = pupil->y + r * sinf (a);
        pd[2 * i] = pupil->x + 0.45f * r * cosf (a);
        pd[2 * i + 1] = pupil->y + 0.45f * r * sinf (a);
      }
      aw_paint_solid (&iris, id->eye, 1);
      aw_fill_polygon (cv, disc, 12, 0.0f, clip, 6, &iris);
      aw_paint_solid (&dark, dark_c, 1);
      aw_fill_polygon (cv, pd, 12, 0.0f, clip, 6, &dark);
    }
  }
  /* upper lid line (the whole closed eye when blinking) */
  for (int i = 0; i < 3; i++)
    aw_fill_capsule (cv, f[first + i].x, f[first + i].y, f[first + i + 1].x,
        f[first + i + 1].y, 0.022f * fu, 0.022f * fu, &lid);
}

static void
draw_face_features (AwCanvas * cv, const AwIdentity * id, const ApPerson * p,
    const AwHead * hd)
{
  const ApPoint *f = p->face;
  float fu = hd->f;
  AwPaint brow, nose, lip, inner, teeth;
  static const uint8_t mouth_c[3] = { 90, 25, 35 };
  static const uint8_t teeth_c[3] = { 245, 242, 235 };
  uint8_t bc[3];

  /* brows */
  for (int i = 0; i < 3; i++)
    bc[i] = (uint8_t) (id->hair[i] * 0.7f);
  aw_paint_solid (&brow, bc, 1);
  for (int k = 0; k < 4; k++) {
    float r0 = 0.04f * id->brow_weight * fu, r1 = r0 * (k < 2 ? 1.0f : 0.8f);
    aw_fill_capsule (cv, f[17 + k].x, f[17 + k].y, f[18 + k].x, f[18 + k].y,
        k == 0 ? 0.7f * r0 : r0, r1, &brow);
    aw_fill_capsule (cv, f[26 - k].x, f[26 - k].y, f[25 - k].x, f[25 - k].y,
        k == 0 ? 0.7f * r0 : r0, r1, &brow);
  }
  /* eyes */
  draw_eye (cv, id, f, 36, &f[68], fu);
  draw_eye (cv, id, f, 42, &f[69], fu);
  /* nose: a soft shadow along one side of the bridge and the nostril line */
  aw_paint_shade (&nose, id->skin, 0.78f, 1);
  nose.opacity = 0.7f;
  aw_fill_capsule (cv, f[29].x, f[29].y, f[30].x, f[30].y, 0.02f * fu,
      0.03f * fu, &nose);
  for (int k = 31; k < 35; k++)
    aw_fill_capsule (cv, f[k].x, f[k].y, f[k + 1].x, f[k + 1].y, 0.025f * fu,
        0.025f * fu, &nose);
  /* mouth: lips, the open mouth inside, upper teeth */
  {
    float outer[24], in[16], tv[20];
    float gap = hypotf (f[66].x - f[62].x, f[66].y - f[62].y);
    aw_paint_solid (&lip, id->lip, 1);
    poly_of (f, 48, 12, outer);
    aw_fill_polygon (cv, outer, 12, 0.01f * fu, NULL, 0, &lip);
    if (gap > 0.015f * fu) {
      poly_of (f, 60, 8, in);
      aw_paint_solid (&inner, mouth_c, 1);
      aw_fill_polygon (cv, in, 8, 0.0f, NULL, 0, &inner);
      /* teeth: the upper inner lip moved down by part of the gap */
      {
        float drop = fminf (0.35f * gap, 0.07f * fu);
        float dx = hd->ux, dy = hd->uy;
        for (int k = 0; k < 5; k++) {
          tv[2 * k] = f[60 + k].x;
          tv[2 * k + 1] = f[60 + k].y;
          tv[2 * (9 - k)] = f[60 + k].x - dx * drop;
          tv[2 * (9 - k) + 1] = f[60 + k].y - dy * drop;
        }
        aw_paint_solid (&teeth, teeth_c, 1);
        aw_fill_polygon (cv, tv, 10, 0.0f, in, 8, &teeth);
      }
    } else {
      AwPaint line;
      aw_paint_shade (&line, id->lip, 0.55f, 1);
      for (int k = 60; k < 64; k++)
        aw_fill_capsule (cv, f[k].x, f[k].y, f[k + 1].x, f[k + 1].y,
            0.015f * fu, 0.015f * fu, &line);
    }
  }
}

static void
draw_glasses (AwCanvas * cv, const ApPerson * p, const AwHead * hd)
{
  const ApPoint *f = p->face;
  static const uint8_t frame_c[3] = { 30, 28, 32 };
  AwPaint fp;
  float ang = head_angle (hd), fu = hd->f;
  P2 c[2];

  aw_paint_solid (&fp, frame_c, 1);
  for (int e = 0; e < 2; e++) {
    c[e].x = c[e].y = 0.0f;
    for (int k = 0; k < 6; k++) {
      c[e].x += f[36 + 6 * e + k].x / 6.0f;
      c[e].y += f[36 + 6 * e + k].y / 6.0f;
    }
    aw_stroke_ellipse (cv, c[e].x, c[e].y, 0.27f * fu, 0.2f * fu, ang,
        0.05f * fu, &fp);
  }
  aw_fill_capsule (cv, f[39].x, f[39].y - 0.03f * fu, f[42].x,
      f[42].y - 0.03f * fu, 0.025f * fu, 0.025f * fu, &fp);
}

/* ---- Hands --------------------------------------------------------------- */

static void
draw_hand (AwCanvas * cv, const AwIdentity * id, const ApPerson * p, int side,
    float S)
{
  const ApPoint *h = p->hand[side];
  static const int palm[6] = { 0, 1, 5, 9, 13, 17 };
  float v[12];
  float hl_ = id->hand_size * S, r = 0.065f * hl_;
  AwPaint skin, edge;

  for (int i = 0; i < AP_HAND_N; i++)
    if (!have (&h[i]))
      return;
  for (int i = 0; i < 6; i++) {
    v[2 * i] = h[palm[i]].x;
    v[2 * i + 1] = h[palm[i]].y;
  }
  aw_paint_solid (&skin, id->skin, 1);
  aw_paint_shade (&edge, id->skin, 0.72f, 1);
  aw_fill_polygon (cv, v, 6, 0.08f * hl_ + 0.7f, NULL, 0, &edge);
  aw_fill_polygon (cv, v, 6, 0.08f * hl_, NULL, 0, &skin);
  /* fingers from the little finger to the thumb, each with an outline so
   * that fingers over the palm stay readable */
  for (int fng = 4; fng >= 0; fng--) {
    int base = fng == 0 ? 1 : 4 * fng + 1;
    float rr = fng == 0 ? 1.15f * r : fng == 4 ? 0.85f * r : r;
    for (int j = 0; j < 3; j++) {
      const ApPoint *a = &h[base + j], *b = &h[base + j + 1];
      aw_fill_capsule (cv, a->x, a->y, b->x, b->y, rr + 0.7f, 0.85f * rr
          + 0.7f, &edge);
    }
    for (int j = 0; j < 3; j++) {
      const ApPoint *a = &h[base + j], *b = &h[base + j + 1];
      aw_fill_capsule (cv, a->x, a->y, b->x, b->y, rr, 0.85f * rr, &skin);
    }
  }
}

/* ---- Entry points -------------------------------------------------------- */

static float
shoulder_half (const ApPerson * p, const AwIdentity * id, int height)
{
  const ApPoint *b = p->body;
  if (have (&b[AP_RSHOULDER]) && have (&b[AP_LSHOULDER])) {
    float d = hypotf (b[AP_LSHOULDER].x - b[AP_RSHOULDER].x,
        b[AP_LSHOULDER].y - b[AP_RSHOULDER].y);
    if (d > 1.0f)
      return 0.5f * d;
  }
  return id->frame_scale * height;
}

void
aw_render (const AwIdentity * id, const ApPerson * pose, uint8_t * rgb,
    int rgb_stride, uint8_t * alpha, int alpha_stride, int width, int height)
{
  AwCanvas cv = { rgb, rgb_stride, alpha, alpha_stride, width, height };
  AwHead hd;
  int head;
  float S;

  if (!rgb || width <= 0 || height <= 0)
    return;
  draw_background (&cv, id);
  S = shoulder_half (pose, id, height);
  head = aw_head_from_pose (pose, &hd);
  if (head)
    draw_hair_back (&cv, id, &hd);
  /* the neck first: the collar covers its base */
  if (head)
    draw_neck (&cv, id, pose, &hd, S);
  draw_torso (&cv, id, pose, S);
  draw_arm (&cv, id, pose, AP_RIGHT, S);
  draw_arm (&cv, id, pose, AP_LEFT, S);
  if (head) {
    draw_ears (&cv, id, pose, &hd);
    draw_face_shape (&cv, id, pose, &hd);
    draw_hair_front (&cv, id, &hd, id->skin);
    draw_face_features (&cv, id, pose, &hd);
    if (id->has_glasses)
      draw_glasses (&cv, pose, &hd);
  }
  draw_hand (&cv, id, pose, AP_RIGHT, S);
  draw_hand (&cv, id, pose, AP_LEFT, S);
}

/* ---- Boxes --------------------------------------------------------------- */

static int
clip_box (float box[4], int width, int height)
{
  box[0] = fmaxf (box[0], 0.0f);
  box[1] = fmaxf (box[1], 0.0f);
  box[2] = fminf (box[2], (float) (width - 1));
  box[3] = fminf (box[3], (float) (height - 1));
  if (!(box[2] > box[0] && box[3] > box[1])) {
    box[0] = box[1] = box[2] = box[3] = 0.0f;
    return 0;
  }
  return 1;
}

int
aw_face_box (const ApPerson * pose, int width, int height, float box[4])
{
  AwHead hd;

  box[0] = box[1] = box[2] = box[3] = 0.0f;
  if (!aw_head_from_pose (pose, &hd))
    return 0;
  box[0] = box[2] = pose->face[0].x;
  box[1] = box[3] = pose->face[0].y;
  for (int i = 0; i < 17; i++) {
    box[0] = fminf (box[0], pose->face[i].x);
    box[1] = fminf (box[1], pose->face[i].y);
    box[2] = fmaxf (box[2], pose->face[i].x);
    box[3] = fmaxf (box[3], pose->face[i].y);
  }
  /* the skull ellipse's top */
  for (int i = 0; i < 16; i++) {
    float a = 2.0f * (float) M_PI * i / 16.0f;
    P2 q = hl (&hd, 1.03f * cosf (a), 1.12f * sinf (a));
    box[0] = fminf (box[0], q.x);
    box[1] = fminf (box[1], q.y);
    box[2] = fmaxf (box[2], q.x);
    box[3] = fmaxf (box[3], q.y);
  }
  return clip_box (box, width, height);
}

int
aw_hand_box (const ApPerson * pose, int side, int width, int height,
    float box[4])
{
  const ApPoint *h = pose->hand[side & 1];
  AwIdentity def;
  float r;

  box[0] = box[1] = box[2] = box[3] = 0.0f;
  for (int i = 0; i < AP_HAND_N; i++)
    if (!have (&h[i]))
      return 0;
  aw_identity_default (&def);
  /* finger radius plus outline: about 0.07 shoulder half-widths */
  r = 0.08f * shoulder_half (pose, &def, height) + 1.0f;
  box[0] = box[2] = h[0].x;
  box[1] = box[3] = h[0].y;
  for (int i = 1; i < AP_HAND_N; i++) {
    box[0] = fminf (box[0], h[i].x);
    box[1] = fminf (box[1], h[i].y);
    box[2] = fmaxf (box[2], h[i].x);
    box[3] = fmaxf (box[3], h[i].y);
  }
  box[0] -= r;
  box[1] -= r;
  box[2] += r;
  box[3] += r;
  return clip_box (box, width, height);
}
