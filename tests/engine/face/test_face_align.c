/* Face alignment, masks, heatmap, blending and smoothing
 * (engine/face-align.c) on synthetic faces, and the face model's load
 * errors and reference checks on the bundled model (engine/face-model.c).
 *
 *   test_face_align [MODEL_DIR]
 *
 * The numerical match with train/face_align.py is test_face_torch.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "face-align.h"
#include "face-model.h"
#include "test_util.h"

#define S 64

/* A synthetic face in crop units: the five template points exactly, eyes as
 * rings around them, jaw as a half ellipse, brows, nose and lips. */
static void
canonical_face (const AeFaceAlignParams * p, float q[70][2])
{
  for (int e = 0; e < 2; e++)
    for (int k = 0; k < 6; k++) {
      double ang = 2.0 * G_PI * k / 6.0;
      q[36 + 6 * e + k][0] = p->template_pts[e][0] + 0.03 * cos (ang);
      q[36 + 6 * e + k][1] = p->template_pts[e][1] + 0.012 * sin (ang);
    }
  for (int k = 0; k < 17; k++) {
    double ang = G_PI * k / 16.0;
    q[k][0] = 0.5 - 0.36 * cos (ang);
    q[k][1] = 0.42 + 0.40 * sin (ang);
  }
  for (int k = 17; k < 27; k++) {
    q[k][0] = 0.3 + 0.4 * (k - 17) / 9.0;
    q[k][1] = 0.33;
  }
  for (int k = 27; k < 36; k++) {
    q[k][0] = 0.5 + 0.01 * (k - 31);
    q[k][1] = 0.45 + 0.1 * (k - 27) / 8.0;
  }
  q[30][0] = p->template_pts[2][0];
  q[30][1] = p->template_pts[2][1];
  for (int k = 48; k < 68; k++) {
    double ang = 2.0 * G_PI * (k - 48) / 20.0;
    q[k][0] = 0.5 - 0.138 * cos (ang);
    q[k][1] = 0.70 + 0.03 * sin (ang);
  }
  q[48][0] = p->template_pts[3][0];
  q[48][1] = p->template_pts[3][1];
  q[54][0] = p->template_pts[4][0];
  q[54][1] = p->template_pts[4][1];
  q[68][0] = p->template_pts[0][0];
  q[68][1] = p->template_pts[0][1];
  q[69][0] = p->template_pts[1][0];
  q[69][1] = p->template_pts[1][1];
}

/* Frame points p = G (q * S) with G = scale 1.5, rotation 10 degrees,
 * offset (ox, oy); confidence c. */
static void
make_face (const AeFaceAlignParams * p, double ox, double oy, float c,
    float face[70 * 3])
{
  float q[70][2];
  double sc = 1.5, r = 10.0 * G_PI / 180.0;

  canonical_face (p, q);
  for (int k = 0; k < 70; k++) {
    double x = q[k][0] * S, y = q[k][1] * S;
    face[3 * k] = (float) (sc * (cos (r) * x - sin (r) * y) + ox);
    face[3 * k + 1] = (float) (sc * (sin (r) * x + cos (r) * y) + oy);
    face[3 * k + 2] = c;
  }
}

