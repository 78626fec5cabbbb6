/* avatar-pose: pose-guidance drawing, styles A (DWPose/ControlNet) and B
 * (MimicMotion), as /work/shared/golden/pose/SPEC.md describes them.
 *
 * Every primitive is reduced to horizontal spans on the drawing canvas and
 * handed to one sink, draw_span(). For style A the canvas is the output
 * image. For style B it is the supersampled canvas (short side 2160), but
 * only the rows and columns that the final bilinear resize reads are stored:
 * a span on an unread row is dropped and a span on a read row writes only
 * the read columns. The result is the same as drawing the whole canvas and
 * resizing it, at a fraction of the memory traffic.
 *
 * The rasteriser follows OpenCV 4.x (the references call cv2.fillConvexPoly,
 * cv2.ellipse2Poly, cv2.line and cv2.circle): 16-bit fixed-point polygon
 * edges, rows spanned between the rounded left and right edges, the outline
 * drawn as 8-connected lines, exact filled discs.
 */
#include "avatar-pose.h"

#include <glib.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XY_SHIFT 16
#define XY_ONE ((int64_t) 1 << XY_SHIFT)
#define XY_HALF (XY_ONE >> 1)

#define STICK_WIDTH 4           /* limb ellipse semi-minor axis */
#define BODY_RADIUS 4
#define HAND_RADIUS 4
#define FACE_RADIUS 3
#define HAND_THICKNESS 2
#define REF_SHORT_SIDE 2160     /* MimicMotion's ref_w */
#define N_LIMBS 17
#define N_HAND_EDGES 20

/* Canvas coordinates beyond this are treated as not drawable: it keeps all
 * fixed-point arithmetic far from overflow for any input float. */
#define MAX_CANVAS_COORD 67108864.0
/* Style B refuses outputs whose supersampled canvas would be longer than
 * this (aspect ratios beyond about 30:1): its row scratch grows with it. */
#define MAX_SUPERSAMPLED 65536
/* 8-connected outline segments longer than this are skipped (their polygon
 * is still filled); real polygon edges are a few pixels long. */
#define MAX_OUTLINE_STEPS 65536

typedef struct
{
  uint8_t r, g, b;
} Rgb;

/* SPEC §3: the 18-entry palette, R,G,B as style A shows it. */
static const Rgb body_palette[AP_BODY_N] = {
  {255, 0, 0}, {255, 85, 0}, {255, 170, 0}, {255, 255, 0}, {170, 255, 0},
  {85, 255, 0}, {0, 255, 0}, {0, 255, 85}, {0, 255, 170}, {0, 255, 255},
  {0, 170, 255}, {0, 85, 255}, {0, 0, 255}, {85, 0, 255}, {170, 0, 255},
  {255, 0, 255}, {255, 0, 170}, {255, 0, 85},
};

/* SPEC §3: limb k joins these COCO-18 indices. */
static const int limb_ends[N_LIMBS][2] = {
  {1, 2}, {1, 5}, {2, 3}, {3, 4}, {5, 6}, {6, 7}, {1, 8}, {8, 9}, {9, 10},
  {1, 11}, {11, 12}, {12, 13}, {1, 0}, {0, 14}, {14, 16}, {0, 15}, {15, 17},
};

/* SPEC §5: hand edges in drawing order. */
static const int hand_edges[N_HAND_EDGES][2] = {
  {0, 1}, {1, 2}, {2, 3}, {3, 4}, {0, 5}, {5, 6}, {6, 7}, {7, 8}, {0, 9},
  {9, 10}, {10, 11}, {11, 12}, {0, 13}, {13, 14}, {14, 15}, {15, 16},
  {0, 17}, {17, 18}, {18, 19}, {19, 20},
};

/* ---- Scratch, one per thread --------------------------------------------- */

/* Buffers sized for the last (style, width, height) this thread drew; a new
 * size rebuilds them, an equal one reuses them. */
typedef struct
{
  /* polygon fill: one left/right pair per canvas row */
  int64_t *row_lo, *row_hi;
  int n_row_slots;

  /* style B: the sampled grid of the supersampled canvas */
  int out_w, out_h, canvas_w, canvas_h;
  int *row_index;               /* canvas row -> stored row, -1 when unread */
  int *col_first;               /* canvas x -> first stored column >= x */
  int *col_x;                   /* stored column -> canvas x */
  int n_cols, n_rows;
  uint8_t *grid;                /* n_rows x n_cols x 3, black between calls */
  int *dirty_lo, *dirty_hi;     /* per stored row: painted column range */
  int *xofs;                    /* per output column: 2 stored columns */
  int16_t *alpha;               /* per output column: 2 weights (of 2048) */
  int *yofs;                    /* per output row: 2 stored rows */
  int16_t *beta;                /* per output row: 2 weights */
} Scratch;

static void
scratch_free_b (Scratch * s)
{
  g_free (s->row_index);
  g_free (s->col_first);
  g_free (s->col_x);
  g_free (s->grid);
  g_free (s->xofs);
  g_free (s->alpha);
  g_free (s->yofs);
  g_free (s->beta);
  g_free (s->dirty_lo);
  g_free (s->dirty_hi);
  s->row_index = s->col_first = s->col_x = NULL;
  s->grid = NULL;
  s->xofs = s->yofs = NULL;
  s->alpha = s->beta = NULL;
  s->dirty_lo = s->dirty_hi = NULL;
  s->out_w = s->out_h = s->canvas_w = s->canvas_h = 0;
}

