/* Face alignment, masks, heatmap, blending and smoothing (face-align.h). */
#include "face-align.h"

#include <math.h>
#include <string.h>

/* OpenPose face layout. */
#define FA_NOSE_TIP 30
#define FA_MOUTH_LEFT 48
#define FA_MOUTH_RIGHT 54
#define FA_JAW_N 17
#define FA_BROW_FIRST 17
#define FA_BROW_LAST 26
#define FA_POLY_N (FA_JAW_N + FA_BROW_LAST - FA_BROW_FIRST + 1)

void
ae_face_align_params_default (AeFaceAlignParams * p)
{
  static const float tpl[5][2] = {
    {0.353f, 0.397f}, {0.647f, 0.397f}, {0.5f, 0.553f},
    {0.362f, 0.700f}, {0.638f, 0.700f}
  };

  memcpy (p->template_pts, tpl, sizeof tpl);
  p->heatmap_sigma = 1.0f / 64.0f;
  p->brow_lift = 0.25f;           /* face_models.ALIGN (docs/face-model.md) */
  p->feather = 3.0f / 64.0f;
  p->min_confidence = 0.3f;
}

bool
ae_face_confident (const float *face, int n_face, float min_confidence)
{
  double sum = 0.0;

  if (face == NULL || n_face < AE_FACE_MIN_POINTS)
    return false;
  for (int k = 0; k < AE_FACE_MIN_POINTS; k++) {
    const float *p = face + 3 * k;
    if (!isfinite (p[0]) || !isfinite (p[1]) || !isfinite (p[2])
        || !(p[2] > 0.0f))
      return false;
    sum += p[2];
  }
  return sum / AE_FACE_MIN_POINTS >= (double) min_confidence;
}

/* The five points and their weights: eye centres (mean of six points,
 * weight = their lowest c), nose tip, mouth corners. */
static void
five_points (const float *face, double pts[5][2], double w[5])
{
  for (int e = 0; e < 2; e++) {
    int first = e == 0 ? 36 : 42;
    double sx = 0.0, sy = 0.0, wmin = INFINITY;
    for (int k = first; k < first + 6; k++) {
      sx += face[3 * k];
      sy += face[3 * k + 1];
      if (face[3 * k + 2] < wmin)
        wmin = face[3 * k + 2];
    }
    pts[e][0] = sx / 6.0;
    pts[e][1] = sy / 6.0;
    w[e] = wmin;
  }
  {
    const int idx[3] = { FA_NOSE_TIP, FA_MOUTH_LEFT, FA_MOUTH_RIGHT };
    for (int i = 0; i < 3; i++) {
      pts[2 + i][0] = face[3 * idx[i]];
      pts[2 + i][1] = face[3 * idx[i] + 1];
      w[2 + i] = face[3 * idx[i] + 2];
    }
  }
}

int
ae_face_fit (const float *face, int n_face, const AeFaceAlignParams * p,
    int size, AeFaceTransform * out, AeError * err)
{
  double pts[5][2], w[5], sw = 0.0, mp[2] = { 0, 0 }, mq[2] = { 0, 0 };
  double q[5][2], n = 0.0, sa = 0.0, sb = 0.0;

  if (face == NULL || n_face < AE_FACE_MIN_POINTS)
    return ae_error (err, "face alignment: %d face points, need 68 or 70",
        face ? n_face : 0);
  if (size <= 0)
    return ae_error (err, "face alignment: crop size %d must be > 0", size);
  five_points (face, pts, w);
  for (int i = 0; i < 5; i++) {
    if (!(w[i] > 0.0) || !isfinite (w[i]) || !isfinite (pts[i][0])
        || !isfinite (pts[i][1]))
      return ae_error (err, "face alignment: eye, nose or mouth point "
          "missing");
    q[i][0] = (double) p->template_pts[i][0] * size;
    q[i][1] = (double) p->template_pts[i][1] * size;
    sw += w[i];
    mp[0] += w[i] * pts[i][0];
    mp[1] += w[i] * pts[i][1];
    mq[0] += w[i] * q[i][0];
    mq[1] += w[i] * q[i][1];
  }
  mp[0] /= sw;
  mp[1] /= sw;
  mq[0] /= sw;
  mq[1] /= sw;
  for (int i = 0; i < 5; i++) {
    double px = pts[i][0] - mp[0], py = pts[i][1] - mp[1];
    double qx = q[i][0] - mq[0], qy = q[i][1] - mq[1];
    n += w[i] * (px * px + py * py);
    sa += w[i] * (px * qx + py * qy);
    sb += w[i] * (px * qy - py * qx);
  }
  if (!(n / sw >= 1.0))
    return ae_error (err, "face alignment: eyes, nose and mouth lie within "
        "a pixel of each other");
  out->a = sa / n;
  out->b = sb / n;
  out->tx = mq[0] - (out->a * mp[0] - out->b * mp[1]);
  out->ty = mq[1] - (out->b * mp[0] + out->a * mp[1]);
  return 0;
}