static void
test_fit_and_confidence (const AeFaceAlignParams * p)
{
  float face[70 * 3];
  AeFaceTransform t;
  AeError err;
  double sc = 1.0 / 1.5, r = -10.0 * G_PI / 180.0, qx, qy;

  make_face (p, 40.0, 20.0, 0.9f, face);
  CHECK (ae_face_confident (face, 70, 0.3f), "a full face is confident");
  CHECK (!ae_face_confident (face, 70, 0.95f), "mean c 0.9 < 0.95");
  CHECK (!ae_face_confident (face, 60, 0.3f), "60 points are not a face");
  CHECK (!ae_face_confident (NULL, 70, 0.3f), "NULL");
  face[3 * 10 + 2] = 0.0f;
  CHECK (!ae_face_confident (face, 70, 0.3f), "a missing jaw point");
  face[3 * 10 + 2] = 0.9f;
  face[3 * 20] = NAN;
  CHECK (!ae_face_confident (face, 70, 0.3f), "a NaN point");
  make_face (p, 40.0, 20.0, 0.9f, face);

  REQUIRE (ae_face_fit (face, 70, p, S, &t, &err) == 0, "fit: %s", err.msg);
  /* the five points lie exactly on the template: the fit inverts G */
  CHECK (fabs (t.a - sc * cos (r)) < 1e-6 && fabs (t.b - sc * sin (r)) < 1e-6,
      "fit scale/rotation %g %g", t.a, t.b);
  ae_face_transform_apply (&t, face[3 * 30], face[3 * 30 + 1], &qx, &qy);
  CHECK (fabs (qx - p->template_pts[2][0] * S) < 1e-4
      && fabs (qy - p->template_pts[2][1] * S) < 1e-4,
      "nose tip maps onto the template (%g, %g)", qx, qy);
  {
    double x, y;
    ae_face_transform_invert (&t, qx, qy, &x, &y);
    CHECK (fabs (x - face[3 * 30]) < 1e-6 && fabs (y - face[3 * 30 + 1]) <
        1e-6, "invert");
  }
  {
    AeFaceTransform t2 = ae_face_transform_scaled (&t, 2.0);
    ae_face_transform_apply (&t2, face[3 * 30], face[3 * 30 + 1], &qx, &qy);
    CHECK (fabs (qx - p->template_pts[2][0] * 2 * S) < 1e-4,
        "scaled transform");
  }
  CHECK (ae_face_fit (face, 40, p, S, &t, &err) < 0
      && strstr (err.msg, "68") != NULL, "short face: %s", err.msg);
  face[3 * 48 + 2] = 0.0f;
  CHECK (ae_face_fit (face, 70, p, S, &t, &err) < 0
      && strstr (err.msg, "missing") != NULL, "missing mouth: %s", err.msg);
  /* every point in one spot: degenerate */
  for (int k = 0; k < 70; k++) {
    face[3 * k] = 5.0f;
    face[3 * k + 1] = 5.0f;
    face[3 * k + 2] = 0.9f;
  }
  CHECK (ae_face_fit (face, 70, p, S, &t, &err) < 0, "degenerate face");
}

static void
test_masks_and_heatmap (const AeFaceAlignParams * p)
{
  float face[70 * 3], hard[S * S], soft[S * S], tmp[S * S];
  float heat[3 * S * S];
  AeFaceTransform t;
  AeError err;
  double qx, qy, s = p->heatmap_sigma * S;

  make_face (p, 40.0, 20.0, 0.9f, face);
  REQUIRE (ae_face_fit (face, 70, p, S, &t, &err) == 0, "%s", err.msg);
  ae_face_hard_mask (face, 70, &t, S, p->brow_lift, hard);
  CHECK (hard[(S / 2) * S + S / 2] == 1.0f, "crop centre inside the mask");
  CHECK (hard[0] == 0.0f && hard[S * S - 1] == 0.0f, "corners outside");
  {
    int inside = 0;
    for (int i = 0; i < S * S; i++)
      inside += hard[i] == 1.0f;
    /* jaw half-ellipse (0.36 x 0.40) plus the lifted forehead band */
    CHECK (inside > S * S / 5 && inside < S * S * 2 / 3, "mask area %d",
        inside);
  }
  ae_face_soft_mask (hard, S, ae_face_feather_radius (p, S), tmp, soft);
  CHECK (ae_face_feather_radius (p, S) == 3, "feather radius");
  CHECK (fabsf (soft[(S / 2) * S + S / 2] - 1.0f) < 1e-6, "soft centre 1");
  CHECK (soft[0] == 0.0f, "soft corner 0");
  {
    bool ranged = true, softer = false;
    for (int i = 0; i < S * S; i++) {
      ranged &= soft[i] >= 0.0f && soft[i] <= 1.0f + 1e-6f;
      softer |= soft[i] > 0.01f && soft[i] < 0.99f;
    }
    CHECK (ranged && softer, "soft mask in [0, 1] with a feathered edge");
  }

  ae_face_heatmap (face, 70, &t, S, (float) s, p->min_confidence, heat);
  /* nose tip (27-35 group: channel 1) */
  ae_face_transform_apply (&t, face[3 * 30], face[3 * 30 + 1], &qx, &qy);
  {
    int u = (int) floor (qx), v = (int) floor (qy);
    double dx = u + 0.5 - qx, dy = v + 0.5 - qy;
    float want = (float) exp (-(dx * dx + dy * dy) / (2 * s * s));
    CHECK (heat[1 * S * S + v * S + u] >= want - 1e-6f,
        "nose peak %g >= %g", heat[1 * S * S + v * S + u], want);
  }
  /* a point below the confidence threshold is not drawn */
  {
    float before[3 * S * S];
    memcpy (before, heat, sizeof before);
    face[3 * 60 + 2] = 0.1f;
    ae_face_heatmap (face, 70, &t, S, (float) s, p->min_confidence, heat);
    CHECK (memcmp (before + S * S, heat + S * S, S * S *
            sizeof (float)) == 0, "eyes/nose channel unchanged");
    CHECK (memcmp (before, heat, S * S * sizeof (float)) == 0,
        "jaw channel unchanged by a lip point");
    {
      double ds = 0;
      for (int i = 0; i < S * S; i++)
        ds += fabs (before[2 * S * S + i] - heat[2 * S * S + i]);
      CHECK (ds > 0.1, "lip point 60 left the lips channel (%g)", ds);
    }
  }
}