static void
scratch_free (gpointer data)
{
  Scratch *s = data;

  if (s == NULL)
    return;
  scratch_free_b (s);
  g_free (s->row_lo);
  g_free (s->row_hi);
  g_free (s);
}

/* Freed by GLib when the thread ends. */
static GPrivate scratch_key = G_PRIVATE_INIT (scratch_free);

static Scratch *
scratch_get (void)
{
  Scratch *s = g_private_get (&scratch_key);

  if (s == NULL) {
    s = g_try_new0 (Scratch, 1);
    if (s != NULL)
      g_private_set (&scratch_key, s);
  }
  return s;
}

static int
scratch_rows (Scratch * s, int n)
{
  if (s->n_row_slots >= n)
    return 0;
  g_free (s->row_lo);
  g_free (s->row_hi);
  s->row_lo = g_try_new (int64_t, n);
  s->row_hi = g_try_new (int64_t, n);
  if (s->row_lo == NULL || s->row_hi == NULL) {
    g_free (s->row_lo);
    g_free (s->row_hi);
    s->row_lo = s->row_hi = NULL;
    s->n_row_slots = 0;
    return -1;
  }
  s->n_row_slots = n;
  return 0;
}

/* ---- Span sink ------------------------------------------------------------ */

typedef struct
{
  int width, height;            /* drawing canvas */
  int clip_x0, clip_y0, clip_x1, clip_y1;       /* inclusive, inside the canvas */
  uint8_t *pix;
  int stride;
  /* NULL: pix holds every canvas pixel. Else the sampled grid (Scratch). */
  const int *row_index, *col_first, *col_x;
  int n_cols;
  int *dirty_lo, *dirty_hi;     /* sampled grid: painted range per row */
  int64_t *row_lo, *row_hi;     /* polygon scratch, height entries */
} Target;