AeFaceTransform
ae_face_transform_scaled (const AeFaceTransform * t, double factor)
{
  AeFaceTransform r = { t->a * factor, t->b * factor, t->tx * factor,
    t->ty * factor
  };
  return r;
}

void
ae_face_transform_apply (const AeFaceTransform * t, double x, double y,
    double *qx, double *qy)
{
  *qx = t->a * x - t->b * y + t->tx;
  *qy = t->b * x + t->a * y + t->ty;
}

void
ae_face_transform_invert (const AeFaceTransform * t, double qx, double qy,
    double *x, double *y)
{
  double d = t->a * t->a + t->b * t->b;
  double ux = qx - t->tx, uy = qy - t->ty;

  *x = (t->a * ux + t->b * uy) / d;
  *y = (-t->b * ux + t->a * uy) / d;
}

static inline int
clampi (int v, int lo, int hi)
{
  return v < lo ? lo : (v > hi ? hi : v);
}

void
ae_face_warp_crop (const uint8_t * rgb, int width, int height, int stride,
    const AeFaceTransform * t, int size, float *out)
{
  size_t plane = (size_t) size * size;

  for (int v = 0; v < size; v++) {
    for (int u = 0; u < size; u++) {
      double x, y;
      ae_face_transform_invert (t, u + 0.5, v + 0.5, &x, &y);
      x -= 0.5;
      y -= 0.5;
      /* Far outside the frame every tap is the edge pixel anyway. */
      if (!(x > -2.0))
        x = -2.0;
      if (!(x < width + 1.0))
        x = width + 1.0;
      if (!(y > -2.0))
        y = -2.0;
      if (!(y < height + 1.0))
        y = height + 1.0;
      {
        double x0f = floor (x), y0f = floor (y);
        float fx = (float) (x - x0f), fy = (float) (y - y0f);
        int x0 = (int) x0f, y0 = (int) y0f;
        int xa = clampi (x0, 0, width - 1), xb = clampi (x0 + 1, 0, width - 1);
        int ya = clampi (y0, 0, height - 1), yb = clampi (y0 + 1, 0,
            height - 1);
        const uint8_t *ra = rgb + (size_t) ya * stride;
        const uint8_t *rb = rgb + (size_t) yb * stride;
        for (int c = 0; c < 3; c++) {
          float top = ra[3 * xa + c] * (1.0f - fx) + ra[3 * xb + c] * fx;
          float bot = rb[3 * xa + c] * (1.0f - fx) + rb[3 * xb + c] * fx;
          float val = top * (1.0f - fy) + bot * fy;
          out[c * plane + (size_t) v * size + u] = val / 127.5f - 1.0f;
        }
      }
    }
  }
}

static int
heat_group (int k)
{
  if (k <= 26)
    return 0;
  if (k <= 47 || k >= 68)
    return 1;
  return 2;
}

void
ae_face_heatmap (const float *face, int n_face, const AeFaceTransform * t,
    int size, float sigma, float min_confidence, float *out)
{
  size_t plane = (size_t) size * size;
  double s = sigma, r2 = 9.0 * s * s;
  int reach = (int) ceil (3.0 * s) + 1;

  memset (out, 0, AE_FACE_HEAT_CHANNELS * plane * sizeof (float));
  if (face == NULL || !(sigma > 0.0f))
    return;
  for (int k = 0; k < n_face && k < 70; k++) {
    const float *p = face + 3 * k;
    float *ch;
    double qx, qy;
    int u0, u1, v0, v1;

    if (!(p[2] >= min_confidence) || !isfinite (p[0]) || !isfinite (p[1]))
      continue;
    ae_face_transform_apply (t, p[0], p[1], &qx, &qy);
    if (!(qx > -reach && qx < size + reach && qy > -reach
            && qy < size + reach))
      continue;
    ch = out + heat_group (k) * plane;
    u0 = clampi ((int) floor (qx) - reach, 0, size - 1);
    u1 = clampi ((int) floor (qx) + reach, 0, size - 1);
    v0 = clampi ((int) floor (qy) - reach, 0, size - 1);
    v1 = clampi ((int) floor (qy) + reach, 0, size - 1);
    for (int v = v0; v <= v1; v++) {
      double dy = v + 0.5 - qy;
      for (int u = u0; u <= u1; u++) {
        double dx = u + 0.5 - qx, d2 = dx * dx + dy * dy;
        float val;
        if (d2 > r2)
          continue;
        val = (float) exp (-d2 / (2.0 * s * s));
        if (val > ch[(size_t) v * size + u])
          ch[(size_t) v * size + u] = val;
      }
    }
  }
}