static void
gradient_frame (uint8_t * rgb, int w, int h)
{
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      rgb[3 * (y * w + x)] = (uint8_t) (x * 255 / (w - 1));
      rgb[3 * (y * w + x) + 1] = (uint8_t) (y * 255 / (h - 1));
      rgb[3 * (y * w + x) + 2] = 128;
    }
}

static void
test_warp_and_blend (const AeFaceAlignParams * p)
{
  enum { W = 200, H = 160 };
  static uint8_t frame[W * H * 3], orig[W * H * 3];
  float face[70 * 3], crop[3 * S * S], hard[S * S], soft[S * S], tmp[S * S];
  AeFaceTransform t;
  AeError err;
  int maxd = 0, changed_outside = 0;

  gradient_frame (frame, W, H);
  memcpy (orig, frame, sizeof frame);
  make_face (p, 60.0, 10.0, 0.9f, face);
  REQUIRE (ae_face_fit (face, 70, p, S, &t, &err) == 0, "%s", err.msg);
  ae_face_warp_crop (frame, W, H, W * 3, &t, S, crop);
  ae_face_hard_mask (face, 70, &t, S, p->brow_lift, hard);
  ae_face_soft_mask (hard, S, 3, tmp, soft);

  ae_face_blend (frame, W, H, W * 3, crop, soft, S, &t, 0.0f);
  CHECK (memcmp (frame, orig, sizeof frame) == 0, "strength 0: untouched");
  /* the frame's own crop blended back: a linear ramp resampled twice */
  ae_face_blend (frame, W, H, W * 3, crop, soft, S, &t, 1.0f);
  for (int i = 0; i < W * H * 3; i++) {
    int d = abs (frame[i] - orig[i]);
    if (d > maxd)
      maxd = d;
  }
  CHECK (maxd <= 2, "own crop blended back: max diff %d", maxd);

  /* black crop: only pixels under the feathered mask change */
  memcpy (frame, orig, sizeof frame);
  for (int i = 0; i < 3 * S * S; i++)
    crop[i] = -1.0f;
  ae_face_blend (frame, W, H, W * 3, crop, soft, S, &t, 1.0f);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      double qx, qy;
      ae_face_transform_apply (&t, x + 0.5, y + 0.5, &qx, &qy);
      if (memcmp (frame + 3 * (y * W + x), orig + 3 * (y * W + x), 3) != 0
          && (qx < -1 || qy < -1 || qx > S + 1 || qy > S + 1))
        changed_outside++;
    }
  CHECK (changed_outside == 0, "%d pixels outside the crop changed",
      changed_outside);
  {
    double cx, cy;
    ae_face_transform_invert (&t, S / 2.0, S / 2.0, &cx, &cy);
    CHECK (frame[3 * ((int) cy * W + (int) cx)] == 0, "face centre black");
  }

  /* a face at the frame border: the crop repeats edge pixels, blending
   * stays inside the frame (run under ASan/valgrind for the bounds) */
  make_face (p, -60.0, -40.0, 0.9f, face);
  REQUIRE (ae_face_fit (face, 70, p, S, &t, &err) == 0, "%s", err.msg);
  ae_face_warp_crop (orig, W, H, W * 3, &t, S, crop);
  CHECK (fabsf (crop[0] - (orig[0] / 127.5f - 1.0f)) < 1e-5,
      "outside the frame: the corner pixel (%g)", crop[0]);
  memcpy (frame, orig, sizeof frame);
  ae_face_blend (frame, W, H, W * 3, crop, soft, S, &t, 1.0f);
  /* entirely outside: nothing happens */
  make_face (p, 5000.0, 5000.0, 0.9f, face);
  REQUIRE (ae_face_fit (face, 70, p, S, &t, &err) == 0, "%s", err.msg);
  memcpy (frame, orig, sizeof frame);
  ae_face_blend (frame, W, H, W * 3, crop, soft, S, &t, 1.0f);
  CHECK (memcmp (frame, orig, sizeof frame) == 0, "face off the frame");
}