static inline void
put_rgb (uint8_t * p, Rgb c)
{
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

/* Paints canvas pixels x0..x1 of row y (any values; clipped here). */
static void
draw_span (const Target * t, int64_t y, int64_t x0, int64_t x1, Rgb color)
{
  uint8_t *row;

  if (y < t->clip_y0 || y > t->clip_y1)
    return;
  if (x0 < t->clip_x0)
    x0 = t->clip_x0;
  if (x1 > t->clip_x1)
    x1 = t->clip_x1;
  if (x0 > x1)
    return;
  if (t->row_index == NULL) {
    row = t->pix + (size_t) y * t->stride;
    for (int64_t x = x0; x <= x1; x++)
      put_rgb (row + x * 3, color);
    return;
  }
  {
    int r = t->row_index[y], i0 = t->col_first[x0], i = i0;
    if (r < 0)
      return;
    row = t->pix + (size_t) r * t->stride;
    for (; i < t->n_cols && t->col_x[i] <= x1; i++)
      put_rgb (row + (size_t) i * 3, color);
    /* Remember what to resample and to clear again. */
    if (i > i0) {
      t->dirty_lo[r] = MIN (t->dirty_lo[r], i0);
      t->dirty_hi[r] = MAX (t->dirty_hi[r], i - 1);
    }
  }
}

/* ---- Primitives ------------------------------------------------------------ */

/* Floor of a fixed-point value, safe for negative numbers. */
static inline int64_t
fix_floor (int64_t v)
{
  return v >= 0 ? v >> XY_SHIFT : -((-v + XY_ONE - 1) >> XY_SHIFT);
}

/* Filled disc: exactly the pixels with dx^2 + dy^2 <= r^2 (cv2.circle with
 * thickness -1). */
static void
draw_disc (const Target * t, int64_t cx, int64_t cy, int r, Rgb color)
{
  for (int dy = -r; dy <= r; dy++) {
    int h = 0;
    while ((h + 1) * (h + 1) + dy * dy <= r * r)
      h++;
    draw_span (t, cy + dy, cx - h, cx + h, color);
  }
}

/* 8-connected line between integer points, stepping like OpenCV's
 * LineIterator (left to right, error term tested before each step). */
static void
draw_line_int (const Target * t, int64_t x0, int64_t y0, int64_t x1,
    int64_t y1, Rgb color)
{
  int64_t dx, dy, major, minor, err, ystep;
  int steep;

  if (x1 < x0) {
    int64_t tx = x0, ty = y0;
    x0 = x1;
    y0 = y1;
    x1 = tx;
    y1 = ty;
  }
  dx = x1 - x0;
  dy = y1 - y0;
  ystep = dy < 0 ? -1 : 1;
  dy = dy < 0 ? -dy : dy;
  steep = dy > dx;
  major = steep ? dy : dx;
  minor = steep ? dx : dy;
  if (major > MAX_OUTLINE_STEPS)
    return;
  err = major - 2 * minor;
  for (int64_t k = 0; k <= major; k++) {
    int diag = err < 0;
    draw_span (t, y0, x0, x0, color);
    err += -2 * minor + (diag ? 2 * major : 0);
    if (steep) {
      y0 += ystep;
      x0 += diag;
    } else {
      x0++;
      y0 += diag ? ystep : 0;
    }
  }
}

/* 8-connected line between fixed-point points (OpenCV Line2, used for the
 * outline of sub-pixel polygons). */
static void
draw_line_fix (const Target * t, int64_t x0, int64_t y0, int64_t x1,
    int64_t y1, Rgb color)
{
  int64_t dx = x1 - x0, dy = y1 - y0;
  int64_t ax = dx < 0 ? -dx : dx, ay = dy < 0 ? -dy : dy;
  int64_t step, count;

  if (ax > ay) {
    if (dx < 0) {
      int64_t tx = x0, ty = y0;
      x0 = x1;
      y0 = y1;
      x1 = tx;
      y1 = ty;
      dy = -dy;
    }
    step = (dy * XY_ONE) / (ax | 1);
    count = fix_floor (x1 - x0);
  } else {
    if (dy < 0) {
      int64_t tx = x0, ty = y0;
      x0 = x1;
      y0 = y1;
      x1 = tx;
      y1 = ty;
      dx = -dx;
    }
    step = (dx * XY_ONE) / (ay | 1);
    count = fix_floor (y1 - y0);
  }
  if (count > MAX_OUTLINE_STEPS)
    return;
  x0 += XY_HALF;
  y0 += XY_HALF;
  draw_span (t, fix_floor (y1 + XY_HALF), fix_floor (x1 + XY_HALF),
      fix_floor (x1 + XY_HALF), color);
  if (ax > ay) {
    int64_t x = fix_floor (x0);
    for (; count >= 0; count--, x++, y0 += step)
      draw_span (t, fix_floor (y0), x, x, color);
  } else {
    int64_t y = fix_floor (y0);
    for (; count >= 0; count--, y++, x0 += step)
      draw_span (t, y, fix_floor (x0), fix_floor (x0), color);
  }
}

static inline void
row_extend (const Target * t, int64_t y, int64_t x)
{
  if (x < t->row_lo[y])
    t->row_lo[y] = x;
  if (x > t->row_hi[y])
    t->row_hi[y] = x;
}

/* Filled convex polygon with fixed-point vertices (cv2.fillConvexPoly).
 * integer_vertices selects the outline algorithm OpenCV uses for shift 0.
 * Each edge, walked downward between the rows its end points round to,
 * gives one x per row; every row is filled between its smallest and largest
 * x, each rounded to the nearest pixel. */
static void
fill_convex (const Target * t, const int64_t (*v)[2], int n,
    int integer_vertices, Rgb color)
{
  int64_t xmin, xmax, ymin, ymax, lo, hi;

  for (int i = 0; i < n; i++) {
    const int64_t *a = v[i > 0 ? i - 1 : n - 1], *b = v[i];
    if (integer_vertices)
      draw_line_int (t, fix_floor (a[0]), fix_floor (a[1]), fix_floor (b[0]),
          fix_floor (b[1]), color);
    else
      draw_line_fix (t, a[0], a[1], b[0], b[1], color);
  }
  if (n < 3)
    return;
  xmin = xmax = v[0][0];
  ymin = ymax = v[0][1];
  for (int i = 1; i < n; i++) {
    xmin = MIN (xmin, v[i][0]);
    xmax = MAX (xmax, v[i][0]);
    ymin = MIN (ymin, v[i][1]);
    ymax = MAX (ymax, v[i][1]);
  }
  xmin = fix_floor (xmin + XY_HALF);
  xmax = fix_floor (xmax + XY_HALF);
  ymin = fix_floor (ymin + XY_HALF);
  ymax = fix_floor (ymax + XY_HALF);
  if (xmax < t->clip_x0 || xmin > t->clip_x1 || ymax < t->clip_y0
      || ymin > t->clip_y1)
    return;
  lo = MAX (ymin, t->clip_y0);
  hi = MIN (ymax, t->clip_y1);
  for (int64_t y = lo; y <= hi; y++) {
    t->row_lo[y] = INT64_MAX;
    t->row_hi[y] = INT64_MIN;
  }
  for (int i = 0; i < n; i++) {
    const int64_t *a = v[i > 0 ? i - 1 : n - 1], *b = v[i];
    int64_t ya = fix_floor (a[1] + XY_HALF), yb = fix_floor (b[1] + XY_HALF);
    int64_t xs, xe, ys, ye, dx, y0, y1;

    if (ya >= lo && ya <= hi)
      row_extend (t, ya, a[0]);
    if (ya == yb)
      continue;
    if (ya < yb) {
      xs = a[0];
      xe = b[0];
      ys = ya;
      ye = yb;
    } else {
      xs = b[0];
      xe = a[0];
      ys = yb;
      ye = ya;
    }
    /* OpenCV's per-row increment, rounded the same way. */
    dx = ((xe - xs) * 2 + (ye - ys)) / (2 * (ye - ys));
    y0 = MAX (ys, lo);
    y1 = MIN (ye - 1, hi);
    for (int64_t y = y0; y <= y1; y++)
      row_extend (t, y, xs + dx * (y - ys));
  }
  for (int64_t y = lo; y <= hi; y++) {
    if (t->row_lo[y] > t->row_hi[y])
      continue;
    draw_span (t, y, fix_floor (t->row_lo[y] + XY_HALF),
        fix_floor (t->row_hi[y] + XY_HALF), color);
  }
}

/* sin of 0..450 whole degrees as OpenCV's float table holds it (7
 * decimals), built once; cos(d) is sin_table[450 - d] there too. */
static float sin_table[451];

static const float *
get_sin_table (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    for (int d = 0; d <= 450; d++)
      sin_table[d] = (float) (rint (sin (d * (G_PI / 180.0)) * 1e7) / 1e7);
    g_once_init_leave (&done, 1);
  }
  return sin_table;
}