void
ae_face_hard_mask (const float *face, int n_face, const AeFaceTransform * t,
    int size, float brow_lift, float *out)
{
  double poly[FA_POLY_N][2];
  int n = 0;

  memset (out, 0, (size_t) size * size * sizeof (float));
  if (face == NULL || n_face < AE_FACE_MIN_POINTS)
    return;
  for (int k = 0; k < FA_JAW_N; k++, n++)
    ae_face_transform_apply (t, face[3 * k], face[3 * k + 1], &poly[n][0],
        &poly[n][1]);
  for (int k = FA_BROW_LAST; k >= FA_BROW_FIRST; k--, n++) {
    ae_face_transform_apply (t, face[3 * k], face[3 * k + 1], &poly[n][0],
        &poly[n][1]);
    poly[n][1] -= (double) brow_lift * size;
  }
  for (int v = 0; v < size; v++) {
    double py = v + 0.5;
    for (int u = 0; u < size; u++) {
      double px = u + 0.5;
      bool inside = false;
      for (int i = 0; i < n; i++) {
        const double *p1 = poly[i], *p2 = poly[(i + 1) % n];
        if ((p1[1] > py) != (p2[1] > py)) {
          double xc = p1[0] + (py - p1[1]) * (p2[0] - p1[0]) / (p2[1] - p1[1]);
          if (px < xc)
            inside = !inside;
        }
      }
      out[(size_t) v * size + u] = inside ? 1.0f : 0.0f;
    }
  }
}

int
ae_face_feather_radius (const AeFaceAlignParams * p, int size)
{
  return (int) lround ((double) p->feather * size);
}

/* One separable pass: horizontal into tmp, vertical into out. */
static void
box_pass (const float *in, int size, int r, float *tmp, float *out)
{
  double k = 2.0 * r + 1.0;

  for (int v = 0; v < size; v++)
    for (int u = 0; u < size; u++) {
      double s = 0.0;
      for (int d = -r; d <= r; d++)
        if (u + d >= 0 && u + d < size)
          s += in[(size_t) v * size + u + d];
      tmp[(size_t) v * size + u] = (float) (s / k);
    }
  for (int v = 0; v < size; v++)
    for (int u = 0; u < size; u++) {
      double s = 0.0;
      for (int d = -r; d <= r; d++)
        if (v + d >= 0 && v + d < size)
          s += tmp[(size_t) (v + d) * size + u];
      out[(size_t) v * size + u] = (float) (s / k);
    }
}

void
ae_face_soft_mask (const float *hard, int size, int radius, float *tmp,
    float *out)
{
  if (radius <= 0) {
    memcpy (out, hard, (size_t) size * size * sizeof (float));
    return;
  }
  /* box_pass reads `in` fully before it writes `out`: in place is fine */
  box_pass (hard, size, radius, tmp, out);
  box_pass (out, size, radius, tmp, out);
}

/* Bilinear sample of a size x size plane, zero outside. */
static float
sample_zero (const float *m, int size, double x, double y)
{
  double x0f = floor (x), y0f = floor (y);
  float fx = (float) (x - x0f), fy = (float) (y - y0f);
  int x0 = (int) x0f, y0 = (int) y0f;
  float v00 = 0, v01 = 0, v10 = 0, v11 = 0;

  if (y0 >= 0 && y0 < size) {
    if (x0 >= 0 && x0 < size)
      v00 = m[(size_t) y0 * size + x0];
    if (x0 + 1 >= 0 && x0 + 1 < size)
      v01 = m[(size_t) y0 * size + x0 + 1];
  }
  if (y0 + 1 >= 0 && y0 + 1 < size) {
    if (x0 >= 0 && x0 < size)
      v10 = m[(size_t) (y0 + 1) * size + x0];
    if (x0 + 1 >= 0 && x0 + 1 < size)
      v11 = m[(size_t) (y0 + 1) * size + x0 + 1];
  }
  return (v00 * (1.0f - fx) + v01 * fx) * (1.0f - fy)
      + (v10 * (1.0f - fx) + v11 * fx) * fy;
}