static void
test_smoother (void)
{
  AeFaceSmoother sm;
  AeFaceTransform m = { 0.5, 0.0, 10.0, 20.0 }, out;
  double amp_in = 1.0, amp_out = 0.0;

  ae_face_smoother_reset (&sm);
  ae_face_smoother_update (&sm, &m, 0.6, S, &out);
  CHECK (out.tx == 10.0 && out.ty == 20.0, "first frame: the measurement");
  /* +-1 px jitter of the crop is damped */
  for (int i = 0; i < 40; i++) {
    AeFaceTransform j = m;
    j.tx += (i % 2) ? amp_in : -amp_in;
    ae_face_smoother_update (&sm, &j, 0.6, S, &out);
    if (i > 20 && fabs (out.tx - 10.0) > amp_out)
      amp_out = fabs (out.tx - 10.0);
  }
  CHECK (amp_out < 0.5 * amp_in, "jitter %g damped to %g", amp_in, amp_out);
  /* a steady new position is reached */
  m.tx = 14.0;
  for (int i = 0; i < 60; i++)
    ae_face_smoother_update (&sm, &m, 0.6, S, &out);
  CHECK (fabs (out.tx - 14.0) < 1e-3, "converges (%g)", out.tx);
  /* a jump (half the crop) restarts at the measurement */
  m.tx = 14.0 + 0.5 * S * 0.5;
  ae_face_smoother_update (&sm, &m, 0.6, S, &out);
  CHECK (out.tx == m.tx, "jump: restarts (%g)", out.tx);
  /* a scale jump too */
  m.a = 1.0;
  ae_face_smoother_update (&sm, &m, 0.6, S, &out);
  CHECK (out.a == 1.0, "scale jump: restarts");
  /* smoothing 0: no memory */
  m.tx += 1.0;
  ae_face_smoother_update (&sm, &m, 0.0, S, &out);
  CHECK (out.tx == m.tx, "smoothing 0");
}