/* cv2.ellipse2Poly (1-degree steps, full turn) followed by
 * cv2.fillConvexPoly: a limb. */
static void
draw_ellipse (const Target * t, int64_t cx, int64_t cy, int64_t axis_a,
    int axis_b, int angle, Rgb color)
{
  const float *tab = get_sin_table ();
  int64_t v[361][2];
  int n = 0;
  float alpha, beta;

  while (angle < 0)
    angle += 360;
  while (angle > 360)
    angle -= 360;
  alpha = tab[450 - angle];
  beta = tab[angle];
  for (int i = 0; i <= 360; i++) {
    double x = (double) axis_a * tab[450 - i];
    double y = (double) axis_b * tab[i];
    int64_t px = (int64_t) llrint (cx + x * alpha - y * beta);
    int64_t py = (int64_t) llrint (cy + x * beta + y * alpha);
    if (n > 0 && v[n - 1][0] == px * XY_ONE && v[n - 1][1] == py * XY_ONE)
      continue;
    v[n][0] = px * XY_ONE;
    v[n][1] = py * XY_ONE;
    n++;
  }
  if (n == 1) {
    v[1][0] = v[0][0] = cx * XY_ONE;
    v[1][1] = v[0][1] = cy * XY_ONE;
    n = 2;
  }
  fill_convex (t, (const int64_t (*)[2]) v, n, 1, color);
}

/* cv2.line with thickness 2: a quadrilateral offset 1 px along the normal
 * plus radius-1 discs at both ends. */
static void
draw_thick_line (const Target * t, int64_t x0, int64_t y0, int64_t x1,
    int64_t y1, Rgb color)
{
  double dx = (double) (x0 - x1), dy = (double) (y1 - y0);
  double r = dx * dx + dy * dy;
  int64_t thickness = (int64_t) HAND_THICKNESS << (XY_SHIFT - 1);

  if (r > 0.0) {
    int64_t v[4][2];
    int64_t dpx, dpy;
    r = thickness / sqrt (r);
    dpx = llrint (dy * r);
    dpy = llrint (dx * r);
    v[0][0] = x0 * XY_ONE + dpx;
    v[0][1] = y0 * XY_ONE + dpy;
    v[1][0] = x0 * XY_ONE - dpx;
    v[1][1] = y0 * XY_ONE - dpy;
    v[2][0] = x1 * XY_ONE - dpx;
    v[2][1] = y1 * XY_ONE - dpy;
    v[3][0] = x1 * XY_ONE + dpx;
    v[3][1] = y1 * XY_ONE + dpy;
    fill_convex (t, (const int64_t (*)[2]) v, 4, 0, color);
  }
  draw_disc (t, x0, y0, (int) ((thickness + XY_HALF) >> XY_SHIFT), color);
  draw_disc (t, x1, y1, (int) ((thickness + XY_HALF) >> XY_SHIFT), color);
}

/* ---- Coordinates ------------------------------------------------------------ */

typedef struct
{
  ApStyle style;
  int out_w, out_h;             /* output image */
  int canvas_w, canvas_h;       /* drawing canvas (B: supersampled) */
  double src_w, src_h;          /* the frame's canvas */
  int keep_aspect;
  double scale, off_x, off_y;   /* keep_aspect: source -> output pixels */
} Mapping;

/* A source-canvas position on the drawing canvas, as the references
 * compute it: normalise by the source canvas, multiply by the drawing
 * canvas. Returns 0 for values that cannot be drawn (absurdly far). */
static int
map_xy (const Mapping * m, double px, double py, double *x, double *y)
{
  double nx, ny;

  if (m->keep_aspect) {
    nx = (px * m->scale + m->off_x) / m->out_w;
    ny = (py * m->scale + m->off_y) / m->out_h;
  } else {
    nx = px / m->src_w;
    ny = py / m->src_h;
  }
  *x = nx * m->canvas_w;
  *y = ny * m->canvas_h;
  return fabs (*x) <= MAX_CANVAS_COORD && fabs (*y) <= MAX_CANVAS_COORD;
}

/* A keypoint on the drawing canvas; 0 when it holds NaN or infinity. */
static int
map_point (const Mapping * m, const ApPoint * p, double *x, double *y)
{
  if (!isfinite (p->x) || !isfinite (p->y) || !isfinite (p->c))
    return 0;
  return map_xy (m, p->x, p->y, x, y);
}