void
ae_face_blend (uint8_t * rgb, int width, int height, int stride,
    const float *gen, const float *soft, int size,
    const AeFaceTransform * t, float strength)
{
  size_t plane = (size_t) size * size;
  double xs[4], ys[4], xmin = INFINITY, xmax = -INFINITY;
  double ymin = INFINITY, ymax = -INFINITY;
  int u0, u1, v0, v1;

  if (!(strength > 0.0f))
    return;
  /* Frame pixels whose crop position q (pixel-centre units) lies in
   * (-1, size): alpha falls off from the edge row to zero over that last
   * crop pixel, so the box reaches half a crop pixel beyond the edges. */
  ae_face_transform_invert (t, -0.5, -0.5, &xs[0], &ys[0]);
  ae_face_transform_invert (t, size + 0.5, -0.5, &xs[1], &ys[1]);
  ae_face_transform_invert (t, -0.5, size + 0.5, &xs[2], &ys[2]);
  ae_face_transform_invert (t, size + 0.5, size + 0.5, &xs[3], &ys[3]);
  for (int i = 0; i < 4; i++) {
    xmin = fmin (xmin, xs[i]);
    xmax = fmax (xmax, xs[i]);
    ymin = fmin (ymin, ys[i]);
    ymax = fmax (ymax, ys[i]);
  }
  if (!(xmax >= 0 && ymax >= 0 && xmin < width && ymin < height))
    return;
  u0 = clampi ((int) floor (xmin) - 1, 0, width - 1);
  u1 = clampi ((int) ceil (xmax) + 1, 0, width - 1);
  v0 = clampi ((int) floor (ymin) - 1, 0, height - 1);
  v1 = clampi ((int) ceil (ymax) + 1, 0, height - 1);
  for (int y = v0; y <= v1; y++) {
    uint8_t *row = rgb + (size_t) y * stride;
    for (int x = u0; x <= u1; x++) {
      double qx, qy;
      float alpha;
      ae_face_transform_apply (t, x + 0.5, y + 0.5, &qx, &qy);
      qx -= 0.5;
      qy -= 0.5;
      if (!(qx > -1.0 && qx < size && qy > -1.0 && qy < size))
        continue;
      alpha = sample_zero (soft, size, qx, qy) * strength;
      if (!(alpha > 0.0f))
        continue;
      {
        double x0f = floor (qx), y0f = floor (qy);
        float fx = (float) (qx - x0f), fy = (float) (qy - y0f);
        int x0 = (int) x0f, y0 = (int) y0f;
        int xa = clampi (x0, 0, size - 1), xb = clampi (x0 + 1, 0, size - 1);
        int ya = clampi (y0, 0, size - 1), yb = clampi (y0 + 1, 0, size - 1);
        for (int c = 0; c < 3; c++) {
          const float *g = gen + c * plane;
          float g00 = (g[(size_t) ya * size + xa] + 1.0f) * 127.5f;
          float g01 = (g[(size_t) ya * size + xb] + 1.0f) * 127.5f;
          float g10 = (g[(size_t) yb * size + xa] + 1.0f) * 127.5f;
          float g11 = (g[(size_t) yb * size + xb] + 1.0f) * 127.5f;
          float gv = (g00 * (1.0f - fx) + g01 * fx) * (1.0f - fy)
              + (g10 * (1.0f - fx) + g11 * fx) * fy;
          float o = row[3 * x + c] * (1.0f - alpha) + gv * alpha;
          long r = lrintf (o);
          row[3 * x + c] = (uint8_t) (r < 0 ? 0 : (r > 255 ? 255 : r));
        }
      }
    }
  }
}

void
ae_face_smoother_reset (AeFaceSmoother * s)
{
  s->valid = false;
}

void
ae_face_smoother_update (AeFaceSmoother * s, const AeFaceTransform * m,
    double smoothing, int size, AeFaceTransform * out)
{
  if (smoothing < 0.0)
    smoothing = 0.0;
  if (smoothing > 0.99)
    smoothing = 0.99;
  if (s->valid) {
    double sm = hypot (m->a, m->b), ss = hypot (s->state.a, s->state.b);
    double cmx, cmy, csx, csy;
    ae_face_transform_invert (m, size / 2.0, size / 2.0, &cmx, &cmy);
    ae_face_transform_invert (&s->state, size / 2.0, size / 2.0, &csx, &csy);
    if (fabs (sm / ss - 1.0) > 0.25
        || hypot (cmx - csx, cmy - csy) * sm > 0.25 * size)
      s->valid = false;
  }
  if (!s->valid) {
    s->state = *m;
    s->valid = true;
  } else {
    double k = 1.0 - smoothing;
    s->state.a += k * (m->a - s->state.a);
    s->state.b += k * (m->b - s->state.b);
    s->state.tx += k * (m->tx - s->state.tx);
    s->state.ty += k * (m->ty - s->state.ty);
  }
  *out = s->state;
}