static void
test_model (const char *model_dir)
{
  char *face_dir = g_build_filename (model_dir, "face", NULL);
  char *vae_dir = g_build_filename (model_dir, "vae", NULL);
  AeFaceModel *m = NULL;
  AeFaceReference *r = NULL;
  AeFaceSession *s = NULL;
  AeVae *vae = NULL;
  AeArena arena;
  AeError err;
  float face[70 * 3];
  static uint8_t img[128 * 128 * 3];

  CHECK (ae_face_model_load (&m, "/nonexistent/face", &err) < 0
      && strstr (err.msg, "/nonexistent/face") != NULL, "missing: %s",
      err.msg);
  if (!g_file_test (face_dir, G_FILE_TEST_IS_DIR)) {
    printf ("no %s: bundled face model checks skipped\n", face_dir);
    goto out;
  }
  REQUIRE (ae_face_model_load (&m, face_dir, &err) == 0, "%s", err.msg);
  REQUIRE (ae_vae_load (&vae, vae_dir, &err) == 0, "%s", err.msg);
  REQUIRE (ae_arena_init (&arena, 0, &err) == 0, "%s", err.msg);
  CHECK (ae_face_session_new (&s, m, 30, &err) < 0
      && strstr (err.msg, "multiple") != NULL, "crop 30: %s", err.msg);
  REQUIRE (ae_face_session_new (&s, m, 0, &err) == 0, "%s", err.msg);
  CHECK (ae_face_session_crop_size (s) == ae_face_model_info (m)->crop_size,
      "default crop size");
  /* a reference without a face: a clear error */
  memset (img, 90, sizeof img);
  memset (face, 0, sizeof face);
  CHECK (ae_face_reference_new (&r, m, vae, img, 128, 128, 128 * 3, face, 70,
          &arena, &err) < 0 && strstr (err.msg, "no confident face") != NULL,
      "faceless reference: %s", err.msg);
  CHECK (ae_face_reference_new (&r, m, vae, img, 128, 128, 128 * 3, NULL, 0,
          &arena, &err) < 0 && strstr (err.msg, "no confident face") != NULL,
      "no points: %s", err.msg);
  /* a synthetic face: prepared, identity of unit length */
  make_face (&ae_face_model_info (m)->align, 10.0, 0.0, 0.9f, face);
  REQUIRE (ae_face_reference_new (&r, m, vae, img, 128, 128, 128 * 3, face,
          70, &arena, &err) == 0, "%s", err.msg);
  {
    const float *e = ae_face_reference_identity (r);
    double n2 = 0;
    for (int k = 0; k < ae_face_model_info (m)->identity_dim; k++)
      n2 += e[k] * e[k];
    CHECK (fabs (n2 - 1.0) < 1e-4, "identity |e|^2 = %g", n2);
  }
  {
    AeFaceTransform t;
    REQUIRE (ae_face_fit (face, 70, &ae_face_model_info (m)->align,
            ae_face_session_crop_size (s), &t, &err) == 0, "%s", err.msg);
    ae_face_session_prepare (s, img, 128, 128, 128 * 3, face, 70, &t);
    CHECK (ae_face_session_generate (s, r, 0, 0, &err) < 0, "0 steps");
    REQUIRE (ae_face_session_generate (s, r, 2, 0, &err) == 0, "%s",
        err.msg);
    CHECK (ae_face_session_plane (s, "generated") != NULL
        && ae_face_session_plane (s, "nope") == NULL, "planes");
  }
  ae_arena_clear (&arena);
out:
  ae_face_session_free (s);
  ae_face_reference_free (r);
  ae_face_model_free (m);
  if (vae)
    ae_vae_free (vae);
  g_free (face_dir);
  g_free (vae_dir);
}

int
main (int argc, char **argv)
{
  AeFaceAlignParams p;

  ae_face_align_params_default (&p);
  CHECK (p.template_pts[2][0] == 0.5f && p.min_confidence == 0.3f,
      "defaults");
  test_fit_and_confidence (&p);
  test_masks_and_heatmap (&p);
  test_warp_and_blend (&p);
  test_smoother ();
  if (argc > 1)
    test_model (argv[1]);
  if (ae_test_failures) {
    fprintf (stderr, "%d failures\n", ae_test_failures);
    return 1;
  }
  printf ("face-align: all checks passed\n");
  return 0;
}