/* ApPoint holds floats, but the references computed in double from the
 * JSON's decimals. The limb angle is truncated to whole degrees, so a limb
 * at (nearly) a whole angle flips by a degree on that difference. The
 * shortest decimal (6 to 9 digits) that gives back the same float is the
 * JSON's value whenever it had at most 6 significant digits. */
static double
float_to_decimal (float f)
{
  static const double p10[23] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
    1e20, 1e21, 1e22
  };
  double a = fabs ((double) f);
  int e;

  if (!(a > 0.0) || !isfinite (a))
    return f;
  e = (int) floor (log10 (a));
  for (int digits = 6; digits <= 9; digits++) {
    int k = digits - 1 - e;     /* decimal places kept */
    double d;
    if (k > 22 || k < -22)
      break;
    /* An integer over an exact power of ten: the correctly rounded double
     * of that decimal, as strtod gives it. */
    d = k >= 0 ? rint (f * p10[k]) / p10[k] : rint (f / p10[-k]) * p10[-k];
    if ((float) d == f)
      return d;
  }
  return f;
}

/* A limb end point, from float_to_decimal's values. */
static int
map_limb_point (const Mapping * m, const ApPoint * p, double *x, double *y)
{
  if (!isfinite (p->x) || !isfinite (p->y) || !isfinite (p->c))
    return 0;
  return map_xy (m, float_to_decimal (p->x), float_to_decimal (p->y), x, y);
}

/* SPEC §1.4: hand and face points need trunc(x) >= 1 and trunc(y) >= 1. */
static int
map_hand_face (const Mapping * m, const ApPoint * p, int64_t * x, int64_t * y)
{
  double fx, fy;

  if (!map_point (m, p, &fx, &fy))
    return 0;
  *x = (int64_t) fx;
  *y = (int64_t) fy;
  return *x >= 1 && *y >= 1;
}

/* ---- Colours ------------------------------------------------------------------- */

static inline uint8_t
sat_trunc (double v)
{
  if (!(v > 0.0))
    return 0;
  if (v >= 255.0)
    return 255;
  return (uint8_t) v;
}

/* cv2's conversion of a double colour component (round half to even). */
static inline uint8_t
sat_round (double v)
{
  if (!(v > 0.0))
    return 0;
  if (v >= 255.0)
    return 255;
  return (uint8_t) lrint (v);
}

/* SPEC §3: the 0.6 dimming; the integer form equals trunc(0.6 c). */
static inline Rgb
dim (Rgb c)
{
  Rgb d = { (uint8_t) (c.r * 3 / 5), (uint8_t) (c.g * 3 / 5),
    (uint8_t) (c.b * 3 / 5)
  };
  return d;
}

/* Style B paints A's triples and swaps R and B at the end (SPEC §8.4);
 * swapping each colour up front gives the same image. */
static inline Rgb
out_order (const Mapping * m, Rgb c)
{
  if (m->style == AP_STYLE_MIMICMOTION) {
    Rgb s = { c.b, c.g, c.r };
    return s;
  }
  return c;
}

static Rgb
scale_color (Rgb c, double k)
{
  Rgb s = { sat_trunc (c.r * k), sat_trunc (c.g * k), sat_trunc (c.b * k) };
  return s;
}

/* matplotlib hsv_to_rgb([h, 1, 1]), channels 0..1. */
static void
hue_unit_rgb (double h, double rgb[3])
{
  int i = (int) (h * 6.0);
  double f = h * 6.0 - i;
  double p = 0.0, q = 1.0 - f, u = 1.0 - (1.0 - f);

  switch (i % 6) {
    case 0:
      rgb[0] = 1.0, rgb[1] = u, rgb[2] = p;
      break;
    case 1:
      rgb[0] = q, rgb[1] = 1.0, rgb[2] = p;
      break;
    case 2:
      rgb[0] = p, rgb[1] = 1.0, rgb[2] = u;
      break;
    case 3:
      rgb[0] = p, rgb[1] = q, rgb[2] = 1.0;
      break;
    case 4:
      rgb[0] = u, rgb[1] = p, rgb[2] = 1.0;
      break;
    default:
      rgb[0] = 1.0, rgb[1] = p, rgb[2] = q;
      break;
  }
}

static Rgb
hand_edge_color (int e, double q)
{
  double u[3];
  Rgb c;

  hue_unit_rgb (e / (double) N_HAND_EDGES, u);
  c.r = sat_round (u[0] * q);
  c.g = sat_round (u[1] * q);
  c.b = sat_round (u[2] * q);
  return c;
}

/* ---- Layers (SPEC §6) ---------------------------------------------------------- */

static int
body_drawn (const ApPoint * p)
{
  return p->c > AP_CONFIDENT;
}

