/* avatar-world: anti-aliased signed-distance shapes. */
#include "raster.h"

#include <math.h>
#include <stddef.h>

void
aw_paint_solid (AwPaint * p, const uint8_t c[3], int character)
{
  p->kind = AW_PAINT_SOLID;
  for (int i = 0; i < 3; i++)
    p->c0[i] = p->c1[i] = c[i];
  p->ox = p->oy = 0.0f;
  p->ux = 1.0f;
  p->uy = 0.0f;
  p->period = 1.0f;
  p->opacity = 1.0f;
  p->character = character;
}

/* Solid colour c scaled by k (k < 1 darker, > 1 lighter, clamped). */
void
aw_paint_shade (AwPaint * p, const uint8_t c[3], float k, int character)
{
  aw_paint_solid (p, c, character);
  for (int i = 0; i < 3; i++) {
    float v = c[i] * k;
    p->c0[i] = p->c1[i] = v > 255.0f ? 255.0f : v;
  }
}

static inline float
clampf (float v, float lo, float hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

/* 1 when floor (v) is odd; far-away (or non-finite) values count as even. */
static inline int
odd (float v)
{
  if (!(fabsf (v) < 1e7f))
    return 0;
  return ((int) floorf (v)) & 1;
}

/* Colour of the paint at pixel (x, y) into col. */
static inline void
paint_at (const AwPaint * p, float x, float y, float col[3])
{
  const float *c = p->c0;
  float du = (x - p->ox) * p->ux + (y - p->oy) * p->uy;

  switch (p->kind) {
    case AW_PAINT_STRIPES:
      if (odd (du / p->period))
        c = p->c1;
      break;
    case AW_PAINT_CHECKS:{
      float dv = -(x - p->ox) * p->uy + (y - p->oy) * p->ux;
      if (odd (du / p->period) != odd (dv / p->period))
        c = p->c1;
      break;
    }
    case AW_PAINT_GRADIENT:{
      float t = clampf (du / p->period, 0.0f, 1.0f);
      for (int i = 0; i < 3; i++)
        col[i] = p->c0[i] + (p->c1[i] - p->c0[i]) * t;
      return;
    }
    default:
      break;
  }
  col[0] = c[0];
  col[1] = c[1];
  col[2] = c[2];
}

/* Blends paint over pixel (x, y) by coverage cov in (0, 1]. */
static inline void
cover (AwCanvas * cv, int x, int y, float cov, const AwPaint * p)
{
  uint8_t *px = cv->rgb + (size_t) y * cv->rgb_stride + 3 * x;
  float col[3];

  cov *= p->opacity;
  paint_at (p, (float) x, (float) y, col);
  for (int i = 0; i < 3; i++)
    px[i] = (uint8_t) (px[i] + (col[i] - px[i]) * cov + 0.5f);
  if (p->character && cv->alpha) {
    uint8_t *a = cv->alpha + (size_t) y * cv->alpha_stride + x;
    *a = (uint8_t) (*a + (255 - *a) * cov + 0.5f);
  }
}

/* Clipped bounding box; returns 0 when empty. Coordinates are clamped to
 * the canvas before any conversion to int, so huge or NaN input is safe. */
static int
bbox (const AwCanvas * cv, float x0, float y0, float x1, float y1, int b[4])
{
  float w = (float) cv->width, h = (float) cv->height;

  if (!(x0 <= x1) || !(y0 <= y1))
    return 0;                   /* also NaN */
  x0 = clampf (x0 - 1.0f, -1.0f, w);
  x1 = clampf (x1 + 1.0f, -1.0f, w);
  y0 = clampf (y0 - 1.0f, -1.0f, h);
  y1 = clampf (y1 + 1.0f, -1.0f, h);
  b[0] = (int) floorf (x0);
  b[1] = (int) floorf (y0);
  b[2] = (int) ceilf (x1);
  b[3] = (int) ceilf (y1);
  if (b[0] < 0)
    b[0] = 0;
  if (b[1] < 0)
    b[1] = 0;
  if (b[2] > cv->width - 1)
    b[2] = cv->width - 1;
  if (b[3] > cv->height - 1)
    b[3] = cv->height - 1;
  return b[0] <= b[2] && b[1] <= b[3];
}

/* Approximate distance to an ellipse (x/rx)^2 + (y/ry)^2 = 1 in its own
 * frame: the implicit value divided by its gradient's length. */
static inline float
ellipse_sd (float x, float y, float rx, float ry)
{
  float k0 = sqrtf ((x * x) / (rx * rx) + (y * y) / (ry * ry));
  float k1 = sqrtf ((x * x) / (rx * rx * rx * rx) + (y * y) / (ry * ry * ry
          * ry));
  if (k1 < 1e-12f)
    return -(rx < ry ? rx : ry);
  return k0 * (k0 - 1.0f) / k1;
}

typedef enum { SH_ELLIPSE, SH_CAPSULE, SH_POLYGON } ShapeKind;

/* One shape, ready for distance queries. */
typedef struct {
  ShapeKind kind;
  /* ellipse: centre, rotation, radii, stroke width (0: filled) */
  float cx, cy, ca, sa, rx, ry, width;
  /* capsule: a, b - a, |b - a|^2, radii at a and b */
  float ax, ay, ex, ey, ee, ra, rb;
  /* polygon, grown by inflate, optionally clipped */
  const float *v, *clip;
  int n, nc;
  float inflate;
  float margin;                 /* how far the distance may be off */
} Shape;

static inline float
shape_sd (const Shape * sh, float x, float y)
{
  switch (sh->kind) {
    case SH_ELLIPSE:{
      float dx = x - sh->cx, dy = y - sh->cy;
      float d = ellipse_sd (dx * sh->ca + dy * sh->sa,
          -dx * sh->sa + dy * sh->ca, sh->rx, sh->ry);
      return sh->width > 0.0f ? fabsf (d) - 0.5f * sh->width : d;
    }
    case SH_CAPSULE:{
      float wx = x - sh->ax, wy = y - sh->ay;
      float t = sh->ee > 1e-12f ? clampf ((wx * sh->ex + wy * sh->ey) / sh->ee,
          0.0f, 1.0f) : 0.0f;
      float qx = wx - sh->ex * t, qy = wy - sh->ey * t;
      return sqrtf (qx * qx + qy * qy) - (sh->ra + (sh->rb - sh->ra) * t);
    }
    default:{
      float d = aw_polygon_sd (sh->v, sh->n, x, y) - sh->inflate;
      if (sh->clip) {
        float dc = aw_polygon_sd (sh->clip, sh->nc, x, y);
        d = d > dc ? d : dc;
      }
      return d;
    }
  }
}

/* Covers the shape's pixels inside bbox b. Works in 4x4 blocks: the
 * distance at a block's centre, give or take the half-diagonal (2.13) and
 * the shape's own error margin, tells whether the whole block is outside
 * (skipped) or inside (covered without per-pixel distances); only blocks on
 * the edge pay for every pixel. */
static void
fill_shape (AwCanvas * cv, const Shape * sh, const int b[4],
    const AwPaint * p)
{
  float m = 2.13f + 0.5f + sh->margin;

  for (int by = b[1]; by <= b[3]; by += 4) {
    int y1 = by + 3 < b[3] ? by + 3 : b[3];
    for (int bx = b[0]; bx <= b[2]; bx += 4) {
      int x1 = bx + 3 < b[2] ? bx + 3 : b[2];
      float dc = shape_sd (sh, bx + 1.5f, by + 1.5f);
      if (dc > m)
        continue;
      for (int y = by; y <= y1; y++) {
        for (int x = bx; x <= x1; x++) {
          float cov = dc < -m ? 1.0f : 0.5f - shape_sd (sh, (float) x,
              (float) y);
          if (cov <= 0.0f)
            continue;
          cover (cv, x, y, cov > 1.0f ? 1.0f : cov, p);
        }
      }
    }
  }
}

static void
ellipse_common (AwCanvas * cv, float cx, float cy, float rx, float ry,
    float angle, float width, const AwPaint * p)
{
  Shape sh = { 0 };
  float r = (rx > ry ? rx : ry) + width;
  int b[4];

  if (!(rx > 0.05f && ry > 0.05f))
    return;
  if (!bbox (cv, cx - r, cy - r, cx + r, cy + r, b))
    return;
  sh.kind = SH_ELLIPSE;
  sh.cx = cx;
  sh.cy = cy;
  sh.ca = cosf (angle);
  sh.sa = sinf (angle);
  sh.rx = rx;
  sh.ry = ry;
  sh.width = width;
  /* the approximate distance is off by up to the radii's difference */
  sh.margin = 1.0f + 0.5f * fabsf (rx - ry);
  fill_shape (cv, &sh, b, p);
}

void
aw_fill_ellipse (AwCanvas * cv, float cx, float cy, float rx, float ry,
    float angle, const AwPaint * p)
{
  ellipse_common (cv, cx, cy, rx, ry, angle, 0.0f, p);
}

void
aw_stroke_ellipse (AwCanvas * cv, float cx, float cy, float rx, float ry,
    float angle, float width, const AwPaint * p)
{
  ellipse_common (cv, cx, cy, rx, ry, angle, width > 0.3f ? width : 0.3f, p);
}

void
aw_fill_capsule (AwCanvas * cv, float ax, float ay, float bx, float by,
    float ra, float rb, const AwPaint * p)
{
  Shape sh = { 0 };
  float r = ra > rb ? ra : rb;
  int b[4];

  if (!(r > 0.05f))
    return;
  if (!bbox (cv, fminf (ax, bx) - r, fminf (ay, by) - r, fmaxf (ax, bx) + r,
          fmaxf (ay, by) + r, b))
    return;
  sh.kind = SH_CAPSULE;
  sh.ax = ax;
  sh.ay = ay;
  sh.ex = bx - ax;
  sh.ey = by - ay;
  sh.ee = sh.ex * sh.ex + sh.ey * sh.ey;
  sh.ra = ra;
  sh.rb = rb;
  /* a tapered capsule's distance is exact up to the taper */
  sh.margin = 0.25f + fabsf (ra - rb);
  fill_shape (cv, &sh, b, p);
}

float
aw_polygon_sd (const float *v, int n, float px, float py)
{
  float d = (px - v[0]) * (px - v[0]) + (py - v[1]) * (py - v[1]);
  float s = 1.0f;

  for (int i = 0, j = n - 1; i < n; j = i, i++) {
    float vix = v[2 * i], viy = v[2 * i + 1];
    float ex = v[2 * j] - vix, ey = v[2 * j + 1] - viy;
    float wx = px - vix, wy = py - viy;
    float ee = ex * ex + ey * ey;
    float t = ee > 1e-12f ? clampf ((wx * ex + wy * ey) / ee, 0.0f, 1.0f)
        : 0.0f;
    float bx = wx - ex * t, by = wy - ey * t;
    float dd = bx * bx + by * by;
    int c1 = py >= viy, c2 = py < v[2 * j + 1], c3 = ex * wy > ey * wx;
    if (dd < d)
      d = dd;
    /* crossing number: the sign flips at every edge the ray crosses */
    if ((c1 && c2 && c3) || (!c1 && !c2 && !c3))
      s = -s;
  }
  return s * sqrtf (d);
}

void
aw_fill_polygon (AwCanvas * cv, const float *v, int n, float inflate,
    const float *clip, int nc, const AwPaint * p)
{
  Shape sh = { 0 };
  float x0, y0, x1, y1;
  int b[4];

  if (n < 3 || n > AW_POLY_MAX || (clip && (nc < 3 || nc > AW_POLY_MAX)))
    return;
  x0 = x1 = v[0];
  y0 = y1 = v[1];
  for (int i = 1; i < n; i++) {
    x0 = fminf (x0, v[2 * i]);
    x1 = fmaxf (x1, v[2 * i]);
    y0 = fminf (y0, v[2 * i + 1]);
    y1 = fmaxf (y1, v[2 * i + 1]);
  }
  if (!bbox (cv, x0 - inflate, y0 - inflate, x1 + inflate, y1 + inflate, b))
    return;
  sh.kind = SH_POLYGON;
  sh.v = v;
  sh.n = n;
  sh.clip = clip;
  sh.nc = nc;
  sh.inflate = inflate;
  sh.margin = 0.0f;             /* exact */
  fill_shape (cv, &sh, b, p);
}