static void
draw_limbs (const Target * t, const Mapping * m, const ApFrame * frame,
    int n_people)
{
  for (int k = 0; k < N_LIMBS; k++) {
    for (int n = 0; n < n_people; n++) {
      const ApPoint *a = &frame->people[n].body[limb_ends[k][0]];
      const ApPoint *b = &frame->people[n].body[limb_ends[k][1]];
      double x0, y0, x1, y1, len;
      Rgb color = body_palette[k];

      if (!body_drawn (a) || !body_drawn (b))
        continue;
      if (!map_limb_point (m, a, &x0, &y0)
          || !map_limb_point (m, b, &x1, &y1))
        continue;
      if (m->style == AP_STYLE_MIMICMOTION)
        color = scale_color (color, (double) a->c * (double) b->c);
      /* Dimming each limb colour equals dimming the limb-only canvas. */
      color = out_order (m, dim (color));
      len = sqrt ((x0 - x1) * (x0 - x1) + (y0 - y1) * (y0 - y1));
      draw_ellipse (t, (int64_t) ((x0 + x1) / 2), (int64_t) ((y0 + y1) / 2),
          (int64_t) (len / 2), STICK_WIDTH,
          (int) (atan2 (y0 - y1, x0 - x1) * (180.0 / G_PI)), color);
    }
  }
}

static void
draw_body_discs (const Target * t, const Mapping * m, const ApFrame * frame,
    int n_people)
{
  for (int i = 0; i < AP_BODY_N; i++) {
    for (int n = 0; n < n_people; n++) {
      const ApPoint *p = &frame->people[n].body[i];
      double x, y;
      Rgb color = body_palette[i];

      if (!body_drawn (p) || !map_point (m, p, &x, &y))
        continue;
      if (m->style == AP_STYLE_MIMICMOTION)
        color = scale_color (color, p->c);
      draw_disc (t, (int64_t) x, (int64_t) y, BODY_RADIUS, out_order (m,
              color));
    }
  }
}

/* Style A hides hand and face points below 0.3 (its detector moves them to
 * (-1,-1)); style B has no threshold (SPEC §7, §8.3). */
static int
hand_face_visible (const Mapping * m, const ApPoint * p)
{
  if (m->style == AP_STYLE_DWPOSE)
    return p->c >= AP_CONFIDENT;
  return 1;
}

static void
draw_hand (const Target * t, const Mapping * m, const ApPoint * hand)
{
  int64_t x[AP_HAND_N], y[AP_HAND_N];
  int ok[AP_HAND_N];

  for (int i = 0; i < AP_HAND_N; i++)
    ok[i] = map_hand_face (m, &hand[i], &x[i], &y[i])
        && hand_face_visible (m, &hand[i]);
  for (int e = 0; e < N_HAND_EDGES; e++) {
    int a = hand_edges[e][0], b = hand_edges[e][1];
    double q = 255.0;

    if (!ok[a] || !ok[b])
      continue;
    if (m->style == AP_STYLE_MIMICMOTION) {
      q = (double) hand[a].c * (double) hand[b].c * 255.0;
      q = q > 1.0e6 ? 1.0e6 : (q > 0.0 ? trunc (q) : 0.0);
    }
    draw_thick_line (t, x[a], y[a], x[b], y[b],
        out_order (m, hand_edge_color (e, q)));
  }
  for (int i = 0; i < AP_HAND_N; i++) {
    Rgb blue = { 0, 0, 255 };
    if (!ok[i])
      continue;
    if (m->style == AP_STYLE_MIMICMOTION)
      blue.b = sat_trunc (255.0 * hand[i].c);
    draw_disc (t, x[i], y[i], HAND_RADIUS, out_order (m, blue));
  }
}

static void
draw_face (const Target * t, const Mapping * m, const ApPerson * person)
{
  int n_face = CLAMP (person->n_face, 0, AP_FACE_N);

  for (int i = 0; i < n_face; i++) {
    const ApPoint *p = &person->face[i];
    int64_t x, y;
    Rgb white = { 255, 255, 255 };

    if (!map_hand_face (m, p, &x, &y) || !hand_face_visible (m, p))
      continue;
    if (m->style == AP_STYLE_MIMICMOTION) {
      uint8_t g = sat_trunc (255.0 * p->c);
      white.r = white.g = white.b = g;
    }
    draw_disc (t, x, y, FACE_RADIUS, white);
  }
}

static void
draw_layers (const Target * t, const Mapping * m, const ApFrame * frame)
{
  int n_people = CLAMP (frame->n_people, 0, AP_MAX_PEOPLE);

  draw_limbs (t, m, frame, n_people);
  draw_body_discs (t, m, frame, n_people);
  /* Every person's left hand, then every person's right hand. */
  for (int side = AP_LEFT; side <= AP_RIGHT; side++)
    for (int n = 0; n < n_people; n++)
      draw_hand (t, m, frame->people[n].hand[side]);
  for (int n = 0; n < n_people; n++)
    draw_face (t, m, &frame->people[n]);
}

/* ---- Style B: sampled grid and bilinear resize ------------------------------- */

/* cv2.resize INTER_LINEAR taps for one axis: for each output index the two
 * source indices and their 11-bit weights. */
static void
linear_taps (int out_n, int src_n, int *ofs, int16_t * w, uint8_t * used)
{
  double scale = (double) src_n / out_n;

  for (int u = 0; u < out_n; u++) {
    float f = (float) ((u + 0.5) * scale - 0.5);
    int s = (int) floorf (f);
    f -= s;
    if (s < 0) {
      f = 0.0f;
      s = 0;
    }
    if (s >= src_n - 1) {
      f = 0.0f;
      s = src_n - 1;
    }
    ofs[2 * u] = s;
    ofs[2 * u + 1] = MIN (s + 1, src_n - 1);
    w[2 * u] = (int16_t) lrintf ((1.0f - f) * 2048.0f);
    w[2 * u + 1] = (int16_t) lrintf (f * 2048.0f);
    used[ofs[2 * u]] = 1;
    used[ofs[2 * u + 1]] = 1;
  }
}

static int
scratch_grid (Scratch * s, int out_w, int out_h, int canvas_w, int canvas_h)
{
  uint8_t *used_x, *used_y;
  int n;

  if (s->grid != NULL && s->out_w == out_w && s->out_h == out_h
      && s->canvas_w == canvas_w && s->canvas_h == canvas_h)
    return 0;
  scratch_free_b (s);
  used_x = g_try_malloc0 (canvas_w);
  used_y = g_try_malloc0 (canvas_h);
  s->row_index = g_try_new (int, canvas_h);
  s->col_first = g_try_new (int, (size_t) canvas_w + 1);
  s->col_x = g_try_new (int, MIN (canvas_w, 2 * out_w));
  s->xofs = g_try_new (int, 2 * (size_t) out_w);
  s->alpha = g_try_new (int16_t, 2 * (size_t) out_w);
  s->yofs = g_try_new (int, 2 * (size_t) out_h);
  s->beta = g_try_new (int16_t, 2 * (size_t) out_h);
  if (!used_x || !used_y || !s->row_index || !s->col_first || !s->col_x
      || !s->xofs || !s->alpha || !s->yofs || !s->beta)
    goto fail;
  linear_taps (out_w, canvas_w, s->xofs, s->alpha, used_x);
  linear_taps (out_h, canvas_h, s->yofs, s->beta, used_y);
  /* Columns: stored index of each read column; col_first for spans. */
  n = 0;
  for (int x = 0; x < canvas_w; x++)
    if (used_x[x])
      s->col_x[n++] = x;
  s->n_cols = n;
  s->col_first[canvas_w] = n;
  for (int x = canvas_w - 1; x >= 0; x--)
    s->col_first[x] = used_x[x] ? --n : s->col_first[x + 1];
  for (int u = 0; u < 2 * out_w; u++)
    s->xofs[u] = s->col_first[s->xofs[u]];
  n = 0;
  for (int y = 0; y < canvas_h; y++)
    s->row_index[y] = used_y[y] ? n++ : -1;
  s->n_rows = n;
  for (int v = 0; v < 2 * out_h; v++)
    s->yofs[v] = s->row_index[s->yofs[v]];
  s->grid = g_try_malloc0 ((size_t) s->n_rows * s->n_cols * 3);
  s->dirty_lo = g_try_new (int, MAX (s->n_rows, 1));
  s->dirty_hi = g_try_new (int, MAX (s->n_rows, 1));
  if (s->grid == NULL || s->dirty_lo == NULL || s->dirty_hi == NULL)
    goto fail;
  for (int r = 0; r < s->n_rows; r++) {
    s->dirty_lo[r] = INT_MAX;
    s->dirty_hi[r] = -1;
  }
  g_free (used_x);
  g_free (used_y);
  s->out_w = out_w;
  s->out_h = out_h;
  s->canvas_w = canvas_w;
  s->canvas_h = canvas_h;
  return 0;

fail:
  g_free (used_x);
  g_free (used_y);
  scratch_free_b (s);
  return -1;
}

/* The vertical pass, rounded as OpenCV's vectorised 8-bit path does. */
static inline uint8_t
resize_v (int s0, int s1, int b0, int b1)
{
  int v = ((((s0 >> 4) * b0) >> 16) + (((s1 >> 4) * b1) >> 16) + 2) >> 2;
  return (uint8_t) CLAMP (v, 0, 255);
}

/* First output column whose taps reach stored column c, or out_w. */
static int
first_u_reaching (const Scratch * s, int c)
{
  int lo = 0, hi = s->out_w;

  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (s->xofs[2 * mid + 1] >= c)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/* Resizes the grid into rgb. Only output pixels whose taps touch painted
 * columns are computed; the rest of the image is black. */
static void
resize_grid (const Scratch * s, uint8_t * rgb, int stride)
{
  for (int v = 0; v < s->out_h; v++) {
    int r0 = s->yofs[2 * v], r1 = s->yofs[2 * v + 1];
    int b0 = s->beta[2 * v], b1 = s->beta[2 * v + 1];
    int lo = MIN (s->dirty_lo[r0], s->dirty_lo[r1]);
    int hi = MAX (s->dirty_hi[r0], s->dirty_hi[r1]);
    const uint8_t *row0 = s->grid + (size_t) r0 * s->n_cols * 3;
    const uint8_t *row1 = s->grid + (size_t) r1 * s->n_cols * 3;
    uint8_t *out = rgb + (size_t) v * stride;
    int u0, u1;

    memset (out, 0, (size_t) s->out_w * 3);
    if (hi < lo)
      continue;
    u0 = first_u_reaching (s, lo);
    u1 = first_u_reaching (s, hi + 1);
    /* u1 is past the last column whose first tap is <= hi. */
    while (u1 < s->out_w && s->xofs[2 * u1] <= hi)
      u1++;
    for (int u = u0; u < u1; u++) {
      size_t c0 = (size_t) s->xofs[2 * u] * 3, c1 = (size_t) s->xofs[2 * u +
          1] * 3;
      int a0 = s->alpha[2 * u], a1 = s->alpha[2 * u + 1];
      for (int c = 0; c < 3; c++) {
        int h0 = row0[c0 + c] * a0 + row0[c1 + c] * a1;
        int h1 = row1[c0 + c] * a0 + row1[c1 + c] * a1;
        out[3 * u + c] = resize_v (h0, h1, b0, b1);
      }
    }
  }
}

/* Blackens the painted parts of the grid for the next call. */
static void
clear_grid (Scratch * s)
{
  for (int r = 0; r < s->n_rows; r++) {
    if (s->dirty_hi[r] < s->dirty_lo[r])
      continue;
    memset (s->grid + ((size_t) r * s->n_cols + s->dirty_lo[r]) * 3, 0,
        (size_t) (s->dirty_hi[r] - s->dirty_lo[r] + 1) * 3);
    s->dirty_lo[r] = INT_MAX;
    s->dirty_hi[r] = -1;
  }
}

/* ---- Entry point ---------------------------------------------------------------- */

static void
mapping_init (Mapping * m, const ApFrame * frame, ApStyle style,
    int keep_aspect, int width, int height)
{
  memset (m, 0, sizeof (*m));
  m->style = style;
  m->out_w = width;
  m->out_h = height;
  m->src_w = frame->canvas_width > 0 ? frame->canvas_width : width;
  m->src_h = frame->canvas_height > 0 ? frame->canvas_height : height;
  m->keep_aspect = keep_aspect;
  if (keep_aspect) {
    double sx = width / m->src_w, sy = height / m->src_h;
    m->scale = sx < sy ? sx : sy;
    m->off_x = (width - m->src_w * m->scale) / 2.0;
    m->off_y = (height - m->src_h * m->scale) / 2.0;
  }
  m->canvas_w = width;
  m->canvas_h = height;
  if (style == AP_STYLE_MIMICMOTION) {
    int short_side = MIN (width, height);
    double sr = short_side == REF_SHORT_SIDE ? 1.0
        : (double) REF_SHORT_SIDE / short_side;
    m->canvas_w = MAX (1, (int) (width * sr));
    m->canvas_h = MAX (1, (int) (height * sr));
  }
}

/* The drawable rectangle on the canvas: all of it, or with keep_aspect the
 * picture area, so the letterbox bars stay black. */
static void
target_clip (Target * t, const Mapping * m)
{
  t->clip_x0 = t->clip_y0 = 0;
  t->clip_x1 = t->width - 1;
  t->clip_y1 = t->height - 1;
  if (m->keep_aspect) {
    double kx = (double) m->canvas_w / m->out_w;
    double ky = (double) m->canvas_h / m->out_h;
    double x0 = m->off_x * kx, x1 = (m->off_x + m->src_w * m->scale) * kx;
    double y0 = m->off_y * ky, y1 = (m->off_y + m->src_h * m->scale) * ky;
    t->clip_x0 = MAX (0, (int) floor (x0));
    t->clip_y0 = MAX (0, (int) floor (y0));
    t->clip_x1 = MIN (t->width - 1, (int) ceil (x1) - 1);
    t->clip_y1 = MIN (t->height - 1, (int) ceil (y1) - 1);
  }
}

int
ap_draw (const ApFrame * frame, ApStyle style, int keep_aspect,
    uint8_t * rgb, int width, int height, int stride)
{
  Scratch *s;
  Mapping m;
  Target t;

  if (frame == NULL || rgb == NULL || width <= 0 || height <= 0
      || width > AP_MAX_CANVAS || height > AP_MAX_CANVAS
      || stride < 3 * width)
    return -1;
  s = scratch_get ();
  if (s == NULL)
    return -1;
  mapping_init (&m, frame, style, keep_aspect, width, height);
  if (m.canvas_w > MAX_SUPERSAMPLED || m.canvas_h > MAX_SUPERSAMPLED)
    return -1;
  memset (&t, 0, sizeof (t));
  t.width = m.canvas_w;
  t.height = m.canvas_h;
  target_clip (&t, &m);
  if (scratch_rows (s, t.height) < 0)
    return -1;
  t.row_lo = s->row_lo;
  t.row_hi = s->row_hi;

  if (style != AP_STYLE_MIMICMOTION) {
    for (int y = 0; y < height; y++)
      memset (rgb + (size_t) y * stride, 0, (size_t) width * 3);
    t.pix = rgb;
    t.stride = stride;
    draw_layers (&t, &m, frame);
    return 0;
  }

  if (scratch_grid (s, width, height, m.canvas_w, m.canvas_h) < 0)
    return -1;
  t.pix = s->grid;
  t.stride = s->n_cols * 3;
  t.row_index = s->row_index;
  t.col_first = s->col_first;
  t.col_x = s->col_x;
  t.n_cols = s->n_cols;
  t.dirty_lo = s->dirty_lo;
  t.dirty_hi = s->dirty_hi;
  draw_layers (&t, &m, frame);
  resize_grid (s, rgb, stride);
  clear_grid (s);
  return 0;
}
